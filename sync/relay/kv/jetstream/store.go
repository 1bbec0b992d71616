// Package jskv is the kv interface over a NATS JetStream stream: the relay's store when several
// stateless gateways share one replicated cluster (issue 16, docs/SCALE.md "The kv layer").
//
// One stream holds everything, one subject per key, keeping only each subject's last message
// (MaxMsgsPerSubject 1). Transactions are optimistic: reads fetch the last message of a subject
// from the stream leader and remember its stream sequence; a commit publishes every write as one
// JetStream atomic batch (nats-server 2.12+), each written key that was read carrying
// Nats-Expected-Last-Subject-Sequence, and each key read but not written validated by a marker
// message whose Nats-Expected-Last-Subject-Sequence-Subject names it. The server stores all of
// the batch or none of it, so a transaction commits only if nothing it read changed since: the
// store is serializable, not just snapshot-isolated. A commit that loses that race fails with
// kv.ErrConflict and Update runs the transaction again.
//
// Every bucket has a generation, a random id given when it is made; its keys live under the
// generation, not its name, so deleting a bucket is one tombstone (and a purge afterwards), and
// a bucket made again under the same name starts empty. Subjects, under a prefix P (default
// "tk"), with names and keys in unpadded base64url so that any bytes fit a subject token, and
// 0 the generation of the root:
//
//	P.b.<parent gen>.<name>  the bucket exists: its value is its generation (a tombstone once
//	                         deleted)
//	P.k.<gen>.<key>          a key's value; a deletion is a tombstone (KV-Operation: DEL) that
//	                         expires after Options.TombstoneTTL
//	P.s.<gen>                the bucket's sequence, 8 bytes big-endian
//	P.v.<gen>                the bucket's version: rewritten by every transaction that writes in
//	                         the bucket (keys or nested buckets), read by every cursor over it
//	P.r                      read-validation markers (only the last is kept)
package jskv

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Options configures a Store. The zero value of each field takes its default.
type Options struct {
	Stream       string                // stream name; default TETHER_KV
	Prefix       string                // subject prefix, one token; default tk
	Replicas     int                   // default 3
	Storage      jetstream.StorageType // default file
	OpTimeout    time.Duration         // one read or commit round trip; default 3 s
	TombstoneTTL time.Duration         // how long a deletion is remembered; default 1 h
	// CacheEntries bounds the gateway's read cache (see readCache); default 100,000, and
	// negative turns the cache off.
	CacheEntries int
	// CacheBucketMarkers lets an Update take a bucket's marker (does it exist, under which
	// generation) from the read cache too. A marker seen present is not validated at commit,
	// so a cached one that another gateway deleted since sends this gateway's writes into the
	// deleted generation, where nobody reads them: set it only for a user that deletes no
	// bucket whose late writes matter (the relay deletes one kind, a revoked terminal's
	// downlink, whose writes are dropped anyway). A marker seen absent is validated as
	// before, so a bucket another gateway made is found on the run again.
	CacheBucketMarkers bool
	// LeaderReadsOnly sends every read to the stream leader, as before replica reads
	// (replica.go): for comparing the two, or a cluster whose replicas must not be asked.
	LeaderReadsOnly bool
	// WatchHeartbeat is how often a quiet watch feed (Watch) hears from the server; a feed
	// silent for three of them, that delivered nothing for three while one of this store's
	// commits waits, or that has not delivered one of this store's commits within
	// watchBehindMax (30) of them, is reported lost and started again. Default 1 s.
	WatchHeartbeat time.Duration
	// Logf, if set, is told what went wrong in the background (a watch feed lost, and why).
	Logf func(format string, args ...any)
	// Existing opens only a stream that is there, as it is: for a command run beside the
	// gateways, which must not make a stream on a cluster it was pointed at by mistake, nor
	// change the one the gateways serve from. A stream that is not there is ErrNoStream.
	Existing bool
	// WatchRoots names the root buckets a Watch will follow. A bucket made in one of them
	// takes a generation under the root's (<root gen>.<id>), so that the feed's consumer
	// takes only their subjects rather than every key message of the stream (watch.go).
	// Buckets made before (or by a store opened without it) keep a generation of their
	// own, and the feed follows each with a filter of its own, or past maxOwnGenFilters of
	// them every key message of the stream, as before, until MoveUnderRoots moves them.
	WatchRoots [][]byte
	// SteadyRoots names root buckets that are written rarely (the relay's terminal records:
	// enrollments and revocations). A CurrentView's reads ahead of their keys ask a replica
	// for the bucket's version in their stead, and take each key's cached state where it was
	// read at that same version (steady.go).
	SteadyRoots [][]byte
}

// ErrNoStream: Options.Existing, and the cluster has no such stream.
var ErrNoStream = errors.New("no such stream on the cluster")

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "TETHER_KV"
	}
	if o.Prefix == "" {
		o.Prefix = "tk"
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 3 * time.Second
	}
	if o.TombstoneTTL == 0 {
		o.TombstoneTTL = time.Hour
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = 100_000
	}
	if o.WatchHeartbeat == 0 {
		o.WatchHeartbeat = time.Second
	}
	return o
}

// hdrFed's values.
const (
	fedMore = "more"
	fedEnd  = "end"
)

// nats-server's error codes for atomic batches (nats.go v1.55 names none of them).
const (
	errCodeIncompleteBatch = 10176
	errCodeBatchTooLarge   = 10199
)

// maxBatch is nats-server's default limit on the messages of one atomic batch.
const maxBatch = 1000

// Headers written on messages (the Nats- ones are JetStream's).
const (
	hdrBatchID       = "Nats-Batch-Id"
	hdrBatchSeq      = "Nats-Batch-Sequence"
	hdrBatchCommit   = "Nats-Batch-Commit"
	hdrExpectSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectSubj    = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrTTL           = "Nats-TTL"
	hdrOp            = "KV-Operation" // "DEL" on a tombstone, as JetStream KV marks deletes
	hdrTx            = "Tk-Tx"        // the committing transaction's id
	hdrTxEnd         = "Tk-Tx-End"    // on a transaction's last message the watch feed follows
	// hdrFed is on each message of a transaction in Options.WatchRoots' buckets: fedEnd on
	// the last of them, fedMore on the others (watcher.handle). A Watch of only some of those
	// roots may not take the fedEnd message: its group then waits for the next transaction's
	// message or an idle heartbeat (the relay watches all of them, relay.WatchedRoots).
	hdrFed = "Tk-Fed"
)

// Store is a kv.Store on one JetStream stream. It is safe for concurrent use.
type Store struct {
	nc *nats.Conn
	js jetstream.JetStream
	st jetstream.Stream
	o  Options
	// cache is nil when Options.CacheEntries < 0.
	cache *readCache

	commits, conflicts, viewConflicts, views, staleViews, purgeFailures, feedLosses, tooLarge atomic.Int64
	// wholeViews, wholeMessages: WholeView calls completed, and the messages their reads took.
	wholeViews, wholeMessages atomic.Int64
	// wholePage, if set (tests only), is the page size of whole reads instead of wholePage.
	wholePage int
	// What the transactions cost: leader reads, reads the gateway's cache answered, bucket
	// listings (one stream info request each) and messages committed.
	reads, cacheHits, lists, messages atomic.Int64
	// prefetched: of reads, those made several at a time (prefetch.go).
	prefetched atomic.Int64
	// replicaReads: subjects read from any replica (replica.go); replicaMisses: requests of
	// those that failed or could not vouch for a cursor's values, read from the leader.
	replicaReads, replicaMisses, replicaOneByOne atomic.Int64
	// guessed: reads answered absent without a round trip (kv.AbsentGuesser).
	guessed atomic.Int64
	// feedRefollows: watch feeds' consumers made again for other filters (refollowLocked).
	feedRefollows atomic.Int64
	replies       *replies
	// bigBuckets are the generations a replica could not list in one answer (listReplica).
	bigBuckets sync.Map
	// feeds are the running watch feeds, told of each commit (noteCommit): copied on change,
	// so that a commit reads it without a lock.
	feeds   atomic.Pointer[[]*watcher]
	feedsMu sync.Mutex
	// known is the latest stream sequence this store knows was stored: its own commits',
	// what its reads found and what replicas said they had applied. A CurrentView reads only
	// from replicas that have applied that much (currentFloor).
	known atomic.Uint64
}

// Position implements kv.Positioner: the latest stream sequence this store knows was stored.
func (s *Store) Position() uint64 { return s.known.Load() }

// CurrentViewFrom implements kv.Positioner: CurrentView, reading no replica behind pos either.
// pos raises this view's floor alone, not what the store knows: a position nobody stored
// (another stream's, or a bug's) sends this view to the leader, and no view after it.
func (s *Store) CurrentViewFrom(ctx context.Context, pos uint64, fn func(kv.Tx) error) error {
	t := newTx(ctx, s, false)
	t.current = true
	t.floor = max(s.known.Load(), pos)
	return once(t, fn, &s.views)
}

// saw raises known to seq.
func (s *Store) saw(seq uint64) {
	for {
		k := s.known.Load()
		if seq <= k || s.known.CompareAndSwap(k, seq) {
			return
		}
	}
}

// Open creates (or updates) the stream and returns a store on it. The connection stays the
// caller's to close.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Store, error) {
	o = o.withDefaults()
	if strings.ContainsAny(o.Prefix, ".*> \t\r\n") {
		return nil, fmt.Errorf("jskv: prefix %q must be one subject token", o.Prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jskv: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:               o.Stream,
		Subjects:           []string{o.Prefix + ".>"},
		Storage:            o.Storage,
		Replicas:           o.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		MaxMsgsPerSubject:  1,
		AllowAtomicPublish: true,
		AllowMsgTTL:        true,
		// Direct gets let every replica answer, and a lagging one answers stale: only the
		// reads a commit validates use them (replica.go); the rest go to the leader, so a
		// read after a commit (on any gateway) sees it.
		AllowDirect: true,
	}
	// Every gateway opens the store; only the first creates the stream, and a gateway updates
	// it only if it lacks what the store relies on (an update is a cluster-wide operation
	// that can fail while a node is away, and a gateway must start then too).
	st, err := js.Stream(ctx, o.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && o.Existing:
		err = ErrNoStream
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = js.CreateOrUpdateStream(ctx, cfg)
	case err == nil && !suits(st.CachedInfo().Config, cfg) && o.Existing:
		err = fmt.Errorf("its configuration lacks what this build relies on (a gateway of this build updates it)")
	case err == nil && !suits(st.CachedInfo().Config, cfg):
		st, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("jskv: stream %s: %w", o.Stream, classify(err))
	}
	s := &Store{nc: nc, js: js, st: st, o: o, replies: &replies{nc: nc}}
	if info := st.CachedInfo(); info != nil {
		s.saw(info.State.LastSeq) // what a CurrentView reads is no older than the store opened on
	}
	if o.CacheEntries > 0 {
		s.cache = newReadCache(o.CacheEntries)
	}
	return s, nil
}

// logf logs through Options.Logf, if set.
func (s *Store) logf(format string, args ...any) {
	if s.o.Logf != nil {
		s.o.Logf(format, args...)
	}
}

// suits reports whether an existing stream's configuration has what the store relies on.
func suits(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		have.AllowAtomicPublish && have.AllowMsgTTL && have.AllowDirect && have.Replicas == want.Replicas
}

// Conn is the connection the store uses.
func (s *Store) Conn() *nats.Conn { return s.nc }

// Close does nothing: the connection belongs to the caller.
func (s *Store) Close() error { return nil }

// Stats counts what the store did, for benchmarks and metrics.
type Stats struct {
	Commits   int64 // Update transactions committed
	Conflicts int64 // Update transactions run again because what they read changed
	// ViewConflicts: View transactions run again because a commit landed while they read.
	// Apart from Conflicts: a View re-run costs reads, never a commit, and a reader of a
	// busy bucket (a facility's downlink log) makes them while the writes go through.
	ViewConflicts int64
	Views         int64 // View transactions completed
	// PurgeFailures counts deleted buckets whose subjects could not all be purged.
	PurgeFailures int64
	Reads         int64 // leader reads (one round trip each), validation included
	CacheHits     int64 // reads of an Update answered by the gateway's read cache
	Lists         int64 // bucket listings (cursors, ForEach, KeyN): one stream info each
	Messages      int64 // messages of committed batches (keys, versions, read markers)
	// Prefetched: of Reads, those made several at a time (Prefetch, a re-run's reads) rather
	// than one round trip after another.
	Prefetched int64
	// ReplicaReads: subjects read from any replica (direct gets, most of them many to a
	// request), not counted in Reads; ReplicaMisses: such requests that failed or answered
	// from another version of a cursor's bucket, whose subjects were read from the leader.
	ReplicaReads, ReplicaMisses int64
	// ReplicaOneByOne: of ReplicaReads, those read one request a key (as fn asked).
	ReplicaOneByOne int64
	StaleViews      int64 // StaleView calls completed
	// FeedLosses: times a watch feed reported Lost (it went silent, fell behind or skipped),
	// after which its watchers read the store again.
	FeedLosses int64
	TooLarge   int64 // write transactions refused as more than one atomic batch takes
	// WholeViews: WholeView calls completed; WholeMessages: the messages their pages read
	// (not counted in Reads or ReplicaReads).
	WholeViews, WholeMessages int64
	// Guessed: reads answered absent on the caller's word (kv.AbsentGuesser), no round trip.
	Guessed int64
	// FeedRefollows: times a watch feed's consumer was made again to take other filters (a
	// bucket of a generation of its own appeared, or the last went), missing nothing.
	FeedRefollows int64
}

// Stats returns the counters so far.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Conflicts: s.conflicts.Load(), ViewConflicts: s.viewConflicts.Load(), Views: s.views.Load(), PurgeFailures: s.purgeFailures.Load(),
		Reads: s.reads.Load(), CacheHits: s.cacheHits.Load(), Lists: s.lists.Load(), Messages: s.messages.Load(),
		Prefetched: s.prefetched.Load(), ReplicaReads: s.replicaReads.Load(), ReplicaMisses: s.replicaMisses.Load(),
		ReplicaOneByOne: s.replicaOneByOne.Load(), StaleViews: s.staleViews.Load(), FeedLosses: s.feedLosses.Load(),
		TooLarge: s.tooLarge.Load(), WholeViews: s.wholeViews.Load(), WholeMessages: s.wholeMessages.Load(),
		Guessed: s.guessed.Load(), FeedRefollows: s.feedRefollows.Load()}
}

// KVStats is Stats in the kv package's terms, for the relay's metrics.
func (s *Store) KVStats() kv.Stats {
	st := s.Stats()
	return kv.Stats{Commits: st.Commits, Conflicts: st.Conflicts, ViewConflicts: st.ViewConflicts, Views: st.Views, Reads: st.Reads,
		CacheHits: st.CacheHits, Lists: st.Lists, Messages: st.Messages, Prefetched: st.Prefetched,
		ReplicaReads: st.ReplicaReads, ReplicaMisses: st.ReplicaMisses, StaleViews: st.StaleViews, FeedLosses: st.FeedLosses,
		TooLarge: st.TooLarge, Guessed: st.Guessed}
}

// Update runs fn optimistically and commits its writes as one atomic batch, running it again
// while it conflicts, until ctx ends. Lost quorum and timeouts are returned to the caller
// (kv.Retryable), not retried here: the caller decides how long a client may wait.
func (s *Store) Update(ctx context.Context, fn func(kv.Tx) error) error {
	return s.run(ctx, true, fn)
}

// View runs fn and then checks that nothing it read changed meanwhile (reading each subject's
// sequence again), running it again if something did: fn saw one consistent state.
func (s *Store) View(ctx context.Context, fn func(kv.Tx) error) error {
	return s.run(ctx, false, fn)
}

// CurrentView runs fn once (kv.CurrentViewer): a View without the second read of every
// subject that proves they held together (tx.validate), which doubled a held facility's reads
// of the kv state, one round trip after another. Its reads go to replicas as an Update's do,
// many to a request where fn says ahead what it reads (Prefetch), but only to a replica that
// has applied every commit this store knows of (Store.known: its own, and the latest any read
// of it found), else to the leader. So a gateway reads its own writes and never reads back in
// time; a commit made on another gateway that this one has heard nothing of may be seen a
// replication's lag late, as if it had come that much later (docs/SCALE.md, "Isolation").
// A held facility's group commit read its terminals' and the state's records one leader
// request each, JSON both ways: a quarter of its gateway's CPU.
func (s *Store) CurrentView(ctx context.Context, fn func(kv.Tx) error) error {
	return s.CurrentViewFrom(ctx, 0, fn)
}

// once runs fn on the read transaction t, with nothing validated after, and counts it in
// done if it went through.
func once(t *tx, fn func(kv.Tx) error, done *atomic.Int64) error {
	err := fn(t)
	if t.err != nil {
		return t.err
	}
	if err == nil {
		done.Add(1)
	}
	return err
}

// StaleView runs fn once over what replicas answer (kv.StaleViewer): reads many to a request
// where a cursor lists a bucket, none from the leader unless no replica answers, none kept in
// the gateway's cache and none validated. A View of the fleet read each terminal's records
// from the leader and then again to validate them: some sixteen leader reads a terminal, each
// about two durable publishes' worth of the cluster's CPU, at every scrape of every gateway.
func (s *Store) StaleView(ctx context.Context, fn func(kv.Tx) error) error {
	t := newTx(ctx, s, false)
	t.stale = true
	return once(t, fn, &s.staleViews)
}

func (s *Store) run(ctx context.Context, writable bool, fn func(kv.Tx) error) error {
	// again: what the run before a conflict read. The run after it reads mostly the same
	// subjects, and the conflict dropped from the cache what that run took from it, so it
	// fetches them all together first instead of one round trip at a time as fn asks
	// (prefetch.go). A run again reads them as a first run would, an Update's from replicas
	// (replica.go), but only from replicas that have applied the change it ran into (floor).
	// A group commit's run again read some 500 subjects; from the leader they were a fifth of
	// its leader reads.
	var again []string
	// floor: how far the stream had got by the commit the last conflict ran into, when it
	// said (conflictSeq). A run again reads replicas that have applied that much, however
	// many conflicts there were; without it the second run again reads the leader.
	var floor uint64
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("jskv: %w: %w", kv.ErrTimeout, err)
		}
		t := newTx(ctx, s, writable)
		t.rerun = attempt > 0
		if writable && floor == 0 && attempt > 1 && attempt <= 3 {
			// The conflicts did not say where the stream was, and replicas the first time did
			// not do: ask the leader how far the stream is (one request, where reading the
			// run's subjects from it would be hundreds).
			floor = s.streamLast(ctx)
		}
		t.floor = floor
		t.load(again, attempt > 1 && (floor == 0 || attempt > 3))
		err := fn(t)
		switch {
		case t.err != nil:
			err = t.err // a failed read: fn's answer rests on a nil that was not one
		case err != nil:
			// fn gave up, perhaps on a state no transaction ever left: reads made at
			// different moments can straddle another commit. Its error stands only if what
			// it read still holds; otherwise it runs again, on the state as it is now.
			if verr := t.validate(); verr != nil {
				err = verr
			}
		default:
			err = t.commit()
		}
		if !errors.Is(err, kv.ErrConflict) {
			if err == nil {
				if writable {
					s.commits.Add(1)
				} else {
					s.views.Add(1)
				}
			}
			return err
		}
		if writable {
			s.conflicts.Add(1)
		} else {
			s.viewConflicts.Add(1)
		}
		again = t.readSubjects()
		floor = max(floor, conflictSeq(err))
		// Back off a little, more after each conflict, at random so that two gateways that
		// collided do not collide again in step.
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("jskv: %w after %d conflicts: %w", kv.ErrTimeout, attempt+1, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// streamLast is the stream's last sequence as its leader tells it, or 0 if it does not
// answer (the run again then reads the leader, as it would have).
func (s *Store) streamLast(ctx context.Context) uint64 {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	info, err := s.st.Info(c)
	if err != nil {
		return 0
	}
	s.reads.Add(1) // a leader request, counted with its reads
	return info.State.LastSeq
}

// movedTo is the sequence a subject a transaction read had moved to when it validated.
type movedTo uint64

func (m movedTo) Error() string { return strconv.FormatUint(uint64(m), 10) }

// conflictSeq is a stream sequence the conflicting commit had reached, if err says: the
// sequence a subject moved to (validate), or the one the stream found where an expected
// sequence was not ("wrong last sequence: N", the leader's answer to a commit). 0 when it
// does not say: a subject in another batch still in flight, a batch cut short.
func conflictSeq(err error) uint64 {
	var m movedTo
	if errors.As(err, &m) {
		return uint64(m)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		_, n, ok := strings.Cut(apiErr.Description, ": ")
		if seq, err := strconv.ParseUint(strings.TrimSpace(n), 10, 64); ok && err == nil {
			return seq
		}
	}
	return 0
}

// Classify maps what nats.go returned onto kv's error kinds (retry or give up), keeping the
// original in the chain; the facilities' logs on the same cluster answer in the same kinds.
func Classify(err error) error { return classify(err) }

// classify maps what nats.go returned onto kv's error kinds, keeping the original in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		switch {
		case apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence,
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant,
			apiErr.Code == 429, // too many batches in flight: as good as a conflict, try again
			// The leader saw the commit but not every message before it (a reconnect or a
			// leader change mid-batch): nothing was stored, so run it again.
			apiErr.ErrorCode == errCodeIncompleteBatch:
			return fmt.Errorf("%w: %w", kv.ErrConflict, err)
		case apiErr.ErrorCode == errCodeBatchTooLarge:
			return fmt.Errorf("%w: %w", kv.ErrTxTooLarge, err)
		case apiErr.Code == 503:
			return fmt.Errorf("%w: %w", kv.ErrNoQuorum, err)
		case apiErr.Code == 408:
			return fmt.Errorf("%w: %w", kv.ErrTimeout, err)
		}
		return err
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: %w", kv.ErrNoQuorum, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("%w: %w", kv.ErrTimeout, err)
	}
	return err
}

// unanswered turns a request that got no answer into the kind that says why: when the
// cluster's JetStream API says it has no leader the stream cannot commit (kv.ErrNoQuorum);
// otherwise it is a plain timeout. Without this a lost quorum looks like a slow network, since
// a stream without a leader does not answer publishes at all.
func (s *Store) unanswered(ctx context.Context, raw error) error {
	err := classify(raw)
	if !errors.Is(err, kv.ErrTimeout) || ctx.Err() == context.Canceled {
		return err
	}
	pctx, cancel := context.WithTimeout(context.Background(), s.o.OpTimeout)
	defer cancel()
	info, perr := s.st.Info(pctx)
	switch {
	case perr != nil:
		var apiErr *jetstream.APIError
		if errors.As(perr, &apiErr) || errors.Is(perr, context.DeadlineExceeded) || errors.Is(perr, nats.ErrNoResponders) {
			return fmt.Errorf("%w: %w (stream info: %v)", kv.ErrNoQuorum, raw, perr)
		}
	case info.Cluster != nil && info.Cluster.Leader == "":
		return fmt.Errorf("%w: %w (stream has no leader)", kv.ErrNoQuorum, raw)
	case info.Cluster != nil:
		// A leader that lost its peers goes on calling itself leader until its election
		// timeout; peers it has not heard from for as long as this request waited are gone.
		heard := 1
		for _, r := range info.Cluster.Replicas {
			if r.Current && !r.Offline && r.Active < s.o.OpTimeout {
				heard++
			}
		}
		if heard <= info.Config.Replicas/2 {
			return fmt.Errorf("%w: %w (leader %s hears %d of %d replicas)", kv.ErrNoQuorum, raw, info.Cluster.Leader, heard, info.Config.Replicas)
		}
	}
	return err
}

// opCtx bounds one round trip by OpTimeout and by the transaction's context.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.OpTimeout)
}

// entry is a subject's committed state as read: its last sequence (0 if it has no message)
// and value; present is false for no message or a tombstone.
type entry struct {
	seq     uint64
	val     []byte
	present bool
	// ver, in the gateway's cache, is the sequence of the key's bucket's version at which a
	// commit of this gateway knew the key current (0: not known); see tx.scanState.
	ver uint64
}

// fetch reads the last message of subj from the stream leader, through the JetStream API
// (the stream allows direct gets, which nats.go's own read would then use: replica.go).
func (s *Store) fetch(ctx context.Context, subj string) (entry, error) {
	s.reads.Add(1)
	c, cancel := s.opCtx(ctx)
	defer cancel()
	e, err := s.leaderGet(c, subj)
	if err != nil {
		return entry{}, s.unanswered(c, fmt.Errorf("jskv: read %s: %w", subj, err))
	}
	return e, nil
}

// msgGetAnswer is the JetStream API's answer to a message get.
type msgGetAnswer struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs,omitempty"`
		Data     []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
}

// errCodeNoMessage is the API's "no message found".
const errCodeNoMessage = jetstream.JSErrCodeMessageNotFound

func (s *Store) leaderGet(ctx context.Context, subj string) (entry, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	if err != nil {
		return entry{}, err
	}
	r, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.o.Stream, req)
	if err != nil {
		return entry{}, err
	}
	var a msgGetAnswer
	if err := json.Unmarshal(r.Data, &a); err != nil {
		return entry{}, fmt.Errorf("answer %q: %w", r.Data, err)
	}
	switch {
	case a.Error != nil && a.Error.ErrorCode == errCodeNoMessage:
		return entry{}, nil
	case a.Error != nil:
		return entry{}, a.Error
	case a.Message == nil:
		return entry{}, fmt.Errorf("answer without a message: %q", r.Data)
	}
	e := entry{seq: a.Message.Sequence, present: true}
	s.saw(e.seq)
	if len(a.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(a.Message.Header)
		if err != nil {
			return entry{}, fmt.Errorf("headers of %s: %w", subj, err)
		}
		e.present = h.Get(hdrOp) != "DEL"
	}
	if e.present {
		e.val = a.Message.Data
		if e.val == nil {
			e.val = []byte{}
		}
	}
	return e, nil
}

// Subjects.

func tok(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// untok decodes only tokens tok writes: a token with stray trailing bits ("00" for "0w") or
// line breaks (which the decoder skips) is not one the store wrote, and decoding it leniently
// would give one key two subjects.
func untok(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if tok(b) != s {
		return nil, fmt.Errorf("jskv: %q is not a token the store writes", s)
	}
	return b, nil
}

// subj is P.<kind>.<gen>[.<token>].
func (s *Store) subj(kind byte, gen, token string) string {
	var sb strings.Builder
	sb.Grow(len(s.o.Prefix) + len(gen) + len(token) + 5)
	sb.WriteString(s.o.Prefix)
	sb.WriteByte('.')
	sb.WriteByte(kind)
	sb.WriteByte('.')
	sb.WriteString(gen)
	if token != "" {
		sb.WriteByte('.')
		sb.WriteString(token)
	}
	return sb.String()
}

func (s *Store) readMarkerSubj() string { return s.o.Prefix + ".r" }

// parse is the kind and generation of a subject P.<kind>.<gen>[.<token>] (0 and "" for the
// read markers' subject).
func (s *Store) parse(subj string) (kind byte, gen string) {
	kind, gen, _ = s.split(subj)
	return kind, gen
}

// split is the kind, generation and last token of a subject: P.k.<gen>.<key> and
// P.b.<gen>.<name> end in a token, P.s.<gen> and P.v.<gen> do not. A generation is one token,
// or two for a bucket made in a watched root (<root gen>.<id>, Options.WatchRoots), and keys
// and names are tokens, so the kind says where the generation ends.
func (s *Store) split(subj string) (kind byte, gen, token string) {
	rest, ok := strings.CutPrefix(subj, s.o.Prefix+".")
	if !ok || len(rest) < 3 || rest[1] != '.' {
		return 0, "", ""
	}
	kind, rest = rest[0], rest[2:]
	if kind == 'k' || kind == 'b' {
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			return 0, "", ""
		}
		return kind, rest[:i], rest[i+1:]
	}
	return kind, rest, ""
}

// watchRoot reports whether name is one of Options.WatchRoots.
func (s *Store) watchRoot(name []byte) bool {
	for _, r := range s.o.WatchRoots {
		if string(r) == string(name) {
			return true
		}
	}
	return false
}

// underRoot reports whether gen is a generation made under root generation rg.
func underRoot(gen, rg string) bool {
	return len(gen) > len(rg)+1 && gen[len(rg)] == '.' && gen[:len(rg)] == rg
}

// list returns the subjects matching filter that hold a message (tombstones included), as
// the stream's per-subject state says: one stream info request, paged by the client.
func (s *Store) list(ctx context.Context, filter string) ([]string, error) {
	s.lists.Add(1)
	c, cancel := s.opCtx(ctx)
	defer cancel()
	info, err := s.st.Info(c, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, s.unanswered(c, fmt.Errorf("jskv: list %s: %w", filter, err))
	}
	subjs := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		subjs = append(subjs, subj)
	}
	return subjs, nil
}

// pubAck is JetStream's answer to a batch's commit message.
type pubAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	BatchID  string              `json:"batch,omitempty"`
	Count    int                 `json:"count,omitempty"`
}

// publishBatch sends msgs as one atomic batch and returns the commit's answer: all of them
// are stored, or none. All but the last are plain publishes (one connection keeps their order,
// and the server answers for them all on the commit), so a commit is one round trip.
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg) (*pubAck, error) {
	if len(msgs) > maxBatch {
		s.tooLarge.Add(1)
		return nil, fmt.Errorf("jskv: %w: %d messages, at most %d", kv.ErrTxTooLarge, len(msgs), maxBatch)
	}
	id := nuid.Next()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		m.Header.Set(hdrTx, id)
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(hdrBatchCommit, "1")
	c, cancel := s.opCtx(ctx)
	defer cancel()
	for _, m := range msgs[:len(msgs)-1] {
		if err := s.nc.PublishMsg(m); err != nil {
			return nil, classify(fmt.Errorf("jskv: batch: %w", err))
		}
	}
	r, err := s.nc.RequestMsgWithContext(c, last)
	if err != nil {
		err = s.unanswered(c, fmt.Errorf("jskv: commit: %w", err))
		// The answer is lost, not necessarily the commit. If the batch is there (its id is
		// on a subject it wrote), it committed; otherwise kv.ErrTimeout leaves it open.
		if errors.Is(err, kv.ErrTimeout) && !errors.Is(err, kv.ErrNoQuorum) && s.landed(ctx, id, msgs) {
			return &pubAck{BatchID: id, Count: len(msgs)}, nil
		}
		return nil, err
	}
	var a pubAck
	if err := json.Unmarshal(r.Data, &a); err != nil {
		return nil, fmt.Errorf("jskv: commit: answer %q: %w", r.Data, err)
	}
	if a.Error != nil {
		return nil, classify(fmt.Errorf("jskv: commit: %w", a.Error))
	}
	if a.BatchID != id || a.Count != len(msgs) {
		return nil, fmt.Errorf("jskv: commit: answer for batch %q of %d, sent %q of %d", a.BatchID, a.Count, id, len(msgs))
	}
	return &a, nil
}

// landed reports whether batch id is stored, by reading the subjects it wrote (each keeps only
// its last message, so a later writer can hide it: false means "cannot tell", never "not
// committed"). It stops at the first read that fails.
func (s *Store) landed(ctx context.Context, id string, msgs []*nats.Msg) bool {
	checked := 0
	for _, m := range msgs {
		if m.Subject == s.readMarkerSubj() || checked == 3 {
			continue
		}
		checked++
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.OpTimeout)
		got, err := s.st.GetLastMsgForSubject(c, m.Subject)
		cancel()
		if err != nil {
			return false
		}
		if got.Header.Get(hdrTx) == id {
			return true
		}
	}
	return false
}

// purge removes a deleted bucket's generation, and its nested buckets' generations, from the
// stream. Nothing reads them any more, so this only frees space; a purge that fails leaves
// unreachable subjects (counted in Stats.PurgeFailures) that a later sweep can remove.
func (s *Store) purge(ctx context.Context, gen string) {
	ctx = context.WithoutCancel(ctx)
	kids, err := s.list(ctx, s.subj('b', gen, "*"))
	if err != nil {
		s.purgeFailures.Add(1)
		return
	}
	for _, m := range kids {
		e, err := s.fetch(ctx, m)
		if err != nil {
			s.purgeFailures.Add(1)
			return
		}
		if e.present {
			s.purge(ctx, string(e.val))
		}
	}
	for _, filter := range []string{s.subj('k', gen, "*"), s.subj('b', gen, "*"), s.subj('s', gen, ""), s.subj('v', gen, "")} {
		c, cancel := s.opCtx(ctx)
		err := s.st.Purge(c, jetstream.WithPurgeSubject(filter))
		cancel()
		if err != nil {
			s.purgeFailures.Add(1)
			return
		}
	}
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func sortKeys(keys [][]byte) {
	slices.SortFunc(keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
}
