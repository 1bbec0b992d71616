// Package kv is the transactional key-value interface the relay's storage moves onto, so that
// one relay runs either on an embedded bbolt file (sync/relay/kv/boltkv, the single-node
// default) or on a replicated NATS JetStream stream shared by stateless gateways
// (sync/relay/kv/jetstream).
//
// It mirrors the subset of bbolt the relay uses (Tx.Bucket, Bucket.Get/Put/Delete, ordered
// cursors, ForEach, nested buckets, per-bucket sequences, a key count) closely enough that
// moving the relay onto it is mechanical: a *bolt.Tx becomes a kv.Tx, a *bolt.Bucket a
// kv.Bucket. Where it differs from bbolt it does so because a networked store cannot promise
// what a local file can:
//
//   - Update may run fn more than once: an optimistic store re-runs a transaction whose reads
//     changed under it (ErrConflict). The relay's write functions are already written to be
//     re-run (sync/relay/commit.go), so this asks nothing new of them.
//   - Get and the cursor return no error, as in bbolt, but a networked read can fail. A failed
//     read poisons the transaction: it returns nil, every later call is a no-op, and Update or
//     View returns the read's error whatever fn returned. Nothing fn decided on a nil that was
//     really an error can be committed. Bucket then returns a handle that finds nothing
//     rather than nil, so code that knows a bucket exists does not dereference a nil.
//   - Cursors and ForEach list keys only, never nested buckets (bbolt lists a nested bucket as
//     a key with a nil value); ForEachBucket lists nested buckets.
//   - Errors say whether to try again: Retryable is true for ErrConflict, ErrNoQuorum and
//     ErrTimeout, and false for everything else (a bad key, a missing bucket, fn's own error).
//
// Keys and bucket names are non-empty byte strings, ordered bytewise. A value returned by Get
// or a cursor is valid only until the transaction ends (bbolt's rule; copy it to keep it).
package kv

import (
	"context"
	"errors"
)

// Stats counts what a store did since it opened, for metrics. A store that counts offers it
// through StatsReporter; fields it does not count stay zero.
type Stats struct {
	Commits   int64 // write transactions committed
	Conflicts int64 // write transactions run again because what they read changed
	// ViewConflicts: read transactions run again, because a write landed while they read.
	ViewConflicts int64
	Views         int64 // read transactions completed
	Reads         int64 // reads that went over the network (one round trip each)
	CacheHits     int64 // reads answered by the store's own cache instead
	Lists         int64 // bucket listings (cursors, ForEach, KeyN)
	Messages      int64 // messages in committed writes
	// Prefetched: of Reads, those made together (Prefetcher, a re-run's reads), not one by one.
	Prefetched int64
	// ReplicaReads: reads answered by any copy of the data rather than the one that orders
	// writes (JetStream's direct gets), not counted in Reads. ReplicaMisses: requests of
	// such reads that failed or could not be vouched for, whose reads went to the leader (a
	// replica falling behind shows here first).
	ReplicaReads, ReplicaMisses int64
	StaleViews                  int64 // StaleViewer calls completed
	// FeedLosses: times a feed of commits (Watcher) reported Lost, after which its
	// watchers read the store again (many on a gateway: its feed keeps failing).
	FeedLosses int64
	// TooLarge: write transactions refused at commit as larger than the store takes
	// (ErrTxTooLarge): the work of the whole transaction was for nothing.
	TooLarge int64
	// Guessed: reads answered absent on the caller's word, with no round trip (AbsentGuesser).
	Guessed int64
}

// StatsReporter is a Store that counts what it does (the JetStream store does; bbolt's
// wrapper has nothing worth counting beyond the relay's own write count).
type StatsReporter interface {
	KVStats() Stats
}

// Store is a transactional key-value store. It is safe for concurrent use; a Tx is not.
type Store interface {
	// Update runs fn in a read-write transaction and commits what it wrote, or nothing if fn
	// (or a read inside it) fails. fn may run more than once and must be safe to re-run.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction that sees one consistent state. fn may run more
	// than once.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store; transactions in progress may fail.
	Close() error
}

// Tx is one transaction: the root of the bucket tree.
type Tx interface {
	// Writable reports whether the transaction may write (Update) or not (View).
	Writable() bool
	// Bucket returns the root bucket name, or nil if there is none.
	Bucket(name []byte) Bucket
	// CreateBucket makes a root bucket; ErrBucketExists if there is one.
	CreateBucket(name []byte) (Bucket, error)
	// CreateBucketIfNotExists returns the root bucket name, making it if needed.
	CreateBucketIfNotExists(name []byte) (Bucket, error)
	// DeleteBucket removes a root bucket with everything in it; ErrBucketNotFound if none.
	DeleteBucket(name []byte) error
	// ForEachBucket calls fn with the name of each root bucket, in key order.
	ForEachBucket(fn func(name []byte) error) error
}

// Bucket is an ordered set of keys with values, nested buckets and a sequence.
type Bucket interface {
	// Get returns the value of key, or nil if it has none.
	Get(key []byte) []byte
	// Put sets key to value (which may be empty, but the key is then present).
	Put(key, value []byte) error
	// Delete removes key; removing a missing key is not an error.
	Delete(key []byte) error
	// Cursor returns a cursor over the keys of the bucket (not its nested buckets).
	Cursor() Cursor
	// ForEach calls fn for each key and value in key order, stopping at fn's first error.
	ForEach(fn func(k, v []byte) error) error
	// KeyN counts the keys of the bucket (not its nested buckets). bbolt's Stats().KeyN.
	KeyN() int

	// Bucket returns the nested bucket name, or nil if there is none.
	Bucket(name []byte) Bucket
	CreateBucket(name []byte) (Bucket, error)
	CreateBucketIfNotExists(name []byte) (Bucket, error)
	DeleteBucket(name []byte) error
	ForEachBucket(fn func(name []byte) error) error

	// Sequence returns the bucket's sequence, 0 for a new bucket.
	Sequence() uint64
	// SetSequence sets the bucket's sequence.
	SetSequence(v uint64) error
	// NextSequence increments the bucket's sequence and returns the new value.
	NextSequence() (uint64, error)
}

// Appended is an optional capability of a Bucket: the store is told that the keys put into it
// in this transaction mostly come after those already there (arrival numbers, a terminal's
// seqs, time-ordered ids), so it may fill its pages for that (bbolt: FillPercent 1.0, so a
// split leaves a full page and a short one instead of two half-full ones, and the page the
// next keys go to stays short). It is only a hint: a key put out of order is stored as any
// other. HintAppended is how callers give it.
type Appended interface {
	HintAppended()
}

// HintAppended gives b the Appended hint if its store takes hints; a store that does not
// (JetStream, which has no pages) is unaffected.
func HintAppended(b Bucket) {
	if a, ok := b.(Appended); ok {
		a.HintAppended()
	}
}

// Appender is an optional capability of a Bucket: it adds bytes to the end of a key's value
// and carries only those bytes, where a Get and a Put would carry the whole value again (a
// held facility's log entry, faclog). Append is how callers use it.
type Appender interface {
	AppendValue(key, tail []byte) error
}

// Append adds tail to the end of key's value in b (the value is tail if key is absent):
// through b's Appender where it has one, else as a Get and a Put.
func Append(b Bucket, key, tail []byte) error {
	if a, ok := b.(Appender); ok {
		return a.AppendValue(key, tail)
	}
	old := b.Get(key)
	v := make([]byte, 0, len(old)+len(tail))
	return b.Put(key, append(append(v, old...), tail...))
}

// MarkerCache is an optional capability of a Store that keeps bucket markers it saw present
// without validating them again (jskv with CacheBucketMarkers): a gateway that takes over
// buckets another gateway wrote (a held facility, after its catch-up) drops them, so that a
// bucket the other deleted and made again is not read and written in its old generation.
type MarkerCache interface {
	DropCachedMarkers()
}

// DropCachedMarkers drops s's cached bucket markers where it keeps any (MarkerCache).
func DropCachedMarkers(s Store) {
	if m, ok := s.(MarkerCache); ok {
		m.DropCachedMarkers()
	}
}

// Key names one key of a store: the names of the buckets it is nested in, from the root (at
// least one), and the key within the last of them. A Key with no Key names only the buckets
// of its path (a Prefetcher looks them up).
type Key struct {
	Path [][]byte
	Key  []byte
}

// Prefetcher is an optional capability of a Tx: the caller names keys it expects to read, and
// the store fetches those it does not hold yet together (a networked store: in parallel, in
// about one round trip instead of one each), so that the Gets that follow are answered
// without a round trip. It changes no answer and no isolation: a prefetched key counts as
// read only once Get reads it, and is then validated at commit like any other read, so a key
// another transaction wrote between the prefetch and the commit makes the commit conflict. A
// key in a bucket that does not exist, or one the transaction never reads, costs a fetch and
// nothing else: its bucket's absence is not taken as read either. A failed fetch is
// forgotten (the Get that follows reads again and fails as Get does). Prefetch is a hint:
// a store may fetch any part of keys, or none.
type Prefetcher interface {
	Prefetch(keys []Key)
}

// AbsentGuesser is a Bucket whose store may answer a read of a key it is told is almost surely
// absent without asking anyone: a store whose reads are round trips (JetStream), for a key
// such as a new item's id, which a writer reads only to find the rare one held already. The
// guess is a read like any other: validated at commit (a key that was there after all makes
// the commit a conflict, ErrConflict, and an Update's run again reads it), so isolation is
// unchanged and only a wrong guess costs, a run again. A store guesses only where it knows
// nothing better (its cache, a prefetch, an earlier read, a run again) and may never guess.
type AbsentGuesser interface {
	GuessAbsent(key []byte)
}

// GuessAbsent tells b's store that key is almost surely absent (AbsentGuesser); a store that
// does not take the hint (bbolt, whose reads are local) is unaffected.
func GuessAbsent(b Bucket, key []byte) {
	if g, ok := b.(AbsentGuesser); ok {
		g.GuessAbsent(key)
	}
}

// Prefetches reports whether tx's store takes Prefetch hints, so that a caller on a store that
// does not (bbolt) need not even work out the keys.
func Prefetches(tx Tx) bool {
	_, ok := tx.(Prefetcher)
	return ok
}

// Prefetch gives keys to tx's store as a Prefetcher hint if it takes them; a store that does
// not (bbolt, whose reads are local) is unaffected.
func Prefetch(tx Tx, keys []Key) {
	if p, ok := tx.(Prefetcher); ok && len(keys) > 0 {
		p.Prefetch(keys)
	}
}

// Sizer is an optional capability of a Tx whose store bounds what one commit may write
// (JetStream: the messages of one atomic batch; kv.ErrTxTooLarge beyond): Size is what the
// commit would write if it were made now, and bound the most the store takes. A caller that
// groups many writers' functions into one transaction (the relay's group commit) sizes its
// groups by it, rather than learning the bound from refusals.
type Sizer interface {
	Size() (n, bound int)
}

// Size is tx's Size if its store bounds a commit (ok), and nothing otherwise (bbolt).
func Size(tx Tx) (n, bound int, ok bool) {
	if sz, is := tx.(Sizer); is {
		n, bound = sz.Size()
		return n, bound, true
	}
	return 0, 0, false
}

// CurrentViewer is a Store that can read without holding its reads to one moment: fn runs
// once, each read answering a committed state of the key no older than any commit made
// through this Store or any state of the store it read before (a gateway reads its own writes
// and never goes back in time; another gateway's commit it knows nothing of may show a
// replication's lag late), and nothing is read a second time at the end to prove the reads
// held together, as a View's are. A caller loses nothing by it whose reads no one else
// changes meanwhile, or that takes each read as of its own moment: a held facility's state
// reads so the keys only its holder writes, and the state's records it never remembers
// (faclog.Held). Prefetch hints are taken as in a View.
type CurrentViewer interface {
	CurrentView(ctx context.Context, fn func(tx Tx) error) error
}

// CurrentView runs fn in s's CurrentView if it has one, else in a View (bbolt: a View is one
// moment at no extra cost).
func CurrentView(ctx context.Context, s Store, fn func(tx Tx) error) error {
	if cv, ok := s.(CurrentViewer); ok {
		return cv.CurrentView(ctx, fn)
	}
	return s.View(ctx, fn)
}

// Positioner is an optional capability of a CurrentViewer: how far the store is known written
// (Position: its own commits and what it read), and a CurrentView no older than a position
// another process handed over with a note (Notifier), so that it reads that process's commits,
// not a replica yet to apply them. The position is that one call's floor: a wrong one (too
// high) costs the call its replica reads, and nothing after it. Positions are comparable
// within one store only.
type Positioner interface {
	Position() uint64
	CurrentViewFrom(ctx context.Context, pos uint64, fn func(tx Tx) error) error
}

// CurrentViewFrom runs fn in s's CurrentView no older than pos where s has positions, else in
// its CurrentView (CurrentView).
func CurrentViewFrom(ctx context.Context, s Store, pos uint64, fn func(tx Tx) error) error {
	if p, ok := s.(Positioner); ok {
		return p.CurrentViewFrom(ctx, pos, fn)
	}
	return CurrentView(ctx, s, fn)
}

// StaleViewer is a Store that can read more cheaply than View by giving up its promise: fn
// sees committed states, each no older than the last commit the store had applied somewhere
// when it was read, but not necessarily one state, and runs once. It is for figures a person
// or a scraper looks at (the fleet's gauges), where a View's cost would grow with the fleet
// (on JetStream: every read from the stream's leader, and every one read again to validate).
type StaleViewer interface {
	StaleView(ctx context.Context, fn func(tx Tx) error) error
}

// StaleView runs fn with s's StaleView if it has one, else in a View.
func StaleView(ctx context.Context, s Store, fn func(tx Tx) error) error {
	if sv, ok := s.(StaleViewer); ok {
		return sv.StaleView(ctx, fn)
	}
	return s.View(ctx, fn)
}

// WholeViewer is a Store that can read all of itself at one moment more cheaply than a View
// that reads each key it is asked for: for checks that read everything (the relay's verify
// and ledger). fn sees one committed state, as in a View, and runs once. On JetStream a View
// asks the stream's leader for every key and then again to validate, and starts over when a
// commit lands meanwhile; a whole view reads the stream in order instead.
type WholeViewer interface {
	WholeView(ctx context.Context, fn func(tx Tx) error) error
}

// WholeSizer is a WholeViewer that can tell before reading about how many bytes a whole view
// would hold in memory (on JetStream: the stream's current messages), so that a caller can
// refuse a read that would not fit rather than learn it from the kernel's OOM killer.
type WholeSizer interface {
	WholeSize(ctx context.Context) (uint64, error)
}

// WholeView runs fn with s's WholeView if it has one, else in a View.
func WholeView(ctx context.Context, s Store, fn func(tx Tx) error) error {
	if wv, ok := s.(WholeViewer); ok {
		return wv.WholeView(ctx, fn)
	}
	return s.View(ctx, fn)
}

// Cursor walks the keys of a bucket in order. Each call returns the key and value it lands on,
// or nil, nil past either end. A cursor that ran past an end stays past it: Next at the end
// and then Prev returns the last key, Prev at the start and then Next the first, Seek past
// the last key and then Prev the last key. (bbolt's cursor instead stays on the last element
// it read, nested buckets included; the relay does not rely on either, it calls Last.)
type Cursor interface {
	First() (k, v []byte)
	Last() (k, v []byte)
	Next() (k, v []byte)
	Prev() (k, v []byte)
	// Seek lands on the first key at or after seek.
	Seek(seek []byte) (k, v []byte)
}

// The error kinds. Implementations wrap them (errors.Is finds them) with what failed.
var (
	// ErrConflict: another transaction changed what this one read. Run it again.
	ErrConflict = errors.New("kv: conflict with a concurrent transaction")
	// ErrNoQuorum: the store cannot commit (or read consistently) now because too few of its
	// replicas are up. Try again later; nothing of this transaction was committed.
	ErrNoQuorum = errors.New("kv: no quorum")
	// ErrTimeout: the store did not answer in time. The transaction may or may not have
	// committed only where the implementation says so (jetstream: a commit whose answer was
	// lost); re-running a transaction written as the relay writes them is then still right,
	// because it re-reads what it depends on.
	ErrTimeout = errors.New("kv: timeout")

	ErrBucketNotFound = errors.New("kv: bucket not found")
	ErrBucketExists   = errors.New("kv: bucket already exists")
	ErrKeyRequired    = errors.New("kv: key required")
	ErrNameRequired   = errors.New("kv: bucket name required")
	ErrTxNotWritable  = errors.New("kv: transaction not writable")
	// ErrTxTooLarge: the transaction writes more than the store commits at once.
	ErrTxTooLarge = errors.New("kv: transaction too large")
)

// Retryable reports whether err means "try the same thing again later" rather than "give up":
// a conflict, lost quorum or a timeout.
func Retryable(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrNoQuorum) || errors.Is(err, ErrTimeout)
}

// Notifier is an optional capability of a Store: best-effort messages between the processes
// that share it, for what must happen promptly but is not state (the relay closes a
// connection another gateway took over). Delivery is at most once and unordered between
// senders; nothing is stored, so what depends on it must also be safe when a message is lost.
type Notifier interface {
	// Notify sends msg to the subscribers of topic, if any. topic is one token of letters,
	// digits, '-' and '_' (at most 64 bytes).
	Notify(topic string, msg []byte) error
	// Subscribe calls fn with each message sent to topic until unsubscribe is called. fn runs
	// on a goroutine of the store's and must not block for long.
	Subscribe(topic string, fn func(msg []byte)) (unsubscribe func(), err error)
}

// ErrBadTopic: a Notifier topic that is empty, too long or not one token.
var ErrBadTopic = errors.New("kv: notify topic must be 1 to 64 letters, digits, '-' or '_'")

// CheckTopic returns ErrBadTopic unless topic is a valid Notifier topic.
func CheckTopic(topic string) error {
	if len(topic) == 0 || len(topic) > 64 {
		return ErrBadTopic
	}
	for _, c := range []byte(topic) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ErrBadTopic
		}
	}
	return nil
}

// Watcher is an optional capability of a Store: a feed of what committed transactions (of
// every process sharing the store) wrote in the buckets nested one level in some root buckets,
// so that a gateway learns of another gateway's writes without reading the store for them
// (the relay's downlink, docs/SCALE.md "Downlink").
//
// fn is called on one goroutine, once per committed transaction that wrote in a watched
// bucket, in commit order, with that transaction's changes to the watched buckets (in no
// particular order within it). A transaction's changes arrive together or not at all, except
// that a change another commit overwrote before the feed delivered it may be missing (the
// store keeps one state per key, not a history): a reader must never take the absence of a
// change from the feed as the truth, only the changes it got. Changes{Lost: true} says the
// feed missed transactions (a reconnect, a node that went away, a consumer the server dropped):
// everything learnt from it before may be incomplete; the feed then goes on from a later
// transaction, and says Lost once more when it does (what committed in between is only in the
// store). Nothing is delivered for what committed before Watch returned.
type Watcher interface {
	Watch(roots [][]byte, fn func(Changes)) (stop func(), err error)
}

// Changes is one committed transaction's changes to watched buckets, or a loss (Lost).
type Changes struct {
	Lost bool
	List []Change
}

// Change is one write in a watched bucket: a key put (Value) or deleted (Deleted), the
// bucket's sequence set (Key nil, Sequence), or the bucket itself deleted (Key nil,
// BucketDeleted). Root is the watched root bucket, Bucket the name of the nested bucket. The
// byte slices are the receiver's to keep.
type Change struct {
	Root, Bucket  []byte
	Key, Value    []byte
	Deleted       bool
	Sequence      uint64
	BucketDeleted bool
}
