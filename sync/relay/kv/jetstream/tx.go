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
	"github.com/nats-io/nuid"
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
	// stale: a StaleView's, which reads replicas as an Update does, and more of them (a
	// cursor's values too), keeps nothing in the cache and validates nothing.
	stale bool
	// whole: a WholeView's copy of the store at one moment (whole.go), which answers every
	// read; nothing is read from the stream.
	whole *wholeCopy
	// floor, after a conflict, is a stream sequence the commit it ran into had reached: a
	// replica's answer counts only from a replica that has applied that much (readReplicas),
	// and a point read goes to the leader, whose answer says nothing of its own position.
	floor uint64
	// current: a CurrentView's, which reads replicas as an Update does, but only those that
	// have applied floor (the store's known sequence when it began), validates nothing, and
	// takes from the gateway's cache only bucket markers (as Updates do, CacheBucketMarkers).
	current bool

	// seen caches each subject's committed state as first fetched: a transaction reads every
	// subject at most once, so it never sees two states of one key.
	seen map[string]entry
	// reads are the subjects whose fetched sequence the commit must still find (what fn's
	// decisions rest on). A bucket's marker seen present is not among them (see Bucket).
	reads map[string]struct{}
	// scanned: a cursor listed a bucket, so the values it read rest on its version too.
	scanned bool
	// listed holds each listing's committed subjects as first fetched (by filter): a group
	// commit's fan-outs scan one facility's route list once per queued item, and a second
	// listing could only show a state the bucket's version (read with the first) makes a
	// conflict anyway. This transaction's own writes are laid over it at each scan.
	listed map[string][]string
	writes map[string]*write
	// under are the subjects of writes, by the prefix of their last token (their bucket and
	// kind), in the order first written: a listing lays only its own bucket's writes over the
	// committed subjects, not the whole group commit's.
	under map[string][]string
	// named keeps each bucket's decoded, sorted listing (names): a group commit's fan-outs
	// list one facility's routes once per queued item.
	named map[string]*listing
	// touched are the generations of the buckets written in: each gets its version rewritten.
	touched map[string]struct{}
	// fromCache are the subjects read from the gateway's cache, not the leader: dropped
	// from it if the transaction conflicts, since one of them may be why.
	fromCache []string
	// fromReplica: a replica answered a read of this transaction. Such a read may be behind
	// the leader, so a function's error resting on it stands only once the leader confirms
	// it, however few reads it made (validate).
	fromReplica bool
	// dead are the generations of buckets this transaction deleted, purged once it commits.
	dead []string
	// pre holds what Prefetch (or the run before a conflict) fetched from the leader and fn
	// has not read yet: a read takes its subject from here into seen, and only then is it one
	// of the transaction's reads (prefetch.go).
	pre map[string]entry
	// fedRoots are the generations of Options.WatchRoots this transaction opened, fed the
	// generations of buckets in them: their markers, keys and sequences are what a feed of
	// those roots takes (commit marks the last of them, hdrFed).
	fedRoots, fed map[string]bool
	// born are the generations of buckets this transaction made: nothing can be under them
	// yet (a generation is a fresh random id nobody else knows before the commit), so their
	// subjects are known absent without a read, and nothing read there needs validating.
	born map[string]struct{}
	// steady are the generations of Options.SteadyRoots' buckets a Prefetch found (steady.go).
	steady map[string]bool
	// versioned are the generations whose version a cursor read (afterVersion).
	versioned map[string]struct{}
	// landed are, by generation, the subjects cursors read there (noteLanded).
	landed map[string][]string

	// rerun: a run after a conflict, which guesses nothing (kv.AbsentGuesser): the key
	// guessed absent may be what it ran into.
	rerun bool
	// guesses are subjects fn said are almost surely absent (GuessAbsent) and has not read
	// yet: fetch answers them absent, at sequence 0, unless something better is known.
	guesses map[string]struct{}

	err error // the first failed read; the transaction is then void
}

func newTx(ctx context.Context, s *Store, writable bool) *tx {
	return &tx{ctx: ctx, s: s, writable: writable, seen: map[string]entry{}, reads: map[string]struct{}{},
		writes: map[string]*write{}, touched: map[string]struct{}{}}
}

// fetch returns subj's committed state, from the cache or the stream.
func (t *tx) fetch(subj string) (entry, bool) { return t.fetchOpt(subj, true) }

// fetchOpt is fetch, taking subj from the gateway's cache only if cached says so.
func (t *tx) fetchOpt(subj string, cached bool) (entry, bool) {
	if t.err != nil {
		return entry{}, false
	}
	if e, ok := t.seen[subj]; ok {
		return e, true
	}
	if t.bornSubj(subj) {
		e := entry{}
		t.seen[subj] = e
		return e, true
	}
	if t.whole != nil {
		return t.whole.get(subj), true // nothing to validate, so not kept in t.seen too
	}
	if e, ok := t.pre[subj]; ok {
		// Fetched from the leader before fn asked: the read it would have made now, made
		// earlier, and validated at commit all the same.
		delete(t.pre, subj)
		t.seen[subj] = e
		return e, true
	}
	cacheable := t.s.cacheable(subj)
	if t.current && cacheable && cached && t.s.isMarker(subj) {
		if e, ok := t.s.cache.get(subj); ok {
			t.s.cacheHits.Add(1)
			t.seen[subj] = e
			return e, true
		}
	}
	if t.current && t.onReplica(subj) {
		// No older than floor (readReplicas), or else the leader is asked.
		if got, missed := t.readReplicas([]string{subj}, "", 0); len(missed) == 0 {
			e := got[subj]
			if cacheable && t.s.isMarker(subj) {
				t.s.cache.put(subj, e) // as an Update's read of it would be
			}
			t.s.replicaOneByOne.Add(1)
			t.seen[subj] = e
			return e, true
		}
	}
	if cacheable && t.writable && cached {
		if e, ok := t.s.cache.get(subj); ok {
			t.s.cacheHits.Add(1)
			t.seen[subj] = e
			t.fromCache = append(t.fromCache, subj)
			return e, true
		}
	}
	if _, guessed := t.guesses[subj]; guessed {
		// Absent, as a read would have said of a subject with no message: the commit
		// expects sequence 0 there, so a message there after all is a conflict.
		delete(t.guesses, subj)
		t.s.guessed.Add(1)
		e := entry{}
		t.seen[subj] = e
		return e, true
	}
	if (cached || t.stale) && t.floor == 0 && t.onReplica(subj) {
		// Validated at commit like every read of an Update, so any replica may answer
		// (replica.go); one that cannot is not an error, the leader is asked instead.
		if e, err := t.s.replicaGet(t.ctx, subj); err == nil {
			if cacheable && t.writable {
				t.s.cache.put(subj, e)
			}
			t.fromReplica = true
			t.seen[subj] = e
			return e, true
		}
		t.s.replicaMisses.Add(1)
	}
	e, err := t.s.fetch(t.ctx, subj)
	if err != nil {
		t.err = err
		return entry{}, false
	}
	if cacheable && t.writable {
		// Only what an Update read: the cache serves Updates, and a View's reads (a
		// handshake's, a downlink writer's) filled it with every connected terminal's records.
		t.s.cache.put(subj, e)
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
	if record && !t.bornSubj(subj) {
		t.reads[subj] = struct{}{}
	}
	return e.val, e.present
}

// bornSubj reports whether subj lies in a generation this transaction made (P.<kind>.<gen>...).
func (t *tx) bornSubj(subj string) bool {
	if len(t.born) == 0 || len(subj) < len(t.s.o.Prefix)+4 {
		return false
	}
	_, gen := t.s.parse(subj)
	_, ok := t.born[gen]
	return ok
}

// scanState is state for a value a cursor lands on. Such a value is not validated on its
// own: it rests on the bucket's version, read before it, so it must be what the stream held
// after that read. It is never taken from the gateway's cache, which may hold a state from
// before another gateway's commit that the version already shows (and what was prefetched
// before the version was read is dropped, afterVersion).
//
// The exception is a cached value known current at the version just read: the cache marks an
// entry with the version its bucket had when a commit of this gateway left the entry current
// (entry.ver: the commit wrote the key, or read it after a version it validated). Every commit
// that writes a key rewrites its bucket's version, so a version still at that sequence means
// nobody wrote the key since.
func (t *tx) scanState(subj, gen string) (val []byte, present bool) {
	if w, ok := t.writes[subj]; ok {
		return w.val, !w.del
	}
	if _, read := t.seen[subj]; !read {
		if e, ok := t.cachedCurrent(subj, gen); ok {
			t.s.cacheHits.Add(1)
			t.seen[subj] = e
			t.fromCache = append(t.fromCache, subj)
			t.noteLanded(gen, subj)
			return e.val, e.present
		}
	}
	e, ok := t.fetchOpt(subj, false)
	if !ok {
		return nil, false
	}
	t.noteLanded(gen, subj)
	return e.val, e.present
}

// cachedCurrent is subj's cached state if the cache marks it current at the version of bucket
// gen this transaction read (scanState).
func (t *tx) cachedCurrent(subj, gen string) (entry, bool) {
	if !t.writable || !t.s.cacheable(subj) {
		return entry{}, false
	}
	v, ok := t.seen[t.s.subj('v', gen, "")]
	if !ok || v.seq == 0 {
		return entry{}, false
	}
	e, ok := t.s.cache.get(subj)
	if !ok || e.ver != v.seq {
		return entry{}, false
	}
	return e, true
}

// noteLanded remembers a value a cursor read in bucket gen: if the commit validates the
// bucket's version, the value is current as the commit leaves it (commit marks it so).
func (t *tx) noteLanded(gen, subj string) {
	if !t.writable || t.s.cache == nil {
		return
	}
	if t.landed == nil {
		t.landed = map[string][]string{}
	}
	t.landed[gen] = append(t.landed[gen], subj)
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
	t.noteWrite(subj)
	t.writes[subj] = &write{val: append([]byte{}, val...)}
}

// noteWrite files subj under its prefix the first time it is written.
func (t *tx) noteWrite(subj string) {
	if _, again := t.writes[subj]; again {
		return
	}
	i := strings.LastIndexByte(subj, '.')
	if i < 0 {
		return
	}
	if t.under == nil {
		t.under = map[string][]string{}
	}
	t.under[subj[:i+1]] = append(t.under[subj[:i+1]], subj)
}

func (t *tx) del(subj string) {
	if _, pending := t.writes[subj]; !pending {
		if e, ok := t.seen[subj]; ok && !e.present {
			return // known absent: no tombstone needed
		}
	}
	t.noteWrite(subj)
	t.writes[subj] = &write{del: true}
}

func (t *tx) touch(gen string) { t.touched[gen] = struct{}{} }

// commit validates and publishes. A transaction that wrote nothing only validates its reads.
func (t *tx) commit() error {
	if !t.writable || len(t.writes) == 0 {
		err := t.validate()
		if err == nil && t.writable && t.s.cache != nil {
			t.markLanded(nil)
		}
		return err
	}
	for gen := range t.touched {
		t.writes[t.s.subj('v', gen, "")] = &write{val: []byte{}}
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
	// The watch feed hands a transaction over when its last watched message arrives: the
	// server's count of what is pending behind a message is an estimate that can stay above
	// zero (watcher.handle).
	for i := len(msgs) - 1; i >= 0; i-- {
		if watched(subjs[i][len(t.s.o.Prefix)+1]) {
			msgs[i].Header.Set(hdrTxEnd, "1")
			break
		}
	}
	// A feed of the watched roots alone may not take that message (it is in another root),
	// and then grouped the transaction by that estimate: each message it takes says whether
	// more of the transaction's follow.
	last := -1
	for i, subj := range subjs {
		if t.feeds(subj) {
			msgs[i].Header.Set(hdrFed, fedMore)
			last = i
		}
	}
	if last >= 0 {
		msgs[last].Header.Set(hdrFed, fedEnd)
	}
	// What was read and not written must be found unchanged. A write that expects nothing
	// itself (a bucket's version, a key written blind) carries one such check, naming the
	// read subject; the server checks that subject instead of the write's own, which had
	// nothing to check. Only what is left over costs a read marker of its own: a group
	// commit's versions alone carry most of its checks, and each message saved is about
	// two thirds of a durable publish of the cluster's CPU.
	var carriers []*nats.Msg
	for i, subj := range subjs {
		if _, read := t.reads[subj]; !read && !t.writes[subj].del {
			carriers = append(carriers, msgs[i])
		}
	}
	for _, subj := range slices.Sorted(mapKeys(t.reads)) {
		if _, written := t.writes[subj]; written {
			continue
		}
		var m *nats.Msg
		if len(carriers) > 0 {
			m, carriers = carriers[0], carriers[1:]
		} else {
			m = nats.NewMsg(t.s.readMarkerSubj())
			msgs = append(msgs, m)
		}
		m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(t.seen[subj].seq, 10))
		m.Header.Set(hdrExpectSubj, subj)
	}
	ack, err := t.s.publishBatch(t.ctx, msgs)
	if err != nil {
		if t.s.cache != nil {
			t.s.cache.drop(t.fromCache...)
			t.s.cache.drop(subjs...) // a lost answer leaves their sequences unknown
		}
		return err
	}
	t.s.messages.Add(int64(len(msgs)))
	t.s.saw(ack.Sequence)
	if ack.Sequence != 0 {
		// Writes are sent in subjs' order, read markers after them.
		t.s.noteCommit(ack.Sequence+1-uint64(len(msgs)), subjs)
	}
	if t.s.cache != nil {
		// A batch is stored in order under consecutive sequences ending at the ack's.
		first := ack.Sequence + 1 - uint64(len(msgs))
		// vers: each bucket's version as this commit left it (it rewrote every bucket it
		// wrote in). A key written here is current at that version (entry.ver, scanState).
		vers := map[string]uint64{}
		if ack.Sequence != 0 {
			for i, subj := range subjs {
				if kind, gen := t.s.parse(subj); kind == 'v' {
					vers[gen] = first + uint64(i)
				}
			}
		}
		for i, subj := range subjs {
			if ack.Sequence == 0 || !t.s.cacheable(subj) {
				t.s.cache.drop(subj)
				continue
			}
			w := t.writes[subj]
			e := entry{seq: first + uint64(i), val: w.val, present: !w.del}
			if kind, gen := t.s.parse(subj); kind == 'k' {
				e.ver = vers[gen]
			}
			t.s.cache.put(subj, e)
		}
		if ack.Sequence != 0 {
			t.markLanded(vers)
		}
	}
	for _, gen := range t.dead {
		t.s.purge(t.ctx, gen)
	}
	return nil
}

// Size is the messages commit would send now (kv.Sizer), and the most one commit may send:
// every write, the version of each bucket written in, and each read-and-not-written key's
// check beyond what the blind writes carry (commit). TestSizeIsWhatTheCommitSends holds the
// two together.
func (t *tx) Size() (n, bound int) {
	if !t.writable || len(t.writes) == 0 {
		return 0, maxBatch
	}
	n = len(t.writes)
	carriers := 0
	for subj, w := range t.writes {
		if _, read := t.reads[subj]; !read && !w.del {
			carriers++
		}
	}
	for gen := range t.touched {
		v := t.s.subj('v', gen, "")
		n++
		if _, read := t.reads[v]; !read {
			carriers++
		}
	}
	for subj := range t.reads {
		if _, written := t.writes[subj]; written {
			continue
		}
		if kind, gen := t.s.parse(subj); kind == 'v' {
			if _, touched := t.touched[gen]; touched {
				continue // rewritten at commit, with its own check
			}
		}
		if carriers > 0 {
			carriers--
		} else {
			n++
		}
	}
	return n, maxBatch
}

// markLanded marks in the cache what cursors read in a bucket whose version the transaction
// validated (read, and found or expected unchanged) or rewrote (vers: its sequence now) as
// current at that version (entry.ver, scanState).
func (t *tx) markLanded(vers map[string]uint64) {
	for gen, landed := range t.landed {
		v, ok := vers[gen]
		if vs := t.s.subj('v', gen, ""); !ok {
			if _, read := t.reads[vs]; !read {
				continue
			}
			v = t.seen[vs].seq
		}
		for _, subj := range landed {
			if _, written := t.writes[subj]; written || !t.s.cacheable(subj) {
				continue
			}
			e := t.seen[subj]
			e.ver = v
			t.s.cache.put(subj, e)
		}
	}
}

// validate reads again every subject the transaction depends on and fails with a conflict if
// one moved. Each was unchanged from its first read to its second, and every first read came
// before every second, so all held together at the moment between: one consistent state.
func (t *tx) validate() error {
	if len(t.reads) <= 1 && !t.scanned && len(t.fromCache) == 0 && !t.fromReplica {
		return nil // one read of the leader is one state: nothing to hold together
	}
	for subj := range t.reads {
		e, err := t.s.fetch(t.ctx, subj)
		if err != nil {
			return err
		}
		if e.seq != t.seen[subj].seq {
			if t.s.cache != nil {
				t.s.cache.drop(t.fromCache...)
			}
			return fmt.Errorf("jskv: %w: %s moved from %d to %w", kv.ErrConflict, subj, t.seen[subj].seq, movedTo(e.seq))
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

// Tx: the root is a bucket of generation 0 that holds only buckets.

const rootGen = "0"

func (t *tx) Writable() bool { return t.writable }

func (t *tx) root() *bucket { return &bucket{t: t, gen: rootGen} }

func (t *tx) Bucket(name []byte) kv.Bucket { return t.root().Bucket(name) }

func (t *tx) CreateBucket(name []byte) (kv.Bucket, error) { return t.root().CreateBucket(name) }

func (t *tx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	return t.root().CreateBucketIfNotExists(name)
}

func (t *tx) DeleteBucket(name []byte) error { return t.root().DeleteBucket(name) }

func (t *tx) ForEachBucket(fn func(name []byte) error) error { return t.root().ForEachBucket(fn) }

// bucket is a handle on one generation of a bucket; it holds no state of its own.
type bucket struct {
	t   *tx
	gen string
	// watched: a root named in Options.WatchRoots, whose nested buckets take generations
	// under its own.
	watched bool
}

// nested is the handle of the bucket named name in b, of generation gen.
func (b *bucket) nested(name []byte, gen string) *bucket {
	nb := &bucket{t: b.t, gen: gen, watched: b.gen == rootGen && b.t.s.watchRoot(name)}
	t := b.t
	switch {
	case nb.watched:
		if t.fedRoots == nil {
			t.fedRoots = map[string]bool{}
		}
		t.fedRoots[gen] = true
	case b.watched:
		if t.fed == nil {
			t.fed = map[string]bool{}
		}
		t.fed[gen] = true
	}
	return nb
}

// feeds reports whether subj is what a feed of Options.WatchRoots takes: a marker of a
// bucket in one, or a key or sequence of such a bucket.
func (t *tx) feeds(subj string) bool {
	if t.fedRoots == nil {
		return false
	}
	switch kind, gen := t.s.parse(subj); kind {
	case 'b':
		return t.fedRoots[gen]
	case 'k', 's':
		return t.fed[gen]
	}
	return false
}

func (b *bucket) keySubj(key []byte) string { return b.t.s.subj('k', b.gen, tok(key)) }

func (b *bucket) markerSubj(name []byte) string { return b.t.s.subj('b', b.gen, tok(name)) }

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

// GuessAbsent implements kv.AbsentGuesser: the next read of key, if nothing better is known
// by then, is answered absent without a round trip and validated at commit like any read. Only
// an Update's first run guesses: a run again after a conflict, or one that must read past a
// floor, reads.
func (b *bucket) GuessAbsent(key []byte) {
	t := b.t
	if len(key) == 0 || !t.writable || t.rerun || t.floor != 0 || t.whole != nil || t.err != nil || b.gen == "-" {
		return
	}
	subj := b.keySubj(key)
	if _, read := t.seen[subj]; read {
		return
	}
	if _, fetched := t.pre[subj]; fetched {
		return
	}
	if t.guesses == nil {
		t.guesses = map[string]struct{}{}
	}
	t.guesses[subj] = struct{}{}
}

func (b *bucket) Put(key, value []byte) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	if len(key) == 0 {
		return kv.ErrKeyRequired
	}
	b.t.put(b.keySubj(key), value)
	b.t.touch(b.gen)
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
	b.t.touch(b.gen)
	return nil
}

// list is the committed subjects matching filter, listed from the stream once per
// transaction (tx.listed).
func (t *tx) list(filter string) ([]string, error) {
	if subjs, ok := t.listed[filter]; ok {
		return subjs, nil
	}
	list := t.s.list
	if t.whole != nil {
		list = func(_ context.Context, filter string) ([]string, error) { return t.whole.list(filter) }
	}
	subjs, err := list(t.ctx, filter)
	if err != nil {
		return nil, err
	}
	if t.listed == nil {
		t.listed = map[string][]string{}
	}
	t.listed[filter] = subjs
	return subjs, nil
}

// names lists the last tokens of the subjects P.<kind>.<gen>.* (committed and this
// transaction's), decoded and sorted, with each one's subject. Reading the bucket's version
// first makes any change to the listing after it a conflict.
func (b *bucket) names(kind byte) (names [][]byte, subjs map[string]string) {
	b.t.scanned = true
	ver := b.t.s.subj('v', b.gen, "")
	prefix := b.t.s.subj(kind, b.gen, "") + "."
	_, born := b.t.born[b.gen] // a bucket made here has only what it wrote
	committed, listed := []string(nil), false
	if !born && kind == 'k' {
		committed, listed = b.t.listReplica(ver, b.gen, prefix+"*")
	}
	if !listed {
		b.t.state(ver, true)
		if b.t.err != nil {
			return nil, nil
		}
		b.t.afterVersion(b.gen)
		if !born {
			var err error
			if committed, err = b.t.list(prefix + "*"); err != nil {
				b.t.err = err
				return nil, nil
			}
		}
	}
	return b.t.decodeNames(prefix, committed)
}

// listing is one bucket's names as names returns them, shared by every scan of the bucket in
// a transaction until a write under it adds one; nobody changes them.
type listing struct {
	committed []string // the committed subjects it was made from
	writes    int      // how many of the transaction's writes under the prefix it holds
	names     [][]byte
	subjs     map[string]string
}

// decodeNames decodes and sorts the names under prefix: the committed subjects and this
// transaction's writes, each once. It decodes a listing once and then only the writes made
// since.
func (t *tx) decodeNames(prefix string, committed []string) ([][]byte, map[string]string) {
	written := t.under[prefix]
	l := t.named[prefix]
	if l != nil && !sameList(l.committed, committed) {
		l = nil
	}
	if l != nil && l.writes == len(written) {
		return l.names, l.subjs
	}
	next := &listing{committed: committed, writes: len(written), subjs: map[string]string{}}
	rest := written
	if l != nil {
		next.names = append(make([][]byte, 0, len(l.names)+len(written)-l.writes), l.names...)
		for k, v := range l.subjs {
			next.subjs[k] = v
		}
		rest = written[l.writes:]
	} else {
		for _, subj := range committed {
			next.add(prefix, subj)
		}
	}
	for _, subj := range rest {
		next.add(prefix, subj)
	}
	sortKeys(next.names)
	if t.named == nil {
		t.named = map[string]*listing{}
	}
	t.named[prefix] = next
	return next.names, next.subjs
}

// add adds subj's name if subj is a key right under prefix and not there yet.
func (l *listing) add(prefix, subj string) {
	rest, ok := strings.CutPrefix(subj, prefix)
	if !ok || strings.Contains(rest, ".") {
		return
	}
	name, err := untok(rest)
	if err != nil || len(name) == 0 {
		return // not one of ours
	}
	if _, dup := l.subjs[string(name)]; !dup {
		l.subjs[string(name)] = subj
		l.names = append(l.names, name)
	}
}

// sameList says whether a and b are the same listing (one slice, not equal contents).
func sameList(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (b *bucket) Cursor() kv.Cursor { return &cursor{b: b, i: -1, hi: -1} }

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

// Bucket finds a nested bucket by its marker. A marker seen present is not validated (by
// Update's commit or View's second reads): every transaction looks up its buckets, and
// validating them would make every two concurrent commits of one bucket collide, as the
// server refuses a second in-flight expectation on one subject. If the bucket is deleted
// meanwhile, this transaction's writes land in a generation nobody reads any more, as if it
// had committed just before the delete; keys it read there vanish with the purge that follows
// the delete, which makes its reads conflict if the purge came between read and commit. A
// marker seen absent is validated like any read: deciding on "there is none" while one is
// being made is a real conflict.
func (b *bucket) Bucket(name []byte) kv.Bucket {
	if len(name) == 0 {
		return nil
	}
	m := b.markerSubj(name)
	gen, present := b.t.state(m, false)
	switch {
	case b.t.err != nil:
		// After a failed read the answer is unknown: a handle whose reads find nothing
		// keeps code that knows the bucket exists from tripping on a nil, and the
		// transaction returns the read's error whatever it does.
		return &bucket{t: b.t, gen: "-"}
	case !present:
		if _, mine := b.t.writes[m]; !mine {
			b.t.reads[m] = struct{}{}
		}
		return nil
	}
	if b.watched && !underRoot(string(gen), b.gen) {
		// A bucket of a generation of its own, which MoveUnderRoots may move under its root
		// meanwhile: its marker is validated like any read, so a transaction that took the
		// old generation (from the cache, or a replica behind) runs again rather than write
		// where nobody reads. Buckets under their root never move, and cost nothing here.
		if _, mine := b.t.writes[m]; !mine && !b.t.bornSubj(m) {
			b.t.reads[m] = struct{}{}
		}
	}
	return b.nested(name, string(gen))
}

func (b *bucket) CreateBucket(name []byte) (kv.Bucket, error) {
	if err := b.t.canWrite(); err != nil {
		return nil, err
	}
	if len(name) == 0 {
		return nil, kv.ErrNameRequired
	}
	m := b.markerSubj(name)
	if _, present := b.t.state(m, true); present {
		return nil, fmt.Errorf("jskv: %q: %w", name, kv.ErrBucketExists)
	}
	if b.t.err != nil {
		return nil, b.t.err
	}
	gen := nuid.Next()
	if b.watched {
		gen = b.gen + "." + gen
	}
	if b.t.born == nil {
		b.t.born = map[string]struct{}{}
	}
	b.t.born[gen] = struct{}{}
	b.t.put(m, []byte(gen))
	b.t.touch(b.gen)
	return b.nested(name, gen), nil
}

func (b *bucket) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	if err := b.t.canWrite(); err != nil {
		return nil, err
	}
	if nb := b.Bucket(name); nb != nil {
		return nb, b.t.err
	}
	if b.t.err != nil {
		return nil, b.t.err
	}
	return b.CreateBucket(name)
}

// DeleteBucket tombstones the bucket's marker: one message however much it holds. Its
// generation, with everything under it and its nested buckets', is purged after the commit.
func (b *bucket) DeleteBucket(name []byte) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	if len(name) == 0 {
		return kv.ErrNameRequired
	}
	m := b.markerSubj(name)
	gen, present := b.t.state(m, true)
	if !present {
		if b.t.err != nil {
			return b.t.err
		}
		return fmt.Errorf("jskv: %q: %w", name, kv.ErrBucketNotFound)
	}
	b.t.del(m)
	b.t.touch(b.gen)
	b.t.dead = append(b.t.dead, string(gen))
	return nil
}

func (b *bucket) ForEachBucket(fn func(name []byte) error) error {
	names, subjs := b.names('b')
	for _, n := range names {
		// Read as a cursor reads values (scanState): the listing rests on the bucket's
		// version, so a marker must be no older than it. The cache (an absence an earlier
		// lookup kept) or a replica could show one older, and the bucket would be skipped.
		if _, present := b.t.scanState(subjs[string(n)], b.gen); !present {
			continue
		}
		if err := fn(n); err != nil {
			return err
		}
	}
	return b.t.err
}

func (b *bucket) Sequence() uint64 {
	v, _ := b.t.state(b.t.s.subj('s', b.gen, ""), true)
	return u64(v)
}

func (b *bucket) SetSequence(v uint64) error {
	if err := b.t.canWrite(); err != nil {
		return err
	}
	b.t.put(b.t.s.subj('s', b.gen, ""), binary.BigEndian.AppendUint64(nil, v))
	b.t.touch(b.gen)
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
	// ahead is the range of keys [lo, hi] whose values were fetched together (readAhead).
	lo, hi int
}

func (c *cursor) load() {
	if !c.loaded {
		c.keys, c.subjs = c.b.names('k')
		c.loaded = true
	}
}

// land moves to the first present key from i in direction dir. Finding none leaves the
// cursor past the end it was heading for, so the opposite step finds the key at that end
// (kv.Cursor's rule).
//
// A key found deleted makes it read the next keys' values together (readAhead): a listing
// holds the deleted keys until their tombstones expire, and a bucket used as a queue (records
// due, drained from the front) has many before its first live key, which one round trip each
// made a drain's cost grow with every record drained in the last hour.
func (c *cursor) land(i, dir int) ([]byte, []byte) {
	for ; i >= 0 && i < len(c.keys); i += dir {
		if v, present := c.b.t.scanState(c.subjs[string(c.keys[i])], c.b.gen); present {
			c.i = i
			return c.keys[i], v
		}
		if c.b.t.err != nil {
			break
		}
		c.readAhead(i+dir, dir)
	}
	c.i = max(-1, min(i, len(c.keys)))
	return nil, nil
}

func (c *cursor) First() ([]byte, []byte) { c.load(); return c.land(0, 1) }
func (c *cursor) Last() ([]byte, []byte)  { c.load(); return c.land(len(c.keys)-1, -1) }
func (c *cursor) Next() ([]byte, []byte)  { c.load(); c.readAhead(c.i+1, 1); return c.land(c.i+1, 1) }
func (c *cursor) Prev() ([]byte, []byte)  { c.load(); c.readAhead(c.i-1, -1); return c.land(c.i-1, -1) }

// cursorAhead is how many keys a cursor stepping through a bucket fetches together ahead of
// where it is.
const cursorAhead = 64

// readAhead fetches together the values of the next cursorAhead keys from i in direction dir,
// unless i is in the range fetched last. Only a cursor that steps does so: one that lands on
// one key (First, Last, Seek: the relay's "newest item", "first log number") reads that key
// alone, and one that walks (ForEach over a facility's route list, a terminal's downlink)
// reads its keys a window at a time instead of a round trip each. The values are read, and
// validated, by the bucket's version as before (prefetch.go).
func (c *cursor) readAhead(i, dir int) {
	if i < 0 || i >= len(c.keys) || (i >= c.lo && i <= c.hi) {
		return
	}
	subjs := make([]string, 0, min(cursorAhead, len(c.keys)))
	j := i
	for n := 0; j >= 0 && j < len(c.keys) && n < cursorAhead; j, n = j+dir, n+1 {
		subj := c.subjs[string(c.keys[j])]
		if _, ok := c.b.t.cachedCurrent(subj, c.b.gen); !ok {
			subjs = append(subjs, subj)
		}
	}
	c.lo, c.hi = min(i, j-dir), max(i, j-dir)
	c.b.t.loadScan(subjs, c.b.gen) // not from the cache (scanState)
}

func (c *cursor) Seek(seek []byte) ([]byte, []byte) {
	c.load()
	i := sort.Search(len(c.keys), func(i int) bool { return string(c.keys[i]) >= string(seek) })
	return c.land(i, 1)
}
