package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/boltfile"
)

// File is the name of the content store's bbolt file inside the terminal's data directory,
// beside kiosk.StoreFile.
const File = "content.db"

// Buckets.
const (
	bMeta      = "meta"      // kBytes, kUse
	bObjects   = "objects"   // object sha256 -> object (JSON)
	bManifests = "manifests" // object sha256 -> encoded manifest
	bChunks    = "chunks"    // chunk sha256 -> chunk bytes, present once received and verified
	bChunkRefs = "chunkrefs" // chunk sha256 -> uint32: objects whose manifest lists it
	bHolders   = "holders"   // object sha256 + holder -> 1 if pinned, 0 if not
	bLRU       = "lru"       // use (uint64 big endian) + object sha256 -> nothing
	bRefs      = "refs"      // object sha256 -> Ref (JSON) while a holder retains it
)

// Meta keys.
const (
	kBytes = "bytes" // sum of the sizes of the objects held, whole or in part (uint64)
	kUse   = "use"   // last use number given (uint64): the LRU order, immune to clock jumps
)

// Errors. Each is wrapped with what was wrong.
var (
	// ErrUnknownObject: the store holds neither the object nor its manifest.
	ErrUnknownObject = errors.New("object not held")
	// ErrIncomplete: the object is still missing chunks; it cannot be read yet.
	ErrIncomplete = errors.New("object incomplete")
	// ErrManifestMismatch: the manifest's sha256 or its object digest is not the reference's.
	ErrManifestMismatch = errors.New("manifest does not match the reference")
	// ErrChunkMismatch: a chunk's bytes do not have the sha256 its manifest lists.
	ErrChunkMismatch = errors.New("chunk does not match its manifest")
	// ErrObjectMismatch: every chunk matched, but the whole object's sha256 did not: the
	// manifest lied. The object is dropped.
	ErrObjectMismatch = errors.New("object does not match its sha256")
	// ErrFull: the cache cap leaves no room even after evicting every object not pinned.
	ErrFull = errors.New("content cache full")
	// ErrNoSuchChunk: an index beyond the object's last chunk.
	ErrNoSuchChunk = errors.New("no such chunk")
	// ErrCorrupt: a stored chunk no longer matches its sha256 (a damaged disk). The chunk is
	// dropped, so the object is incomplete again and the chunk is asked for anew.
	ErrCorrupt = errors.New("stored chunk damaged")
)

// Options of a Store.
type Options struct {
	// Cap bounds the bytes of the objects held (whole or in part); 0 means no cap. A kiosk
	// sets it: objects no holder pins are evicted least recently used first to make room.
	Cap int64
	// NoSync skips fsync; only for benchmarks that measure something else.
	NoSync bool
	// LockTimeout bounds the wait for another process holding the file (default 1 s).
	LockTimeout time.Duration
}

// Store holds objects in one bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
}

// object is the record of an object held whole or in part.
type object struct {
	Manifest Hash  `json:"manifest"`
	Size     int64 `json:"size"`
	Chunks   int   `json:"chunks"`
	// Next is the lowest chunk index not known to be held: chunks below it are all held, so
	// the completeness check resumes there and costs one pass over the object in all.
	Next     int    `json:"next"`
	Complete bool   `json:"complete"`
	Use      uint64 `json:"use"` // key in bLRU
}

// Open opens (creating it if needed) the content store at path. A damaged file is refused
// with an error matching boltfile.ErrDamaged and left as it was.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	db, err := boltfile.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	s := &Store{db: db, path: path, opts: opts}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{bMeta, bObjects, bManifests, bChunks, bChunkRefs, bHolders, bLRU, bRefs} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return sweep(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open content store %s: %w", path, err)
	}
	return s, nil
}

// sweep deletes chunks that no object lists: what a Put cut short by a crash wrote before it
// could record its object.
func sweep(tx *bolt.Tx) error {
	chunks, refs := tx.Bucket([]byte(bChunks)), tx.Bucket([]byte(bChunkRefs))
	var orphans [][]byte
	c := chunks.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if refs.Get(k) == nil {
			orphans = append(orphans, bytes.Clone(k))
		}
	}
	for _, k := range orphans {
		if err := chunks.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Stats is what the store holds.
type Stats struct {
	Objects  int   // whole or in part
	Complete int   // usable
	Bytes    int64 // sum of their sizes (counted in full from the moment one is begun)
	Cap      int64
}

// Stats counts the objects held.
func (s *Store) Stats() (Stats, error) {
	st := Stats{Cap: s.opts.Cap}
	err := s.db.View(func(tx *bolt.Tx) error {
		st.Bytes = int64(getU64(tx.Bucket([]byte(bMeta)), kBytes))
		return tx.Bucket([]byte(bObjects)).ForEach(func(k, v []byte) error {
			var o object
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("object %x: %w", k, err)
			}
			st.Objects++
			if o.Complete {
				st.Complete++
			}
			return nil
		})
	})
	return st, err
}

// Begin accepts an object's manifest, checked against the reference that named it, so that its
// chunks can be received (PutChunk). It makes room under the cap first. Beginning an object
// already held, whole or in part, changes nothing but its place in the LRU order.
func (s *Store) Begin(ref Ref, manifest []byte) error {
	if err := ref.Check(); err != nil {
		return err
	}
	if Sum(manifest) != ref.Manifest {
		return fmt.Errorf("begin %s: %w (manifest sha256 %s, reference says %s)", ref.Object, ErrManifestMismatch, Sum(manifest), ref.Manifest)
	}
	m, err := DecodeManifest(manifest)
	if err != nil {
		return fmt.Errorf("begin %s: %w", ref.Object, err)
	}
	if m.Object != ref.Object || m.Size != ref.Size {
		return fmt.Errorf("begin %s: %w (manifest is of %s, %d bytes)", ref.Object, ErrManifestMismatch, m.Object, m.Size)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		_, err := s.beginTx(tx, m, manifest)
		return err
	})
}

// beginTx records m (encoded as enc) unless it is held, and returns its record.
func (s *Store) beginTx(tx *bolt.Tx, m *Manifest, enc []byte) (*object, error) {
	o, err := getObject(tx, m.Object)
	if err != nil {
		return nil, err
	}
	if o != nil {
		return o, touch(tx, m.Object, o)
	}
	if err := s.makeRoom(tx, m.Size, m.Object); err != nil {
		return nil, fmt.Errorf("begin %s: %w", m.Object, err)
	}
	refs := tx.Bucket([]byte(bChunkRefs))
	seen := make(map[Hash]bool, len(m.Chunks))
	for _, c := range m.Chunks {
		if seen[c] {
			continue
		}
		seen[c] = true
		n := uint32(0)
		if v := refs.Get(c[:]); len(v) == 4 {
			n = binary.BigEndian.Uint32(v)
		}
		if err := refs.Put(bytes.Clone(c[:]), be32(n+1)); err != nil {
			return nil, err
		}
	}
	if err := tx.Bucket([]byte(bManifests)).Put(bytes.Clone(m.Object[:]), enc); err != nil {
		return nil, err
	}
	meta := tx.Bucket([]byte(bMeta))
	if err := meta.Put([]byte(kBytes), be64(getU64(meta, kBytes)+uint64(m.Size))); err != nil {
		return nil, err
	}
	o = &object{Manifest: Sum(enc), Size: m.Size, Chunks: len(m.Chunks)}
	if err := advance(tx, m.Object, o, enc); err != nil {
		return nil, err
	}
	return o, touch(tx, m.Object, o)
}

// advance moves o.Next past the chunks held and marks o complete, after checking the whole
// object's sha256, once every chunk is held. o is written back by the caller (touch or put).
func advance(tx *bolt.Tx, obj Hash, o *object, enc []byte) error {
	chunks := tx.Bucket([]byte(bChunks))
	for o.Next < o.Chunks {
		c := manifestChunk(enc, o.Next)
		if chunks.Get(c[:]) == nil {
			return nil
		}
		o.Next++
	}
	if o.Complete {
		return nil
	}
	// Every chunk matched its digest; the manifest's object digest is checked against the
	// bytes themselves, read from the file chunk by chunk (nothing is copied).
	whole := sha256.New()
	for i := 0; i < o.Chunks; i++ {
		c := manifestChunk(enc, i)
		whole.Write(chunks.Get(c[:]))
	}
	if got := Hash(whole.Sum(nil)); got != obj {
		return fmt.Errorf("object %s: %w (its chunks make %s)", obj, ErrObjectMismatch, got)
	}
	o.Complete = true
	return nil
}

// PutChunk stores chunk i of an object begun (Begin) after checking it against the manifest,
// durably (one transaction, fsync'd), so a cut or a restart keeps it. It reports whether the
// object is now complete, its whole sha256 checked. A chunk already held is accepted again.
func (s *Store) PutChunk(obj Hash, i int, data []byte) (complete bool, err error) {
	complete, refused, err := s.PutChunks(obj, []Received{{Index: i, Data: data}})
	if err == nil && len(refused) > 0 {
		err = refused[0].Err
	}
	return complete, err
}

// Received is a chunk as it came from the relay.
type Received struct {
	Index int
	Data  []byte
}

// Refused is a chunk PutChunks left out; Err matches ErrChunkMismatch.
type Refused struct {
	Index int
	Err   error
}

// PutChunks is PutChunk for several chunks of one object in one transaction (one fsync): a
// terminal commits together the chunks that arrived while it committed the previous ones.
// Each chunk is checked on its own; those that fail are left out and listed in refused, and
// the others are stored. err is about the object or the store
// (ErrUnknownObject, ErrObjectMismatch, a disk error), and then nothing was stored.
func (s *Store) PutChunks(obj Hash, chunks []Received) (complete bool, refused []Refused, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		refused = refused[:0]
		o, err := getObject(tx, obj)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("chunks of %s: %w (begin it first)", obj, ErrUnknownObject)
		}
		enc := tx.Bucket([]byte(bManifests)).Get(obj[:])
		held := tx.Bucket([]byte(bChunks))
		for _, c := range chunks {
			i, data := c.Index, c.Data
			if i < 0 || i >= o.Chunks {
				refused = append(refused, Refused{i, fmt.Errorf("chunk %d of %s: %w (it has %d chunks)", i, obj, ErrChunkMismatch, o.Chunks)})
				continue
			}
			want := manifestChunk(enc, i)
			if len(data) != ChunkLen(o.Size, i) {
				refused = append(refused, Refused{i, fmt.Errorf("chunk %d of %s: %w (%d bytes, want %d)", i, obj, ErrChunkMismatch, len(data), ChunkLen(o.Size, i))})
				continue
			}
			if got := Sum(data); got != want {
				refused = append(refused, Refused{i, fmt.Errorf("chunk %d of %s: %w (sha256 %s, manifest lists %s)", i, obj, ErrChunkMismatch, got, want)})
				continue
			}
			if held.Get(want[:]) == nil {
				if err := held.Put(bytes.Clone(want[:]), data); err != nil {
					return err
				}
			}
		}
		if err := advance(tx, obj, o, bytes.Clone(enc)); err != nil {
			if errors.Is(err, ErrObjectMismatch) {
				return errDropped{err}
			}
			return err
		}
		complete = o.Complete
		return putObject(tx, obj, o)
	})
	var d errDropped
	if errors.As(err, &d) {
		// The drop must be kept although the answer is an error: commit it on its own.
		if derr := s.Drop(obj); derr != nil {
			return false, nil, errors.Join(d.err, derr)
		}
		return false, nil, d.err
	}
	if err != nil {
		return false, nil, err
	}
	return complete, refused, nil
}

// errDropped carries ErrObjectMismatch out of a transaction that is then rolled back, so the
// object is dropped in a transaction of its own: a manifest that lied is not kept.
type errDropped struct{ err error }

func (e errDropped) Error() string { return e.err.Error() }

// Missing lists up to max chunk indices of obj not held yet, lowest first (nil when complete).
func (s *Store) Missing(obj Hash, max int) ([]int, error) {
	var out []int
	err := s.db.View(func(tx *bolt.Tx) error {
		o, err := getObject(tx, obj)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("missing chunks of %s: %w", obj, ErrUnknownObject)
		}
		enc := tx.Bucket([]byte(bManifests)).Get(obj[:])
		chunks := tx.Bucket([]byte(bChunks))
		for i := o.Next; i < o.Chunks && len(out) < max; i++ {
			c := manifestChunk(enc, i)
			if chunks.Get(c[:]) == nil {
				out = append(out, i)
			}
		}
		return nil
	})
	return out, err
}

// State says how much of an object is held.
type State int

const (
	Absent  State = iota // not held (maybe evicted, or never begun)
	Partial              // begun, some chunks missing
	Whole                // every chunk held and the whole object checked
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Partial:
		return "partial"
	case Whole:
		return "whole"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// State reports whether obj is held, in part or whole.
func (s *Store) State(obj Hash) (State, error) {
	st := Absent
	err := s.db.View(func(tx *bolt.Tx) error {
		o, err := getObject(tx, obj)
		switch {
		case err != nil:
			return err
		case o == nil:
		case o.Complete:
			st = Whole
		default:
			st = Partial
		}
		return nil
	})
	return st, err
}

// Manifest returns the encoded manifest of an object held whole or in part (what a relay
// sends when asked for it).
func (s *Store) Manifest(obj Hash) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bManifests)).Get(obj[:])
		if v == nil {
			return fmt.Errorf("manifest of %s: %w", obj, ErrUnknownObject)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// Chunk appends chunk i of obj to buf and returns it (what a relay sends when asked for it).
// The chunk is checked against its digest on the way out.
func (s *Store) Chunk(obj Hash, i int, buf []byte) ([]byte, error) {
	err := s.db.View(func(tx *bolt.Tx) error {
		o, err := getObject(tx, obj)
		if err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("chunk %d of %s: %w", i, obj, ErrUnknownObject)
		}
		if i < 0 || i >= o.Chunks {
			return fmt.Errorf("chunk %d of %s: %w (it has %d)", i, obj, ErrNoSuchChunk, o.Chunks)
		}
		want := manifestChunk(tx.Bucket([]byte(bManifests)).Get(obj[:]), i)
		v := tx.Bucket([]byte(bChunks)).Get(want[:])
		if v == nil {
			return fmt.Errorf("chunk %d of %s: %w", i, obj, ErrIncomplete)
		}
		if Sum(v) != want {
			return fmt.Errorf("chunk %d of %s: %w", i, obj, ErrCorrupt)
		}
		buf = append(buf, v...)
		return nil
	})
	if errors.Is(err, ErrCorrupt) {
		return buf, errors.Join(err, s.dropChunk(obj, i))
	}
	return buf, err
}

// dropChunk deletes a damaged chunk, so that every object listing it is asked for again.
func (s *Store) dropChunk(obj Hash, i int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		o, err := getObject(tx, obj)
		if err != nil || o == nil {
			return err
		}
		c := manifestChunk(tx.Bucket([]byte(bManifests)).Get(obj[:]), i)
		if err := tx.Bucket([]byte(bChunks)).Delete(c[:]); err != nil {
			return err
		}
		o.Complete = false
		o.Next = min(o.Next, i)
		return putObject(tx, obj, o)
	})
}

// Put stores an object read from r (a relay receiving an upload, a test, a benchmark): it is
// chunked, each chunk written once per digest, putBatch chunks to a transaction, holding a
// bounded number of chunks in memory whatever the size. Putting an object already held whole
// writes nothing. It returns the object's manifest.
func (s *Store) Put(r io.Reader) (*Manifest, error) {
	var batch [][]byte
	var hashes []Hash
	spare := make([][]byte, 0, putBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			chunks := tx.Bucket([]byte(bChunks))
			for j, data := range batch {
				if chunks.Get(hashes[j][:]) == nil {
					if err := chunks.Put(bytes.Clone(hashes[j][:]), data); err != nil {
						return err
					}
				}
			}
			return nil
		})
		spare = append(spare[:0], batch...)
		batch, hashes = batch[:0], hashes[:0]
		if err != nil {
			return fmt.Errorf("put object: %w", err)
		}
		return nil
	}
	m, err := Build(r, func(i int, chunk []byte) error {
		// bbolt keeps a value's slice until the transaction commits, so each chunk of the
		// batch needs a buffer of its own; they are reused from one batch to the next.
		var b []byte
		if n := len(spare); n > 0 {
			b, spare = spare[n-1][:0], spare[:n-1]
		}
		batch = append(batch, append(b, chunk...))
		hashes = append(hashes, Sum(chunk))
		if len(batch) == putBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	enc := m.Encode()
	err = s.db.Update(func(tx *bolt.Tx) error {
		o, err := s.beginTx(tx, m, enc)
		if err != nil {
			return err
		}
		if !o.Complete {
			// A chunk written above was taken away meanwhile (evicted with another object
			// listing it); the object is held in part and the caller can put it again.
			return fmt.Errorf("put object %s: %w (a chunk was evicted while it was written)", m.Object, ErrIncomplete)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// putBatch is the number of chunks Put writes per transaction (1 MiB). bbolt rewrites the
// whole leaf each new chunk lands in (up to four chunks: it splits no node of four keys or
// fewer), so a transaction holds several times its chunks in dirty pages until it commits:
// 16 chunks a transaction held 26 MB live for 48 MB/s, 4 chunks 10 MB for about 15% less.
const putBatch = 4

// Open returns a reader of an object held whole, and marks it used (LRU).
func (s *Store) Open(obj Hash) (*Reader, error) {
	var o *object
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if o, err = getObject(tx, obj); err != nil {
			return err
		}
		if o == nil {
			return fmt.Errorf("open %s: %w", obj, ErrUnknownObject)
		}
		if !o.Complete {
			return fmt.Errorf("open %s: %w", obj, ErrIncomplete)
		}
		return touch(tx, obj, o)
	})
	if err != nil {
		return nil, err
	}
	// Read: a chunk found damaged is an error matching ErrCorrupt, and the chunk is dropped
	// so that it is fetched again (Chunk).
	return NewReader(obj, o.Size, o.Chunks, func(i int, buf []byte) ([]byte, error) {
		if buf == nil {
			buf = make([]byte, 0, ChunkSize)
		}
		return s.Chunk(obj, i, buf)
	}), nil
}

// Retain records that holder (a letter, "msg:<id>"; a purchase) needs the object ref names. A
// pinned holder (a tablet's person's own item) keeps the object from eviction; an unpinned one
// does not (a kiosk's cache), but either keeps it from deletion. The object need not be held
// yet: what is retained and not held whole is what the terminal fetches (Wanted), and the
// reference is kept for it so the manifest can be checked when it comes.
func (s *Store) Retain(ref Ref, holder string, pinned bool) error {
	if holder == "" {
		return errors.New("retain: holder is empty")
	}
	if err := ref.Check(); err != nil {
		return fmt.Errorf("retain for %s: %w", holder, err)
	}
	flag := []byte{0}
	if pinned {
		flag[0] = 1
	}
	rb, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bRefs)).Put(bytes.Clone(ref.Object[:]), rb); err != nil {
			return err
		}
		return tx.Bucket([]byte(bHolders)).Put(holderKey(ref.Object, holder), flag)
	})
}

// Release drops holder's claim on obj; when no holder is left, the object is deleted (and its
// chunks with it, unless another object lists them). Releasing a claim not held is no error.
func (s *Store) Release(obj Hash, holder string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		h := tx.Bucket([]byte(bHolders))
		if h.Get(holderKey(obj, holder)) == nil {
			return nil
		}
		if err := h.Delete(holderKey(obj, holder)); err != nil {
			return err
		}
		if k, _ := h.Cursor().Seek(obj[:]); k != nil && bytes.HasPrefix(k, obj[:]) {
			return nil // another holder
		}
		if err := tx.Bucket([]byte(bRefs)).Delete(obj[:]); err != nil {
			return err
		}
		return dropTx(tx, obj)
	})
}

// Unclaim drops holder's claim on obj as Release does, but when no holder is left it keeps the
// object's bytes: no longer wanted (never fetched again for itself), it stays as cache until it
// is evicted, least recently used first, under the cap. A shared kiosk's library uses it when
// a person closes an item: catalog media are no one's own, so what one person played may serve
// the next without a fetch, and nothing closed is ever fetched again unasked. Unclaiming a
// claim not held is no error.
func (s *Store) Unclaim(obj Hash, holder string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		h := tx.Bucket([]byte(bHolders))
		if h.Get(holderKey(obj, holder)) == nil {
			return nil
		}
		if err := h.Delete(holderKey(obj, holder)); err != nil {
			return err
		}
		if k, _ := h.Cursor().Seek(obj[:]); k != nil && bytes.HasPrefix(k, obj[:]) {
			return nil // another holder
		}
		return tx.Bucket([]byte(bRefs)).Delete(obj[:])
	})
}

// Claim is one holder's claim on an object.
type Claim struct {
	Object Hash
	Holder string
}

// Claims lists the claims whose holder name starts with prefix.
func (s *Store) Claims(prefix string) ([]Claim, error) {
	var out []Claim
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bHolders)).ForEach(func(k, _ []byte) error {
			if len(k) > len(Hash{}) && strings.HasPrefix(string(k[len(Hash{}):]), prefix) {
				var c Claim
				copy(c.Object[:], k)
				c.Holder = string(k[len(Hash{}):])
				out = append(out, c)
			}
			return nil
		})
	})
	return out, err
}

// ViewingHolder prefixes the claims a shared kiosk makes while a letter is open ("view:" and
// the letter's id): they last one session, and are released at logout or, after a crash, when
// the kiosk starts (ReleaseHolders).
const ViewingHolder = "view:"

// ReleaseHolders drops every claim whose holder name starts with prefix, as Release does for
// each (an object no one else holds is deleted), and says how many it dropped. A kiosk calls
// it with ViewingHolder when it starts: no session is open then, so a viewing claim left behind is
// a crash's, and the person's photos must not wait for the next one to go.
func (s *Store) ReleaseHolders(prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("release holders: the prefix is empty")
	}
	type claim struct {
		obj    Hash
		holder string
	}
	var claims []claim
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bHolders)).ForEach(func(k, _ []byte) error {
			if len(k) > len(Hash{}) && strings.HasPrefix(string(k[len(Hash{}):]), prefix) {
				var c claim
				copy(c.obj[:], k)
				c.holder = string(k[len(Hash{}):])
				claims = append(claims, c)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("release holders %q: %w", prefix, err)
	}
	for i, c := range claims {
		if err := s.Release(c.obj, c.holder); err != nil {
			return i, fmt.Errorf("release holders %q: %w", prefix, err)
		}
	}
	return len(claims), nil
}

// Holders lists who retains obj, and whether any of them pins it.
func (s *Store) Holders(obj Hash) (holders []string, pinned bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bHolders)).Cursor()
		for k, v := c.Seek(obj[:]); k != nil && bytes.HasPrefix(k, obj[:]); k, v = c.Next() {
			holders = append(holders, string(k[len(obj):]))
			pinned = pinned || (len(v) == 1 && v[0] == 1)
		}
		return nil
	})
	return holders, pinned, err
}

// Wanted lists the references of up to max objects some holder retains that are not held
// whole: what the terminal asks the relay for.
func (s *Store) Wanted(max int) ([]Ref, error) {
	var out []Ref
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bRefs)).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			var ref Ref
			if err := json.Unmarshal(v, &ref); err != nil {
				return fmt.Errorf("reference %x: %w", k, err)
			}
			o, err := getObject(tx, ref.Object)
			if err != nil {
				return err
			}
			if o == nil || !o.Complete {
				out = append(out, ref)
			}
		}
		return nil
	})
	return out, err
}

// Drop deletes an object's bytes now (its holders stay, so it is wanted again).
func (s *Store) Drop(obj Hash) error {
	return s.db.Update(func(tx *bolt.Tx) error { return dropTx(tx, obj) })
}

// makeRoom evicts objects, least recently used first, until size more bytes fit under the
// cap. Pinned objects and keep (the object being made room for) are never evicted.
func (s *Store) makeRoom(tx *bolt.Tx, size int64, keep Hash) error {
	if s.opts.Cap <= 0 {
		return nil
	}
	if size > s.opts.Cap {
		return fmt.Errorf("%w: the object is %d bytes, the cap %d", ErrFull, size, s.opts.Cap)
	}
	meta := tx.Bucket([]byte(bMeta))
	c := tx.Bucket([]byte(bLRU)).Cursor()
	k, _ := c.First()
	for int64(getU64(meta, kBytes))+size > s.opts.Cap {
		if k == nil {
			return fmt.Errorf("%w: %d bytes held are pinned or in use, %d more do not fit under the cap of %d",
				ErrFull, getU64(meta, kBytes), size, s.opts.Cap)
		}
		var h Hash
		copy(h[:], k[8:])
		if h == keep || pinnedTx(tx, h) {
			k, _ = c.Next()
			continue
		}
		at := bytes.Clone(k)
		if err := dropTx(tx, h); err != nil {
			return err
		}
		// The drop deleted the key under the cursor; seek again from where it was.
		k, _ = c.Seek(at)
	}
	return nil
}

func pinnedTx(tx *bolt.Tx, obj Hash) bool {
	c := tx.Bucket([]byte(bHolders)).Cursor()
	for k, v := c.Seek(obj[:]); k != nil && bytes.HasPrefix(k, obj[:]); k, v = c.Next() {
		if len(v) == 1 && v[0] == 1 {
			return true
		}
	}
	return false
}

// dropTx deletes an object's record, manifest and LRU entry, and each chunk no other object
// lists. Dropping an object not held is no error.
func dropTx(tx *bolt.Tx, obj Hash) error {
	o, err := getObject(tx, obj)
	if err != nil || o == nil {
		return err
	}
	mb := tx.Bucket([]byte(bManifests))
	enc := bytes.Clone(mb.Get(obj[:]))
	refs, chunks := tx.Bucket([]byte(bChunkRefs)), tx.Bucket([]byte(bChunks))
	seen := make(map[Hash]bool, o.Chunks)
	for i := 0; i < o.Chunks; i++ {
		c := manifestChunk(enc, i)
		if seen[c] {
			continue
		}
		seen[c] = true
		n := uint32(0)
		if v := refs.Get(c[:]); len(v) == 4 {
			n = binary.BigEndian.Uint32(v)
		}
		if n > 1 {
			if err := refs.Put(c[:], be32(n-1)); err != nil {
				return err
			}
			continue
		}
		if err := refs.Delete(c[:]); err != nil {
			return err
		}
		if err := chunks.Delete(c[:]); err != nil {
			return err
		}
	}
	meta := tx.Bucket([]byte(bMeta))
	held := getU64(meta, kBytes)
	if uint64(o.Size) > held {
		held = uint64(o.Size) // never below zero, whatever happened before
	}
	if err := meta.Put([]byte(kBytes), be64(held-uint64(o.Size))); err != nil {
		return err
	}
	for _, del := range []struct {
		b string
		k []byte
	}{{bManifests, obj[:]}, {bObjects, obj[:]}, {bLRU, lruKey(o.Use, obj)}} {
		if err := tx.Bucket([]byte(del.b)).Delete(del.k); err != nil {
			return err
		}
	}
	return nil
}

// touch gives o the next use number (most recently used) and writes it.
func touch(tx *bolt.Tx, obj Hash, o *object) error {
	meta, lru := tx.Bucket([]byte(bMeta)), tx.Bucket([]byte(bLRU))
	if o.Use != 0 {
		if err := lru.Delete(lruKey(o.Use, obj)); err != nil {
			return err
		}
	}
	o.Use = getU64(meta, kUse) + 1
	if err := meta.Put([]byte(kUse), be64(o.Use)); err != nil {
		return err
	}
	if err := lru.Put(lruKey(o.Use, obj), nil); err != nil {
		return err
	}
	return putObject(tx, obj, o)
}

func getObject(tx *bolt.Tx, obj Hash) (*object, error) {
	v := tx.Bucket([]byte(bObjects)).Get(obj[:])
	if v == nil {
		return nil, nil
	}
	o := new(object)
	if err := json.Unmarshal(v, o); err != nil {
		return nil, fmt.Errorf("object %s: record damaged: %w", obj, err)
	}
	return o, nil
}

func putObject(tx *bolt.Tx, obj Hash, o *object) error {
	v, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bObjects)).Put(bytes.Clone(obj[:]), v)
}

func holderKey(obj Hash, holder string) []byte { return append(bytes.Clone(obj[:]), holder...) }

func lruKey(use uint64, obj Hash) []byte { return append(be64(use), obj[:]...) }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func getU64(b *bolt.Bucket, key string) uint64 {
	if v := b.Get([]byte(key)); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
