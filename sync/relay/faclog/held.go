package faclog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Held is a held facility's state: a kv.Store whose every Update that writes is one entry of
// the facility's log, appended by its Writer before the state changes. The holder is the
// facility's only writer, so nothing conflicts: Updates run one at a time, Views read the last
// committed state. The entries reach the kv state (base) through the Projector, behind the
// holder.
//
// The state in memory is an overlay on base. A bucket the state has not loaded is read from
// base, where it is current: the holder is the only writer of what it holds, and whatever it
// wrote is loaded, so what base holds of a bucket not loaded is all there is. An Update loads
// each bucket whose keys it reads or writes, whole (its keys, not its nested buckets), and the
// names of nested buckets one at a time; a bucket deleted stays in the overlay as known absent
// until base has it deleted too. So a gateway that claims a facility catches base up to its
// claim (CatchUp) and serves at once: nothing is loaded ahead, and what its terminals touch is
// loaded once. Held must hold only keys no one else writes: a bucket loaded is never read from
// base again. And base must answer for buckets as they are: a jskv store that caches bucket
// markers (CacheBucketMarkers) keeps one it saw present after another gateway deleted the
// bucket and made it again, and would read and write the old one; Hold drops them once
// caught up (kv.DropCachedMarkers).
//
// An Update whose append got no answer leaves the state as it was and its writes in doubt;
// the next Update (or Settle) settles them first, and they join the state if they are in the
// log. Once the facility is claimed elsewhere every Update fails with ErrDeposed.
type Held struct {
	w     Writer
	base  kv.Store
	scope Scope
	mu    sync.Mutex // one Update at a time; guards doubt and appended
	// projecting keeps base still under a View: a View reads buckets not loaded from base,
	// and the projection of an entry the View's state does not hold would show it part of
	// a later state. An Update reads from base only buckets no entry wrote (those are
	// loaded), so it needs no such lock.
	projecting sync.RWMutex
	state      atomic.Pointer[bucket]
	// doubt is the state an Update made whose entry is in doubt: it is the state once the
	// entry is known to be in the log. doubtEntry is that entry, but for its sequence.
	doubt      *bucket
	doubtEntry Entry
	// appended are the entries appended since TakeAppended, for the projection: the holder
	// projects what it wrote without reading it back from the log.
	appended []Entry
	// deposed is closed once an append or a settle finds the facility claimed elsewhere.
	deposed     chan struct{}
	deposedOnce sync.Once
	// gap, once set, is why base is not the state the log follows (ErrGap: restored from a
	// backup under a running holder): what the state reads from base would be wrong, so
	// every transaction fails with it until an operator looks.
	gap atomic.Pointer[error]
}

// stopAtGap makes every transaction from now on fail with err (wrapping ErrGap).
func (h *Held) stopAtGap(err error) { h.gap.CompareAndSwap(nil, &err) }

// gapErr is the error stopAtGap set, nil if none.
func (h *Held) gapErr() error {
	if e := h.gap.Load(); e != nil {
		return fmt.Errorf("faclog: facility %q: the held state reads a kv state its log does not follow: %w", h.w.Facility(), *e)
	}
	return nil
}

// Deposed is closed once a write found the facility claimed by another gateway: the held
// state will write nothing more, and its holder should let it go.
func (h *Held) Deposed() <-chan struct{} { return h.deposed }

// noted passes err on, closing Deposed if it says the facility was claimed elsewhere.
func (h *Held) noted(err error) error {
	if errors.Is(err, ErrDeposed) {
		h.deposedOnce.Do(func() { close(h.deposed) })
	}
	return err
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

// NewHeld is the state of the facility w writes, over base: the kv state the facility's log
// is projected into, caught up to w's claim. scope says which of base's records are the
// facility's; nil holds them all. What lies outside it is read from base as it is there,
// and a write to it fails with ErrNotHeld.
func NewHeld(w Writer, base kv.Store, scope Scope) *Held {
	if scope == nil {
		scope = everything
	}
	h := &Held{w: w, base: base, scope: scope, deposed: make(chan struct{})}
	// The root has no keys of its own; its buckets are looked up in base.
	h.state.Store(&bucket{allKeys: true, seqKnown: true, subs: map[string]*bucket{}})
	return h
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
		ws, _ := DecodeWrites(h.doubtEntry.Data) // encoded here: it decodes
		stamp(h.doubt, ws, seq)
		h.state.Store(h.doubt)
		h.doubtEntry.Seq = seq
		h.appended = append(h.appended, h.doubtEntry)
	}
	h.doubt = nil
	return h.noted(err)
}

// Update implements kv.Store. fn runs again only where base's View runs its function again
// (kv.CurrentView: bbolt's never does, nor does a store with a CurrentView).
func (h *Held) Update(ctx context.Context, fn func(tx kv.Tx) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.gapErr(); err != nil {
		return err
	}
	if err := h.settleLocked(ctx); err != nil {
		return fmt.Errorf("faclog: facility %q: %w", h.w.Facility(), err)
	}
	var t *tx
	// Read as each key is now, not held to one moment (kv.CurrentView): a key the facility
	// holds and the state does not know changes only by this holder's projection, of what the
	// state knows, so it reads the same at any moment; one outside it is read as it is now in
	// any case. A View read every key twice, the second time one round trip after another.
	err := kv.CurrentView(ctx, h.base, func(btx kv.Tx) error {
		t = &tx{root: h.state.Load(), base: btx, scope: h.scope, writable: true, owned: map[*bucket]bool{}, bound: h.w.MaxEntry()}
		if _, msgs, ok := kv.Size(btx); ok {
			t.maxMessages = msgs - msgs/10 // room for what a projection adds that is not counted here
		}
		if err := fn(t); err != nil {
			return err
		}
		return t.err
	})
	if err != nil {
		return err
	}
	if len(t.writes) == 0 {
		if len(t.owned) > 0 { // buckets loaded from base: the same state, kept for the next
			h.state.Store(t.root)
		}
		return nil
	}
	writes := Coalesce(t.writes)
	// An entry must project in one transaction of base, whatever else joins it there: an
	// entry base refuses as too large would stop its facility's projection for good, and with
	// it every batch of the facility (a release waits for it, and a new holder's catch-up).
	if n := projectedMessages(writes); t.maxMessages > 0 && n > t.maxMessages {
		return fmt.Errorf("faclog: facility %q: %d writes would project as about %d messages, at most %d in a transaction: %w",
			h.w.Facility(), len(writes), n, t.maxMessages, kv.ErrTxTooLarge)
	}
	e := Entry{Prev: h.w.Last(), Term: h.w.Term(), Data: EncodeWrites(writes)}
	if len(e.Data) > t.bound {
		return fmt.Errorf("faclog: facility %q: %d bytes of writes, at most %d in an entry: %w",
			h.w.Facility(), len(e.Data), t.bound, kv.ErrTxTooLarge)
	}
	seq, err := h.w.Append(ctx, e.Data)
	if err != nil {
		if errors.Is(err, ErrInDoubt) {
			h.doubt, h.doubtEntry = t.root, e
		}
		return fmt.Errorf("faclog: facility %q: %w", h.w.Facility(), h.noted(err))
	}
	e.Seq = seq
	h.appended = append(h.appended, e)
	stamp(t.root, t.writes, seq)
	h.state.Store(t.root)
	return nil
}

// stamp marks each bucket on the way to each of writes as written by entry seq. They are the
// Update's own copies, not yet the state.
func stamp(root *bucket, writes []Write, seq uint64) {
	for _, w := range writes {
		b := root
		b.last = seq
		for _, name := range w.Path {
			if b = b.subs[string(name)]; b == nil {
				break // the bucket deleted by this write, or after it
			}
			b.last = seq
		}
		if b != nil && w.Key != nil {
			b.stamps.set(string(w.Key), seq)
		}
	}
}

// Forget drops from the state each bucket whose every write is in the kv state (at or before
// projected, the projector's mark), and from the buckets it keeps each key the kv state holds
// as the state does (forget): what it dropped is read from base again when next used. What
// was written since stays. It reports how many buckets and keys it dropped, and does nothing
// while a write is in doubt (its state would bring them back).
func (h *Held) Forget(projected uint64) int {
	dropped, _ := h.forgetAt(projected)
	return dropped
}

// ForgetRoots is Forget of the root buckets named alone: the rest of the state stays as it
// is. It reports how many buckets and keys it dropped.
func (h *Held) ForgetRoots(projected uint64, roots ...[]byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.doubt != nil {
		return 0
	}
	root := h.state.Load()
	var c *bucket
	dropped := 0
	for _, name := range roots {
		sub := root.subs[string(name)]
		if sub == nil {
			continue
		}
		keep, n := forget(sub, projected)
		if keep == sub {
			continue
		}
		if c == nil {
			c = root.clone()
			c.sorted.Store(nil)
		}
		c.subs[string(name)] = keep
		dropped += n
	}
	if c != nil {
		h.state.Store(c)
	}
	return dropped
}

// forgetAt is Forget, saying too whether it could (settled false: a write in doubt).
func (h *Held) forgetAt(projected uint64) (dropped int, settled bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.doubt != nil {
		return 0, false
	}
	root, dropped := forget(h.state.Load(), projected)
	if dropped > 0 {
		h.state.Store(root)
	}
	return dropped, true
}

// forget is b without its nested buckets written at or before projected, and without the keys
// it holds that were written at or before projected or only read (b itself if it drops none),
// and how many buckets and keys it dropped. A bucket written every group commit (the items
// log's root, a terminal-keyed root) always has a write after the mark, so it is never dropped
// whole: without dropping its keys one by one the state grew by every key written to it for as
// long as the facility was held, and each Update copied it whole to write it. Keys are dropped
// only from a bucket base holds (not allKeys): of one made in the state, base may not hold
// the keys yet.
func forget(b *bucket, projected uint64) (*bucket, int) {
	var c *bucket
	dropped := 0
	if !b.allKeys {
		var drop []string
		b.keys.each(func(k string, _ []byte) bool {
			if at, _ := b.stamps.get(k); at <= projected {
				drop = append(drop, k)
			}
			return true
		})
		if len(drop) > 0 {
			c = b.clone()
			c.sorted.Store(nil)
		}
		for _, k := range drop {
			c.keys.del(k)
			c.stamps.del(k)
		}
		dropped += len(drop)
	}
	for name, sub := range b.subs {
		if sub == nil {
			continue
		}
		var keep *bucket
		n := 1
		if sub.last > projected {
			keep, n = forget(sub, projected)
			if keep == sub {
				continue
			}
		}
		if c == nil {
			c = b.clone()
			c.sorted.Store(nil)
		}
		dropped += n
		if keep != nil {
			c.subs[name] = keep
			continue
		}
		// Unknown now, so looked up in base, which holds what it was.
		delete(c.subs, name)
		c.allSubs = false
	}
	if c == nil {
		return b, 0
	}
	return c, dropped
}

// Size is how many buckets and keys the state holds in memory (a key known absent counts).
func (h *Held) Size() (buckets, keys int) {
	var walk func(b *bucket)
	walk = func(b *bucket) {
		buckets++
		keys += b.keys.len()
		for _, sub := range b.subs {
			if sub != nil {
				walk(sub)
			}
		}
	}
	walk(h.state.Load())
	return buckets, keys
}

// View implements kv.Store: the last committed state.
func (h *Held) View(ctx context.Context, fn func(tx kv.Tx) error) error {
	h.projecting.RLock()
	defer h.projecting.RUnlock()
	if err := h.gapErr(); err != nil {
		return err
	}
	// As an Update reads base (kv.CurrentView), and for the same reason; and while this View
	// runs the projector writes nothing there (projecting), so what it does not find in its
	// state reads as of that state.
	return kv.CurrentView(ctx, h.base, func(btx kv.Tx) error {
		t := &tx{root: h.state.Load(), base: btx, scope: h.scope}
		if err := fn(t); err != nil {
			return err
		}
		return t.err // base failed under a cursor
	})
}

// Close implements kv.Store; the Writer and base are the caller's.
func (h *Held) Close() error { return nil }

// bucket is one bucket of the state. A committed bucket is never changed: an Update copies
// each bucket it writes, or reads from base, on the way from the root (tx.owned).
type bucket struct {
	// keys is the keys known: a value, or nil for a key known not to be there (deleted, or
	// read from base and not found). allKeys says it is every key; else a key it does not
	// know is read from base. A value is never nil: an empty one is empty.
	keys    cowMap[[]byte]
	allKeys bool
	// seq is the bucket's sequence where seqKnown; else base has it.
	seq      uint64
	seqKnown bool
	// last is the last entry that wrote in this bucket or below it: once the kv state holds
	// it, the state may forget the bucket (Forget) and read it from base again.
	last uint64
	// subs is the nested buckets known: a bucket, or nil for one known not to be there
	// (deleted, or looked up in base and not found). allSubs says it is every one; else a
	// name it does not know is looked up in base.
	subs    map[string]*bucket
	allSubs bool
	// stamps is the entry that last wrote each key the state wrote (stamp): once the kv
	// state holds that entry, the key may be forgotten (forget) and read from base again.
	stamps cowMap[uint64]
	// sorted is the keys there, in order, for a cursor on a bucket with allKeys; kept while
	// the bucket is not written (a committed bucket is not). Views made at once may both make
	// it.
	sorted atomic.Pointer[[]string]
}

// newBucket is a bucket made in the state: empty, and nothing of it in base.
func newBucket() *bucket {
	return &bucket{allKeys: true, seqKnown: true, subs: map[string]*bucket{}, allSubs: true}
}

// stub is a bucket that base holds, nothing of it read yet.
func stub() *bucket { return &bucket{subs: map[string]*bucket{}} }

func (b *bucket) clone() *bucket {
	c := &bucket{keys: b.keys.clone(), allKeys: b.allKeys, seq: b.seq, seqKnown: b.seqKnown,
		subs: cloneMap(b.subs), allSubs: b.allSubs, last: b.last, stamps: b.stamps.clone()}
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

// order is the keys there, in order; only for a bucket with allKeys.
func (b *bucket) order() []string {
	if s := b.sorted.Load(); s != nil {
		return *s
	}
	s := make([]string, 0, b.keys.len())
	b.keys.each(func(k string, v []byte) bool {
		if v != nil {
			s = append(s, k)
		}
		return true
	})
	sort.Strings(s)
	b.sorted.Store(&s)
	return s
}

// tx is one transaction on a Held state. A bucket handle names its path, and each call finds
// the bucket again from the root: an Update's first write to a bucket copies it and the
// buckets above it, which handles taken before then must see.
type tx struct {
	root     *bucket
	base     kv.Tx // a View of base, for what the state has not loaded
	scope    Scope
	writable bool
	owned    map[*bucket]bool // buckets this Update copied or loaded, which it may change
	writes   []Write
	err      error // the first failure to read base under a cursor, which fails the transaction
	// size is about what the writes take encoded; bound the most an entry takes (kv.Sizer),
	// so that the relay's group commit sizes its groups to fit one entry.
	size, bound int
	// maxMessages is nine tenths of the most messages base commits at once (jskv's atomic
	// batch), which an entry's projection must fit; 0 where base has no such bound (bbolt).
	maxMessages int
	// grown holds the values this transaction made by adding to a key (grow), whole with the
	// room after them, by their first byte.
	grown map[*byte][]byte
}

func (t *tx) Writable() bool { return t.writable }

// Outside is the view of base this transaction reads what the facility does not hold from. A
// caller reads through it what it cannot reach through the transaction and knows to be none of
// the facility's own: a record of base's, final once written, found by a walk of a bucket the
// facility holds only part of (the relay's item log, whose blocks the holder writes, for an
// item the kv state stored), which the transaction refuses (ErrNotHeld).
func (t *tx) Outside() kv.Tx { return t.base }

// Size implements kv.Sizer: bytes of writes so far against the most an entry holds, or the
// messages they would project as against the most base commits at once, whichever is nearer
// its bound.
func (t *tx) Size() (n, bound int) {
	if t.maxMessages > 0 {
		if m := projectedMessages(t.writes); m*t.bound > t.size*t.maxMessages {
			return m, t.maxMessages
		}
	}
	return t.size, t.bound
}

// projectedMessages is about how many messages writes project as in a store that bounds a
// transaction's messages: each write, the version of each bucket written in (jskv's commit,
// its tx.Size) and the facility's projected position.
func projectedMessages(writes []Write) int {
	buckets := map[string]bool{}
	for _, w := range writes {
		buckets[string(bytes.Join(w.Path, []byte{0}))] = true
	}
	return len(writes) + len(buckets) + 1
}

// Prefetch implements kv.Prefetcher: the keys the state does not hold already (those outside
// the facility, which it never remembers, and those it has not read yet) are handed to base's
// View as a hint, so that a group commit's reads from base are made together rather than a
// round trip each. Nothing is loaded into the state by it: a key counts as read when Get reads
// it, as on base.
func (t *tx) Prefetch(keys []kv.Key) {
	fwd := keys[:0:0]
	for _, k := range keys {
		if !t.holds(k.Path, k.Key) {
			fwd = append(fwd, k)
		}
	}
	kv.Prefetch(t.base, fwd)
}

// holds reports whether the state answers a Get of key at path (or, with no key, a look-up of
// the bucket at path) without asking base.
func (t *tx) holds(path [][]byte, key []byte) bool {
	if len(path) == 0 {
		return false
	}
	if t.reach(path, key) == Outside {
		return false
	}
	b := t.root
	for _, name := range path {
		sub, known := b.subs[string(name)]
		switch {
		case !known && !b.allSubs:
			return false
		case sub == nil:
			return true // known absent: so is everything below it
		}
		b = sub
	}
	if key == nil {
		return true
	}
	_, known := b.keys.get(string(key))
	return known || b.allKeys
}

// wrote records w.
func (t *tx) wrote(w Write) {
	t.writes = append(t.writes, w)
	t.size += 8 + len(w.Key) + len(w.Value) + 10
	for _, p := range w.Path {
		t.size += len(p) + 2
	}
}

// inBase is base's bucket at path, nil if base has none.
func (t *tx) inBase(path [][]byte) kv.Bucket {
	if len(path) == 0 {
		return nil
	}
	b := t.base.Bucket(path[0])
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(name)
	}
	return b
}

// at finds the bucket at path, and whether it exists. Its node is nil where only base holds
// it, in a View; an Update puts a stub in the state for each bucket it finds in base, and
// remembers each it did not find, so it asks base once.
func (t *tx) at(path [][]byte) (*bucket, bool) {
	b := t.root
	r := Partly
	for i, name := range path {
		if r == Partly {
			r = t.scope(path[:i+1])
		}
		if r == Outside { // not the facility's: as base has it, not remembered
			return nil, t.inBase(path) != nil
		}
		sub, known := b.subs[string(name)]
		if !known && !b.allSubs {
			if !t.writable {
				// Nothing below a bucket the state does not know is in the state either.
				return nil, t.inBase(path) != nil
			}
			inBase := t.inBase(path[:i+1]) != nil
			if inBase {
				sub = stub()
				t.owned[sub] = true
			}
			t.own(path[:i]).subs[string(name)] = sub
		}
		if sub == nil {
			return nil, false
		}
		b = sub
	}
	return b, true
}

// own is the bucket at path made changeable by this Update: it and each bucket above it
// copied once. nil if there is none. It does not load the bucket's keys (load does).
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

// reach is how much of the bucket at path, or of its key if key is not nil, the facility holds.
func (t *tx) reach(path [][]byte, key []byte) Reach {
	if key != nil {
		path = append(slices.Clip(path), key)
	}
	return reach(t.scope, path)
}

// notHeld is the error of a write, or a walk, of what the facility does not hold.
func notHeld(what string, path [][]byte, key []byte) error {
	if key != nil {
		return fmt.Errorf("faclog: %s %q in %q: %w", what, key, path, ErrNotHeld)
	}
	return fmt.Errorf("faclog: %s %q: %w", what, path, ErrNotHeld)
}

// get is the value of key in the bucket at path, nil if there is none: from the state where
// it knows the key, else from base. An Update remembers what base answered.
func (t *tx) get(path [][]byte, key []byte) []byte {
	n, ok := t.at(path)
	if !ok {
		return nil
	}
	if t.reach(path, key) == Outside {
		if bb := t.inBase(path); bb != nil {
			return bb.Get(key)
		}
		return nil
	}
	if n != nil {
		if v, known := n.keys.get(string(key)); known || n.allKeys {
			return v
		}
	}
	var v []byte
	if bb := t.inBase(path); bb != nil {
		v = slices.Clone(bb.Get(key))
	}
	if t.writable {
		t.own(path).keys.set(string(key), v)
	}
	return v
}

// whole is the bucket at path with every key, as a cursor walks them: in an Update the
// state's own, read whole from base once; in a View a copy made for the View where the state
// does not have every key. nil if there is no such bucket.
func (t *tx) whole(path [][]byte) (*bucket, error) {
	n, ok := t.at(path)
	if !ok {
		return nil, nil
	}
	if n != nil && n.allKeys {
		return n, nil
	}
	r := t.reach(path, nil)
	if r == Partly {
		return nil, notHeld("walk the keys of", path, nil)
	}
	var b *bucket
	if t.writable && r == Inside {
		b = t.own(path)
	} else {
		b = &bucket{}
		if n != nil {
			b.keys = n.keys.clone()
		}
	}
	if bb := t.inBase(path); bb != nil {
		if err := bb.ForEach(func(k, v []byte) error {
			if _, known := b.keys.get(string(k)); !known {
				b.keys.set(string(k), slices.Clone(v))
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("faclog: read bucket %q: %w", path, err)
		}
	}
	var absent []string
	b.keys.each(func(k string, v []byte) bool {
		if v == nil {
			absent = append(absent, k)
		}
		return true
	})
	for _, k := range absent {
		b.keys.del(k)
	}
	b.allKeys = true
	b.sorted.Store(nil)
	return b, nil
}

// subNamed reports whether the bucket at path, which this Update writes keys in, has a nested
// bucket named name (a key may not take its name). The first time, it lists the nested buckets
// base holds there, so that each new key after costs no look-up in base (item ids: one a
// report).
func (t *tx) subNamed(path [][]byte, name []byte) (bool, error) {
	b := t.own(path)
	if !b.allSubs {
		if bb := t.inBase(path); bb != nil {
			if err := bb.ForEachBucket(func(n []byte) error {
				if _, known := b.subs[string(n)]; !known {
					b.subs[string(n)] = stub()
				}
				return nil
			}); err != nil {
				return false, fmt.Errorf("faclog: list the buckets of %q: %w", path, err)
			}
		}
		b.allSubs = true
	}
	return b.subs[string(name)] != nil, nil
}

// seqOf is the bucket at path made changeable by this Update, its sequence read from base if
// the state did not have it; nil if there is no such bucket.
func (t *tx) seqOf(path [][]byte) *bucket {
	if _, ok := t.at(path); !ok {
		return nil
	}
	b := t.own(path)
	if !b.seqKnown {
		if bb := t.inBase(path); bb != nil {
			b.seq = bb.Sequence()
		}
		b.seqKnown = true
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
	if _, ok := t.at(p); !ok {
		return nil
	}
	return &handle{t: t, path: p}
}

func (t *tx) createAt(parent [][]byte, name []byte, ifNot bool) (kv.Bucket, error) {
	if err := t.check(name); err != nil {
		return nil, err
	}
	p := append(slices.Clip(parent), slices.Clone(name))
	if _, ok := t.at(parent); !ok {
		return nil, fmt.Errorf("faclog: create bucket %q: %w", name, kv.ErrBucketNotFound)
	}
	if t.reach(p, nil) != Inside {
		if _, ok := t.at(p); ok && ifNot { // there already: nothing to write
			return &handle{t: t, path: p}, nil
		}
		return nil, notHeld("create bucket", p, nil)
	}
	if t.get(parent, name) != nil {
		return nil, fmt.Errorf("faclog: create bucket %q: a key has that name", name)
	}
	if _, ok := t.at(p); ok {
		if ifNot {
			return &handle{t: t, path: p}, nil
		}
		return nil, fmt.Errorf("faclog: create bucket %q: %w", name, kv.ErrBucketExists)
	}
	nb := newBucket()
	t.owned[nb] = true
	t.own(parent).subs[string(name)] = nb
	t.wrote(Write{Op: OpCreateBucket, Path: p})
	return &handle{t: t, path: p}, nil
}

func (t *tx) deleteAt(parent [][]byte, name []byte) error {
	if err := t.check(name); err != nil {
		return err
	}
	p := append(slices.Clip(parent), slices.Clone(name))
	if _, ok := t.at(p); !ok {
		return fmt.Errorf("faclog: delete bucket %q: %w", name, kv.ErrBucketNotFound)
	}
	if t.reach(p, nil) != Inside {
		return notHeld("delete bucket", p, nil)
	}
	// Known absent, not forgotten: base holds the bucket until the projection deletes it.
	t.own(parent).subs[string(name)] = nil
	t.wrote(Write{Op: OpDeleteBucket, Path: p})
	return nil
}

func (t *tx) eachAt(path [][]byte, fn func(name []byte) error) error {
	n, ok := t.at(path)
	if !ok {
		return nil
	}
	names := map[string]bool{}
	if n == nil || !n.allSubs {
		var err error
		if len(path) == 0 {
			err = t.base.ForEachBucket(func(name []byte) error { names[string(name)] = true; return nil })
		} else if bb := t.inBase(path); bb != nil {
			err = bb.ForEachBucket(func(name []byte) error { names[string(name)] = true; return nil })
		}
		if err != nil {
			return fmt.Errorf("faclog: list the buckets of %q: %w", path, err)
		}
	}
	if n != nil {
		for name, sub := range n.subs {
			names[name] = sub != nil
		}
	}
	var sorted []string
	for name, there := range names {
		if there {
			sorted = append(sorted, name)
		}
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		if err := fn([]byte(name)); err != nil {
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

func (h *handle) Get(key []byte) []byte { return h.t.get(h.path, key) }

// keyed is the bucket made changeable for a write of key, or why it cannot be written.
func (h *handle) keyed(key []byte) (*bucket, error) {
	if err := h.t.check(key); err != nil {
		if errors.Is(err, kv.ErrNameRequired) {
			err = kv.ErrKeyRequired
		}
		return nil, err
	}
	if _, ok := h.t.at(h.path); !ok {
		return nil, h.gone()
	}
	if h.t.reach(h.path, key) != Inside {
		return nil, notHeld("write key", h.path, key)
	}
	return h.t.own(h.path), nil
}

func (h *handle) Put(key, value []byte) error {
	b, err := h.keyed(key)
	if err != nil {
		return err
	}
	if named, err := h.t.subNamed(h.path, key); err != nil || named {
		return cmp.Or(err, fmt.Errorf("faclog: put %q: a bucket has that name", key))
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	if old, known := b.keys.get(string(key)); !known || old == nil {
		b.sorted.Store(nil)
	}
	b.keys.set(string(key), v)
	h.t.wrote(Write{Op: OpPut, Path: h.path, Key: slices.Clone(key), Value: v})
	return nil
}

// AppendValue implements kv.Appender: the entry carries tail alone.
func (h *handle) AppendValue(key, tail []byte) error {
	b, err := h.keyed(key)
	if err != nil {
		return err
	}
	if named, err := h.t.subNamed(h.path, key); err != nil || named {
		return cmp.Or(err, fmt.Errorf("faclog: append to %q: a bucket has that name", key))
	}
	old := h.t.get(h.path, key)
	if old == nil {
		b.sorted.Store(nil)
	}
	b.keys.set(string(key), h.t.grow(old, tail))
	h.t.wrote(Write{Op: OpAppend, Path: h.path, Key: slices.Clone(key), Value: slices.Clone(tail)})
	return nil
}

// grow is old with tail added, as a new value: old may be a committed state's, which Views
// read. A value this transaction made here is grown as append grows a slice, in the room
// append left after it, so that a record each call of a group adds to (the group's item log
// record, a facility's id records) is copied a few times in all rather than once a call, which
// was a tenth of a holding gateway's CPU. The first value is made at its length: a record added
// to once a transaction keeps no room in the committed state. Values are handed out capped at
// their length, so that no reader's append writes in that room; a value of the same bytes
// stored elsewhere (a Put of what a Get returned) is grown there only while its length is the
// one grown last, and then only past it.
func (t *tx) grow(old, tail []byte) []byte {
	var v []byte
	if len(old) > 0 {
		if own, ok := t.grown[&old[0]]; ok && len(own) == len(old) {
			v = append(own, tail...)
			if &v[0] != &old[0] {
				delete(t.grown, &old[0])
			}
		}
	}
	if v == nil {
		v = make([]byte, 0, len(old)+len(tail))
		v = append(append(v, old...), tail...)
	}
	if len(v) > 0 {
		if t.grown == nil {
			t.grown = map[*byte][]byte{}
		}
		t.grown[&v[0]] = v
	}
	return v[:len(v):len(v)]
}

func (h *handle) Delete(key []byte) error {
	b, err := h.keyed(key)
	if err != nil {
		return err
	}
	if h.t.get(h.path, key) == nil {
		return nil
	}
	if b.allKeys {
		b.keys.del(string(key))
	} else {
		b.keys.set(string(key), nil) // base has it until the projection deletes it
	}
	b.sorted.Store(nil)
	h.t.wrote(Write{Op: OpDelete, Path: h.path, Key: slices.Clone(key)})
	return nil
}

func (h *handle) Cursor() kv.Cursor {
	c := &cursor{pos: -1}
	b, err := h.t.whole(h.path)
	if err != nil && h.t.err == nil {
		h.t.err = err // fails the transaction
	}
	if b == nil {
		return c
	}
	c.keys = b.order()
	if h.t.writable && h.t.reach(h.path, nil) == Inside {
		// The state's own bucket, found again at each step: a write copies it.
		c.find = func() *bucket { n, _ := h.t.at(h.path); return n }
	} else {
		c.find = func() *bucket { return b }
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
	return h.t.err
}

func (h *handle) KeyN() int {
	b, err := h.t.whole(h.path)
	if err != nil && h.t.err == nil {
		h.t.err = err
	}
	if b == nil {
		return 0
	}
	return len(b.order())
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
	n, ok := h.t.at(h.path)
	switch {
	case !ok:
		return 0
	case n != nil && n.seqKnown:
		return n.seq
	case h.t.writable && h.t.reach(h.path, nil) == Inside:
		return h.t.seqOf(h.path).seq
	}
	if bb := h.t.inBase(h.path); bb != nil {
		return bb.Sequence()
	}
	return 0
}

func (h *handle) SetSequence(v uint64) error {
	if !h.t.writable {
		return kv.ErrTxNotWritable
	}
	if h.t.reach(h.path, nil) != Inside {
		return notHeld("set the sequence of", h.path, nil)
	}
	b := h.t.seqOf(h.path)
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
	if h.t.reach(h.path, nil) != Inside {
		return 0, notHeld("take a sequence of", h.path, nil)
	}
	b := h.t.seqOf(h.path)
	if b == nil {
		return 0, h.gone()
	}
	b.seq++
	h.t.wrote(Write{Op: OpSequence, Path: h.path, Seq: b.seq})
	return b.seq, nil
}

// cursor walks the keys its bucket had when the cursor was made, with their values as they
// are now, leaving out those deleted since (a key added since is not walked). In an Update
// it finds its bucket again at each step: the transaction's first write to the bucket
// copies it. pos is -1 before the first key and len(keys) past the last, where a cursor that
// ran off an end stays (kv.Cursor).
type cursor struct {
	find func() *bucket
	keys []string
	pos  int
}

// walk moves from pos by step (1 or -1) until a key still held, or off an end.
func (c *cursor) walk(step int) ([]byte, []byte) {
	var b *bucket
	if c.find != nil {
		b = c.find()
	}
	for ; b != nil && c.pos >= 0 && c.pos < len(c.keys); c.pos += step {
		k := c.keys[c.pos]
		if v, _ := b.keys.get(k); v != nil {
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
