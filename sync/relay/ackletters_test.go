package relay

import (
	"slices"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A terminal whose hello says ack_letters learns its letters' states from the acks: held or
// delivered as the relay took them, again (as they stand now) when it sends them again, under
// the same seq or another epoch; it gets no message_status downlink item for them, while the
// inmate's tablet still does, and a staff review still reaches it on the downlink. A terminal
// that does not say so gets acks without states and its statuses on the downlink, as before.
func TestAckCarriesLetterStatesToATerminalThatAsks(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	sender := e.enroll(wire.ModeKiosk, "")
	sender.ackLetters = true
	tablet := e.enroll(wire.ModeTablet, "A1")
	c := sender.connect(t, 0)
	letter := func(id, peer string) wire.Item {
		return sender.item(wire.UpMessage, kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: peer, Body: "my tooth"})
	}
	items := []wire.Item{letter("m1", "dept-medical"), letter("m2", "dept-medical"),
		sender.item(wire.UpCharge, kiosk.Charge{RecordID: "s1/000001", SessionID: "s1", InmateID: "A1", Minute: 1, Cents: 5, At: t0}),
		letter("m3", "nobody")}
	ack := c.batch(items...)
	if ack.Seq != 4 || len(ack.Rejected) != 1 || ack.Rejected[0].Seq != 4 {
		t.Fatalf("ack = %+v", ack)
	}
	if ack.Letters == nil || !slices.Equal(ack.Letters.Held, []uint64{1, 2}) || len(ack.Letters.Delivered) != 0 {
		t.Fatalf("ack letters = %+v, want held 1 and 2", ack.Letters)
	}
	if got := statusesFor(t, e.r, sender.id); len(got) != 0 {
		t.Fatalf("the sender got statuses %q on its downlink", got)
	}
	if got := statusesFor(t, e.r, tablet.id); !equalStrings(got, []string{"m1/held", "m2/held"}) {
		t.Fatalf("the tablet got statuses %q", got)
	}

	// Staff approve m1 and reject m2: the reviews go down to the sender.
	if _, err := e.r.ApproveOutbound("m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.RejectOutbound("m2", "content_policy"); err != nil {
		t.Fatal(err)
	}
	if got := statusesFor(t, e.r, sender.id); !equalStrings(got, []string{"m1/delivered", "m2/rejected"}) {
		t.Fatalf("the sender got statuses %q after the reviews", got)
	}

	// The terminal crashed before it applied the ack: it sends the batch again. The ack says
	// where the letters stand now; a rejected one is left to its review's downlink item.
	c.c.Close(websocket.StatusNormalClosure, "")
	c = sender.connect(t, 0)
	again := c.batch(items...)
	if again.Seq != 4 || again.Letters == nil || !slices.Equal(again.Letters.Delivered, []uint64{1}) || len(again.Letters.Held) != 0 {
		t.Fatalf("ack of the resend = %+v letters %+v, want delivered 1", again, again.Letters)
	}

	// A new epoch (the same items renumbered): recognised by item id, the states come again.
	c.c.Close(websocket.StatusNormalClosure, "")
	sender.epoch = "new-epoch"
	c = sender.connect(t, 0)
	m2, m1 := items[1], items[0]
	m2.Seq, m1.Seq = 1, 2
	next := c.batch(m2, m1)
	if next.Seq != 2 || next.Letters == nil || !slices.Equal(next.Letters.Delivered, []uint64{2}) || len(next.Letters.Held) != 0 {
		t.Fatalf("ack under the new epoch = %+v letters %+v, want delivered 2", next, next.Letters)
	}

	// A kiosk of another facility that sends a copy of m1 (text and all, its own item) is told
	// it is a duplicate, not how staff treated the letter.
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	stranger := e.enrollAt("south", wire.ModeKiosk, "")
	stranger.ackLetters = true
	sc := stranger.connect(t, 0)
	copied := items[0]
	copied.Seq, copied.ID = 1, "stranger-item-1"
	if sack := sc.batch(copied); sack.Seq != 1 || len(sack.Rejected) != 0 || sack.Letters != nil {
		t.Fatalf("ack to the other facility's kiosk = %+v letters %+v, want a plain ack", sack, sack.Letters)
	}

	// A terminal that does not ask: no states in its acks, its statuses on its downlink.
	old := e.enroll(wire.ModeKiosk, "")
	oc := old.connect(t, 0)
	oack := oc.batch(old.item(wire.UpMessage, kiosk.Message{ID: "m4", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Body: "hi"}))
	if oack.Seq != 1 || oack.Letters != nil {
		t.Fatalf("ack to a terminal that did not ask = %+v letters %+v", oack, oack.Letters)
	}
	if got := statusesFor(t, e.r, old.id); !equalStrings(got, []string{"m4/held"}) {
		t.Fatalf("the terminal that did not ask got statuses %q", got)
	}
}
