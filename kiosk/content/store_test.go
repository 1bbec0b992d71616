package content

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// object returns n deterministic pseudo-random bytes (no two chunks alike).
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// source is a relay's side: a store holding the object whole.
func source(t *testing.T, data []byte) (*Store, *Manifest) {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "relay.db"), Options{})
	m, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Object != sha256.Sum256(data) || m.Size != int64(len(data)) || len(m.Chunks) != ChunkCount(int64(len(data))) {
		t.Fatalf("manifest %s %d bytes %d chunks for %d bytes", m.Object, m.Size, len(m.Chunks), len(data))
	}
	return s, m
}

func readAll(t *testing.T, s *Store, h Hash) []byte {
	t.Helper()
	r, err := s.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyChunk(t *testing.T, from, to *Store, obj Hash, i int) bool {
	t.Helper()
	c, err := from.Chunk(obj, i, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := to.PutChunk(obj, i, c)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// A photo received in part survives a restart of the terminal: after it, only the chunks not
// received are asked for, and the object is usable once they arrive, byte for byte.
func TestResumeAfterRestart(t *testing.T) {
	data := randomBytes(1<<20+12345, 1) // five chunks, the last short
	relay, m := source(t, data)
	ref := m.Ref()
	path := filepath.Join(t.TempDir(), File)
	term := open(t, path, Options{})
	man, err := relay.Manifest(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := term.Begin(ref, man); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if copyChunk(t, relay, term, ref.Object, i) {
			t.Fatal("complete after two chunks of five")
		}
	}
	if _, err := term.Open(ref.Object); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("open of a partial object: %v, want ErrIncomplete", err)
	}
	term.Close()

	term = open(t, path, Options{})
	if st, _ := term.State(ref.Object); st != Partial {
		t.Fatalf("state after restart %v, want Partial", st)
	}
	missing, err := term.Missing(ref.Object, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 3, 4}; !equalInts(missing, want) {
		t.Fatalf("missing after restart %v, want %v", missing, want)
	}
	for i, idx := range missing {
		if done := copyChunk(t, relay, term, ref.Object, idx); done != (i == len(missing)-1) {
			t.Fatalf("chunk %d: complete=%v", idx, done)
		}
	}
	if got := readAll(t, term, ref.Object); !bytes.Equal(got, data) {
		t.Fatal("object read back differs from what was sent")
	}
	if missing, _ := term.Missing(ref.Object, 100); len(missing) != 0 {
		t.Fatalf("complete object still misses %v", missing)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Nothing unverified is kept: a manifest that is not the reference's, a chunk whose bytes are
// not the manifest's, and a manifest whose chunks do not make its object are each refused
// with their own error, and leave nothing usable behind.
func TestVerification(t *testing.T) {
	data := randomBytes(600_000, 2)
	relay, m := source(t, data)
	ref := m.Ref()
	man, _ := relay.Manifest(ref.Object)
	term := open(t, filepath.Join(t.TempDir(), File), Options{})

	other := randomBytes(1000, 3)
	om, _ := Build(bytes.NewReader(other), nil)
	if err := term.Begin(ref, om.Encode()); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("manifest of another object: %v, want ErrManifestMismatch", err)
	}
	if err := term.Begin(om.Ref(), man); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("reference of another object: %v, want ErrManifestMismatch", err)
	}
	short := man[:len(man)-1]
	if err := term.Begin(Ref{Object: ref.Object, Manifest: Sum(short), Size: ref.Size}, short); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("truncated manifest: %v, want ErrBadManifest", err)
	}
	if st, _ := term.State(ref.Object); st != Absent {
		t.Fatalf("refused manifests left state %v", st)
	}

	if err := term.Begin(ref, man); err != nil {
		t.Fatal(err)
	}
	c0, _ := relay.Chunk(ref.Object, 0, nil)
	forged := bytes.Clone(c0)
	forged[100] ^= 0xff
	if _, err := term.PutChunk(ref.Object, 0, forged); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("forged chunk: %v, want ErrChunkMismatch", err)
	}
	if _, err := term.PutChunk(ref.Object, 0, c0[:1000]); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("short chunk: %v, want ErrChunkMismatch", err)
	}
	if _, err := term.PutChunk(ref.Object, 7, c0); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("chunk beyond the object: %v, want ErrChunkMismatch", err)
	}
	if missing, _ := term.Missing(ref.Object, 10); !equalInts(missing, []int{0, 1, 2}) {
		t.Fatalf("after refused chunks missing %v, want [0 1 2]", missing)
	}
	// Several chunks in one transaction: the good one is kept, the forged one left out.
	c1, _ := relay.Chunk(ref.Object, 1, nil)
	done, refused, err := term.PutChunks(ref.Object, []Received{{0, forged}, {1, c1}})
	if err != nil || done || len(refused) != 1 || refused[0].Index != 0 || !errors.Is(refused[0].Err, ErrChunkMismatch) {
		t.Fatalf("a forged and a good chunk together: done %v refused %v err %v", done, refused, err)
	}
	if missing, _ := term.Missing(ref.Object, 10); !equalInts(missing, []int{0, 2}) {
		t.Fatalf("after a batch with one forged chunk missing %v, want [0 2]", missing)
	}

	// A manifest built honestly from other bytes, then given this object's digest: every chunk
	// matches it, and only the whole-object check can tell.
	liar := &Manifest{Object: Sum([]byte("not these bytes")), Size: m.Size, Chunks: m.Chunks}
	lref := liar.Ref()
	if err := term.Begin(lref, liar.Encode()); err != nil {
		t.Fatal(err)
	}
	var last error
	for i := range liar.Chunks {
		c, _ := relay.Chunk(ref.Object, i, nil)
		_, last = term.PutChunk(lref.Object, i, c)
	}
	if !errors.Is(last, ErrObjectMismatch) {
		t.Fatalf("last chunk of a lying manifest: %v, want ErrObjectMismatch", last)
	}
	if st, _ := term.State(lref.Object); st != Absent {
		t.Fatalf("lying manifest's object state %v, want Absent (dropped)", st)
	}
	// The honest object shares those chunks and is unharmed.
	for i := range m.Chunks {
		copyChunk(t, relay, term, ref.Object, i)
	}
	if !bytes.Equal(readAll(t, term, ref.Object), data) {
		t.Fatal("honest object differs")
	}
}

// Two letters carrying the same photo hold it once; deleting one letter keeps it for the
// other, deleting both deletes it.
func TestStoredOncePerHash(t *testing.T) {
	data := randomBytes(700_000, 4)
	s := open(t, filepath.Join(t.TempDir(), File), Options{})
	m1, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m1.Ref() != m2.Ref() {
		t.Fatal("same bytes, two references")
	}
	for _, h := range []string{"msg:a", "msg:b"} {
		if err := s.Retain(m1.Ref(), h, false); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Stats()
	if st.Objects != 1 || st.Bytes != int64(len(data)) {
		t.Fatalf("stats %+v after two puts of one object", st)
	}
	chunks := countChunks(t, s)
	if chunks != 3 {
		t.Fatalf("%d chunks stored, want 3", chunks)
	}
	if err := s.Release(m1.Object, "msg:a"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, m1.Object), data) {
		t.Fatal("object lost with one of its two holders")
	}
	if err := s.Release(m1.Object, "msg:b"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(m1.Object); st != Absent {
		t.Fatalf("state after the last holder left: %v", st)
	}
	if n := countChunks(t, s); n != 0 {
		t.Fatalf("%d chunks left after the object was deleted", n)
	}
	if w, _ := s.Wanted(10); len(w) != 0 {
		t.Fatalf("a deleted object is still wanted: %v", w)
	}
	if st, _ := s.Stats(); st.Bytes != 0 || st.Objects != 0 {
		t.Fatalf("stats after delete %+v", st)
	}
}

func countChunks(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bChunks)).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A kiosk's cache stays under its cap: the least recently used object goes first, a photo
// just looked at stays, and a tablet owner's pinned item is never evicted.
func TestCacheCapEvictsLeastRecentlyUsed(t *testing.T) {
	const mb = 1 << 20
	var objs [][]byte
	var refs []Ref
	var mans [][]byte
	for i := range 5 {
		d := randomBytes(mb, uint64(10+i))
		m, _ := Build(bytes.NewReader(d), nil)
		objs, refs, mans = append(objs, d), append(refs, m.Ref()), append(mans, m.Encode())
	}
	s := open(t, filepath.Join(t.TempDir(), File), Options{Cap: 3 * mb})
	fill := func(i int) {
		t.Helper()
		if err := s.Begin(refs[i], mans[i]); err != nil {
			t.Fatalf("begin %d: %v", i, err)
		}
		for c := 0; c < ChunkCount(mb); c++ {
			if _, err := s.PutChunk(refs[i].Object, c, objs[i][c*ChunkSize:(c+1)*ChunkSize]); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := func(i int) State {
		st, err := s.State(refs[i].Object)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	fill(0)
	fill(1)
	fill(2)
	if err := s.Retain(refs[0], "purchase:p1", true); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, refs[1].Object) // 1 was looked at: 2 is now the least recently used unpinned
	fill(3)
	if state(2) != Absent || state(0) != Whole || state(1) != Whole || state(3) != Whole {
		t.Fatalf("after a fourth object: states %v %v %v %v, want 2 evicted only", state(0), state(1), state(2), state(3))
	}
	fill(4)
	if state(1) != Absent || state(0) != Whole {
		t.Fatalf("after a fifth object: 1 is %v (want evicted), pinned 0 is %v", state(1), state(0))
	}
	if st, _ := s.Stats(); st.Bytes > st.Cap {
		t.Fatalf("held %d bytes over the cap %d", st.Bytes, st.Cap)
	}
	// An evicted object still retained is wanted again.
	if err := s.Retain(refs[2], "msg:x", false); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.Wanted(10); len(w) != 1 || w[0] != refs[2] {
		t.Fatalf("wanted %v, want the evicted object retained by a letter", w)
	}
	// When everything held is pinned, a new object is refused, not squeezed in.
	for _, i := range []int{3, 4} {
		if err := s.Retain(refs[i], "purchase:p", true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Begin(refs[2], mans[2]); !errors.Is(err, ErrFull) {
		t.Fatalf("begin with only pinned objects held: %v, want ErrFull", err)
	}
	if state(0) != Whole || state(3) != Whole || state(4) != Whole {
		t.Fatal("a pinned object was evicted")
	}
}

// A chunk damaged on disk is caught when read, dropped, and asked for again.
func TestDamagedChunkIsFetchedAgain(t *testing.T) {
	data := randomBytes(3*ChunkSize, 20)
	relay, m := source(t, data)
	ref := m.Ref()
	man, _ := relay.Manifest(ref.Object)
	path := filepath.Join(t.TempDir(), File)
	term := open(t, path, Options{})
	if err := term.Begin(ref, man); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		copyChunk(t, relay, term, ref.Object, i)
	}
	term.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write, so freed pages may hold older copies: damage them all.
	needle, found := data[ChunkSize+1000:ChunkSize+1064], 0
	for at := bytes.Index(raw, needle); at >= 0; at = bytes.Index(raw, needle) {
		raw[at] ^= 0xff
		found++
	}
	if found == 0 {
		t.Fatal("chunk 1 not found in the file")
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	term = open(t, path, Options{})
	r, err := term.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a damaged object: %v, want ErrCorrupt", err)
	}
	if missing, _ := term.Missing(ref.Object, 10); !equalInts(missing, []int{1}) {
		t.Fatalf("missing after damage %v, want [1]", missing)
	}
	if !copyChunk(t, relay, term, ref.Object, 1) {
		t.Fatal("not complete after the damaged chunk came again")
	}
	if !bytes.Equal(readAll(t, term, ref.Object), data) {
		t.Fatal("repaired object differs")
	}
}

// A Put cut short leaves chunks no object lists; the next Open deletes them.
func TestOrphanChunksSwept(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s := open(t, path, Options{})
	orphan := randomBytes(1000, 30)
	h := Sum(orphan)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bChunks)).Put(h[:], orphan) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, Options{})
	if n := countChunks(t, s); n != 0 {
		t.Fatalf("%d orphan chunks after reopen", n)
	}
}

// heapNow is the live heap after a collection.
func heapNow() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// gen yields n pseudo-random bytes without holding them, sampling the live heap at each read.
type gen struct {
	r    *rand.ChaCha8
	left int
	peak *int64
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	*g.peak = max(*g.peak, heapNow())
	p = p[:min(len(p), g.left)]
	g.r.Read(p)
	g.left -= len(p)
	return len(p), nil
}

type heapSink struct {
	h    io.Writer
	n    int
	peak *int64
}

func (w *heapSink) Write(p []byte) (int, error) {
	w.n++
	if w.n%4 == 0 {
		*w.peak = max(*w.peak, heapNow())
	}
	return w.h.Write(p)
}

// An object far larger than the memory bound is stored, received and read with the heap
// staying within a few chunks: nothing ever holds it whole.
func TestLargeObjectBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 x 48 MB")
	}
	const size = 48 << 20
	const bound = 12 << 20 // a few chunks, plus bbolt's dirty pages while a transaction commits
	base := heapNow()
	var peak int64
	relay := open(t, filepath.Join(t.TempDir(), "relay.db"), Options{NoSync: true})
	m, err := relay.Put(&gen{r: rand.NewChaCha8([32]byte{7}), left: size, peak: &peak})
	if err != nil {
		t.Fatal(err)
	}
	if held := peak - base; held > bound {
		t.Fatalf("put of %d MB held %d MB of heap, bound %d MB", size>>20, held>>20, bound>>20)
	}
	t.Logf("put: largest live heap above the start %.1f MB for a %d MB object", float64(peak-base)/(1<<20), size>>20)
	term := open(t, filepath.Join(t.TempDir(), File), Options{})
	man, _ := relay.Manifest(m.Object)
	if err := term.Begin(m.Ref(), man); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, ChunkSize)
	peak = 0
	for i := range m.Chunks {
		if buf, err = relay.Chunk(m.Object, i, buf[:0]); err != nil {
			t.Fatal(err)
		}
		if _, err := term.PutChunk(m.Object, i, buf); err != nil {
			t.Fatal(err)
		}
		if i%8 == 0 {
			peak = max(peak, heapNow())
		}
	}
	r, err := term.Open(m.Object)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(&heapSink{h: h, peak: &peak}, r); err != nil {
		t.Fatal(err)
	}
	if Hash(h.Sum(nil)) != m.Object {
		t.Fatal("object read back differs")
	}
	if held := peak - base; held > bound {
		t.Fatalf("receiving and reading %d MB held %d MB of heap, bound %d MB", size>>20, held>>20, bound>>20)
	}
	t.Logf("receive and read: largest live heap above the start %.1f MB for a %d MB object", float64(peak-base)/(1<<20), size>>20)
}

// A kiosk that crashed mid-session restarts with that session's viewing claims: releasing
// every "view:" claim deletes the photos only they held, across a reopen of the file, and
// keeps one another holder still needs.
func TestReleaseHoldersAfterACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	viewed, shared := randomBytes(300_000, 7), randomBytes(200_000, 8)
	mv, err := s.Put(bytes.NewReader(viewed))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Put(bytes.NewReader(shared))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m      *Manifest
		holder string
	}{{mv, "view:m-1"}, {mv, "view:m-2"}, {ms, "view:m-3"}, {ms, "msg:m-3"}} {
		if err := s.Retain(c.m.Ref(), c.holder, false); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // the crash: nothing released

	s = open(t, path, Options{})
	n, err := s.ReleaseHolders("view:")
	if err != nil || n != 3 {
		t.Fatalf("released %d claims (%v), want 3", n, err)
	}
	if st, _ := s.State(mv.Object); st != Absent {
		t.Fatalf("a photo only the crashed session viewed is still here: %v", st)
	}
	if holders, _, _ := s.Holders(ms.Object); len(holders) != 1 || holders[0] != "msg:m-3" {
		t.Fatalf("holders of the shared photo: %v", holders)
	}
	if !bytes.Equal(readAll(t, s, ms.Object), shared) {
		t.Fatal("the photo another holder needs was lost")
	}
	if _, err := s.ReleaseHolders(""); err == nil {
		t.Fatal("an empty prefix released every claim")
	}
}
