// Package relay is the reference central relay: it enrolls terminals, stores what they forward
// (one bbolt transaction per batch, deduplicated by terminal, epoch and seq), fans facts out to
// each facility's terminals over an ordered, acknowledged downlink, and serves the admin API.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/pinhash"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// HoldPolicy says which outbound messages wait for a reviewer.
type HoldPolicy string

const (
	// HoldAll holds every outbound message for review (the default, like TRULINCS).
	HoldAll HoldPolicy = "all"
	// HoldNone delivers every outbound message at once.
	HoldNone HoldPolicy = "none"
	// HoldByFacility lets each facility decide (PUT /admin/v1/facilities/{f}/monitoring; default hold).
	HoldByFacility HoldPolicy = "facility"
)

// Config wires a Relay; only DataDir is required.
type Config struct {
	// DataDir holds the relay's one bbolt file (unless Store is set) and its content store
	// (unless Content is set); on a Store, a migration's copies while it runs.
	DataDir string
	// Store, if set, is the relay's store instead of DataDir/relay.db: a JetStream stream
	// (sync/relay/kv/jetstream) shared by gateways, say. The relay migrates its schema on it
	// at Open and leaves it open at Close (its opener closes it). Backup needs the bbolt file.
	Store kv.Store
	// Content, if set, is the relay's content store instead of DataDir/content.db: one that
	// gateways of a shared Store share (sync/relay/jscontent), so an object put through one is
	// served by all. The relay leaves it open at Close (its opener closes it).
	Content ContentStore
	// Beside, with Store, opens the relay for a command run beside the gateways of a shared
	// store (relayd console-user, relayd verify): it migrates nothing, refusing a store whose
	// schema is not this program's (a newer command would otherwise migrate the schema under
	// older gateways still serving), and serves no terminal, so it starts no downlink feed, no
	// connection claims and no facility homes.
	Beside bool
	// FacilityIDs makes a bbolt store that holds no item id yet keep them in each facility's
	// id records, as a shared store does (facids.go), so that the suite tests that layout
	// without a cluster. A store keeps the layout it has.
	FacilityIDs bool
	// VerifyMaxBytes bounds the store a Verify reads whole into memory (a store other than
	// bbolt that can tell its size, kv.WholeSizer; default DefaultVerifyMaxBytes): a larger
	// one is refused before a byte is read, since the copy would take the gateway's memory
	// and, at a state's terabytes, the gateway.
	VerifyMaxBytes uint64
	// ItemNumberBlock is how many arrival numbers a relay on Store takes at once (itemnums.go;
	// default defaultItemNumberBlock). On the bbolt file numbers are taken one at a time.
	ItemNumberBlock uint64
	// Gateways, optional, are the base URLs of every gateway of this relay, announced to
	// terminals in welcome (relay_urls) so they can reconnect to another when one is down.
	Gateways []string
	// GatewayURL, optional, is this gateway's own URL among Gateways. With it, on a store
	// shared by gateways, each facility's terminals are sent to one gateway (homes.go,
	// docs/SCALE.md "Facility homes").
	GatewayURL string
	// FacilityLog, optional, is the log this relay holds its store's facilities in
	// (holdall.go; docs/SCALE.md, "The per-facility log"): a facility's group commit is one
	// entry of its log, projected into the store. The relay must be its store's only gateway.
	FacilityLog faclog.Log
	// GroupLinger, with FacilityLog, is how long a busy held facility's committer waits for
	// more batches before it takes a group (commit.go, lingerTarget); zero takes each group at
	// once. relayd sets DefaultGroupLinger.
	GroupLinger time.Duration
	Logf        vocab.Logf
	Clock       clock.Clock
	// AdminToken is the bearer token of the admin API; empty disables the admin API over HTTP
	// (the Go methods still work, e.g. for an embedding demo).
	AdminToken string
	HoldPolicy HoldPolicy
	// EnrollTTL is how long an enrollment code stays valid (default 24h).
	EnrollTTL time.Duration
	// DownLogCap is how far, in numbers of its facility's downlink counter, a terminal's
	// position may lag before it stops holding the facility's log (default DefaultDownLogCap):
	// pruning passes it, and when it comes back it gets a complete snapshot instead of the log
	// (docs/SCALE.md "Downlink", docs/PROTOCOL.md "Snapshot").
	DownLogCap uint64
	// PINParams are the argon2id costs for plain PINs in a roster (zero: pinhash.DefaultParams).
	PINParams pinhash.Params
	// HandshakeTimeout bounds hello+auth on a new connection (default 10s).
	HandshakeTimeout time.Duration
	// HelloTimeout bounds the wait for hello on a new connection (default 3s, at most
	// HandshakeTimeout): an idle socket holds a pending place no longer than that.
	HelloTimeout time.Duration
	// MaxPending bounds connections not yet authenticated (default 64); more are closed at once.
	MaxPending int
	// MaxPendingPerAddr bounds connections not yet authenticated from one source IP address
	// (default 8), so one client cannot take every pending place.
	MaxPendingPerAddr int
	// EnrollReadTimeout bounds reading the body of POST /v1/enroll, which anyone may send
	// (default 10s): a client trickling its body is cut off instead of holding a handler.
	EnrollReadTimeout time.Duration
	// PingInterval is how often an idle connection is pinged (default 30s).
	PingInterval time.Duration
	// NoSync skips fsync; only for benchmarks that measure something else.
	NoSync bool
	// JSONChunksOnly sends content chunks as JSON text frames even to a terminal whose hello
	// offers binary_chunks, as a relay before binary chunks did (for tests of such a pair).
	JSONChunksOnly bool
	// Notifier sends contact invitations (SMTPNotifier, SpoolNotifier); nil keeps each
	// invitation unsent, listed for staff, until one is configured.
	Notifier Notifier
	// InviteTTL is how long an invitation's code is valid (default DefaultInviteTTL, 10 days).
	InviteTTL time.Duration
	// FamilyURL is the address of the family page (/family/) as contacts reach it, put in
	// each invitation.
	FamilyURL string
	// FamilyAttempts bounds the wrong codes one address may try on the family page per
	// FamilyWindow (defaults 10 and one hour).
	FamilyAttempts int
	FamilyWindow   time.Duration
}

// Relay is one relay over one data directory. Its methods are safe for concurrent use.
type Relay struct {
	cfg Config
	// ids is how the store keeps item ids (facids.go)
	ids   facIDs
	db    kv.Store
	logf  vocab.Logf
	clock clock.Clock
	hub   *hub
	// metrics is the relay's own Prometheus registry and series (metrics.go).
	metrics *metrics
	// backups lets one online backup run at a time (backup.go).
	backups backupGate
	// handler serves everything; built once in Open.
	handler http.Handler

	closeOnce sync.Once
	closed    chan struct{}
	// ctx ends when the relay closes: every transaction's context derives from it, so a
	// store that re-runs conflicts (JetStream) gives up at Close instead of at its deadline.
	ctx    context.Context
	cancel context.CancelFunc
	// writes commits every write of the relay, shared between concurrent callers.
	writes *committer
	// itemNums hands out uplink items' arrival numbers (itemnums.go).
	itemNums *itemNumbers
	// numberBlocks is held while this relay, or a facility it holds, takes a block of arrival
	// numbers (itemNumbers.gate).
	numberBlocks chan struct{}
	// held are the facilities this relay holds (holds.go).
	held holdSet
	// writeTxs counts the store's write transactions (what a flood of frames must not drive).
	writeTxs atomic.Uint64
	// facilities and inmates remember the records batches read, decoded (recmemo.go).
	facilities facilityMemo
	inmates    keyedMemo[inmateRec]
	// batchesStored counts the uplink batches stored: the work relayd's collector follows.
	batchesStored atomic.Uint64
	// restoreSnapshots remembers each (terminal, epoch) already sent a snapshot for a restored
	// backup: a terminal that keeps saying so on the same epoch (it should start a new one) is
	// asked again for a new epoch, but does not make the relay build snapshot after snapshot.
	restoreSnapshots sync.Map
	// downPruned is where and when each facility's downlink log was last pruned (facility ->
	// *prunedLog, down.go's pruneFacilityDue).
	downPruned sync.Map
	// downTails is the newest records of each facility's downlink log, which its terminals'
	// writers read instead of the store when they hold all they need (downtail.go).
	downTails downTails
	// feed follows the store's downlink buckets on a store with a watch feed (downfeed.go);
	// nil otherwise.
	feed *downFeed
	// heldBufs and readBufs keep the terminal connections' cork and read buffers between uses
	// (termconn.go).
	heldBufs, readBufs sync.Pool
	// media is the content store (content.go), opened on first use.
	media media
	// inviteMu makes invitation sends one at a time (each mints the code it sends).
	inviteMu sync.Mutex
	// family is the family page's state: its templates and the wrong-code counts per address.
	family *familyPage
	// gateway is this relay's random id as a gateway of a shared store, nil on its own file;
	// unsubOwners ends its subscription to takeovers (owner.go).
	gateway     []byte
	unsubOwners func()
	// homes is where each facility is served among the gateways (homes.go); nil unless
	// GatewayURL is set on a shared store. homesTimer is its next beat, under homesMu;
	// homesWarned, also under it, the disagreeing gateways already logged, and unreleased
	// the owner records whose release failed, by terminal (releaseOwner).
	homes        *homes
	unsubHomes   func()
	unlistenDue  func() // heldelsewhere.go: drains of what other gateways leave due here
	homesMu      sync.Mutex
	homesTimer   clock.Timer
	homesWarned  []string
	unreleased   map[string][]byte
	releasing    atomic.Bool  // a beat's releaseAgain is under way
	finishing    atomic.Bool  // a beat's finishDue is under way
	draining     dueLocks     // fanoutdue.go
	dueNotes     dueNotes     // heldelsewhere.go: drains other gateways asked for
	stateFlushes stateFlushes // statedue.go
	holding      holdLoop     // holdall.go: with Config.FacilityLog
	hooks        testHooks
}

// Open opens (or creates) the relay's store in cfg.DataDir.
func Open(cfg Config) (*Relay, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	switch cfg.HoldPolicy {
	case "":
		cfg.HoldPolicy = HoldAll
	case HoldAll, HoldNone, HoldByFacility:
	default:
		return nil, invalid("open relay", "hold_policy", "%q is not one of all, none, facility", cfg.HoldPolicy)
	}
	if len(cfg.Gateways) > wire.MaxRelayURLs {
		return nil, invalid("open relay", "gateways", "%d, at most %d", len(cfg.Gateways), wire.MaxRelayURLs)
	}
	for i, g := range cfg.Gateways {
		if err := wire.CheckRelayURL(g); err != nil {
			return nil, invalid("open relay", fmt.Sprintf("gateways[%d]", i), "%v", err)
		}
	}
	if cfg.GatewayURL != "" && !slices.Contains(cfg.Gateways, cfg.GatewayURL) {
		return nil, invalid("open relay", "gateway_url", "not one of the %d gateways", len(cfg.Gateways))
	}
	if cfg.FacilityLog != nil && len(cfg.Gateways) > 1 && cfg.GatewayURL == "" {
		return nil, invalid("open relay", "facility_log", "%v: %d gateways are listed", errHoldGateways, len(cfg.Gateways))
	}
	if cfg.FacilityLog != nil && cfg.Beside {
		return nil, invalid("open relay", "facility_log", "a command beside the gateways holds no facility")
	}
	if cfg.DownLogCap == 0 {
		cfg.DownLogCap = DefaultDownLogCap
	}
	if cfg.EnrollTTL <= 0 {
		cfg.EnrollTTL = 24 * time.Hour
	}
	if cfg.PINParams == (pinhash.Params{}) {
		cfg.PINParams = pinhash.DefaultParams()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 3 * time.Second
	}
	cfg.HelloTimeout = min(cfg.HelloTimeout, cfg.HandshakeTimeout)
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 64
	}
	if cfg.MaxPendingPerAddr <= 0 {
		cfg.MaxPendingPerAddr = 8
	}
	if cfg.EnrollReadTimeout <= 0 {
		cfg.EnrollReadTimeout = 10 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.InviteTTL <= 0 {
		cfg.InviteTTL = DefaultInviteTTL
	}
	if cfg.FamilyAttempts <= 0 {
		cfg.FamilyAttempts = 10
	}
	if cfg.FamilyWindow <= 0 {
		cfg.FamilyWindow = time.Hour
	}
	var db kv.Store
	if cfg.Store != nil {
		if cfg.DataDir == "" {
			return nil, invalid("open relay", "data_dir", "a data directory is required (for uploads, a migration's copies and, unless Content is set, the content store)")
		}
		open := migrateStore
		if cfg.Beside {
			open = sameSchema
		}
		if err := open(cfg.Store, cfg.DataDir, "the kv store"); err != nil {
			return nil, err
		}
		db = cfg.Store
	} else {
		bdb, err := openDB(cfg.DataDir, cfg.NoSync)
		if err != nil {
			return nil, err
		}
		db = bdb
	}
	ids, err := openIDLayout(db, cfg.FacilityIDs, cfg.Beside)
	if err != nil {
		if cfg.Store == nil {
			db.Close()
		}
		return nil, &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: err}
	}
	sweepUploads(cfg.DataDir, cfg.Logf) // catalog.go
	r := &Relay{cfg: cfg, db: db, logf: cfg.Logf, clock: cfg.Clock, closed: make(chan struct{}), ids: ids}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.hub = newHub(cfg.MaxPending, cfg.MaxPendingPerAddr)
	r.facilities.max, r.inmates.max = facilityMemoMax, inmateMemoMax
	// One number at a time on the bbolt file, whose one writer contends with nobody; a block
	// per gateway on a shared store (itemnums.go).
	r.numberBlocks = make(chan struct{}, 1)
	r.itemNums = &itemNumbers{block: 1, gate: r.numberBlocks}
	if cfg.Store != nil {
		r.itemNums.block = cfg.ItemNumberBlock
		if r.itemNums.block == 0 {
			r.itemNums.block = defaultItemNumberBlock
		}
	}
	r.writes = &committer{db: db, ctx: r.ctx, txs: func() { r.writeTxs.Add(1) }, nums: r.itemNums, began: r.itemNums.began, ended: r.itemNums.ended,
		applied: r.downTails.committed,
		reserve: func(ctx context.Context, n int) error { return r.itemNums.reserve(ctx, db, n) }}
	if ids.on {
		r.writes.ids = ids.ix
	}
	if cfg.Store != nil && !cfg.Beside {
		// The tails then come from the feed alone, which sees this relay's commits too.
		if r.startDownFeed(); r.feed != nil {
			r.writes.applied = nil
		}
	}
	r.metrics = newMetrics(r)
	if cfg.Store != nil && !cfg.Beside { // a store that other gateways may share: one connection per terminal across them
		err := r.startOwners()
		if err == nil {
			err = r.startHomes()
		}
		if err == nil {
			r.unlistenDue, err = r.listenDue()
		}
		if err != nil {
			r.cancel()
			close(r.closed)
			if r.unsubOwners != nil {
				r.unsubOwners()
			}
			r.stopHomes()
			if r.feed != nil {
				r.feed.stop()
			}
			return nil, err
		}
	}
	if !cfg.Beside && !r.homes.on() {
		// Deposits and fan-outs a crash cut in two (depositdue.go, fanoutdue.go): on a relay
		// of one gateway nothing else is at work on them now. Gateways with homes sweep on
		// their beat instead.
		if err := r.finishDue(r.clock.Now(), 0); err != nil {
			r.logf("relay: finish the deposits and fan-outs cut off before: %v (the next start tries again)", err)
		}
	}
	if cfg.FacilityLog != nil {
		r.startHolding()
	}
	mux := http.NewServeMux()
	r.routeTerminal(mux)
	r.routeAdmin(mux)
	r.routeOps(mux)
	r.routeFamily(mux)
	r.handler = mux
	return r, nil
}

// Close closes every terminal connection (going away) and then the store.
func (r *Relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.closed)
		if r.unsubOwners != nil {
			r.unsubOwners()
		}
		if r.unlistenDue != nil {
			r.unlistenDue()
		}
		r.stopHomes()
		if r.feed != nil {
			r.feed.stop()
		}
		r.hub.closeAll()
		r.stopHolding()
		// The connections' last writes went to their facilities' held states: projected once
		// more as each is let go.
		if herr := r.releaseAll(); herr != nil {
			r.logf("relay: let the held facilities go: %v", herr)
		}
		// After the connections closed: each writes its terminal's last acknowledgement as it
		// goes (flushAck), and that write must still commit.
		r.cancel()
		if r.cfg.Store == nil { // a store from Config is its opener's to close
			if cerr := r.db.Close(); cerr != nil {
				err = fmt.Errorf("close relay store: %w", cerr)
			}
		}
		if cerr := r.closeContent(); cerr != nil && err == nil {
			err = fmt.Errorf("close relay content: %w", cerr)
		}
	})
	return err
}

// Handler serves the terminal websocket (/v1/terminal), enrollment (/v1/enroll) and the admin API (/admin/v1/).
func (r *Relay) Handler() http.Handler { return r.handler }

// BatchesStored is the number of uplink batches stored since Open: while it moves the relay
// drains terminals' queues (relayd runs its collector for speed then, internal/gctune).
func (r *Relay) BatchesStored() uint64 { return r.batchesStored.Load() }

// New is Open, under the name the terminal side's tests first asked for.
func New(cfg Config) (*Relay, error) { return Open(cfg) }

// update runs fn in a read-write transaction shared with other writers (group commit, see
// commit.go) and, once it committed, wakes the terminals fn queued downlink for and writes the
// log lines fn left with the fanout. fn may run more than once and must be safe to re-run.
func (r *Relay) update(op string, fn func(tx kv.Tx, f *fanout) error) error {
	return r.updateKeys(op, nil, 0, fn)
}

// updateKeys is update with keys fn is known to read, for the store to fetch with the rest of
// its group's before the group runs (prefetch.go), and at most how many arrival numbers it
// takes (itemnums.go).
func (r *Relay) updateKeys(op string, keys func() []kv.Key, numbers int, fn func(tx kv.Tx, f *fanout) error) error {
	return r.updateOn(r.writes, op, keys, numbers, fn)
}

// updateOn is updateKeys through the committer w (a held facility's, holds.go).
func (r *Relay) updateOn(w *committer, op string, keys func() []kv.Key, numbers int, fn func(tx kv.Tx, f *fanout) error) error {
	f, err := r.commitOn(w, op, keys, numbers, fn)
	if err != nil {
		return err
	}
	r.afterCommit(op, f)
	return nil
}

// commitOn is updateOn up to the commit and what follows it at once (the log lines, the
// terminals woken): what the call left due, afterCommit does.
func (r *Relay) commitOn(w *committer, op string, keys func() []kv.Key, numbers int, fn func(tx kv.Tx, f *fanout) error) (*fanout, error) {
	f := &fanout{r: r, kvPath: w == r.writes, heldBy: w.facility}
	if f.kvPath {
		inner := fn
		fn = func(tx kv.Tx, f *fanout) error {
			if err := inner(tx, f); err != nil {
				return err
			}
			return f.elsewhere
		}
	}
	if err := w.do(&writeCall{fn: fn, f: f, keys: keys, numbers: numbers}); err != nil {
		return nil, ioErr(op, err)
	}
	for _, l := range f.logs {
		r.logf("%s", l)
	}
	r.metrics.committed(f)
	r.hub.wake(f.woken)
	return f, nil
}

// afterCommit does what call f committed left due: to held facilities, by their writers, and
// the state's records its held transaction wrote.
func (r *Relay) afterCommit(op string, f *fanout) {
	// What the call left due to held facilities is queued now, by their writers. The call
	// itself is done: a failure here leaves the record, which finishDue drains later.
	for facility := range f.due {
		_, err := r.drainDue(facility)
		var he *HeldElsewhereError
		switch {
		case errors.As(err, &he):
			r.notifyDue(facility) // its holder drains it
		case err != nil:
			r.logf("relay: %s: queue its fan-out to facility %s: %v (queued later)", op, facility, err)
		}
	}
	// What the call wrote of the state's records on the held state goes to the kv state now.
	if len(f.stateDue) > 0 {
		if err := r.flushStateDue(f.heldBy, f.stateDue); err != nil {
			r.logf("relay: %s: write the state's records due from facility %s: %v (written later)", op, f.heldBy, err)
		}
	}
}

func (r *Relay) view(op string, fn func(tx kv.Tx) error) error {
	ctx, cancel := r.txContext()
	defer cancel()
	return ioErr(op, r.db.View(ctx, fn))
}

// currentViewFrom is view without one moment's promise (kv.CurrentViewer): each read no
// older than what this gateway wrote or read, nor than pos (kv.Positioner: a position another
// gateway's note handed over; 0 for none), nothing read twice and no run again. For a reader
// that takes each record as of its own moment: a drain of records due, whose every record is
// drained again by whoever left it or by the sweep.
func (r *Relay) currentViewFrom(op string, pos uint64, fn func(tx kv.Tx) error) error {
	ctx, cancel := r.txContext()
	defer cancel()
	return ioErr(op, kv.CurrentViewFrom(ctx, r.db, pos, fn))
}

// staleView is view for figures nobody acts on at once (the fleet's gauges): on a store that
// can (kv.StaleViewer), fn reads cheaper states that need not be one moment's.
func (r *Relay) staleView(op string, fn func(tx kv.Tx) error) error {
	ctx, cancel := r.txContext()
	defer cancel()
	return ioErr(op, kv.StaleView(ctx, r.db, fn))
}

// txTimeout bounds one transaction, re-runs included. A bbolt file looks at it only before it
// starts; a JetStream store re-runs a conflicting transaction until it ends, and fails with
// kv.ErrNoQuorum or kv.ErrTimeout sooner when the cluster cannot answer.
const txTimeout = 30 * time.Second

// txContext is the context of one transaction: txTimeout, and cancelled by Close.
func (r *Relay) txContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, txTimeout)
}

// stopped reports whether Close was called: an error of the store after that is the close,
// not a fault to report.
func (r *Relay) stopped() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}
