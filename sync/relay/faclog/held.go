package faclog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Held is a held facility's state in memory: a kv.Store whose every Update that writes is one
// entry of the facility's log, appended by its Writer before the state changes. The holder is
// the facility's only writer, so nothing is read from the cluster and nothing conflicts:
// Updates run one at a time, Views read the last committed state. The entries reach the
// shared kv state through Project, behind the holder.
//
// An Update whose append got no answer leaves the state as it was and its writes in doubt;
// the next Update (or Settle) settles them first, and they join the state if they are in the
// log. Once the facility is claimed elsewhere every Update fails with ErrDeposed.
type Held struct {
	w     Writer
	mu    sync.Mutex // one Update at a time; guards doubt
	state atomic.Pointer[bucket]
	// doubt is the state an Update made whose entry is in doubt: it is the state once the
	// entry is known to be in the log. doubtEntry is that entry, but for its sequence.
	doubt      *bucket
	doubtEntry Entry
	// appended are the entries appended since TakeAppended, for the projection: the holder
	// projects what it wrote without reading it back from the log.
	appended []Entry
}

// TakeAppended returns the entries the Updates appended (and settled) since it was last
// called, in order, and forgets them: the holder's projection applies them (ProjectEach).
func (h *Held) TakeAppended() []Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.appended
	h.appended = nil
	return out
}

var _ kv.Store = (*Held)(nil)

// NewHeld is an empty state for the facility w writes.
func NewHeld(w Writer) *Held {
	h := &Held{w: w}
	h.state.Store(newBucket())
	return h
}

// Load copies the root buckets named from base (the kv state, caught up to the claim) into
// the held state, replacing what it held of them. Nothing is appended: the log already holds
// what made them.
func (h *Held) Load(ctx context.Context, base kv.Store, roots ...string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Settling would put back the state the write in doubt was made on, without what is
	// loaded now.
	if err := h.settleLocked(ctx); err != nil {
		return fmt.Errorf("faclog: load the held state of facility %q: %w", h.w.Facility(), err)
	}
	var loaded map[string]*bucket
	err := base.View(ctx, func(tx kv.Tx) error {
		loaded = map[string]*bucket{}
		for _, name := range roots {
			if b := tx.Bucket([]byte(name)); b != nil {
				c, err := copyBucket(b)
				if err != nil {
					return err
				}
				loaded[name] = c
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("faclog: load the held state of facility %q: %w", h.w.Facility(), err)
	}
	root := h.state.Load().clone()
	for _, name := range roots {
		delete(root.subs, name)
		if b, ok := loaded[name]; ok {
			root.subs[name] = b
		}
	}
	h.state.Store(root)
	return nil
}

func copyBucket(b kv.Bucket) (*bucket, error) {
	c := newBucket()
	c.seq = b.Sequence()
	if err := b.ForEach(func(k, v []byte) error {
		c.keys[string(k)] = slices.Clone(v)
		return nil
	}); err != nil {
		return nil, err
	}
	err := b.ForEachBucket(func(name []byte) error {
		sub, err := copyBucket(b.Bucket(name))
		c.subs[string(name)] = sub
		return err
	})
	return c, err
}

// Settle settles the writes an Update left in doubt (Writer.Settle): they join the state if
// their entry is in the log. Update does it first anyway.
func (h *Held) Settle(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.settleLocked(ctx)
}

func (h *Held) settleLocked(ctx context.Context) error {
	if h.doubt == nil {
		return nil
	}
	seq, err := h.w.Settle(ctx)
	if errors.Is(err, ErrInDoubt) {
		return err
	}
	if seq != 0 { // in the log, even if the facility was claimed after it
		h.state.Store(h.doubt)
		h.doubtEntry.Seq = seq
		h.appended = append(h.appended, h.doubtEntry)
	}
	h.doubt = nil
	return err
}

// Update implements kv.Store. fn runs once per call: nothing conflicts.
func (h *Held) Update(ctx context.Context, fn func(tx kv.Tx) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.settleLocked(ctx); err != nil {
		return fmt.Errorf("faclog: facility %q: %w", h.w.Facility(), err)
	}
	tx := &tx{root: h.state.Load(), writable: true, owned: map[*bucket]bool{}, bound: h.w.MaxEntry()}
	if err := fn(tx); err != nil {
		return err
	}
	if len(tx.writes) == 0 {
		return nil
	}
	e := Entry{Prev: h.w.Last(), Term: h.w.Term(), Data: EncodeWrites(tx.writes)}
	if len(e.Data) > tx.bound {
		return fmt.Errorf("faclog: facility %q: %d bytes of writes, at most %d in an entry: %w",
			h.w.Facility(), len(e.Data), tx.bound, kv.ErrTxTooLarge)
	}
	seq, err := h.w.Append(ctx, e.Data)
	if err != nil {
		if errors.Is(err, ErrInDoubt) {
			h.doubt, h.doubtEntry = tx.root, e
		}
		return fmt.Errorf("faclog: facility %q: %w", h.w.Facility(), err)
	}
	e.Seq = seq
	h.appended = append(h.appended, e)
	h.state.Store(tx.root)
	return nil
}

// View implements kv.Store: the last committed state.
func (h *Held) View(_ context.Context, fn func(tx kv.Tx) error) error {
	return fn(&tx{root: h.state.Load()})
}

// Close implements kv.Store; the Writer is the caller's.
func (h *Held) Close() error { return nil }

// bucket is one bucket of the state. A committed bucket is never changed: an Update copies
// each bucket it writes on the way from the root (tx.owned).
type bucket struct {
	keys map[string][]byte
	subs map[string]*bucket
	seq  uint64
	// sorted is keys' keys in order, made for a cursor and kept while the bucket is not
	// written (a committed bucket is not). Views made at once may both make it.
	sorted atomic.Pointer[[]string]
}

func newBucket() *bucket { return &bucket{keys: map[string][]byte{}, subs: map[string]*bucket{}} }

func (b *bucket) clone() *bucket {
	c := &bucket{keys: cloneMap(b.keys), subs: cloneMap(b.subs), seq: b.seq}
	c.sorted.Store(b.sorted.Load())
	return c
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (b *bucket) order() []string {
	if s := b.sorted.Load(); s != nil {
		return *s
	}
	s := make([]string, 0, len(b.keys))
	for k := range b.keys {
		s = append(s, k)
	}
	sort.Strings(s)
	b.sorted.Store(&s)
	return s
}

// tx is one transaction on a Held state. A bucket handle names its path, and each call finds
// the bucket again from the root: an Update's first write to a bucket copies it and the
// buckets above it, which handles taken before then must see.
type tx struct {
	root     *bucket
	writable bool
	owned    map[*bucket]bool // buckets this Update copied, which it may change
	writes   []Write
	// size is about what the writes take encoded; bound the most an entry takes (kv.Sizer),
	// so that the relay's group commit sizes its groups to fit one entry.
	size, bound int
}

func (t *tx) Writable() bool { return t.writable }

// Size implements kv.Sizer: bytes of writes so far, and the most an entry holds.
func (t *tx) Size() (n, bound int) { return t.size, t.bound }

// wrote records w.
func (t *tx) wrote(w Write) {
	t.writes = append(t.writes, w)
	t.size += 8 + len(w.Key) + len(w.Value) + 10
	for _, p := range w.Path {
		t.size += len(p) + 2
	}
}

// find is the bucket at path, nil if there is none.
func (t *tx) find(path [][]byte) *bucket {
	b := t.root
	for _, name := range path {
		if b = b.subs[string(name)]; b == nil {
			return nil
		}
	}
	return b
}

// own is the bucket at path made changeable by this Update: it and each bucket above it
// copied once. nil if there is none.
func (t *tx) own(path [][]byte) *bucket {
	if !t.owned[t.root] {
		t.root = t.root.clone()
		t.owned[t.root] = true
	}
	b := t.root
	for _, name := range path {
		sub := b.subs[string(name)]
		if sub == nil {
			return nil
		}
		if !t.owned[sub] {
			sub = sub.clone()
			t.owned[sub] = true
			b.subs[string(name)] = sub
		}
		b = sub
	}
	return b
}

func (t *tx) check(name []byte) error {
	if !t.writable {
		return kv.ErrTxNotWritable
	}
	if len(name) == 0 {
		return kv.ErrNameRequired
	}
	return nil
}

func (t *tx) bucketAt(parent [][]byte, name []byte) kv.Bucket {
	p := append(slices.Clip(parent), slices.Clone(name))
	if t.find(p) == nil {
		return nil
	}
	return &handle{t: t, path: p}
}

func (t *tx) createAt(parent [][]byte, name []byte, ifNot bool) (kv.Bucket, error) {
	if err := t.check(name); err != nil {
		return nil, err
	}
	p := append(slices.Clip(parent), slices.Clone(name))
	b := t.own(parent)
	if b == nil {
		return nil, fmt.Errorf("faclog: create bucket %q: %w", name, kv.ErrBucketNotFound)
	}
	if _, ok := b.keys[string(name)]; ok {
		return nil, fmt.Errorf("faclog: create bucket %q: a key has that name", name)
	}
	if b.subs[string(name)] != nil {
		if ifNot {
			return &handle{t: t, path: p}, nil
		}
		return nil, fmt.Errorf("faclog: create bucket %q: %w", name, kv.ErrBucketExists)
	}
	nb := newBucket()
	t.owned[nb] = true
	b.subs[string(name)] = nb
	t.wrote(Write{Op: OpCreateBucket, Path: p})
	return &handle{t: t, path: p}, nil
}

func (t *tx) deleteAt(parent [][]byte, name []byte) error {
	if err := t.check(name); err != nil {
		return err
	}
	b := t.own(parent)
	if b == nil || b.subs[string(name)] == nil {
		return fmt.Errorf("faclog: delete bucket %q: %w", name, kv.ErrBucketNotFound)
	}
	delete(b.subs, string(name))
	t.wrote(Write{Op: OpDeleteBucket, Path: append(slices.Clip(parent), slices.Clone(name))})
	return nil
}

func (t *tx) eachAt(path [][]byte, fn func(name []byte) error) error {
	b := t.find(path)
	if b == nil {
		return nil
	}
	names := make([]string, 0, len(b.subs))
	for n := range b.subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := fn([]byte(n)); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) Bucket(name []byte) kv.Bucket { return t.bucketAt(nil, name) }
func (t *tx) CreateBucket(name []byte) (kv.Bucket, error) {
	return t.createAt(nil, name, false)
}
func (t *tx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	return t.createAt(nil, name, true)
}
func (t *tx) DeleteBucket(name []byte) error                 { return t.deleteAt(nil, name) }
func (t *tx) ForEachBucket(fn func(name []byte) error) error { return t.eachAt(nil, fn) }

// handle is a bucket of a transaction, by its path.
type handle struct {
	t    *tx
	path [][]byte
}

// gone is the error of a bucket deleted after its handle was taken.
func (h *handle) gone() error {
	return fmt.Errorf("faclog: bucket %q: %w", h.path, kv.ErrBucketNotFound)
}

func (h *handle) Get(key []byte) []byte {
	if b := h.t.find(h.path); b != nil {
		return b.keys[string(key)]
	}
	return nil
}

// keyed is the bucket made changeable for a write of key, or why it cannot be written.
func (h *handle) keyed(key []byte) (*bucket, error) {
	if err := h.t.check(key); err != nil {
		if errors.Is(err, kv.ErrNameRequired) {
			err = kv.ErrKeyRequired
		}
		return nil, err
	}
	b := h.t.own(h.path)
	if b == nil {
		return nil, h.gone()
	}
	return b, nil
}

func (h *handle) Put(key, value []byte) error {
	b, err := h.keyed(key)
	if err != nil {
		return err
	}
	if b.subs[string(key)] != nil {
		return fmt.Errorf("faclog: put %q: a bucket has that name", key)
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	if _, ok := b.keys[string(key)]; !ok {
		b.sorted.Store(nil)
	}
	b.keys[string(key)] = v
	h.t.wrote(Write{Op: OpPut, Path: h.path, Key: slices.Clone(key), Value: v})
	return nil
}

func (h *handle) Delete(key []byte) error {
	b, err := h.keyed(key)
	if err != nil {
		return err
	}
	if _, ok := b.keys[string(key)]; !ok {
		return nil
	}
	delete(b.keys, string(key))
	b.sorted.Store(nil)
	h.t.wrote(Write{Op: OpDelete, Path: h.path, Key: slices.Clone(key)})
	return nil
}

func (h *handle) Cursor() kv.Cursor {
	c := &cursor{h: h, pos: -1}
	if b := h.t.find(h.path); b != nil {
		c.keys = b.order()
	}
	return c
}

func (h *handle) ForEach(fn func(k, v []byte) error) error {
	c := h.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (h *handle) KeyN() int {
	if b := h.t.find(h.path); b != nil {
		return len(b.keys)
	}
	return 0
}

func (h *handle) Bucket(name []byte) kv.Bucket { return h.t.bucketAt(h.path, name) }
func (h *handle) CreateBucket(name []byte) (kv.Bucket, error) {
	return h.t.createAt(h.path, name, false)
}
func (h *handle) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	return h.t.createAt(h.path, name, true)
}
func (h *handle) DeleteBucket(name []byte) error                 { return h.t.deleteAt(h.path, name) }
func (h *handle) ForEachBucket(fn func(name []byte) error) error { return h.t.eachAt(h.path, fn) }

func (h *handle) Sequence() uint64 {
	if b := h.t.find(h.path); b != nil {
		return b.seq
	}
	return 0
}

func (h *handle) SetSequence(v uint64) error {
	if !h.t.writable {
		return kv.ErrTxNotWritable
	}
	b := h.t.own(h.path)
	if b == nil {
		return h.gone()
	}
	b.seq = v
	h.t.wrote(Write{Op: OpSequence, Path: h.path, Seq: v})
	return nil
}

func (h *handle) NextSequence() (uint64, error) {
	if !h.t.writable {
		return 0, kv.ErrTxNotWritable
	}
	b := h.t.own(h.path)
	if b == nil {
		return 0, h.gone()
	}
	b.seq++
	h.t.wrote(Write{Op: OpSequence, Path: h.path, Seq: b.seq})
	return b.seq, nil
}

// cursor walks the keys its bucket had when the cursor was made, with their values as they
// are now, leaving out those deleted since (a key added since is not walked). It finds its
// bucket again at each step: the transaction's first write to the bucket copies it. pos is
// -1 before the first key and len(keys) past the last, where a cursor that ran off an end
// stays (kv.Cursor).
type cursor struct {
	h    *handle
	keys []string
	pos  int
}

// walk moves from pos by step (1 or -1) until a key still held, or off an end.
func (c *cursor) walk(step int) ([]byte, []byte) {
	b := c.h.t.find(c.h.path)
	for ; b != nil && c.pos >= 0 && c.pos < len(c.keys); c.pos += step {
		k := c.keys[c.pos]
		if v, ok := b.keys[k]; ok {
			return []byte(k), v
		}
	}
	c.pos = max(-1, min(c.pos, len(c.keys)))
	return nil, nil
}

func (c *cursor) First() ([]byte, []byte) { c.pos = 0; return c.walk(1) }
func (c *cursor) Last() ([]byte, []byte)  { c.pos = len(c.keys) - 1; return c.walk(-1) }
func (c *cursor) Next() ([]byte, []byte)  { c.pos = min(c.pos+1, len(c.keys)); return c.walk(1) }
func (c *cursor) Prev() ([]byte, []byte)  { c.pos = max(c.pos-1, -1); return c.walk(-1) }
func (c *cursor) Seek(seek []byte) ([]byte, []byte) {
	c.pos = sort.SearchStrings(c.keys, string(seek))
	return c.walk(1)
}
