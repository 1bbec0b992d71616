package jskv

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// The watch feed (kv.Watcher): one push consumer per Watch, ephemeral and in memory, that the
// server delivers the watched roots' nested bucket markers, and their keys and sequences, to,
// from the stream's end when the feed (re)starts. The consumer acknowledges nothing (AckNone);
// order and completeness are checked here instead of by nats.go's ordered consumer, because
// that one restarts itself after a gap and would hide it: on this stream a restart cannot
// replay what it missed (each subject keeps its last message only), so a gap is reported as
// Lost.
//
// What the consumer takes (followSet): a bucket made in a root of Options.WatchRoots has a
// generation under the root's, so its keys are P.k.<root gen>.<id>.<key> and three filters a
// root take them and nothing else; a bucket of a generation of its own (made before, or by a
// store opened without the option) takes two filters more, and past maxOwnGenFilters of them
// the consumer takes every marker, key and sequence message of the stream, as it did before
// (a relay's status report, which writes nothing under the downlink roots, was then delivered
// to every gateway and thrown away). When a bucket of its own appears, or the last of them
// goes, the consumer is made again from the next message with the filters that fit
// (refollowLocked): nothing is missed.
//
// Keys live under generations, not names, so the feed keeps each watched root's nested
// buckets by generation: listed once when it starts, then followed through their marker
// messages. A transaction's messages are stored together under consecutive stream sequences
// (an atomic batch), each carrying its Tk-Tx: they are handed to fn as one Changes when the
// transaction's last watched message (Tk-Tx-End) arrives, when the next message belongs to
// another transaction, when nothing more is pending, or at an idle heartbeat.

var _ kv.Watcher = (*Store)(nil)

// maxOwnGenFilters bounds the filters a feed's consumer takes for nested buckets of a
// generation of their own (two each); past it the consumer takes the whole stream's markers,
// keys and sequences, as before WatchRoots. A relay stream written before it has one such
// bucket a terminal and a facility, until MoveUnderRoots moves them.
const maxOwnGenFilters = 256

// followSet is what a feed's consumer takes. It is not changed once made: a commit reads the
// feed's current one without a lock (noteCommit).
type followSet struct {
	wide  bool            // every marker, key and sequence message of the stream
	roots map[string]bool // the watched roots' generations
	own   map[string]bool // nested buckets' generations not under their root's
}

// filters is the consumer's FilterSubjects for f (they must not overlap).
func (f *followSet) filters(prefix string) []string {
	if f.wide {
		return []string{prefix + ".b.>", prefix + ".k.>", prefix + ".s.>"}
	}
	var out []string
	for rg := range f.roots {
		out = append(out, prefix+".b."+rg+".*", prefix+".k."+rg+".*.*", prefix+".s."+rg+".*")
	}
	for g := range f.own {
		out = append(out, prefix+".k."+g+".*", prefix+".s."+g)
	}
	slices.Sort(out)
	return out
}

// follows reports whether the consumer takes subj: what filters match, token by token, for
// any subject (FuzzFollowsMatchesFilters), without splitting it (a commit asks it of each of
// its messages).
func (f *followSet) follows(prefix, subj string) bool {
	if len(subj) < len(prefix)+4 || subj[:len(prefix)] != prefix || subj[len(prefix)] != '.' {
		return false
	}
	rest := subj[len(prefix)+1:]
	if rest[1] != '.' || !watched(rest[0]) {
		return false
	}
	kind, rest := rest[0], rest[2:]
	if f.wide {
		return true
	}
	// root: P.b.<root gen>.*, P.k.<root gen>.*.*, P.s.<root gen>.*
	first, after, _ := strings.Cut(rest, ".")
	tokens := 1 + strings.Count(rest, ".")
	if f.roots[first] {
		switch {
		case kind == 'b' && tokens == 2, kind == 'k' && tokens == 3, kind == 's' && tokens == 2:
			return after != ""
		}
	}
	// own: P.k.<gen>.*, P.s.<gen>
	switch kind {
	case 'k':
		i := strings.LastIndexByte(rest, '.')
		return i > 0 && f.own[rest[:i]]
	case 's':
		return f.own[rest]
	}
	return false
}

// noteCommit tells each feed of a commit whose messages subjs are stored from stream
// sequence first: a feed waits for the last of them it takes.
func (s *Store) noteCommit(first uint64, subjs []string) {
	feeds := s.feeds.Load()
	if feeds == nil {
		return
	}
	for _, w := range *feeds {
		f := w.follow.Load()
		if f == nil {
			continue
		}
		for i := len(subjs) - 1; i >= 0; i-- {
			if f.follows(s.o.Prefix, subjs[i]) {
				w.committedAt(first + uint64(i))
				break
			}
		}
	}
}

// addFeed and dropFeed keep s.feeds.
func (s *Store) addFeed(w *watcher) {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	var next []*watcher
	if cur := s.feeds.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, w)
	s.feeds.Store(&next)
}

func (s *Store) dropFeed(w *watcher) {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	cur := s.feeds.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x *watcher) bool { return x == w })
	s.feeds.Store(&next)
}

// committedAt records that this store committed a batch whose last message the feed takes is
// at stream sequence seq.
func (w *watcher) committedAt(seq uint64) {
	for {
		cur := w.lastCommit.Load()
		if seq <= cur || w.lastCommit.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// watched reports whether a subject's kind is one the feed follows.
func watched(kind byte) bool { return kind == 'b' || kind == 'k' || kind == 's' }

// nestedBucket is a watched root's nested bucket, as the feed knows it by generation: rg is
// the root's generation.
type nestedBucket struct {
	root, name []byte
	rg         string
}

type watcher struct {
	s     *Store
	roots [][]byte
	fn    func(kv.Changes)
	done  chan struct{}
	// follow is what the current consumer takes; lastCommit the stream sequence of this
	// store's last commit that it takes: a feed that has not delivered it within a few
	// heartbeats is stale (staleLocked).
	follow     atomic.Pointer[followSet]
	lastCommit atomic.Uint64

	mu      sync.Mutex
	stopped bool
	// run numbers the consumers: a message of one that was replaced is dropped.
	run      int
	sub      *nats.Subscription
	consumer string
	from     uint64                  // the stream sequence the current consumer started at
	rootGens map[string][]byte       // root generation -> root name
	gens     map[string]nestedBucket // nested generation -> where it is
	byName   map[string]string       // root generation + "." + name token -> nested generation
	// lastCons and lastStream: the consumer and stream sequences of the last message delivered.
	lastCons, lastStream uint64
	heard                time.Time // the last message or heartbeat
	behind               time.Time // since when one of this store's commits waits for the feed
	// waitFor is that commit's stream sequence; moved is when the feed last delivered while
	// it waited, and movedTo the stream sequence it had then delivered (staleLocked).
	waitFor, movedTo uint64
	moved            time.Time
	group            []kv.Change
	groupTx          string
	// ownN counts gens not under their root's; refollow asks for a new consumer after the
	// message being applied (apply).
	ownN     int
	refollow bool
	// groupMore: a message of the group's transaction said more of it follows (hdrFed).
	groupMore bool
}

// Watch starts the feed of the buckets nested in roots (kv.Watcher). A root that does not
// exist when the feed starts is not followed.
func (s *Store) Watch(roots [][]byte, fn func(kv.Changes)) (func(), error) {
	w := &watcher{s: s, fn: fn, done: make(chan struct{})}
	for _, r := range roots {
		w.roots = append(w.roots, bytes.Clone(r))
	}
	s.addFeed(w)
	if err := w.start(); err != nil {
		s.dropFeed(w)
		return nil, err
	}
	go w.watchdog()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.dropFeed(w)
			close(w.done)
			w.mu.Lock()
			w.stopped = true
			w.dropConsumerLocked()
			w.mu.Unlock()
		})
	}, nil
}

// start lists the watched roots' nested buckets and starts a consumer after the stream's last
// message: what committed before is in what a reader reads from the store.
func (w *watcher) start() error {
	s := w.s
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.o.OpTimeout)
	defer cancel()
	info, err := s.st.Info(ctx)
	if err != nil {
		return s.unanswered(ctx, fmt.Errorf("jskv: watch: stream info: %w", err))
	}
	from := info.State.LastSeq + 1
	rootGens, gens, byName := map[string][]byte{}, map[string]nestedBucket{}, map[string]string{}
	for _, root := range w.roots {
		e, err := s.fetch(ctx, s.subj('b', rootGen, tok(root)))
		if err != nil {
			return fmt.Errorf("jskv: watch %q: %w", root, err)
		}
		if !e.present {
			continue
		}
		rg := string(e.val)
		rootGens[rg] = root
		subjs, err := s.list(ctx, s.subj('b', rg, "*"))
		if err != nil {
			return fmt.Errorf("jskv: watch %q: %w", root, err)
		}
		found, err := s.fetchAll(ctx, subjs)
		if err != nil {
			return fmt.Errorf("jskv: watch %q: %w", root, err)
		}
		for i, subj := range subjs {
			if !found[i].present {
				continue
			}
			token := subj[strings.LastIndexByte(subj, '.')+1:]
			name, err := untok(token)
			if err != nil {
				continue // not a subject the store wrote
			}
			gen := string(found[i].val)
			gens[gen] = nestedBucket{root: root, name: name, rg: rg}
			byName[rg+"."+token] = gen
		}
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.run++
	run := w.run
	w.rootGens, w.gens, w.byName = rootGens, gens, byName
	w.ownN = 0
	for gen, nb := range gens {
		if !underRoot(gen, nb.rg) {
			w.ownN++
		}
	}
	w.from, w.lastCons, w.lastStream = from, 0, from-1
	w.heard, w.behind = time.Now(), time.Time{}
	w.group, w.groupTx, w.groupMore = nil, "", false
	f := w.followSetLocked()
	w.follow.Store(f)
	why := f.why(w.ownN)
	w.mu.Unlock()
	if f.wide {
		w.s.logf("jskv: watch feed takes every key of the stream: %s", why)
	}
	return w.subscribe(run, from, f)
}

// why says what a consumer takes beyond its roots' buckets, for the log.
func (f *followSet) why(ownN int) string {
	if f.wide {
		return fmt.Sprintf("%d buckets in its roots have a generation of their own (made before Options.WatchRoots, or by a gateway of an older build), more than the %d it filters one by one", ownN, maxOwnGenFilters)
	}
	return fmt.Sprintf("its roots' buckets and %d of a generation of their own (made before Options.WatchRoots, or by a gateway of an older build)", len(f.own))
}

// followSetLocked is what the consumer is to take, as the feed now knows the watched roots.
func (w *watcher) followSetLocked() *followSet {
	f := &followSet{roots: map[string]bool{}, own: map[string]bool{}}
	if w.ownN > maxOwnGenFilters {
		f.wide = true
		return f
	}
	for rg := range w.rootGens {
		f.roots[rg] = true
	}
	for gen, nb := range w.gens {
		if !underRoot(gen, nb.rg) {
			f.own[gen] = true
		}
	}
	return f
}

// subscribe makes consumer run's subscription and consumer, taking f from stream sequence from.
func (w *watcher) subscribe(run int, from uint64, f *followSet) error {
	s := w.s
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.o.OpTimeout)
	defer cancel()
	inbox := s.nc.NewInbox()
	sub, err := s.nc.Subscribe(inbox, func(m *nats.Msg) { w.handle(run, m) })
	if err != nil {
		return fmt.Errorf("jskv: watch: %w", classify(err))
	}
	cons, err := s.js.CreatePushConsumer(ctx, s.o.Stream, jetstream.ConsumerConfig{
		DeliverSubject: inbox,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		AckPolicy:      jetstream.AckNonePolicy,
		FilterSubjects: f.filters(s.o.Prefix),
		FlowControl:    true,
		IdleHeartbeat:  s.o.WatchHeartbeat,
		MemoryStorage:  true,
		Replicas:       1,
		// The server removes a consumer whose gateway went away without deleting it.
		InactiveThreshold: max(30*time.Second, 5*s.o.WatchHeartbeat),
	})
	if err != nil {
		sub.Unsubscribe()
		return s.unanswered(ctx, fmt.Errorf("jskv: watch: create consumer: %w", err))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.run != run {
		sub.Unsubscribe()
		go s.deleteConsumer(cons.CachedInfo().Name)
		return nil
	}
	w.sub, w.consumer = sub, cons.CachedInfo().Name
	w.heard = time.Now()
	return nil
}

// refollowLocked makes the consumer again, with the filters the feed's buckets now need, from
// the message after the last delivered: what the old one would have delivered after it is
// delivered by the new one, and nothing twice (a consumer's messages are dropped once it is
// replaced). What the transaction under way had delivered is handed on first.
func (w *watcher) refollowLocked() {
	w.flushLocked()
	from := w.lastStream + 1
	w.dropConsumerLocked()
	run := w.run
	f := w.followSetLocked()
	w.follow.Store(f)
	w.from, w.lastCons, w.behind = from, 0, time.Time{}
	w.s.feedRefollows.Add(1)
	w.s.logf("jskv: watch feed's consumer made again from stream sequence %d to take %s", from, f.why(w.ownN))
	go func() {
		if err := w.subscribe(run, from, f); err != nil {
			w.mu.Lock()
			defer w.mu.Unlock()
			if !w.stopped && w.run == run {
				w.lostLocked(fmt.Sprintf("its consumer could not be made again for the buckets it follows: %v", err))
			}
		}
	}()
}

// fetchAll reads subjs' states, a few at a time.
func (s *Store) fetchAll(ctx context.Context, subjs []string) ([]entry, error) {
	out := make([]entry, len(subjs))
	errs := make([]error, len(subjs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, subj := range subjs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = s.fetch(ctx, subj)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) deleteConsumer(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.OpTimeout)
	defer cancel()
	s.st.DeleteConsumer(ctx, name) // best effort: InactiveThreshold removes it otherwise
}

// dropConsumerLocked ends the current consumer: its messages still under way are dropped.
func (w *watcher) dropConsumerLocked() {
	w.run++
	if w.sub != nil {
		w.sub.Unsubscribe()
		go w.s.deleteConsumer(w.consumer)
	}
	w.sub, w.consumer = nil, ""
	w.group, w.groupTx, w.groupMore = nil, "", false
}

// lostLocked reports a loss and starts the feed again, from the stream's end (reporting the
// loss again once it runs).
// lostLocked reports the feed lost, for why (logged: Stats.FeedLosses counts losses, and an
// operator seeing it move needs to know which of them it was).
func (w *watcher) lostLocked(why string) {
	w.s.feedLosses.Add(1)
	w.s.logf("jskv: watch feed lost (%s); its watchers read the store again", why)
	w.dropConsumerLocked()
	w.fn(kv.Changes{Lost: true})
	go w.restart()
}

func (w *watcher) restart() {
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
		select {
		case <-w.done:
			return
		case <-time.After(pause):
		}
		if err := w.start(); err == nil {
			// Again once it follows the stream: what committed between the loss and the new
			// consumer's start is in the store, and only a reader told now will read it.
			w.mu.Lock()
			if !w.stopped {
				w.fn(kv.Changes{Lost: true})
			}
			w.mu.Unlock()
			return
		}
	}
}

// watchdog reports the feed lost when staleLocked says so, at every heartbeat.
func (w *watcher) watchdog() {
	t := time.NewTicker(w.s.o.WatchHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if w.sub != nil && !w.stopped {
			if why := w.staleLocked(time.Now()); why != "" {
				w.lostLocked(why)
			}
		}
		w.mu.Unlock()
	}
}

// watchBehindMax is how many heartbeats a commit of this store may wait for a feed that is
// still delivering before the feed is reported lost anyway (fallen too far behind).
const watchBehindMax = 30

// staleLocked says, at a heartbeat's tick at now, whether the feed is to be reported lost: it
// went silent (no message or heartbeat for three heartbeats: the connection or the consumer's
// node is gone), it delivered nothing for three heartbeats while a commit of this store waits
// (a consumer that stopped), or a commit of this store has waited watchBehindMax heartbeats
// (fallen that far behind). A feed that is late but delivering (a gateway short of CPU under
// load, its consumer thousands of messages behind) has missed nothing: reporting it lost sends
// every downlink writer of the gateway to the store and starts the feed again from the
// stream's end, which under load made one gateway read the store 4-9 times as often as the
// other. Before, three heartbeats with some commit of this store waiting were a loss, whether
// the feed delivered meanwhile or not.
func (w *watcher) staleLocked(now time.Time) (why string) {
	hb := w.s.o.WatchHeartbeat
	if now.Sub(w.heard) > 3*hb {
		return fmt.Sprintf("silent for %v: no message or heartbeat", now.Sub(w.heard).Round(time.Millisecond))
	}
	c := w.lastCommit.Load()
	if c < w.from || c <= w.lastStream {
		w.behind = time.Time{}
		return ""
	}
	if w.behind.IsZero() {
		w.behind, w.waitFor, w.moved, w.movedTo = now, c, now, w.lastStream
	}
	if w.lastStream != w.movedTo {
		// It delivered since the last tick.
		w.moved, w.movedTo = now, w.lastStream
		if w.lastStream >= w.waitFor {
			// The commit timed arrived; time the one that waits now.
			w.behind, w.waitFor = now, c
		}
	}
	switch {
	case now.Sub(w.moved) > 3*hb:
		return fmt.Sprintf("delivered nothing for %v while a commit of this gateway at stream sequence %d waited; it had reached %d",
			now.Sub(w.moved).Round(time.Millisecond), c, w.lastStream)
	case now.Sub(w.behind) > watchBehindMax*hb:
		return fmt.Sprintf("%v behind a commit of this gateway: it had reached stream sequence %d, the commit is at %d",
			now.Sub(w.behind).Round(time.Millisecond), w.lastStream, w.waitFor)
	}
	return ""
}

// handle takes one message of consumer run.
func (w *watcher) handle(run int, m *nats.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || run != w.run {
		return
	}
	w.heard = time.Now()
	if m.Header.Get("Status") == "100" {
		// A heartbeat or a flow control request (which has a reply subject to answer).
		if m.Reply != "" {
			m.Respond(nil)
		}
		if st := m.Header.Get("Nats-Consumer-Stalled"); st != "" {
			w.s.nc.Publish(st, nil)
		}
		if v := m.Header.Get("Nats-Last-Consumer"); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			switch {
			case err != nil:
			case n != w.lastCons:
				w.lostLocked(fmt.Sprintf("the server sent %d messages, %d arrived", n, w.lastCons)) // some never arrived
			default:
				// Idle, and everything it sent arrived: what is held is all there is of its
				// transaction for now (a message the store wrote before Tk-Tx-End existed).
				w.flushLocked()
			}
		}
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	if meta.Sequence.Consumer != w.lastCons+1 {
		w.lostLocked(fmt.Sprintf("message %d of the consumer arrived after %d", meta.Sequence.Consumer, w.lastCons))
		return
	}
	w.lastCons, w.lastStream = meta.Sequence.Consumer, meta.Sequence.Stream
	if tx := m.Header.Get(hdrTx); tx != w.groupTx {
		w.flushLocked()
		w.groupTx = tx
	}
	w.apply(m)
	if w.refollow {
		w.refollow = false
		w.refollowLocked()
		return
	}
	// Its transaction's last message, or the last the server holds. NumPending alone is not
	// enough: it is the consumer's running estimate, which a message removed while the
	// consumer passed it (each subject keeps its last message, so every commit removes some)
	// can leave above zero for good, and then a transaction was held until the next commit:
	// a gateway's terminals did not hear of another gateway's last commit. Nor can it be
	// trusted to wait: it was zero between two messages of one transaction now and then, and
	// the transaction reached the watcher as two Changes. A transaction in the watched roots
	// says which of its messages is the last there (hdrFed): until that one, the estimate is
	// not asked; a last one that never comes (another commit overwrote it first) is followed
	// by the next transaction's message or an idle heartbeat, which hand the group over.
	switch fed := m.Header.Get(hdrFed); {
	case fed == fedEnd:
		w.flushLocked()
	case fed == fedMore:
		w.groupMore = true
	case !w.groupMore && (m.Header.Get(hdrTxEnd) != "" || meta.NumPending == 0):
		w.flushLocked()
	}
}

func (w *watcher) flushLocked() {
	if len(w.group) > 0 {
		w.fn(kv.Changes{List: w.group})
	}
	w.group, w.groupMore = nil, false
}

// apply adds what message m says to the transaction's changes.
func (w *watcher) apply(m *nats.Msg) {
	kind, gen, token := w.s.split(m.Subject)
	del := m.Header.Get(hdrOp) == "DEL"
	switch {
	case kind == 'b' && token != "":
		root, ok := w.rootGens[gen]
		if !ok {
			return
		}
		name, err := untok(token)
		if err != nil {
			return
		}
		key := gen + "." + token
		old, had := w.byName[key]
		if had {
			w.forgetLocked(old)
			delete(w.byName, key)
		}
		if del {
			if had {
				w.group = append(w.group, kv.Change{Root: bytes.Clone(root), Bucket: name, BucketDeleted: true})
			}
			return
		}
		nb := string(m.Data)
		w.gens[nb] = nestedBucket{root: root, name: name, rg: gen}
		w.byName[key] = nb
		if !underRoot(nb, gen) {
			w.ownN++
			// A bucket of a generation of its own (a store of an older build made it): the
			// consumer takes it from its next message on, or takes everything again.
			if f := w.follow.Load(); f != nil && !f.wide {
				w.refollow = true
			}
		}
	case kind == 'k' && token != "":
		nb, ok := w.gens[gen]
		if !ok {
			return
		}
		key, err := untok(token)
		if err != nil {
			return
		}
		c := kv.Change{Root: bytes.Clone(nb.root), Bucket: bytes.Clone(nb.name), Key: key, Deleted: del}
		if !del {
			c.Value = append([]byte{}, m.Data...)
		}
		w.group = append(w.group, c)
	case kind == 's' && token == "":
		nb, ok := w.gens[gen]
		if !ok || del {
			return
		}
		w.group = append(w.group, kv.Change{Root: bytes.Clone(nb.root), Bucket: bytes.Clone(nb.name), Sequence: u64(m.Data)})
	}
}

// forgetLocked drops nested generation gen, deleted or replaced. The last of the generations
// of their own gone while the consumer takes everything, it takes the roots' filters again.
func (w *watcher) forgetLocked(gen string) {
	nb, ok := w.gens[gen]
	if !ok {
		return
	}
	delete(w.gens, gen)
	if underRoot(gen, nb.rg) {
		return
	}
	w.ownN--
	if f := w.follow.Load(); f != nil && f.wide && w.ownN <= maxOwnGenFilters {
		w.refollow = true
	}
}
