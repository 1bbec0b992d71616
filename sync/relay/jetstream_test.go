package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	dto "github.com/prometheus/client_model/go"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// jetStore opens a kv store on a stream of its own (name) on cluster c, as a gateway would,
// and waits until the stream's three replicas are ready.
func jetStore(t testing.TB, c *natstest.Cluster, node int, name string) *jskv.Store {
	t.Helper()
	nc := c.Connect(node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A cluster just started may have its meta leader before it knows its peers, and then
	// refuses an R3 stream ("no suitable peers for placement", 10005): poll until it places it.
	// As relayd opens it (cmd/relayd/store.go): bucket markers cached.
	o := jskv.Options{Stream: name, Prefix: name, CacheBucketMarkers: true, WatchRoots: WatchedRoots(), SteadyRoots: SteadyRoots()}
	s, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, o) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, name)
	return s
}

// A group of writes that together exceed what JetStream commits at once (1,000 messages) is
// split and committed in parts: every caller's write lands, and only a write too large on its
// own fails, alone, with kv.ErrTxTooLarge.
func TestGroupCommitSplitsWhatIsTooLarge(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "split")
	ctx := context.Background()
	if err := st.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	var txs int
	cm := &committer{db: st, ctx: ctx, txs: func() { txs++ }}
	write := func(name string, keys int) *writeCall {
		return &writeCall{f: &fanout{}, done: make(chan error, 1), fn: func(tx kv.Tx, _ *fanout) error {
			b := tx.Bucket([]byte("b"))
			for i := range keys {
				if err := b.Put(fmt.Appendf(nil, "%s/%04d", name, i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}}
	}
	// Four writes of 300 keys (1,200 together) and one of 1,200 on its own, queued as one group.
	calls := []*writeCall{write("a", 300), write("b", 300), write("huge", 1200), write("c", 300), write("d", 300)}
	cm.queue, cm.running = append([]*writeCall(nil), calls...), true
	cm.run()
	for i, call := range calls {
		err := <-call.done
		if i == 2 {
			if !errors.Is(err, kv.ErrTxTooLarge) {
				t.Errorf("the write of 1,200 keys: %v, want kv.ErrTxTooLarge", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := st.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("b")).KeyN(); n != 4*300 {
			t.Errorf("the bucket holds %d keys, want the 1,200 of the four writes that fit", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if cm.limit >= len(calls) || cm.limit < 1 {
		t.Errorf("group limit after a split: %d, want between 1 and %d", cm.limit, len(calls)-1)
	}
	t.Logf("%d transactions, group limit now %d", txs, cm.limit)
}

// Under steady load the group commit sizes its groups by what the last one wrote, and the
// first group, sized by nothing yet, stops halfway when what it wrote so far says the whole
// would not fit: no group runs over JetStream's bound, where each refusal had cost a whole
// group's reads and work. Four rounds of 60 writes of 30 keys each (1,800 messages a round,
// 1,000 at most a commit).
func TestGroupCommitSizesGroupsToTheBound(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "sized")
	ctx := context.Background()
	if err := st.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	var txs int
	cm := &committer{db: st, ctx: ctx, txs: func() { txs++ }}
	const rounds, calls, keys = 4, 60, 30
	for round := range rounds {
		var queued []*writeCall
		for i := range calls {
			queued = append(queued, &writeCall{f: &fanout{}, done: make(chan error, 1), fn: func(tx kv.Tx, _ *fanout) error {
				b := tx.Bucket([]byte("b"))
				for k := range keys {
					if err := b.Put(fmt.Appendf(nil, "%02d/%02d/%02d", round, i, k), []byte("v")); err != nil {
						return err
					}
				}
				return nil
			}})
		}
		cm.queue, cm.running = queued, true
		cm.run()
		for i, call := range queued {
			if err := <-call.done; err != nil {
				t.Fatalf("round %d, write %d: %v", round, i, err)
			}
		}
	}
	if err := st.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("b")).KeyN(); n != rounds*calls*keys {
			t.Errorf("the bucket holds %d keys, want %d", n, rounds*calls*keys)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	refused := st.Stats().TooLarge
	t.Logf("%d transactions, %d refused as too large, group limit now %d", txs, refused, cm.limit)
	if refused != 0 {
		t.Errorf("%d group commits refused as too large over %d rounds, want none", refused, rounds)
	}
	// A group at the limit fits (30 messages a write, and the bucket's version), and is not
	// much smaller than what fits (33 writes).
	if cm.limit*keys+1 > 1000 || cm.limit < 20 {
		t.Errorf("group limit %d: %d messages a group, want 600 to 1,000", cm.limit, cm.limit*keys+1)
	}
}

// onJetStream puts the relay of a test env on a stream of its own on a fresh 3-node cluster
// (natstest), through node 0: newEnv(t, onJetStream(t)). The store outlives env.restart, as
// the stream outlives a gateway.
func onJetStream(t testing.TB) func(*Config) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "relay")
	return func(cfg *Config) { cfg.Store = st }
}

// A relay on JetStream keeps what it stored across a restart (a gateway going away and
// coming back), and refuses a file backup it cannot make, saying why, before sending a byte.
func TestRelayOnJetStreamKeepsItsState(t *testing.T) {
	e := newEnv(t, onJetStream(t))
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	it := k.item(wire.UpCharge, charge("A1", "s1", 0, 5))
	if ack := c.batch(it); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	before, err := e.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	e.restart()
	if b, err := e.r.Balance("A1"); err != nil || b != before {
		t.Fatalf("balance after restart = %+v, %v; before %+v", b, err, before)
	}
	if stored, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != 1 {
		t.Fatalf("items after restart: %d, %v", len(stored), err)
	}
	// The resend after the restart is recognised: nothing is stored or charged twice.
	c = k.connect(t, 0)
	if ack := c.batch(it); ack.Seq != 1 {
		t.Fatalf("ack of the resend = %+v", ack)
	}
	if b, _ := e.r.Balance("A1"); b != before {
		t.Fatalf("balance after the resend = %+v, want %+v", b, before)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	status, body := e.call("GET", PathBackup, nil)
	if status != http.StatusNotImplemented || !strings.Contains(string(body), "not a bbolt file") {
		t.Fatalf("backup on JetStream: %d %s", status, body)
	}
	if _, err := e.r.Backup(io.Discard); !errors.Is(err, ErrNoFileBackup) {
		t.Fatalf("Backup on JetStream = %v, want ErrNoFileBackup", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, DBFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a relay on JetStream made %s (%v)", DBFile, err)
	}
}

// storeEnv, set to "jetstream", puts every test env of this package on a cluster of its own
// (newEnv): TETHER_RELAY_STORE=jetstream go test ./sync/relay/ -run ...
const storeEnv = "TETHER_RELAY_STORE"

// idsEnv, set to "facility", makes every test env's bbolt file keep item ids by facility, as
// a shared store does (Config.FacilityIDs): TETHER_RELAY_IDS=facility go test ./sync/relay/
const idsEnv = "TETHER_RELAY_IDS"

// bboltOnly skips a test that needs the bbolt file (it edits relay.db behind the relay's
// back, or copies it) when the package's tests run on JetStream (storeEnv).
func bboltOnly(t testing.TB) {
	t.Helper()
	if os.Getenv(storeEnv) == "jetstream" {
		t.Skip("needs the relay's bbolt file")
	}
}

// onJetStreamToo are the tests that run on JetStream as well as bbolt in every `go test` of
// this package: syncing both ways, exactly-once (resends, reused and skipped seqs, credits,
// refunds, one deposit ref), the group committer, restarts, terminal lifecycles
// (re-enrollment, wipes, restores) and the facility downlink log. With TETHER_RELAY_STORE=jetstream every test of the
// package runs on JetStream, but for those marked bboltOnly.
var onJetStreamToo = []string{
	"TestSyncEndToEnd", "TestSnapshotTabletAndMove", "TestUsageOnlyForTheTerminalsOwnInmates",
	"TestSeqsKnownFromItemRecords", "TestSchema11SeqRecordsStillRead",
	"TestRestartKeepsEverything", "TestCloseGoingAway",
	"TestReenrollSameKey", "TestTechniciansGoToKiosksOnly", "TestWipedTerminalGetsACompleteSnapshot",
	"TestSnapshotRemovesTechniciansOffTheRoster",
	"TestReenrollNewKeyNamesTheTerminalItWas", "TestReviewReachesTheStoreAfterTwoReenrollments",
	"TestRestoredHelloSnapshotsOncePerEpoch",
	"TestGroupCommitRerunsAfterAFailure", "TestGroupCommitDepositsOneRef",
	"TestCreditsMustMatchACharge", "TestSequenceConflictNeedsNewEpoch", "TestGapListedAndNotAcknowledged",
	"TestMessageIDReused", "TestRefundLimitsAndOnce", "TestVerifyCleanRelayAndLedger",
	"TestItemLogOneRecordPerBatch",
	"TestChargeStoredOnceForTheFacility", "TestFacilityLogPrunedOnceEveryReaderPassed", "TestNewKioskGetsAnOlderItemOnce",
}

var topPass, topSkip = regexp.MustCompile(`(?m)^--- PASS: `), regexp.MustCompile(`(?m)^--- SKIP: `)

// TestOnJetStreamToo runs onJetStreamToo again, each on a relay over an R3 stream of a
// 3-node cluster of its own, in a child process of this test binary with storeEnv set (the
// store is chosen per process, as newEnv is called deep inside each test).
func TestOnJetStreamToo(t *testing.T) {
	if os.Getenv(storeEnv) != "" {
		t.Skip("already running on the store " + os.Getenv(storeEnv))
	}
	runAgainWith(t, storeEnv+"=jetstream", onJetStreamToo)
}

// Verify on JetStream reads the stream once, in order (kv.WholeView), not each key from the
// leader and then again: a state's store has millions of keys. It still sees what a relay
// would not let happen, written behind the relay's back.
func TestVerifyOnJetStreamReadsTheStreamOnce(t *testing.T) {
	e := newEnv(t, onJetStream(t))
	e.seed()
	e.letterContact("A1", "pal")
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	for i := range 5 {
		c.batch(k.item(wire.UpCharge, charge("A1", fmt.Sprintf("s%d", i), 0, 5)),
			k.item(wire.UpMessage, kiosk.Message{ID: fmt.Sprintf("m%d", i), InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "hi"}))
	}
	st := e.cfg.Store.(*jskv.Store)
	before := st.Stats()
	rep, err := e.r.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	after := st.Stats()
	// Through a whole view, which asks the leader for no key (jskv's
	// TestWholeViewSeesWhatAViewSees counts that; here the kiosk's connection reads too).
	if after.WholeViews != before.WholeViews+1 || after.WholeMessages <= before.WholeMessages {
		t.Errorf("verify made %d whole views reading %d messages, want 1 reading the store",
			after.WholeViews-before.WholeViews, after.WholeMessages-before.WholeMessages)
	}
	if err := st.Update(context.Background(), forgeMoney); err != nil {
		t.Fatal(err)
	}
	mustFindForgedMoney(t, e.r)
}

// A large batch (200 letters; a full batch of them is beyond the frame limit) writes more
// than one JetStream commit holds: the relay stores it
// in parts and answers one ack for the whole, with the refusals of every part, and each letter
// is stored once.
func TestFullBatchOnJetStream(t *testing.T) {
	e := newEnv(t, onJetStream(t))
	e.seed()
	e.letterContact("A1", "pal")
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	const n = 200
	var items []wire.Item
	for i := range n {
		peer := "pal"
		if i == 1 || i == n-2 {
			peer = "nobody" // refused, one in each half
		}
		items = append(items, k.item(wire.UpMessage, kiosk.Message{ID: fmt.Sprintf("m%03d", i), InmateID: "A1", Box: kiosk.BoxOutbox, Peer: peer, Body: "hi"}))
	}
	ack := c.batch(items...)
	want := []wire.Rejection{{Seq: 2, Reason: wire.RefuseUnknownContact}, {Seq: n - 1, Reason: wire.RefuseUnknownContact}}
	if ack.Seq != n || !slices.Equal(ack.Rejected, want) {
		t.Fatalf("ack = seq %d, rejected %+v; want seq %d, rejected %+v", ack.Seq, ack.Rejected, n, want)
	}
	// Sent again (the ack lost): nothing is stored twice, and both refusals are listed again.
	again := c.batch(items...)
	if again.Seq != ack.Seq || !slices.Equal(again.Rejected, want) {
		t.Fatalf("ack of the resend = %+v", again)
	}
	stored, err := e.r.Items(ItemFilter{TerminalID: k.id, Kind: wire.UpMessage})
	if err != nil || len(stored) != n {
		t.Fatalf("stored %d letters (%v), want %d", len(stored), err, n)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// A gateway on JetStream exports what its store did (tether_store_kv_total), so that the
// cause of a slow gateway (conflicts, leader round trips, listings) is read off its metrics:
// a stored batch moves the commits, reads and messages committed.
func TestStoreCountsInMetrics(t *testing.T) {
	e := newEnv(t, onJetStream(t))
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	before := e.scrape()
	if ack := c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5))); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	after := e.scrape()
	for _, op := range []string{"commit", "read", "message"} {
		l := map[string]string{"op": op}
		if value(after, "tether_store_kv_total", l) <= value(before, "tether_store_kv_total", l) {
			t.Errorf("tether_store_kv_total{op=%q} did not move: %v -> %v", op,
				value(before, "tether_store_kv_total", l), value(after, "tether_store_kv_total", l))
		}
	}
}

// The fleet's gauges on JetStream come from replicas: a scrape makes no leader read (a View
// of every terminal made some sixteen a terminal at each scrape of each gateway), and shows
// the terminals as they are once the replicas have them. The scrape is of a second gateway
// with no connection of its own: the store's counts are a gateway's, and a connection's own
// reads (its downlink writer's first View) would land among the scrape's.
func TestFleetGaugesReadReplicas(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "fleet") })
	e.seed()
	var ks []*term
	for range 3 {
		ks = append(ks, e.enroll(wire.ModeKiosk, ""))
	}
	conn := ks[0].connect(t, 0)
	conn.batch(ks[0].item(wire.UpDeviceStatus, kiosk.Health{Software: "tether kioskd test", ItemsWaiting: 2,
		Devices: []kiosk.DeviceHealth{{Name: "badge reader", Role: "badge", State: "connected"}}}))
	if got := value(e.scrape(), "tether_terminal_connected", map[string]string{"terminal": ks[0].id}); got != 1 {
		t.Errorf("the connected terminal: connected = %v on its gateway, want 1", got)
	}
	st := jetStore(t, c, 1, "fleet")
	other := newEnv(t, func(cfg *Config) { cfg.Store = st })
	var fams map[string]*dto.MetricFamily
	testwait.UntilSaw(t, "the other gateway's scrape to show the fleet", func() (bool, string) {
		fams = other.scrape()
		enrolled := value(fams, "tether_terminals_enrolled", nil)
		dev := value(fams, "tether_terminal_device_connected", map[string]string{"terminal": ks[0].id, "device": "badge reader"})
		return enrolled == 3 && dev == 1, fmt.Sprintf("%v enrolled, badge reader %v", enrolled, dev)
	})
	before := st.Stats()
	fams = other.scrape()
	after := st.Stats()
	if n := after.Reads - before.Reads; n != 0 {
		t.Errorf("a scrape of 3 terminals made %d leader reads (%d replica misses), want none", n, after.ReplicaMisses-before.ReplicaMisses)
	}
	if after.ReplicaReads <= before.ReplicaReads || after.StaleViews-before.StaleViews != 2 {
		t.Errorf("a scrape: %d replica reads, %d stale views; want some, and 2 (terminals, device reports)",
			after.ReplicaReads-before.ReplicaReads, after.StaleViews-before.StaleViews)
	}
	if got := value(fams, "tether_terminals_enrolled", nil); got != 3 {
		t.Errorf("enrolled = %v, want 3", got)
	}
	if got := value(fams, "tether_terminal_uplink_waiting_items", map[string]string{"terminal": ks[0].id}); got != 2 {
		t.Errorf("items waiting = %v, want 2 from the report", got)
	}
	if got := value(fams, "tether_store_kv_total", map[string]string{"op": "stale_view"}); got < 2 {
		t.Errorf("tether_store_kv_total{op=stale_view} = %v, want at least 2", got)
	}
}

// A facility's terminals read fresh (the admin API; the console's page right after an
// enrollment or a revocation) cost as much of the store in a state as in one prison: south's
// terminals cost north's list nothing, where the state's list reads every one. On JetStream
// each of those reads is a request to the leader. The console's page only looked at (FleetOf,
// DeviceStatuses) reads the same from replicas, with no request to the leader.
func TestFacilityFleetReadsItsOwnTerminals(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "fleetpage")
	e := newEnv(t, func(cfg *Config) { cfg.Store = st })
	e.seed()
	e.seedSouth()
	north := []string{e.enroll(wire.ModeKiosk, "").id, e.enroll(wire.ModeTablet, "A1").id}
	if err := e.r.Revoke(north[1]); err != nil {
		t.Fatal(err)
	}
	page := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		ts, err := e.r.TerminalsOf("north")
		if err != nil || len(ts) != 2 {
			t.Fatalf("north's terminals: %d (%v), want 2", len(ts), err)
		}
		reads = st.Stats().Reads - before.Reads
		// The console's page, only looked at, reads the same from replicas: no leader read.
		before = st.Stats()
		fleet, err := e.r.FleetOf("north")
		if err != nil || !reflect.DeepEqual(fleet, ts) {
			t.Fatalf("north's fleet from replicas: %+v (%v)\nfresh: %+v", fleet, err, ts)
		}
		if _, err := e.r.DeviceStatuses(north...); err != nil {
			t.Fatal(err)
		}
		after := st.Stats()
		if n := after.Reads - before.Reads; n != 0 || after.ReplicaReads == before.ReplicaReads {
			t.Errorf("north's page from replicas made %d leader reads (%d replica misses) and %d replica reads; want none and some",
				n, after.ReplicaMisses-before.ReplicaMisses, after.ReplicaReads-before.ReplicaReads)
		}
		return reads
	}
	state := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		if _, err := e.r.Terminals(); err != nil {
			t.Fatal(err)
		}
		return st.Stats().Reads - before.Reads
	}
	alone, stateAlone := page(), state()
	for range 6 {
		e.enrollAt("south", wire.ModeKiosk, "")
	}
	withSouth, stateWithSouth := page(), state()
	t.Logf("leader reads: north's list %d, then %d with 6 south kiosks; the state's list %d, then %d",
		alone, withSouth, stateAlone, stateWithSouth)
	if withSouth != alone {
		t.Errorf("north's list made %d leader reads with south's 6 kiosks enrolled, %d before; want the same", withSouth, alone)
	}
	if stateWithSouth <= stateAlone {
		t.Errorf("the state's list made %d leader reads with 6 more kiosks, %d before: the comparison shows nothing", stateWithSouth, stateAlone)
	}
	before := st.Stats()
	if info, found, err := e.r.Terminal(north[1]); err != nil || !found || !info.Revoked {
		t.Fatalf("terminal %s: %+v found %v (%v)", north[1], info, found, err)
	}
	t.Logf("one terminal: %d leader reads", st.Stats().Reads-before.Reads)
}

// The review queue reads the letters held, not the mail the facility ever sent: a hundred
// more letters delivered cost its read nothing. It is read on a second gateway, which no
// terminal uses: the first one's connections read the store meanwhile.
func TestReviewQueueReadsTheHeldLetters(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "reviewq"); cfg.HoldPolicy = HoldByFacility })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	conn := k.connect(t, 0)
	conn.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana")
	send := func(n int) {
		t.Helper()
		var items []wire.Item
		for range n {
			items = append(items, k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "a letter")))
		}
		if ack := conn.batch(items...); len(ack.Rejected) != 0 {
			t.Fatalf("letters: ack %+v", ack)
		}
	}
	send(2) // held: the facility holds letters until it says not
	st := jetStore(t, c, 1, "reviewq")
	other := newEnv(t, func(cfg *Config) { cfg.Store = st; cfg.HoldPolicy = HoldByFacility })
	queue := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		held, err := other.r.HeldOutbound("north")
		if err != nil || len(held) != 2 {
			t.Fatalf("north's queue: %d letters (%v), want 2", len(held), err)
		}
		return st.Stats().Reads - before.Reads
	}
	if err := e.r.SetMonitoring("north", Monitoring{HoldOutbound: false}); err != nil {
		t.Fatal(err)
	}
	// A held letter's body is found by a cursor over the item log, which reads the record
	// after the letter's, if there is one, then steps back: a cost per letter, not per letter
	// sent since.
	send(25)
	first := queue()
	for range 4 {
		send(25)
	}
	after := queue()
	t.Logf("leader reads of north's queue of 2: %d, then %d with 100 more letters delivered since", first, after)
	if after != first {
		t.Errorf("north's queue made %d leader reads after 100 letters delivered, %d before; want the same", after, first)
	}
	before := st.Stats()
	if _, err := other.r.Outbound(OutboundFilter{InmateID: "A1", Status: vocab.MsgDelivered}); err != nil {
		t.Fatal(err)
	}
	t.Logf("A1's delivered letters (125): %d leader reads", st.Stats().Reads-before.Reads)
}

// A facility's contacts screen and the hourly retry of invitations read what they list, not
// the state's contacts and invitations: south's new contacts, approved and invited, cost
// north's screen nothing, and the retry the deletions the last hour left on its list.
func TestContactListsReadTheirOwn(t *testing.T) {
	c := natstest.Start(t)
	spool := t.TempDir()
	e := newEnv(t, func(cfg *Config) {
		cfg.Store = jetStore(t, c, 0, "contactsq")
		cfg.Notifier = SpoolNotifier{Dir: spool}
	})
	e.seed()
	e.seedSouth()
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	contactOf(t, kn, cn, "A1", "c-mom", "Mom", "mom@example.org")
	cn.c.Close(websocket.StatusNormalClosure, "")
	st := jetStore(t, c, 1, "contactsq")
	other := newEnv(t, func(cfg *Config) { cfg.Store = st; cfg.Notifier = SpoolNotifier{Dir: spool} })
	reads := func() (screen, retry int64) {
		t.Helper()
		before := st.Stats()
		if cs, err := other.r.ContactsOf("north"); err != nil || len(cs) != 1 {
			t.Fatalf("north's contacts: %d (%v), want 1", len(cs), err)
		}
		if _, err := other.r.InvitationsOf("c-mom"); err != nil {
			t.Fatal(err)
		}
		mid := st.Stats()
		if sent, _, err := other.r.RetryInvitations(context.Background()); err != nil || sent != 0 {
			t.Fatalf("retry: %d sent (%v), want none", sent, err)
		}
		return mid.Reads - before.Reads, st.Stats().Reads - mid.Reads
	}
	screen, retry := reads()
	for i := range 5 {
		id := fmt.Sprint("c-s", i)
		contactOf(t, ks, cs, "S1", id, "Pal", id+"@example.org")
		if _, err := e.r.ApproveContact(id); err != nil {
			t.Fatal(err)
		}
	}
	screen2, retry2 := reads()
	t.Logf("leader reads: north's contacts screen %d, then %d with 5 south contacts invited; the retry %d, then %d",
		screen, screen2, retry, retry2)
	if screen2 != screen {
		t.Errorf("with 5 south contacts invited: north's screen made %d leader reads, %d before; want the same", screen2, screen)
	}
	// Each invitation sent left a deletion on the list, which a listing lands on and reads
	// until it expires (TombstoneTTL, an hour): the retry reads what was sent in the last hour
	// at most, not every invitation ever made.
	if retry2 > retry+5 {
		t.Errorf("with 5 south invitations sent: the retry made %d leader reads, %d before; want at most 5 more", retry2, retry)
	}
}

// A facility's PREA page reads that facility's reports, not the state's: a hundred reports
// filed in south cost north's page nothing, where the unfiltered export reads every one. It
// is read on a second gateway, which no terminal uses.
func TestPREAPageReadsItsFacilitysReports(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "preaq") })
	e.seed()
	e.seedSouth()
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	file := func(k *term, conn *tconn, inmate string, n int) {
		t.Helper()
		var items []wire.Item
		for range n {
			items = append(items, k.item(wire.UpPREA, msg(uuid.Must(uuid.NewV7()).String(), inmate, kiosk.PREAChannel, "a report")))
		}
		if ack := conn.batch(items...); len(ack.Rejected) != 0 {
			t.Fatalf("reports: ack %+v", ack)
		}
	}
	file(kn, cn, "A1", 2)
	// A report's text is found by a cursor over the item log, which reads the record after
	// the report's, if there is one: south's first reports come after north's before the count.
	file(ks, cs, "S1", 5)
	st := jetStore(t, c, 1, "preaq")
	other := newEnv(t, func(cfg *Config) { cfg.Store = st })
	page := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		reps, err := other.r.PREAReportsOf("north")
		if err != nil || len(reps) != 2 {
			t.Fatalf("north's reports: %d (%v), want 2", len(reps), err)
		}
		return st.Stats().Reads - before.Reads
	}
	export := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		if _, err := other.r.PREAReports(""); err != nil {
			t.Fatal(err)
		}
		return st.Stats().Reads - before.Reads
	}
	first, exportFirst := page(), export()
	for range 4 {
		file(ks, cs, "S1", 25)
	}
	after, exportAfter := page(), export()
	t.Logf("leader reads: north's PREA page (2 reports) %d, then %d with 100 more south reports; the export %d, then %d",
		first, after, exportFirst, exportAfter)
	if after != first {
		t.Errorf("north's PREA page made %d leader reads after south filed 100 reports, %d before; want the same", after, first)
	}
	if exportAfter <= exportFirst {
		t.Errorf("the export made %d leader reads with 100 more reports, %d before: the comparison shows nothing", exportAfter, exportFirst)
	}
}

// The library page's owner counts read the facility's roster, not every inmate of the state:
// fifty more inmates in south cost north's counts nothing. Read on a second gateway.
func TestLibraryOwnersReadTheirRoster(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "ownersq") })
	e.seed()
	e.seedSouth()
	st := jetStore(t, c, 1, "ownersq")
	other := newEnv(t, func(cfg *Config) { cfg.Store = st })
	counts := func() (reads int64) {
		t.Helper()
		before := st.Stats()
		if _, err := other.r.CatalogOwners("north"); err != nil {
			t.Fatal(err)
		}
		return st.Stats().Reads - before.Reads
	}
	first := counts()
	var roster Roster
	for i := range 50 {
		roster.Inmates = append(roster.Inmates, RosterInmate{ID: fmt.Sprint("S", i+1), Name: "Sol", Badges: []string{fmt.Sprint("SB", i+1)},
			PIN: "4567", Language: "en", Status: kiosk.StatusActive})
	}
	if err := e.r.PutRoster("south", roster); err != nil {
		t.Fatal(err)
	}
	after := counts()
	t.Logf("leader reads of north's owner counts: %d, then %d with 50 inmates in south", first, after)
	if after != first {
		t.Errorf("north's owner counts made %d leader reads with 50 south inmates, %d before; want the same", after, first)
	}
}

// A command run beside the gateways (Config.Beside: relayd console-user or verify on -store)
// opens the stream only at this program's schema: it migrates nothing under gateways still
// serving, names what to do for an older or a newer schema and for a stream no gateway made,
// and leaves the schema as it found it.
func TestBesideOpensOnlyTheCurrentSchema(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "beside")
	dir := t.TempDir()
	if _, err := Open(Config{DataDir: dir, Store: st, Beside: true}); err == nil || !strings.Contains(err.Error(), "start a relayd gateway on it first") {
		t.Fatalf("beside on a stream no gateway made: %v", err)
	}
	g, err := Open(Config{DataDir: dir, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	b, err := Open(Config{DataDir: t.TempDir(), Store: st, Beside: true})
	if err != nil {
		t.Fatalf("beside at the current schema: %v", err)
	}
	if err := b.StaffUpdate(func(kv.Bucket) error { return nil }); err != nil {
		t.Fatalf("a write beside the gateway: %v", err)
	}
	b.Close()
	setSchema := func(v uint64) {
		t.Helper()
		if err := st.Update(context.Background(), func(tx kv.Tx) error {
			return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(v))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		version uint64
		want    string
	}{
		{schemaVersion - 1, "older than this program's"},
		{schemaVersion + 1, "newer than this program's"},
	} {
		setSchema(tc.version)
		if _, err := Open(Config{DataDir: t.TempDir(), Store: st, Beside: true}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("beside at schema %d: %v, want %q", tc.version, err, tc.want)
		}
		var now uint64
		if err := st.View(context.Background(), func(tx kv.Tx) error {
			now = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema)))
			return nil
		}); err != nil || now != tc.version {
			t.Errorf("schema after a refused open beside: %d, %v; want %d left alone", now, err, tc.version)
		}
	}
	setSchema(schemaVersion)
}

// A verify on a store it would copy whole into memory is refused, before anything is read,
// when the store is larger than the relay allows (Config.VerifyMaxBytes): at a state's
// terabytes the copy would take the gateway down. Staff calling the admin API are told why.
func TestVerifyRefusesAStoreTooLargeToCopy(t *testing.T) {
	e := newEnv(t, onJetStream(t), func(c *Config) { c.VerifyMaxBytes = 1 })
	e.seed()
	if _, err := e.r.Verify(); vocab.KindOf(err) != vocab.KindConflict || !strings.Contains(err.Error(), "keeps a whole copy of it in memory") {
		t.Fatalf("verify of a store over the bound: %v, want refused", err)
	}
	status, body := e.call("GET", "/admin/v1/verify", nil)
	if status != http.StatusConflict || !strings.Contains(string(body), "relayd -verify-max-mib") {
		t.Fatalf("GET verify over the bound: %d %s", status, body)
	}
	e.cfg.VerifyMaxBytes = 1 << 30
	e.restart()
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify within the bound: %+v, %v", rep, err)
	}
}

// On a shared store an item's id is looked up in its facility's id records of the second
// the id was made (facids.go), named with the batch's other keys and read together: a run
// of new items guesses nothing and reads no id record alone. A queue resent under a new epoch
// through a gateway that has not seen its ids (a kiosk restored from a backup, reconnecting
// elsewhere) is found in those records: no group commit runs again (when ids were guessed
// absent, the first resent id made one), and nothing is stored twice.
func TestNewItemIDsReadTogetherAndAResentQueueFound(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "guess") })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	conn := k.connect(t, 0)
	var sent []wire.Item
	st := e.r.db.(kv.StatsReporter)
	js := e.r.db.(*jskv.Store)
	before, jsBefore := st.KVStats(), js.Stats()
	for i := range 4 {
		it := k.item(wire.UpAudit, kiosk.AuditEvent{ID: fmt.Sprint("ev", i), At: t0, Kind: "login_ok", Actor: "A1"})
		if ack := conn.batch(it); ack.Seq != uint64(i+1) || len(ack.Rejected) != 0 {
			t.Fatalf("new item %d: ack %+v", i, ack)
		}
		sent = append(sent, it)
	}
	after, jsAfter := st.KVStats(), js.Stats()
	if g, n := after.Guessed-before.Guessed, after.Conflicts-before.Conflicts; g != 0 || n != 0 {
		t.Errorf("4 new items: %d ids guessed, %d runs again; want none", g, n)
	}
	t.Logf("4 new items: %d reads one by one, %d together", readsAlone(jsAfter)-readsAlone(jsBefore), readsGrouped(jsAfter)-readsGrouped(jsBefore))
	conn.c.Close(websocket.StatusNormalClosure, "")

	// Restored from a backup, the kiosk resends its queue under a new epoch, one item a
	// batch, through the other gateway.
	other := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 1, "guess") })
	st = other.r.db.(kv.StatsReporter)
	k.e, k.epoch, k.seq = other, "epoch-two", 0
	conn = k.connect(t, 0)
	before = st.KVStats()
	for i, it := range sent {
		k.seq++
		it.Seq = k.seq
		if ack := conn.batch(it); ack.Seq != it.Seq || len(ack.Rejected) != 0 {
			t.Fatalf("resent item %d: ack %+v", i, ack)
		}
	}
	after = st.KVStats()
	if g, n := after.Guessed-before.Guessed, after.Conflicts-before.Conflicts; g != 0 || n != 0 {
		t.Errorf("a queue of 4 resent: %d ids guessed, %d runs again; want none", g, n)
	}
	if stored, err := other.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != 4 {
		t.Fatalf("%d items stored (%v), want the 4 once", len(stored), err)
	}
	if rep, err := other.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// A migration that reads and writes a few keys runs on JetStream in one transaction, as on a
// bbolt file, not in steps: a state's store is not copied whole into -data twice for it (a
// plan stored, marked, applied and dropped). A store at schema 26 opens at this program's
// schema with its history_rate root made, in one commit more than opening a current one.
func TestSmallMigrationsRunInOneTransactionOnJetStream(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "small")
	open := func() (commits int64) {
		t.Helper()
		before := st.KVStats().Commits
		r, err := Open(Config{DataDir: t.TempDir(), Store: st})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return st.KVStats().Commits - before
	}
	open() // made at this program's schema
	current := open()
	if err := st.Update(context.Background(), func(tx kv.Tx) error {
		if err := tx.DeleteBucket([]byte(bHistoryRate)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(26))
	}); err != nil {
		t.Fatal(err)
	}
	migrated := open()
	var version uint64
	var made bool
	if err := st.View(context.Background(), func(tx kv.Tx) error {
		version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema)))
		made = tx.Bucket([]byte(bHistoryRate)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if version != schemaVersion || !made {
		t.Fatalf("after the open: schema %d, history_rate made %v; want %d and made", version, made, schemaVersion)
	}
	if migrated != current+1 {
		t.Errorf("opening the schema 26 store committed %d transactions, a current one %d: want one more, the migration", migrated, current)
	}
}
