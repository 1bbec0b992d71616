// Package jscontent is the relay's content store on NATS JetStream, shared by every gateway
// of one relay (docs/SCALE.md, "Content on JetStream"): a photo a family sent through one
// gateway, or a track staff published there, is served by all of them.
//
// The bytes are messages of one stream, one subject per chunk of an upload
// (<prefix>.c.<upload>.<index>) and one for its manifest (<prefix>.m.<upload>), an upload being
// one Put's random id: an object's sha256 is known only once its last byte is read, and its
// chunks are written before that. What is held, for whom, lives in the relay's kv store (any
// kv.Store; relayd passes its JetStream one), in two root buckets: content_objects (object
// sha256 -> its record: reference, upload, holders) and content_uploads (upload -> pending or
// gone). A kv transaction makes an upload an object, adds and drops holders, and sends an
// object's upload to be purged with its last holder, so gateways racing on one object agree.
//
// Chunks are read from the stream leader and checked against the object's manifest (itself
// checked against the reference's sha256) on every read: the gateway serves nothing it has not
// verified.
package jscontent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Root buckets of the metadata in the kv store.
const (
	bObjects = "content_objects" // object sha256 (32 bytes) -> objectRec (JSON)
	bUploads = "content_uploads" // upload id -> uploadRec (JSON): a Put in progress, or bytes to purge
)

// Options of a Store.
type Options struct {
	Stream   string                // stream name; default TETHER_CONTENT
	Prefix   string                // subject prefix, one token; default tc
	Replicas int                   // default 3
	Storage  jetstream.StorageType // default file
	// OpTimeout bounds one round trip (a publish, a read, a kv transaction); default 5 s.
	OpTimeout time.Duration
	// RetryFor is how long an operation retries a round trip that failed for a passing reason
	// (a node lost, a leader election); default 30 s.
	RetryFor time.Duration
	// PendingTTL is how old a Put's upload must be before a sweep takes it for a gateway's
	// crash and purges it; default 24 h (a Put of the largest object takes minutes).
	PendingTTL time.Duration
	// SweepEvery is how often the store purges what crashes and failed purges left (Sweep);
	// default 1 h, negative never (tests call Sweep).
	SweepEvery time.Duration
	// Now is the clock of upload ages; default time.Now.
	Now func() time.Time
	// Logf logs what failed in the background (a purge); default nothing.
	Logf func(format string, args ...any)
	// Existing opens only a stream that is there (jskv.Options.Existing): ErrNoStream if not.
	Existing bool
}

// ErrNoStream: Options.Existing, and the cluster has no content stream.
var ErrNoStream = errors.New("no content stream on the cluster")

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "TETHER_CONTENT"
	}
	if o.Prefix == "" {
		o.Prefix = "tc"
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.RetryFor == 0 {
		o.RetryFor = 30 * time.Second
	}
	if o.PendingTTL == 0 {
		o.PendingTTL = 24 * time.Hour
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Store is the content store of a relay's gateways on JetStream. It is safe for concurrent use.
type Store struct {
	o      Options
	meta   kv.Store
	st     jetstream.Stream
	js     jetstream.JetStream
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // the sweeper ended

	mu sync.Mutex
	// manifests caches decoded manifests by upload: immutable, and an upload purged meanwhile
	// only makes its chunk reads fail. Bounded by maxManifests.
	manifests map[string]*content.Manifest
}

// maxManifests bounds the manifest cache: a manifest is at most 256 KiB (8,192 chunks), a
// photo's a few hundred bytes.
const maxManifests = 64

// objectRec is what the kv store holds of an object.
type objectRec struct {
	// Ref and Upload are set while the bytes are held (whole: a Put records an object only
	// once all of it is written); a record with holders alone is an object retained and not
	// held, as on bbolt.
	Ref    content.Ref `json:"ref"`
	Upload string      `json:"upload,omitempty"`
	// Holders maps each holder to whether it pins the object.
	Holders map[string]bool `json:"holders,omitempty"`
}

// uploadRec is a Put in progress (its chunks may be partly written) or, Gone, the bytes of an
// upload nobody reads any more, to purge.
type uploadRec struct {
	Since time.Time `json:"since"`
	Gone  bool      `json:"gone,omitempty"`
}

// Open creates (or finds) the content stream on nc and returns a store keeping its records in
// meta. Neither nc nor meta is closed by Close.
func Open(ctx context.Context, nc *nats.Conn, meta kv.Store, o Options) (*Store, error) {
	o = o.withDefaults()
	if o.Prefix == "" || strings.ContainsAny(o.Prefix, ".*> \t\r\n") {
		return nil, fmt.Errorf("jscontent: prefix %q must be one subject token", o.Prefix)
	}
	if meta == nil {
		return nil, errors.New("jscontent: the kv store for the records is missing")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jscontent: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:      o.Stream,
		Subjects:  []string{o.Prefix + ".>"},
		Storage:   o.Storage,
		Replicas:  o.Replicas,
		Retention: jetstream.LimitsPolicy,
		// One message a subject: a chunk written again (a Put retrying a publish whose ack
		// was lost) replaces itself with the same bytes.
		MaxMsgsPerSubject: 1,
		// Reads go to the leader: a chunk acknowledged by a quorum may not be on a lagging
		// replica yet, and a direct get from it would answer "no such message".
		AllowDirect: false,
	}
	st, err := js.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && o.Existing {
		err = ErrNoStream
	} else if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another gateway made it first
			st, err = js.Stream(ctx, o.Stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jscontent: stream %s: %w", o.Stream, err)
	}
	if have := st.CachedInfo().Config; !slices.Equal(have.Subjects, cfg.Subjects) || have.MaxMsgsPerSubject != 1 {
		return nil, fmt.Errorf("jscontent: stream %s exists with subjects %v and %d messages a subject, want %v and 1",
			o.Stream, have.Subjects, have.MaxMsgsPerSubject, cfg.Subjects)
	}
	s := &Store{o: o, meta: meta, st: st, js: js, done: make(chan struct{}), manifests: map[string]*content.Manifest{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	err = s.update(ctx, func(tx kv.Tx) error {
		for _, name := range []string{bObjects, bUploads} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("jscontent: %w", err)
	}
	go s.sweeper()
	return s, nil
}

// Close stops the background sweep. The connection and the kv store stay open.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return nil
}

func (s *Store) sweeper() {
	defer close(s.done)
	if s.o.SweepEvery < 0 {
		return
	}
	t := time.NewTicker(s.o.SweepEvery)
	defer t.Stop()
	for {
		if _, err := s.Sweep(s.ctx); err != nil && s.ctx.Err() == nil {
			s.o.Logf("jscontent: sweep: %v", err)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// opContext bounds one whole operation (its retries included) and ends at Close.
func (s *Store) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.o.RetryFor)
}

// passing reports whether err is worth retrying: a round trip lost to a node going away, a
// leader election or a reconnect; not an answer.
func passing(err error) bool {
	if kv.Retryable(err) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		// 503 is JetStream's "not available" (no leader, no quorum), 408 a server timeout.
		return api.Code == 503 || api.Code == 408
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// retry runs fn, each attempt within OpTimeout, again after a short pause while it fails for
// a passing reason, until ctx ends.
func (s *Store) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	wait := 20 * time.Millisecond
	for {
		c, cancel := context.WithTimeout(ctx, s.o.OpTimeout)
		err := fn(c)
		cancel()
		if err == nil || !passing(err) || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && passing(err) {
				return fmt.Errorf("%w (gave up after %s)", err, s.o.RetryFor)
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (s *Store) update(ctx context.Context, fn func(tx kv.Tx) error) error {
	return s.retry(ctx, func(c context.Context) error { return s.meta.Update(c, fn) })
}

func (s *Store) view(ctx context.Context, fn func(tx kv.Tx) error) error {
	return s.retry(ctx, func(c context.Context) error { return s.meta.View(c, fn) })
}

func (s *Store) chunkSubj(upload string, i int) string {
	return s.o.Prefix + ".c." + upload + "." + strconv.Itoa(i)
}

func (s *Store) manifestSubj(upload string) string { return s.o.Prefix + ".m." + upload }

func getObject(tx kv.Tx, obj content.Hash) (*objectRec, error) {
	v := tx.Bucket([]byte(bObjects)).Get(obj[:])
	if v == nil {
		return nil, nil
	}
	rec := new(objectRec)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("object %s: record damaged: %w", obj, err)
	}
	return rec, nil
}

func putObject(tx kv.Tx, obj content.Hash, rec *objectRec) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bObjects)).Put(obj[:], b)
}

func getUpload(tx kv.Tx, id string) (*uploadRec, error) {
	v := tx.Bucket([]byte(bUploads)).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	u := new(uploadRec)
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("upload %s: record damaged: %w", id, err)
	}
	return u, nil
}

func putUpload(tx kv.Tx, id string, u uploadRec) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bUploads)).Put([]byte(id), b)
}

// record reads obj's record (nil if none).
func (s *Store) record(ctx context.Context, obj content.Hash) (*objectRec, error) {
	var rec *objectRec
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		rec, err = getObject(tx, obj)
		return err
	})
	return rec, err
}

// errUploadExpired: a sweep took this Put's upload for a crashed gateway's (it ran longer
// than PendingTTL) and purged its chunks.
var errUploadExpired = errors.New("the upload was swept as abandoned (it took longer than the pending TTL)")

// PutFor stores an object read from rd, a chunk at a time, and adds holder's pinned claim on
// it in the same kv transaction that makes it held: the chunks and the manifest are written
// under a new upload first, recorded as pending so that a crash leaves nothing a sweep does
// not find; the object is then recorded with its upload and holder, unless another gateway
// recorded it meanwhile, in which case the holder is added there and this upload is purged.
func (s *Store) PutFor(rd io.Reader, holder string) (content.Ref, error) {
	if holder == "" {
		return content.Ref{}, errors.New("put object: holder is empty")
	}
	ctx, cancel := s.opContext()
	defer cancel()
	upload := nuid.Next()
	if err := s.update(ctx, func(tx kv.Tx) error {
		return putUpload(tx, upload, uploadRec{Since: s.o.Now().UTC()})
	}); err != nil {
		return content.Ref{}, fmt.Errorf("put object: record upload: %w", err)
	}
	var w window
	m, err := content.Build(rd, func(i int, chunk []byte) error {
		return w.add(s, s.chunkSubj(upload, i), chunk)
	})
	if err == nil {
		err = w.drain(s)
	}
	// The chunks may have taken longer than one operation's budget: what follows gets its own.
	cancel()
	ctx, cancel = s.opContext()
	defer cancel()
	if err == nil {
		err = s.publish(ctx, s.manifestSubj(upload), m.Encode())
	}
	if err != nil {
		// What is in flight lands (or fails) before the purge: one landing after it would
		// leave chunks no record names.
		w.wait(s)
		s.discard(upload, content.Hash{})
		return content.Ref{}, fmt.Errorf("put object: %w", err)
	}
	ref := m.Ref()
	dup := false
	err = s.update(ctx, func(tx kv.Tx) error {
		dup = false
		rec, err := getObject(tx, ref.Object)
		if err != nil {
			return err
		}
		u, err := getUpload(tx, upload)
		if err != nil {
			return err
		}
		if u == nil || u.Gone {
			if rec != nil && rec.Upload == upload {
				return nil // this transaction committed, and its answer was lost: done
			}
			return errUploadExpired
		}
		if rec == nil {
			rec = &objectRec{}
		}
		if rec.Holders == nil {
			rec.Holders = map[string]bool{}
		}
		rec.Holders[holder] = true
		if rec.Upload != "" {
			dup = true // held already (put before, or by another gateway meanwhile)
			if err := putUpload(tx, upload, uploadRec{Since: u.Since, Gone: true}); err != nil {
				return err
			}
		} else {
			rec.Ref, rec.Upload = ref, upload
			if err := tx.Bucket([]byte(bUploads)).Delete([]byte(upload)); err != nil {
				return err
			}
		}
		return putObject(tx, ref.Object, rec)
	})
	if err != nil {
		if !errors.Is(err, errUploadExpired) {
			s.discard(upload, ref.Object)
		}
		return content.Ref{}, fmt.Errorf("put object %s: %w", ref.Object, err)
	}
	if dup {
		s.purgeUpload(ctx, upload)
	}
	return ref, nil
}

// putWindow is how many chunks a put keeps in flight: one R3 round trip per chunk, one after
// the other, made a 4 MB track 16 round trips; a window overlaps them, holding putWindow
// chunks in memory.
const putWindow = 4

// window is a put's chunks published and not yet acknowledged, oldest first.
type window struct {
	pending []inflight
	spare   []byte // a settled chunk's buffer, for the next one
}

type inflight struct {
	subj string
	data []byte
	ack  jetstream.PubAckFuture // nil: the asynchronous publish was refused at once
}

// add publishes a copy of chunk without waiting, after settling the oldest chunk in flight
// if the window is full.
func (w *window) add(s *Store, subj string, chunk []byte) error {
	if len(w.pending) == putWindow {
		if err := w.settle(s); err != nil {
			return err
		}
	}
	data := append(w.spare[:0], chunk...)
	w.spare = nil
	ack, err := s.js.PublishAsync(subj, data, jetstream.WithExpectStream(s.o.Stream))
	if err != nil {
		ack = nil // settle writes it synchronously
	}
	w.pending = append(w.pending, inflight{subj: subj, data: data, ack: ack})
	return nil
}

// settle waits for the oldest chunk's acknowledgement; a chunk refused, or unanswered within
// OpTimeout (a node lost, a reconnect), is written again synchronously with retries, within
// a budget of its own: a put of a large object outlives one operation's.
func (w *window) settle(s *Store) error {
	f := w.pending[0]
	copy(w.pending, w.pending[1:])
	w.pending = w.pending[:len(w.pending)-1]
	if f.ack != nil {
		t := time.NewTimer(s.o.OpTimeout)
		defer t.Stop()
		select {
		case <-f.ack.Ok():
			w.spare = f.data
			return nil
		case <-f.ack.Err():
		case <-t.C:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
	ctx, cancel := s.opContext()
	defer cancel()
	if err := s.publish(ctx, f.subj, f.data); err != nil {
		return err
	}
	w.spare = f.data
	return nil
}

// wait waits for the answers of the chunks in flight, each at most OpTimeout, whatever they are.
func (w *window) wait(s *Store) {
	for _, f := range w.pending {
		if f.ack == nil {
			continue
		}
		t := time.NewTimer(s.o.OpTimeout)
		select {
		case <-f.ack.Ok():
		case <-f.ack.Err():
		case <-t.C:
		case <-s.ctx.Done():
		}
		t.Stop()
	}
	w.pending = nil
}

// drain settles every chunk still in flight.
func (w *window) drain(s *Store) error {
	for len(w.pending) > 0 {
		if err := w.settle(s); err != nil {
			return err
		}
	}
	return nil
}

// publish writes one message, retrying a publish whose answer did not come: the subject holds
// one message, so a publish that landed twice leaves the same bytes once.
func (s *Store) publish(ctx context.Context, subj string, data []byte) error {
	return s.retry(ctx, func(c context.Context) error {
		_, err := s.js.Publish(c, subj, data, jetstream.WithExpectStream(s.o.Stream))
		if err != nil {
			return fmt.Errorf("write %s: %w", subj, err)
		}
		return nil
	})
}

// discard marks an upload that will never be an object as gone and purges it; what fails is
// left to the sweep. obj, if not zero, is the object the upload was to become: a commit whose
// answer was lost may have made it that object after all, and then it is kept.
func (s *Store) discard(upload string, obj content.Hash) {
	ctx, cancel := s.opContext()
	defer cancel()
	kept := false
	err := s.update(ctx, func(tx kv.Tx) error {
		kept = false
		if !obj.IsZero() {
			rec, err := getObject(tx, obj)
			if err != nil {
				return err
			}
			if rec != nil && rec.Upload == upload {
				kept = true
				return nil
			}
		}
		u, err := getUpload(tx, upload)
		if err != nil || u == nil {
			return err
		}
		u.Gone = true
		return putUpload(tx, upload, *u)
	})
	if err != nil {
		s.o.Logf("jscontent: discard upload %s: %v (the sweep purges it later)", upload, err)
		return
	}
	if !kept {
		s.purgeUpload(ctx, upload)
	}
}

// purgeUpload deletes an upload's chunks and manifest, then its record. An upload is purged
// only once recorded gone, so nothing reads it; a purge that fails is retried by the sweep.
func (s *Store) purgeUpload(ctx context.Context, upload string) {
	if err := s.purge(ctx, upload); err != nil {
		s.o.Logf("jscontent: purge upload %s: %v (the sweep retries)", upload, err)
		return
	}
	s.mu.Lock()
	delete(s.manifests, upload)
	s.mu.Unlock()
	err := s.update(ctx, func(tx kv.Tx) error {
		u, err := getUpload(tx, upload)
		if err != nil || u == nil || !u.Gone {
			return err
		}
		return tx.Bucket([]byte(bUploads)).Delete([]byte(upload))
	})
	if err != nil {
		s.o.Logf("jscontent: forget purged upload %s: %v (the sweep retries)", upload, err)
	}
}

func (s *Store) purge(ctx context.Context, upload string) error {
	for _, subj := range []string{s.o.Prefix + ".c." + upload + ".*", s.manifestSubj(upload)} {
		if err := s.retry(ctx, func(c context.Context) error {
			return s.st.Purge(c, jetstream.WithPurgeSubject(subj))
		}); err != nil {
			return fmt.Errorf("purge %s: %w", subj, err)
		}
	}
	return nil
}

// Sweep purges the uploads recorded gone whose purge failed, and the pending ones older than
// PendingTTL (a gateway that crashed in a Put); it returns how many it purged. Every gateway
// runs it (SweepEvery); two running at once purge the same subjects twice, which is harmless.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	var ids []string
	now := s.o.Now()
	err := s.update(ctx, func(tx kv.Tx) error {
		ids = ids[:0]
		b := tx.Bucket([]byte(bUploads))
		var expired []string
		if err := b.ForEach(func(k, v []byte) error {
			var u uploadRec
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("upload %s: record damaged: %w", k, err)
			}
			switch {
			case u.Gone:
				ids = append(ids, string(k))
			case now.Sub(u.Since) > s.o.PendingTTL:
				ids = append(ids, string(k))
				expired = append(expired, string(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range expired {
			var u uploadRec
			_ = json.Unmarshal(b.Get([]byte(id)), &u)
			u.Gone = true
			if err := putUpload(tx, id, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	n := 0
	for _, id := range ids {
		if err := s.purge(ctx, id); err != nil {
			return n, fmt.Errorf("sweep: %w", err)
		}
		err := s.update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte(bUploads)).Delete([]byte(id)) })
		if err != nil {
			return n, fmt.Errorf("sweep: %w", err)
		}
		n++
	}
	return n, nil
}

// Retain adds holder's claim on the object ref names, held or not (a record with holders alone
// is an object retained and not held: State says Absent).
func (s *Store) Retain(ref content.Ref, holder string, pinned bool) error {
	if holder == "" {
		return errors.New("retain: holder is empty")
	}
	if err := ref.Check(); err != nil {
		return fmt.Errorf("retain for %s: %w", holder, err)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	err := s.update(ctx, func(tx kv.Tx) error {
		rec, err := getObject(tx, ref.Object)
		if err != nil {
			return err
		}
		if rec == nil {
			rec = &objectRec{Ref: ref}
		}
		if rec.Holders == nil {
			rec.Holders = map[string]bool{}
		}
		rec.Holders[holder] = rec.Holders[holder] || pinned
		return putObject(tx, ref.Object, rec)
	})
	if err != nil {
		return fmt.Errorf("retain %s for %s: %w", ref.Object, holder, err)
	}
	return nil
}

// Release drops holder's claim on obj; with the last claim the object goes: its record is
// deleted and its upload recorded gone in one transaction, and the upload purged after it.
func (s *Store) Release(obj content.Hash, holder string) error {
	ctx, cancel := s.opContext()
	defer cancel()
	gone := ""
	err := s.update(ctx, func(tx kv.Tx) error {
		gone = ""
		rec, err := getObject(tx, obj)
		if err != nil || rec == nil {
			return err
		}
		if _, ok := rec.Holders[holder]; !ok {
			return nil
		}
		delete(rec.Holders, holder)
		if len(rec.Holders) > 0 {
			return putObject(tx, obj, rec)
		}
		if err := tx.Bucket([]byte(bObjects)).Delete(obj[:]); err != nil {
			return err
		}
		if rec.Upload == "" {
			return nil
		}
		gone = rec.Upload
		return putUpload(tx, rec.Upload, uploadRec{Since: s.o.Now().UTC(), Gone: true})
	})
	if err != nil {
		return fmt.Errorf("release %s for %s: %w", obj, holder, err)
	}
	if gone != "" {
		s.purgeUpload(ctx, gone)
	}
	return nil
}

// Holders lists who retains obj, in order, and whether any of them pins it.
func (s *Store) Holders(obj content.Hash) ([]string, bool, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rec, err := s.record(ctx, obj)
	if err != nil || rec == nil {
		return nil, false, err
	}
	pinned := false
	for _, p := range rec.Holders {
		pinned = pinned || p
	}
	return slices.Sorted(maps.Keys(rec.Holders)), pinned, nil
}

// State is Whole for an object held (a Put records only whole objects) and Absent otherwise.
func (s *Store) State(obj content.Hash) (content.State, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rec, err := s.record(ctx, obj)
	if err != nil {
		return content.Absent, err
	}
	if rec == nil || rec.Upload == "" {
		return content.Absent, nil
	}
	return content.Whole, nil
}

// held reads obj's record and manifest, the manifest checked against the record's reference.
func (s *Store) held(ctx context.Context, obj content.Hash) (*objectRec, *content.Manifest, error) {
	rec, err := s.record(ctx, obj)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil || rec.Upload == "" {
		return nil, nil, fmt.Errorf("%s: %w", obj, content.ErrUnknownObject)
	}
	s.mu.Lock()
	m := s.manifests[rec.Upload]
	s.mu.Unlock()
	if m != nil {
		return rec, m, nil
	}
	raw, err := s.get(ctx, s.manifestSubj(rec.Upload))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Purged after a Release another gateway committed since the record was read.
		return nil, nil, fmt.Errorf("manifest of %s: %w", obj, content.ErrUnknownObject)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("manifest of %s: %w", obj, err)
	}
	if content.Sum(raw) != rec.Ref.Manifest {
		return nil, nil, fmt.Errorf("manifest of %s: %w (its sha256 is %s, the reference's %s)", obj, content.ErrCorrupt, content.Sum(raw), rec.Ref.Manifest)
	}
	m, err = content.DecodeManifest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest of %s: %w: %w", obj, content.ErrCorrupt, err)
	}
	s.mu.Lock()
	if len(s.manifests) >= maxManifests {
		for k := range s.manifests { // any one: the map's order is as good as a random pick
			delete(s.manifests, k)
			break
		}
	}
	s.manifests[rec.Upload] = m
	s.mu.Unlock()
	return rec, m, nil
}

// get reads the message of subj from the stream leader.
func (s *Store) get(ctx context.Context, subj string) ([]byte, error) {
	var data []byte
	err := s.retry(ctx, func(c context.Context) error {
		msg, err := s.st.GetLastMsgForSubject(c, subj)
		if err != nil {
			return err
		}
		data = msg.Data
		return nil
	})
	return data, err
}

// Manifest returns obj's encoded manifest, checked against its reference.
func (s *Store) Manifest(obj content.Hash) ([]byte, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	_, m, err := s.held(ctx, obj)
	if err != nil {
		return nil, err
	}
	return m.Encode(), nil
}

// Chunk appends chunk i of obj to buf, checked against the manifest: a chunk whose bytes do
// not match is ErrCorrupt and is not served.
func (s *Store) Chunk(obj content.Hash, i int, buf []byte) ([]byte, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rec, m, err := s.held(ctx, obj)
	if err != nil {
		return buf, fmt.Errorf("chunk %d: %w", i, err)
	}
	return s.chunk(ctx, obj, rec.Upload, m, i, buf)
}

func (s *Store) chunk(ctx context.Context, obj content.Hash, upload string, m *content.Manifest, i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= len(m.Chunks) {
		return buf, fmt.Errorf("chunk %d of %s: %w (it has %d)", i, obj, content.ErrNoSuchChunk, len(m.Chunks))
	}
	data, err := s.get(ctx, s.chunkSubj(upload, i))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Released and purged since its record was read, or lost: not held.
		return buf, fmt.Errorf("chunk %d of %s: %w", i, obj, content.ErrIncomplete)
	case err != nil:
		return buf, fmt.Errorf("chunk %d of %s: %w", i, obj, err)
	case len(data) != content.ChunkLen(m.Size, i) || content.Sum(data) != m.Chunks[i]:
		return buf, fmt.Errorf("chunk %d of %s: %w (%d bytes, sha256 %s; the manifest lists %s)", i, obj, content.ErrCorrupt, len(data), content.Sum(data), m.Chunks[i])
	}
	return append(buf, data...), nil
}

// Open returns a reader of an object held, one chunk in memory at a time, each checked.
func (s *Store) Open(obj content.Hash) (io.ReadCloser, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rec, m, err := s.held(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return content.NewReader(obj, m.Size, len(m.Chunks), func(i int, buf []byte) ([]byte, error) {
		ctx, cancel := s.opContext()
		defer cancel()
		return s.chunk(ctx, obj, rec.Upload, m, i, buf)
	}), nil
}

// Stats counts the objects held (every one whole) and their bytes.
func (s *Store) Stats() (content.Stats, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var st content.Stats
	err := s.view(ctx, func(tx kv.Tx) error {
		st = content.Stats{}
		return tx.Bucket([]byte(bObjects)).ForEach(func(k, v []byte) error {
			var rec objectRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("object %x: record damaged: %w", k, err)
			}
			if rec.Upload != "" {
				st.Objects++
				st.Complete++
				st.Bytes += rec.Ref.Size
			}
			return nil
		})
	})
	return st, err
}
