package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// plainStore hides every optional capability of a store (kv.Notifier): a gateway on it hears
// of no takeover and is held to one connection per terminal by fencing alone.
type plainStore struct{ kv.Store }

// twoGateways is two relay gateways on one R3 stream of a real 3-node cluster, each through its
// own node and its own 127.0.0.1 listener, as relayd -store nats://… runs them. Pings are
// an hour apart, so that only a takeover closes a connection. wrapA, if set, wraps gateway A's
// store.
func twoGateways(t *testing.T, wrapA func(kv.Store) kv.Store) (a, b *env) {
	t.Helper()
	c := natstest.Start(t)
	stA, stB := jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")
	var sA kv.Store = stA
	if wrapA != nil {
		sA = wrapA(stA)
	}
	a = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval = sA, time.Hour })
	b = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval = stB, time.Hour })
	a.seed()
	if _, _, err := a.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// via is the terminal as it reaches another gateway: the same key, epoch and seqs.
func (tm *term) via(e *env) *term {
	cp := *tm
	cp.e = e
	return &cp
}

// outcome reads a connection until an ack or its close: what the terminal sees of a batch.
func outcome(t *testing.T, c *websocket.Conn) (ack *wire.Ack, closed *websocket.CloseError) {
	t.Helper()
	ack, closed, err := readOutcome(c)
	if err != nil {
		t.Fatal(err)
	}
	return ack, closed
}

// readOutcome is outcome for a goroutine other than the test's.
func readOutcome(c *websocket.Conn) (*wire.Ack, *websocket.CloseError, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				return nil, nil, fmt.Errorf("connection ended without a close frame: %w", err)
			}
			return nil, &ce, nil
		}
		f, err := wire.DecodeFrame(b)
		if err != nil {
			return nil, nil, fmt.Errorf("decode frame: %w", err)
		}
		if f.Type == wire.TypeAck {
			return f.Ack, nil, nil
		}
	}
}

// charges counts the stored charge items of a terminal by item id, and checks the inmate's
// balance against one debit per distinct charge: nothing doubled, nothing lost.
func checkCharges(t *testing.T, e *env, id string, want map[string]kiosk.Cents) {
	t.Helper()
	items, err := e.r.Items(ItemFilter{TerminalID: id, Kind: wire.UpCharge})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, it := range items {
		seen[it.ID]++
	}
	var spent kiosk.Cents
	for itemID, cents := range want {
		if seen[itemID] != 1 {
			t.Errorf("charge item %s stored %d times, want once", itemID, seen[itemID])
		}
		spent += cents
	}
	if len(items) != len(want) {
		t.Errorf("%d charge items stored, want %d", len(items), len(want))
	}
	var bal Balance
	e.must(http.StatusOK, "GET", "/admin/v1/balances/A1", nil, &bal)
	if bal.BalanceCents != 1000-spent {
		t.Errorf("balance %d cents, want %d (1000 deposited, %d charged once each)", bal.BalanceCents, 1000-spent, spent)
	}
}

// A terminal on gateway A connects again to gateway B (its old link half-open, say): A closes
// its connection as replaced at once, with nothing written on it, and B serves the terminal,
// downlink included, with every item stored once and no downlink sent to it twice.
func TestNewerConnectionOnAnotherGatewayClosesTheOlder(t *testing.T) {
	a, b := twoGateways(t, nil)
	tm := a.enroll(wire.ModeKiosk, "")
	want := map[string]kiosk.Cents{}
	chargeVia := func(c *tconn, session string) {
		t.Helper()
		it := tm.item(wire.UpCharge, charge("A1", session, 1, 5))
		if ack := c.batch(it); ack.Seq != tm.seq || len(ack.Rejected) != 0 {
			t.Fatalf("ack %+v, want seq %d", ack, tm.seq)
		}
		want[it.ID] = 5
	}
	ca := tm.connect(t, 0)
	chargeVia(ca, "s1")
	var n wire.Notice
	a.must(http.StatusCreated, "POST", "/admin/v1/notices", map[string]any{"facility_id": "north", "text": "first"}, &n)
	first := ca.waitDown(wire.DownNotice, nil)
	ca.ackDown(first.Seq) // applied by the terminal; A holds it in memory only

	cb := tm.via(b).connect(t, first.Seq)
	start := time.Now()
	expectClose(t, ca.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
	t.Logf("gateway A closed the older connection %v after B's welcome", time.Since(start))

	chargeVia(cb, "s2")
	b.must(http.StatusCreated, "POST", "/admin/v1/notices", map[string]any{"facility_id": "north", "text": "second"}, &n)
	second := cb.waitDown(wire.DownNotice, nil)
	if second.Seq <= first.Seq {
		t.Fatalf("gateway B sent downlink %d, at or below the %d the terminal applied", second.Seq, first.Seq)
	}
	for _, d := range cb.down {
		if d.Seq <= first.Seq {
			t.Errorf("gateway B sent downlink %d (%s) again, which the terminal applied on A", d.Seq, d.Kind)
		}
	}
	checkCharges(t, a, tm.id, want)
}

// Fencing alone (gateway A hears of no takeover): once B stored a batch of the terminal (so its
// claim committed), a batch sent on A's older connection is not stored or acknowledged there;
// A closes it as replaced, and the terminal's resend through B is stored once.
func TestSupersededConnectionStoresNothing(t *testing.T) {
	a, b := twoGateways(t, func(s kv.Store) kv.Store { return plainStore{s} })
	tm := a.enroll(wire.ModeKiosk, "")
	ca := tm.connect(t, 0)
	first := tm.item(wire.UpCharge, charge("A1", "s1", 1, 5))
	if ack := ca.batch(first); ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	cb := tm.via(b).connect(t, 0)
	second := tm.item(wire.UpCharge, charge("A1", "s2", 1, 3))
	if ack := cb.batch(second); ack.Seq != 2 {
		t.Fatalf("ack through B %+v", ack)
	}

	late := tm.item(wire.UpCharge, charge("A1", "s3", 1, 7))
	send(t, ca.c, wire.Batch{Epoch: tm.epoch, Items: []wire.Item{late}})
	ack, closed := outcome(t, ca.c)
	if ack != nil {
		t.Fatalf("the superseded connection on A acknowledged %+v", *ack)
	}
	if closed.Code != websocket.StatusPolicyViolation || closed.Reason != wire.ReasonReplaced {
		t.Fatalf("A closed the superseded connection with %d %q, want %d %q", closed.Code, closed.Reason,
			websocket.StatusPolicyViolation, wire.ReasonReplaced)
	}
	if got, _ := a.r.Items(ItemFilter{TerminalID: tm.id, Kind: wire.UpCharge}); len(got) != 2 {
		t.Fatalf("%d charges stored after the superseded batch, want the 2 before it", len(got))
	}
	if ack := cb.batch(late); ack.Seq != 3 || len(ack.Rejected) != 0 {
		t.Fatalf("resend through B: ack %+v, want seq 3", ack)
	}
	checkCharges(t, a, tm.id, map[string]kiosk.Cents{first.ID: 5, second.ID: 3, late.ID: 7})
}

// Both connections send the same batch at the same moment (the terminal resends on B what A
// has not acknowledged, plus more): whatever order the gateways commit in, A either
// acknowledges before B's claim or is closed as replaced, B acknowledges everything, and
// every charge is stored and debited once.
func TestBothGatewaysStoreAtOnce(t *testing.T) {
	a, b := twoGateways(t, nil)
	tm := a.enroll(wire.ModeKiosk, "")
	want := map[string]kiosk.Cents{}
	ackedOnA, replaced := 0, 0
	for round := range 6 {
		ca := tm.connect(t, 0)
		// A's claim is written on a goroutine after the welcome; the newer connection is the
		// one whose claim commits last. A terminal's next connection comes after its last one
		// was lost, long after that claim: wait for it here too, or B's claim may commit first
		// and B, the connection the terminal really uses, is the one replaced (it reconnects).
		testwait.Until(t, "A's claim of the terminal", func() bool { return ownedBy(t, a, tm.id) })
		items := []wire.Item{tm.item(wire.UpCharge, charge("A1", fmt.Sprintf("r%d", round), 1, 1)),
			tm.item(wire.UpCharge, charge("A1", fmt.Sprintf("r%d", round), 2, 1))}
		more := tm.item(wire.UpCharge, charge("A1", fmt.Sprintf("r%d", round), 3, 1))
		for _, it := range append(items, more) {
			want[it.ID] = 1
		}
		type result struct {
			ack    *wire.Ack
			closed *websocket.CloseError
			err    error
		}
		done := make(chan result, 1)
		go func() {
			b, _ := wire.Encode(wire.Batch{Epoch: tm.epoch, Items: items})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ca.c.Write(ctx, websocket.MessageText, b); err != nil {
				done <- result{} // closed before the batch went: nothing to check
				return
			}
			ack, closed, err := readOutcome(ca.c)
			done <- result{ack, closed, err}
		}()
		cb := tm.via(b).connect(t, 0)
		ack := cb.batch(append(items, more)...)
		if ack.Seq != tm.seq || len(ack.Rejected) != 0 {
			t.Fatalf("round %d: B's ack %+v, want seq %d", round, ack, tm.seq)
		}
		res := <-done
		switch {
		case res.err != nil:
			t.Fatalf("round %d: connection on A: %v", round, res.err)
		case res.ack != nil:
			ackedOnA++
			expectClose(t, ca.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
		case res.closed != nil:
			if res.closed.Code != websocket.StatusPolicyViolation || res.closed.Reason != wire.ReasonReplaced {
				t.Fatalf("round %d: A closed with %d %q, want replaced", round, res.closed.Code, res.closed.Reason)
			}
			replaced++
		}
		cb.c.Close(websocket.StatusNormalClosure, "")
		tm.e = a // the next round starts on A again
	}
	t.Logf("A acknowledged before the takeover in %d rounds, was replaced first in %d", ackedOnA, replaced)
	checkCharges(t, a, tm.id, want)
}

// The default relay on its own bbolt file has no other gateway: a connection claims nothing
// and its hello writes nothing (a reconnect storm costs no write transaction), and a newer
// connection still replaces an older one.
func TestOwnFileRelayClaimsNothing(t *testing.T) {
	e := newEnv(t, func(cfg *Config) { cfg.Store = nil })
	e.seed()
	tm := e.enroll(wire.ModeKiosk, "")
	before := e.r.writeTxs.Load()
	old := tm.connect(t, 0)
	tm.connect(t, 0)
	expectClose(t, old.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
	if n := e.r.writeTxs.Load() - before; n != 0 {
		t.Errorf("two hellos took %d write transactions, want none", n)
	}
	if e.r.gateway != nil {
		t.Errorf("a relay on its own file has a gateway id")
	}
}

// Two relays sharing one boltkv store in one process (kv.Notifier in process): the same rule
// holds without NATS, and the newer connection syncs.
func TestNewerConnectionOnAnotherRelayOfOneBoltStore(t *testing.T) {
	st, err := boltkv.Open(filepath.Join(t.TempDir(), "shared.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval = st, time.Hour })
	b := newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval = st, time.Hour })
	a.seed()
	tm := a.enroll(wire.ModeKiosk, "")
	ca := tm.connect(t, 0)
	if ack := ca.batch(tm.item(wire.UpAudit, sessionStarted("A1", "s1"))); ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	cb := tm.via(b).connect(t, 0)
	expectClose(t, ca.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
	if ack := cb.batch(tm.item(wire.UpAudit, sessionStarted("A1", "s2"))); ack.Seq != 2 {
		t.Fatalf("ack through the other relay %+v", ack)
	}
	if got, _ := b.r.Items(ItemFilter{TerminalID: tm.id}); len(got) != 2 {
		t.Fatalf("%d items stored, want 2", len(got))
	}
}

// ownedBy reports whether the terminal's owner record names gateway e.
func ownedBy(t *testing.T, e *env, id string) bool {
	t.Helper()
	var rec []byte
	if err := e.r.view("read owner", func(tx kv.Tx) error {
		rec = bytes.Clone(tx.Bucket([]byte(bOwners)).Get([]byte(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return len(rec) > gatewayIDLen && bytes.Equal(rec[:gatewayIDLen], e.r.gateway)
}
