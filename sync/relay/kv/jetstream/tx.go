package jskv

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// write is a pending write of one subject: a value, or a tombstone.
type write struct {
	val []byte
	del bool
}

// tx is one optimistic transaction. Nothing reaches the stream before commit.
type tx struct {
	ctx      context.Context
	s        *Store
	writable bool

	// seen caches each subject's committed state as first fetched: a transaction reads every
	// subject at most once, so it never sees two states of one key.
	seen map[string]entry
	// reads are the subjects whose fetched sequence the commit must still find (what fn's
	// decisions rest on); markers are bucket-existence subjects looked at, checked only for
	// buckets the transaction writes in (Update) or always (View).
	reads   map[string]struct{}
	markers map[string]struct{}
	writes  map[string]*write
	// touched are the buckets written in, by joined path: each gets its version rewritten
	// and its existence checked at commit.
	touched map[string][]string

	err error // the first failed read; the transaction is then void
}

func newTx(ctx context.Context, s *Store, writable bool) *tx {
	return &tx{ctx: ctx, s: s, writable: writable, seen: map[string]entry{}, reads: map[string]struct{}{},
		markers: map[string]struct{}{}, writes: map[string]*write{}, touched: map[string][]string{}}
}

// fetch returns subj's committed state, from the cache or the stream.
func (t *tx) fetch(subj string) (entry, bool) {
	if t.err != nil {
		return entry{}, false
	}
	if e, ok := t.seen[subj]; ok {
		return e, true
	}
	e, err := t.s.fetch(t.ctx, subj)
	if err != nil {
		t.err = err
		return entry{}, false
	}
	t.seen[subj] = e
	return e, true
}

// state is subj's value as this transaction sees it: its own write, else the committed one.
// record says whether the commit must validate what was read.
func (t *tx) state(subj string, record bool) (val []byte, present bool) {
	if w, ok := t.writes[subj]; ok {
		return w.val, !w.del
	}
	e, ok := t.fetch(subj)
	if !ok {
		return nil, false
	}
	if record {
		t.reads[subj] = struct{}{}
	}
	return e.val, e.present
}

func (t *tx) canWrite() error {
	if t.err != nil {
		return t.err
	}
	if !t.writable {
		return kv.ErrTxNotWritable
	}
	return nil
}

func (t *tx) put(subj string, val []byte) {
	t.writes[subj] = &write{val: append([]byte{}, val...)}
}

func (t *tx) del(subj string) {
	if _, pending := t.writes[subj]; !pending {
		if e, ok := t.seen[subj]; ok && !e.present {
			return // known absent: no tombstone needed
		}
	}
	t.writes[subj] = &write{del: true}
}

func (t *tx) touch(path []string) { t.touched[strings.Join(path, ".")] = path }

// commit validates and publishes. A transaction that wrote nothing only validates its reads.
func (t *tx) commit() error {
	if !t.writable || len(t.writes) == 0 {
		return t.validate()
	}
	for _, path := range t.touched {
		t.writes[t.s.subj('v', path, "")] = &write{val: []byte{}}
	}
	var msgs []*nats.Msg
	subjs := slices.Sorted(mapKeys(t.writes))
	for _, subj := range subjs {
		w := t.writes[subj]
		m := nats.NewMsg(subj)
		m.Data = w.val
		if w.del {
			m.Data = nil
			m.Header.Set(hdrOp, "DEL")
			m.Header.Set(hdrTTL, strconv.FormatInt(int64(t.s.o.TombstoneTTL.Seconds()), 10))
		}
		if _, read := t.reads[subj]; read {
			m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(t.seen[subj].seq, 10))
		}
		msgs = append(msgs, m)
	}
	// What was read and not written: a marker that only passes if it is unchanged.
	validate := map[string]struct{}{}
	for subj := range t.reads {
		validate[subj] = struct{}{}
	}
	for _, path := range t.touched {
		if len(path) > 0 {
			validate[t.s.subj('b', path, "")] = struct{}{}
		}
	}
	for _, subj := range slices.Sorted(mapKeys(validate)) {
		if _, written := t.writes[subj]; written {
			continue
		}
		e, ok := t.fetch(subj) // a marker of a bucket made before this tx is cached already
		if !ok {
			return t.err
		}
		m := nats.NewMsg(t.s.readMarkerSubj())
		m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(e.seq, 10))
		m.Header.Set(hdrExpectSubj, subj)
		msgs = append(msgs, m)
	}
	_, err := t.s.publishBatch(t.ctx, msgs)
	return err
}

// validate reads again every subject the transaction depends on and fails with a conflict if
// one moved. Each was unchanged from its first read to its second, and every first read came
// before every second, so all held together at the moment between: one consistent state.
func (t *tx) validate() error {
	for _, set := range []map[string]struct{}{t.reads, t.markers} {
		for subj := range set {
			e, err := t.s.fetch(t.ctx, subj)
			if err != nil {
				return err
			}
			if e.seq != t.seen[subj].seq {
				return fmt.Errorf("jskv: %w: %s moved from %d to %d", kv.ErrConflict, subj, t.seen[subj].seq, e.seq)
			}
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Tx: the root, a bucket with an empty path that holds no keys.

func (t *tx) Writable() bool { return t.writable }

func (t *tx) root() *bucket { return &bucket{t: t} }

func (t *tx) Bucket(name []byte) kv.Bucket { return t.root().Bucket(name) }

func (t *tx) CreateBucket(name []byte) (kv.Bucket, error) { return t.root().CreateBucket(name) }

func (t *tx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	return t.root().CreateBucketIfNotExists(name)
}

func (t *tx) DeleteBucket(name []byte) error { return t.root().DeleteBucket(name) }

func (t *tx) ForEachBucket(fn func(name []byte) error) error { return t.root().ForEachBucket(fn) }

// bucket is a handle on a bucket path; it holds no state of its own.
type bucket struct {
	t    *tx
	path []string
}

func (b *bucket) child(name []byte) []string {
	return append(slices.Clip(b.path), tok(name))
}

func (b *bucket) keySubj(key []byte) string { return b.t.s.subj('k', b.path, tok(key)) }

func (b *bucket) Get(key []byte) []byte {
	if len(key) == 0 {
		return nil
	}
	v, ok := b.t.state(b.keySubj(key), true)
	if !ok {
		return nil
	}
	return v
}

func (b *bucket) Put(key, value []byte) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	if len(key) == 0 {
		return kv.ErrKeyRequired
	}
	b.t.put(b.keySubj(key), value)
	b.t.touch(b.path)
	return nil
}

func (b *bucket) Delete(key []byte) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	if len(key) == 0 {
		return kv.ErrKeyRequired
	}
	b.t.del(b.keySubj(key))
	b.t.touch(b.path)
	return nil
}

// names lists the last tokens of the subjects under prefix (committed and this transaction's),
// decoded and sorted, with each one's subject. Reading the bucket's version first makes any
// change to the listing after it a conflict at commit.
func (b *bucket) names(kind byte, path []string) (names [][]byte, subjs map[string]string) {
	b.t.state(b.t.s.subj('v', b.path, ""), true)
	if b.t.err != nil {
		return nil, nil
	}
	prefix := b.t.s.subj(kind, path, "") + "."
	committed, err := b.t.s.list(b.t.ctx, prefix+"*")
	if err != nil {
		b.t.err = err
		return nil, nil
	}
	subjs = map[string]string{}
	add := func(subj string) {
		rest, ok := strings.CutPrefix(subj, prefix)
		if !ok || strings.Contains(rest, ".") {
			return
		}
		name, err := untok(rest)
		if err != nil || len(name) == 0 {
			return // not one of ours
		}
		if _, dup := subjs[string(name)]; !dup {
			subjs[string(name)] = subj
			names = append(names, name)
		}
	}
	for _, subj := range committed {
		add(subj)
	}
	for subj := range b.t.writes {
		add(subj)
	}
	sortKeys(names)
	return names, subjs
}

func (b *bucket) Cursor() kv.Cursor { return &cursor{b: b, i: -1} }

func (b *bucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return b.t.err
}

func (b *bucket) KeyN() int {
	n := 0
	_ = b.ForEach(func(_, _ []byte) error { n++; return nil })
	return n
}

func (b *bucket) marker(path []string) string { return b.t.s.subj('b', path, "") }

func (b *bucket) Bucket(name []byte) kv.Bucket {
	if len(name) == 0 {
		return nil
	}
	p := b.child(name)
	m := b.marker(p)
	if _, ok := b.t.writes[m]; !ok {
		b.t.markers[m] = struct{}{}
	}
	if _, present := b.t.state(m, false); !present && b.t.err == nil {
		return nil
	}
	// After a failed read the answer is unknown: a handle whose reads find nothing keeps
	// code that knows the bucket exists from tripping on a nil, and the transaction
	// returns the read's error whatever it does.
	return &bucket{t: b.t, path: p}
}

func (b *bucket) CreateBucket(name []byte) (kv.Bucket, error) {
	if err := b.t.canWrite(); err != nil {
		return nil, err
	}
	if len(name) == 0 {
		return nil, kv.ErrNameRequired
	}
	p := b.child(name)
	m := b.marker(p)
	if _, present := b.t.state(m, true); present {
		return nil, fmt.Errorf("jskv: %q: %w", name, kv.ErrBucketExists)
	}
	if b.t.err != nil {
		return nil, b.t.err
	}
	b.t.put(m, nil)
	b.t.touch(b.path)
	return &bucket{t: b.t, path: p}, nil
}

func (b *bucket) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	if nb := b.Bucket(name); nb != nil {
		if err := b.t.canWrite(); err != nil {
			return nil, err
		}
		return nb, nil
	}
	if b.t.err != nil {
		return nil, b.t.err
	}
	return b.CreateBucket(name)
}

// DeleteBucket tombstones the bucket's keys, nested buckets and sequence, then the bucket:
// every subject of it is written, so a transaction that read any of them conflicts.
func (b *bucket) DeleteBucket(name []byte) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	if len(name) == 0 {
		return kv.ErrNameRequired
	}
	p := b.child(name)
	m := b.marker(p)
	if _, present := b.t.state(m, true); !present {
		if b.t.err != nil {
			return b.t.err
		}
		return fmt.Errorf("jskv: %q: %w", name, kv.ErrBucketNotFound)
	}
	return b.deleteTree(p)
}

func (b *bucket) deleteTree(p []string) error {
	nb := &bucket{t: b.t, path: p}
	keys, subjs := nb.names('k', p)
	for _, k := range keys {
		b.t.del(subjs[string(k)])
	}
	children, csubjs := nb.childNames()
	for _, c := range children {
		if _, present := b.t.state(csubjs[string(c)], true); present {
			if err := nb.deleteTree(nb.child(c)); err != nil {
				return err
			}
		}
	}
	if b.t.err != nil {
		return b.t.err
	}
	b.t.del(b.t.s.subj('s', p, ""))
	b.t.del(b.marker(p))
	b.t.touch(p)
	b.t.touch(b.path)
	return nil
}

// childNames lists the nested buckets' names (with tombstoned ones) and marker subjects.
func (b *bucket) childNames() ([][]byte, map[string]string) {
	// Markers of children are P.b<d+1>.<path>.<name>: the subject of a depth one more.
	b.t.state(b.t.s.subj('v', b.path, ""), true)
	if b.t.err != nil {
		return nil, nil
	}
	prefix := b.t.s.subj('b', append(slices.Clip(b.path), "x"), "")
	prefix = prefix[:len(prefix)-1] // P.b<d+1>.<path>.
	committed, err := b.t.s.list(b.t.ctx, prefix+"*")
	if err != nil {
		b.t.err = err
		return nil, nil
	}
	subjs := map[string]string{}
	var names [][]byte
	add := func(subj string) {
		rest, ok := strings.CutPrefix(subj, prefix)
		if !ok || strings.Contains(rest, ".") {
			return
		}
		name, err := untok(rest)
		if err != nil || len(name) == 0 {
			return
		}
		if _, dup := subjs[string(name)]; !dup {
			subjs[string(name)] = subj
			names = append(names, name)
		}
	}
	for _, subj := range committed {
		add(subj)
	}
	for subj := range b.t.writes {
		add(subj)
	}
	sortKeys(names)
	return names, subjs
}

func (b *bucket) ForEachBucket(fn func(name []byte) error) error {
	names, subjs := b.childNames()
	for _, n := range names {
		if _, present := b.t.state(subjs[string(n)], false); !present {
			continue
		}
		if err := fn(n); err != nil {
			return err
		}
	}
	return b.t.err
}

func (b *bucket) Sequence() uint64 {
	v, _ := b.t.state(b.t.s.subj('s', b.path, ""), true)
	return u64(v)
}

func (b *bucket) SetSequence(v uint64) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	b.t.put(b.t.s.subj('s', b.path, ""), binary.BigEndian.AppendUint64(nil, v))
	b.t.touch(b.path)
	return nil
}

func (b *bucket) NextSequence() (uint64, error) {
	if err := b.t.canWrite(); err != nil {
		return 0, err
	}
	n := b.Sequence() + 1
	if b.t.err != nil {
		return 0, b.t.err
	}
	return n, b.SetSequence(n)
}

// cursor walks a listing made when it is first positioned; values are fetched as it lands on
// keys, skipping tombstones. The bucket's version, read with the listing, covers both.
type cursor struct {
	b      *bucket
	loaded bool
	keys   [][]byte
	subjs  map[string]string
	i      int
}

func (c *cursor) load() {
	if !c.loaded {
		c.keys, c.subjs = c.b.names('k', c.b.path)
		c.loaded = true
	}
}

func (c *cursor) land(i, dir int) ([]byte, []byte) {
	for ; i >= 0 && i < len(c.keys); i += dir {
		if v, present := c.b.t.state(c.subjs[string(c.keys[i])], false); present {
			c.i = i
			return c.keys[i], v
		}
		if c.b.t.err != nil {
			break
		}
	}
	c.i = max(-1, min(i, len(c.keys)))
	return nil, nil
}

func (c *cursor) First() ([]byte, []byte) { c.load(); return c.land(0, 1) }
func (c *cursor) Last() ([]byte, []byte)  { c.load(); return c.land(len(c.keys)-1, -1) }
func (c *cursor) Next() ([]byte, []byte)  { c.load(); return c.land(c.i+1, 1) }
func (c *cursor) Prev() ([]byte, []byte)  { c.load(); return c.land(c.i-1, -1) }

func (c *cursor) Seek(seek []byte) ([]byte, []byte) {
	c.load()
	i := sort.Search(len(c.keys), func(i int) bool { return string(c.keys[i]) >= string(seek) })
	return c.land(i, 1)
}
