package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/faclog/jsfaclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// openFacLog opens the facilities' log on node of cluster c, once the cluster has placed its
// stream.
// gatewaysOnCluster is two relays on one store in a 3-node cluster, each through a node of its
// own, and the cluster, for the facility log (twoGateways seeds north and pings rarely).
func gatewaysOnCluster(t *testing.T) (*natstest.Cluster, *env, *env) {
	t.Helper()
	c := natstest.Start(t)
	e1 := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "relay") })
	e2 := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 1, "relay") })
	return c, e1, e2
}

// notAcked sends b on c and reads until the gateway closes c, failing if it acknowledges b's
// last item first or neither acknowledges nor closes within ten seconds; it returns the
// close.
func notAcked(t *testing.T, ctx context.Context, c *websocket.Conn, b wire.Batch, who string) error {
	t.Helper()
	send(t, c, b)
	ctx10, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, raw, err := c.Read(ctx10)
		if err != nil {
			if websocket.CloseStatus(err) == -1 {
				t.Fatalf("%s neither acknowledged nor closed: %v", who, err)
			}
			return err
		}
		if f, derr := wire.DecodeFrame(raw); derr == nil && f.Type == wire.TypeAck && f.Ack.Seq >= b.Items[len(b.Items)-1].Seq {
			t.Fatalf("%s acknowledged %+v", who, f.Ack)
		}
	}
}

func openFacLog(ctx context.Context, t testing.TB, c *natstest.Cluster, node int) *jsfaclog.Log {
	t.Helper()
	l, err := natstest.Placed(ctx, func() (*jsfaclog.Log, error) { return jsfaclog.Open(ctx, c.Connect(node), jsfaclog.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// While this relay holds north, a north kiosk's batches and acknowledgements are committed on
// north's held state, not in kv transactions: they are in the facility's log and the held
// state at once, and in the kv state only once projected. The kiosk's next hello reads its
// positions from the held state, so a hello from a restored backup is found though the kv
// state does not know the seqs yet. South's kiosk is served as before. Let go, north's
// writes are all in the kv state, once each: the items listed, the inmate charged once,
// verify clean.
func TestAHeldFacilitysBatchesGoThroughItsHolder(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "relay") })
	e.seed()
	e.seedSouth()
	k, s := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openFacLog(ctx, t, c, 1)
	before := e.balanceOf("A1")
	// The holding's clock is never moved: nothing is projected until north is let go.
	hf, err := e.r.holdFacility(ctx, l, "north", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	high := func(view func(context.Context, func(kv.Tx) error) error) uint64 {
		t.Helper()
		var n uint64
		if err := view(ctx, func(tx kv.Tx) error {
			n = readU64(tx.Bucket([]byte(bDedupe)).Get([]byte(dedupeKey(k.id, k.epoch))))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}

	queue := []wire.Item{
		k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 2}),
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
	}
	kc := k.connect(t, 0)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.logText())
		}
	})
	if ack := kc.batch(queue...); ack.Seq != k.seq || len(ack.Rejected) != 0 {
		t.Fatalf("north's batch: ack %+v", ack)
	}
	kc.c.Close(websocket.StatusNormalClosure, "")
	if got := high(hf.holding.Store().View); got != k.seq {
		t.Fatalf("north's held state holds seq %d of the kiosk, want %d", got, k.seq)
	}
	if got := high(e.r.db.View); got != 0 {
		t.Fatalf("the kv state holds seq %d of north's kiosk before any projection, want 0: its batch was not committed on the held state", got)
	}
	if hf.holding.Behind() == 0 {
		t.Fatal("north's log holds no entry the kv state lacks")
	}

	sc := s.connect(t, 0)
	if ack := sc.batch(s.item(wire.UpCharge, charge("S1", "s2", 0, 7))); ack.Seq != s.seq || len(ack.Rejected) != 0 {
		t.Fatalf("south's batch: ack %+v", ack)
	}
	sc.c.Close(websocket.StatusNormalClosure, "")

	// The kiosk restored from a backup taken before its batch: its hello says seq 1 comes next.
	hc := dial(t, e.wsURL())
	send(t, hc, wire.Hello{TerminalID: k.id, Epoch: k.epoch, UplinkNext: 1, Software: "test"})
	f := read(t, hc)
	if f.Type != wire.TypeChallenge {
		t.Fatalf("got %s, want challenge", f.Type)
	}
	send(t, hc, wire.Auth{Signature: wire.SignAuth(k.priv, k.id, f.Challenge.Nonce)})
	expectClose(t, hc, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)

	if err := e.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	if got := high(e.r.db.View); got != k.seq {
		t.Fatalf("the kv state holds seq %d of north's kiosk after north was let go, want %d", got, k.seq)
	}
	if got := e.balanceOf("A1"); got != before-5 {
		t.Fatalf("A1's balance %d, want %d: charged once", got, before-5)
	}
	items, err := e.r.Items(ItemFilter{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, it := range items {
		stored[it.ID]++
	}
	for _, it := range queue {
		if stored[it.ID] != 1 {
			t.Errorf("item %s (%s) stored %d times, want once", it.ID, it.Kind, stored[it.ID])
		}
	}
	if len(items) != len(queue)+1 {
		t.Errorf("%d items listed, want %d", len(items), len(queue)+1)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	if err := e.r.releaseFacility(ctx, "north"); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Fatalf("north let go twice: %v, want an error saying it is not held", err)
	}
}

// Another gateway claims north while this one holds it, as when north's home moves: this
// gateway's next write for north is refused (faclog.ErrDeposed), never written through a kv
// transaction beside the new holder, and north's connections here close. The kiosk goes on
// at the new holder, which caught the kv state up at its claim: its hello is welcomed, its
// batch is stored there, and once let go every item is stored once and A1 charged for each.
func TestADeposedHolderWritesNothingMore(t *testing.T) {
	c, e1, e2 := gatewaysOnCluster(t)
	e1.seed()
	k := e1.enroll(wire.ModeKiosk, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logOn := func(node int) *jsfaclog.Log {
		return openFacLog(ctx, t, c, node)
	}
	before := e1.balanceOf("A1")
	if _, err := e1.r.holdFacility(ctx, logOn(1), "north", "gw-1", faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
		t.Fatal(err)
	}
	first := k.item(wire.UpCharge, charge("A1", "s1", 0, 5))
	kc := k.connect(t, 0)
	if ack := kc.batch(first); ack.Seq != first.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the first batch: ack %+v", ack)
	}

	if _, err := e2.r.holdFacility(ctx, logOn(2), "north", "gw-2", faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
		t.Fatal(err)
	}
	second := k.item(wire.UpCharge, charge("A1", "s1", 1, 5))
	// refused sends the second charge on c and reads until the gateway closes c, failing if it
	// acknowledges the charge first.
	refused := func(c *websocket.Conn, what string) {
		t.Helper()
		notAcked(t, ctx, c, wire.Batch{Epoch: k.epoch, Items: []wire.Item{second}}, "the deposed gateway, "+what)
	}
	refused(kc.c, "on the connection it held")
	// Sent again to the deposed gateway: refused again.
	refused(k.connect(t, 0).c, "on a new connection")
	if !strings.Contains(e1.logText(), "north was claimed by another gateway") {
		t.Errorf("the deposed gateway's log does not say north was claimed elsewhere:\n%s", e1.logText())
	}

	k.e = e2
	kc = k.connect(t, 0)
	if ack := kc.batch(second); ack.Seq != second.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the batch at the new holder: ack %+v", ack)
	}
	kc.c.Close(websocket.StatusNormalClosure, "")
	if err := e2.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	if got := e2.balanceOf("A1"); got != before-10 {
		t.Fatalf("A1's balance %d, want %d: charged once for each of two minutes", got, before-10)
	}
	items, err := e2.r.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(items) != 2 || items[0].ID != first.ID || items[1].ID != second.ID {
		t.Fatalf("items %+v (%v), want the two charges once each", items, err)
	}
	if rep, err := e2.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// A held facility's writes do not read the connection's owner record: a batch waiting for the
// holder's commit when the terminal connects to another gateway is refused once the holder
// heard that claim (owner.superseded), and the kiosk is charged once.
func TestAClaimHeardElsewhereStopsAHeldConnectionsBatch(t *testing.T) {
	c, e1, e2 := gatewaysOnCluster(t)
	e1.seed()
	k := e1.enroll(wire.ModeKiosk, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := e1.balanceOf("A1")
	hf, err := e1.r.holdFacility(ctx, openFacLog(ctx, t, c, 1), "north", "gw-1", faclog.HoldOptions{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	first := k.item(wire.UpCharge, charge("A1", "s1", 0, 5))
	kc := k.connect(t, 0)
	if ack := kc.batch(first); ack.Seq != first.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the first batch: ack %+v", ack)
	}
	release := holdCommitterOn(t, e1.r, hf.writes)
	second := k.item(wire.UpCharge, charge("A1", "s1", 1, 5))
	send(t, kc.c, wire.Batch{Epoch: k.epoch, Items: []wire.Item{second}})
	queuedItems(t, hf.writes, 1)
	// The terminal comes back on gateway 2, which claims it; gateway 1 hears it and closes the
	// connection whose batch waits.
	k.e = e2
	newer := k.connect(t, 0)
	defer newer.c.Close(websocket.StatusNormalClosure, "")
	expectClose(t, kc.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
	release()
	// The committer takes calls in order: once this one commits, the batch's has run.
	if err := e1.r.updateOn(hf.writes, "after", nil, 0, func(kv.Tx, *fanout) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e1.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	items, err := e1.r.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(items) != 1 || items[0].ID != first.ID {
		t.Fatalf("the terminal's items: %+v, %v (want the first charge alone)", items, err)
	}
	if got := e1.balanceOf("A1"); got != before-5 {
		t.Fatalf("A1's balance %d, want %d (charged once)", got, before-5)
	}
}
