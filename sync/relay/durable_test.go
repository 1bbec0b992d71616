package relay

import (
	"encoding/json"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A relay restart (close and open on the same directory) keeps every acknowledged item, the
// dedupe state, remembered refusals and the downlink streams with their cursors.
func TestRestartKeepsEverything(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.letterContact("A1", "pal")
	c := k.connect(t, 0)
	items := []wire.Item{
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "nobody", Body: "hi"}),
		k.item(wire.UpMessage, kiosk.Message{ID: "m2", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "my file"}),
	}
	ack := c.batch(items...)
	if ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseUnknownContact {
		t.Fatalf("ack = %+v", ack)
	}
	// Let the snapshot arrive, apply half of it.
	c.waitDown(wire.DownMessageStatus, nil)
	applied := c.down[len(c.down)/2].Seq
	c.ackDown(applied)
	last := c.lastSeq()
	var unapplied []uint64 // what came after `applied` on this connection: to come again
	for _, it := range c.down {
		if it.Seq > applied {
			unapplied = append(unapplied, it.Seq)
		}
	}
	// An inbound deposit queued while the terminal is away.
	c.c.Close(websocket.StatusNormalClosure, "")
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 700, Ref: "after"}); err != nil {
		t.Fatal(err)
	}

	e.restart()

	stored, err := e.r.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(stored) != 3 {
		t.Fatalf("after restart: %d items, %v", len(stored), err)
	}
	if b, _ := e.r.Balance("A1"); b.BalanceCents != 700-5 {
		t.Fatalf("balance after restart = %+v", b)
	}
	held, _ := e.r.Outbound(OutboundFilter{Status: kiosk.MsgHeld})
	if len(held) != 1 || held[0].ID != "m2" {
		t.Fatalf("held after restart = %+v", held)
	}
	// The terminal crashed before applying the ack: it resends; nothing is stored twice and the
	// refusal is listed again.
	c = k.connect(t, applied)
	again := c.batch(items...)
	if again.Seq != 3 || len(again.Rejected) != 1 || again.Rejected[0] != (wire.Rejection{Seq: 2, Reason: wire.RefuseUnknownContact}) {
		t.Fatalf("ack after restart = %+v", again)
	}
	if stored, _ := e.r.Items(ItemFilter{TerminalID: k.id}); len(stored) != 3 {
		t.Fatalf("resent items stored again: %d", len(stored))
	}
	// Downlink resumes right after what the terminal applied, with no gap and no repeat.
	dep := c.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "after" })
	// Seqs are sparse (a facility's items share one counter, and the kiosk's own charge is not
	// sent back to it): the same items as before, from the first not applied.
	if len(c.down) != len(unapplied)+1 {
		t.Fatalf("resumed with %d items, want the %d not applied and the deposit", len(c.down), len(unapplied))
	}
	for i, seq := range unapplied {
		if c.down[i].Seq != seq {
			t.Fatalf("downlink seq %d at %d, want %d: gap or repeat", c.down[i].Seq, i, seq)
		}
	}
	if dep.Seq <= last || c.down[len(c.down)-1].Seq != dep.Seq {
		t.Fatalf("deposit at seq %d, want it after %d and last", dep.Seq, last)
	}
	c.ackDown(dep.Seq)
	c.c.Close(websocket.StatusNormalClosure, "")

	e.restart()
	info, _ := e.r.Terminals()
	if info[0].DownAcked != dep.Seq || info[0].DownQueued != dep.Seq {
		t.Fatalf("cursor after restart = %+v", info[0])
	}
	// Nothing more to send: a fresh connection gets no downlink, and new items continue the numbering.
	c = k.connect(t, dep.Seq)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1, Ref: "later"}); err != nil {
		t.Fatal(err)
	}
	if it := c.waitDown(wire.DownDeposit, nil); it.Seq != dep.Seq+1 || len(c.down) != 1 {
		t.Fatalf("after restart got %+v", c.down)
	}
}

// Closing the relay closes its terminals with 1001 and a reason.
func TestCloseGoingAway(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		expectClose(t, c.c, websocket.StatusGoingAway, wire.ReasonShutdown)
	}()
	e.close()
	<-done
}

func TestOpenRefusesBadDir(t *testing.T) {
	bboltOnly(t)
	if _, err := Open(Config{}); FieldOf(err) != "data_dir" {
		t.Fatalf("no data dir: %v", err)
	}
	e := newEnv(t)
	if _, err := Open(Config{DataDir: e.dir}); kiosk.KindOf(err) != kiosk.KindConflict {
		t.Fatalf("second open of a used dir: %v", err)
	}
}
