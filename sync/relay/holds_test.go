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
	l, err := natstest.Placed(ctx, func() (*jsfaclog.Log, error) { return jsfaclog.Open(ctx, c.Connect(1), jsfaclog.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
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
