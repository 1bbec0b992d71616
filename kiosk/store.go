package kiosk

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tether-kiosk/tether/kiosk/boltfile"
)

// StoreFile is the name of the terminal's bbolt file inside its data directory.
const StoreFile = "terminal.db"

// Bucket names; every bucket exists from schema version 1 on.
const (
	bMeta        = "meta"
	bInmates     = "inmates"     // inmate id -> Inmate
	bTechnicians = "technicians" // technician id -> Technician
	bBadges      = "badges"      // badge id -> BadgeOwner
	bLogins      = "logins"      // person id -> LoginState
	bAccounts    = "accounts"    // inmate id -> Account
	bDeposits    = "deposits"    // ref -> Deposit
	bSessions    = "sessions"    // session id -> Session
	bCharges     = "charges"     // session id + "/" + minute (%06d) -> Charge
	bCredits     = "credits"     // session id + "/" + minute (%06d) -> Credit
	bContacts    = "contacts"    // inmate id + "/" + contact id -> Contact
	bMessages    = "messages"    // message id (UUIDv7, so time order) -> Message
	bDrafts      = "drafts"      // inmate id/peer -> Draft (before: inmate id -> Draft; drafts.go)
	bOutq        = "outq"        // seq (8 bytes big endian) -> Item, waiting for the relay
	bAudit       = "audit"       // audit id (UUIDv7) -> AuditEvent, kept locally for technicians
	bDownlink    = "downlink"    // applied downlink state (sync owns its keys)
	bMsgIndex    = "msgindex"    // inmate id + "/" + message id -> box ("outbox", "inbox", "inbox:read")
	bSessIndex   = "sessindex"   // inmate id + "/" + session id -> nothing (usage statements)
	bRemote      = "remote"      // "charge/"|"credit/" + record id -> Charge|Credit from other terminals
	// bOutFollow (schema 2) lists the queued items whose acknowledgement needs work of their own
	// (needsFollowUp): seq (as in outq) -> item kind.
	bOutFollow = "outq_follow"
	// bAckLog (schema 2): queue generation + cursor (8+8 bytes big endian) -> when the
	// acknowledgement that moved the cursor there was applied (RFC 3339), written only when
	// an outbox message was among what it acknowledged: a message read as sent is stamped with
	// it, as it was when an acknowledgement rewrote the message.
	bAckLog = "acklog"
	// bMsgState (schema 3): queue generation + seq (8+8 bytes big endian, as bAckLog) -> the
	// state ("held" or "delivered") the relay's acknowledgement reported for the outbox
	// message queued there (Store.AckLetters): a message reads it once the cursor has passed
	// its item, so a relay's report at acknowledgement rewrites no message. A later report
	// (message_status) rewrites the message and removes the entry.
	bMsgState = "msgstate"
)

// Keys in the meta bucket.
const (
	kSchema    = "schema_version"
	kEpoch     = "epoch"
	kNextSeq   = "next_seq"
	kCreatedAt = "created_at"
	kPolicy    = "policy"
	// Record counts kept beside their buckets, since bbolt can only count by walking.
	kOutqCount  = "outq_count"
	kAuditCount = "audit_count"
	// kScrubPending is set in the transaction that erases text that must leave the terminal
	// (a PREA report's): bbolt does not zero freed pages, so the file is rewritten without them.
	kScrubPending = "scrub_pending"
	// kAckedSeq (schema 2) is the acknowledged cursor: every item of the current queue
	// generation with seq <= it was acknowledged (Store.Ack). kQueueGen counts the epochs
	// started since (NewEpoch), so a message position from an older one reads as acknowledged.
	kAckedSeq = "acked_seq"
	kQueueGen = "queue_gen"
	// kLastMsgSeq (schema 2) is the seq of the last outbox message queued in this generation:
	// an acknowledgement reaching past the cursor only needs an ack log entry if it is above.
	kLastMsgSeq = "last_msg_seq"
)

// migrations[i] moves a store from schema version i to i+1, inside the open transaction.
func migrations() []func(tx *bolt.Tx) error {
	return []func(tx *bolt.Tx) error{
		migrate0to1,
		migrate1to2,
		migrate2to3,
		migrate3to4, // print.go
		migrate4to5, // the library (library.go)
		migrate5to6, // quiz results (quiz.go)
	}
}

// SchemaVersion is the version this program writes.
func SchemaVersion() int { return len(migrations()) }

func migrate0to1(tx *bolt.Tx) error {
	for _, name := range []string{bMeta, bInmates, bTechnicians, bBadges, bLogins, bAccounts, bDeposits,
		bSessions, bCharges, bCredits, bContacts, bMessages, bDrafts, bOutq, bAudit, bDownlink, bMsgIndex, bSessIndex, bRemote} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bMeta))
	epoch := make([]byte, 16)
	if _, err := rand.Read(epoch); err != nil {
		return fmt.Errorf("make store epoch: %w", err)
	}
	if err := meta.Put([]byte(kEpoch), []byte(hex.EncodeToString(epoch))); err != nil {
		return err
	}
	if err := meta.Put([]byte(kNextSeq), u64(1)); err != nil {
		return err
	}
	return meta.Put([]byte(kCreatedAt), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
}

// migrate1to2 brings in the acknowledged cursor (Store.Ack): the follow-up list of the items
// that need work at acknowledgement, and each queued outbox message's position in the queue.
// The queue entries themselves keep their format. The cursor starts at 0 in generation 0:
// everything still queued was, by definition, not acknowledged yet.
func migrate1to2(tx *bolt.Tx) error {
	for _, name := range []string{bOutFollow, bAckLog} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	gen, _ := ackCursorTx(tx)
	return tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		// An item that does not decode is left as it is, for Pending and Verify to report as
		// before: it must not keep the store from opening.
		var it Item
		if json.Unmarshal(v, &it) != nil {
			return nil
		}
		it.Seq = binary.BigEndian.Uint64(k)
		if err := trackItemTx(tx, it, gen); err != nil && KindOf(err) != KindCorrupt {
			return err
		}
		return nil
	})
}

// migrate2to3 brings in the letters' states reported with acknowledgements (bMsgState); no
// record changes: a store of schema 2 has none.
func migrate2to3(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bMsgState)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bMsgState, err)
	}
	return nil
}

// Store is the terminal's one bbolt file. Every state change is one transaction.
type Store struct {
	// mu is held for reading by every transaction and for writing while the file is swapped
	// for a rewritten one (Scrub, compaction), which replaces db.
	mu   sync.RWMutex
	db   *bolt.DB
	path string
	opts StoreOptions
}

// StoreOptions tune Open; the zero value is what a terminal uses.
type StoreOptions struct {
	// LockTimeout bounds the wait for another process's lock (default 1s).
	LockTimeout time.Duration
	// NoSync skips fsync; only for benchmarks that measure something else.
	NoSync bool
	// Logf, if set, hears about a scrub that failed at open (the store opens anyway and the
	// scrub is tried again at the next acknowledgement or start).
	Logf Logf
}

// OpenStore opens or creates the store in dir. A store held by another process (KindConflict),
// a store from a newer program and a damaged store (KindCorrupt; errors.Is(err,
// boltfile.ErrDamaged) for damage) are each refused with a message saying so, and left as
// found. A file that cannot be opened at all (permission, a directory in its place) is KindIO,
// with the operating system's error wrapped so errors.Is(err, fs.ErrPermission) works.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &Error{Kind: KindIO, Op: "open store", Err: fmt.Errorf("make data directory %s: %w", dir, err)}
	}
	path := filepath.Join(dir, StoreFile)
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	db, err := openLocked(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, opts: opts}
	if err := s.checkIntact(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	// A scrub that did not finish (or never ran: kioskd restarted) is done before anything else.
	if _, err := s.Scrub(); err != nil && opts.Logf != nil {
		opts.Logf("store: scrub of erased text failed, will retry: %v", err)
	}
	return s, nil
}

// openLocked opens path with bbolt (after boltfile's check of its header) and holds its lock.
// A process that waited for the lock while the file was replaced by a rewritten one (Scrub,
// compaction) holds the old, unlinked file: it lets go and opens the new one.
func openLocked(path string, opts StoreOptions) (*bolt.DB, error) {
	for try := 0; ; try++ {
		before, statErr := os.Stat(path)
		db, err := boltfile.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, &Error{Kind: KindConflict, Op: "open store", Err: fmt.Errorf("store %s is in use by another process", path)}
		case errors.Is(err, boltfile.ErrDamaged):
			return nil, corrupt(path, err)
		case err != nil:
			return nil, &Error{Kind: KindIO, Op: "open store", Err: fmt.Errorf("store %s cannot be opened: %w", path, err)}
		}
		after, err := os.Stat(path)
		if statErr != nil || (err == nil && os.SameFile(before, after)) || try == 3 {
			return db, nil
		}
		db.Close()
	}
}

// markScrubPending asks, in tx, for the file to be rewritten without its free pages: tx erases
// something that must not stay readable in them.
func markScrubPending(tx *bolt.Tx) error {
	if err := tx.Bucket([]byte(bMeta)).Put([]byte(kScrubPending), []byte{1}); err != nil {
		return fmt.Errorf("mark store for scrubbing: %w", err)
	}
	return nil
}

// Scrub rewrites the file without its free pages if an erase asked for it (scrubbed reports
// whether it did), so erased text is gone from the disk, not just from the records. It
// waits for the transactions in progress and holds new ones off until the new file is in
// place (about the time it takes to copy the live data). An error before the new file is in
// place leaves the store as it was and the request standing, to be tried again.
func (s *Store) Scrub() (scrubbed bool, err error) {
	pending := func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bMeta)).Get([]byte(kScrubPending)) == nil {
			return errNoScrub
		}
		return nil
	}
	// Asked on every acknowledgement: look without holding other transactions off.
	if err := s.view(pending); err != nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.View(pending); err != nil {
		return false, nil // another caller scrubbed meanwhile
	}
	if err := s.rewriteLocked(); err != nil {
		return false, &Error{Kind: KindIO, Op: "scrub store", Err: err}
	}
	return true, nil
}

var errNoScrub = errors.New("no scrub pending")

// compact rewrites the file without its free pages, unconditionally.
func (s *Store) compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rewriteLocked()
}

// rewriteLocked copies the live data into a new file beside the store (bbolt.Compact) with
// the scrub request cleared, fsyncs it, renames it over the store and fsyncs the directory.
// The new file is opened (so locked) before it takes the store's name and becomes s.db, so no
// other process can slip in between; the old file, free pages and all, is closed and gone.
// s.mu must be held for writing.
func (s *Store) rewriteLocked() error {
	tmp := s.path + ".compact"
	os.Remove(tmp) // a leftover of a rewrite cut short
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout, NoSync: s.opts.NoSync})
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", s.path, err)
	}
	fail := func(err error) error {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("rewrite %s: %w", s.path, err)
	}
	if err := bolt.Compact(dst, s.db, 1<<20); err != nil {
		return fail(err)
	}
	if err := dst.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bMeta)).Delete([]byte(kScrubPending))
	}); err != nil {
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		return fail(fmt.Errorf("sync: %w", err))
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	old := s.db
	s.db = dst
	if err := old.Close(); err != nil {
		return fmt.Errorf("rewrite %s: close the old file: %w", s.path, err)
	}
	d, err := os.Open(filepath.Dir(s.path))
	if err != nil {
		return fmt.Errorf("rewrite %s: open directory: %w", s.path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		// The old file, request and all, may come back after a crash: scrubbed again at start.
		return fmt.Errorf("rewrite %s: sync directory: %w", s.path, err)
	}
	return nil
}

// RecoverAdvice is what a technician can do about a damaged terminal store.
const RecoverAdvice = "it was left untouched: stop kioskd, move it aside and copy in a backup made by " +
	"`kioskctl backup`, or move it aside and enroll the terminal again (`kioskctl enroll`)"

// corrupt is the refusal of a damaged store: KindCorrupt, naming the file and the way out, and
// matching boltfile.ErrDamaged.
func corrupt(path string, err error) error {
	problem := err.Error()
	var de *boltfile.DamageError
	if errors.As(err, &de) {
		problem = de.Problem
	}
	return &Error{Kind: KindCorrupt, Op: "open store", Err: &boltfile.DamageError{Path: path,
		Problem: "the store is damaged (" + problem + "); " + RecoverAdvice}}
}

// checkIntact refuses a file shorter than its own pages or whose page tree does not hold
// together. It walks every page (bbolt's Check); a panic or memory fault on the way is damage.
func (s *Store) checkIntact() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return &Error{Kind: KindIO, Op: "open store", Err: fmt.Errorf("store %s: %w", s.path, err)}
	}
	err = boltfile.Guard(s.path, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if tx.Size() > fi.Size() {
				return fmt.Errorf("file is %d bytes but its pages need %d (truncated)", fi.Size(), tx.Size())
			}
			for cerr := range tx.Check() {
				return cerr
			}
			return nil
		})
	})
	if err != nil {
		return corrupt(s.path, err)
	}
	return nil
}

func (s *Store) migrate() error {
	var version int
	if err := s.db.View(func(tx *bolt.Tx) error {
		version = readSchema(tx)
		return nil
	}); err != nil {
		return fmt.Errorf("read schema of %s: %w", s.path, err)
	}
	ms := migrations()
	if version > len(ms) {
		return &Error{Kind: KindCorrupt, Op: "open store", Err: fmt.Errorf(
			"store %s has schema version %d, newer than this program's %d: install a newer Tether", s.path, version, len(ms))}
	}
	if version == len(ms) {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for v := version; v < len(ms); v++ {
			if err := ms[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(uint64(len(ms))))
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	return nil
}

func readSchema(tx *bolt.Tx) int {
	meta := tx.Bucket([]byte(bMeta))
	if meta == nil {
		return 0
	}
	v := meta.Get([]byte(kSchema))
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path is the store file's path.
func (s *Store) Path() string { return s.path }

// Epoch is the random id made when this store was created; sequence numbers are unique within it.
func (s *Store) Epoch() (string, error) {
	var epoch string
	err := s.view(func(tx *bolt.Tx) error {
		epoch = string(tx.Bucket([]byte(bMeta)).Get([]byte(kEpoch)))
		return nil
	})
	return epoch, err
}

// update runs fn in one read-write transaction; any error rolls back everything fn wrote.
func (s *Store) update(op string, fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return errIO(op, s.db.Update(fn))
}

// errRolledBack ends a writable transaction that must change nothing.
var errRolledBack = errors.New("rolled back")

// inspect runs fn in a writable transaction that is always rolled back. A page check in a
// read-only transaction races the commits made meanwhile: pages they free, the reader's
// snapshot still reaches, and bbolt reports them "reachable freed". Holding the writer lock
// for the check keeps the freelist and the snapshot the same.
func (s *Store) inspect(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRolledBack
	})
	if errors.Is(err, errRolledBack) {
		return nil
	}
	return err
}

// view runs fn in one read-only transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(fn)
}

// getJSON decodes bucket[key] into v; found is false when the key is absent.
func getJSON(tx *bolt.Tx, bucket, key string, v any) (found bool, err error) {
	raw := tx.Bucket([]byte(bucket)).Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, &Error{Kind: KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: %w", key, err)}
	}
	return true, nil
}

// putJSON encodes v into bucket[key].
func putJSON(tx *bolt.Tx, bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %q: %w", bucket, key, err)
	}
	if err := tx.Bucket([]byte(bucket)).Put([]byte(key), raw); err != nil {
		return fmt.Errorf("write %s record %q: %w", bucket, key, err)
	}
	return nil
}

// addCount adds delta to a counter in meta and returns the new value.
func addCount(tx *bolt.Tx, key string, delta int64) (int64, error) {
	n := readCount(tx, key) + delta
	if err := tx.Bucket([]byte(bMeta)).Put([]byte(key), u64(uint64(n))); err != nil {
		return 0, fmt.Errorf("update %s: %w", key, err)
	}
	return n, nil
}

func readCount(tx *bolt.Tx, key string) int64 {
	v := tx.Bucket([]byte(bMeta)).Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
