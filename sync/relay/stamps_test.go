package relay

import (
	"testing"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

func stamp(m kiosk.Message, cents kiosk.Cents) kiosk.Charge {
	return kiosk.Charge{RecordID: vocab.StampRecordID(m.ID), InmateID: m.InmateID, Cents: cents, At: t0, MessageID: m.ID}
}

func (e *env) stampPricing(price kiosk.Cents) {
	e.t.Helper()
	p, err := e.r.Policy("north")
	if err != nil {
		e.t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, price
	if err := e.r.PutPolicy("north", p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) balanceOf(inmate string) kiosk.Cents {
	e.t.Helper()
	b, err := e.r.Balance(inmate)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.BalanceCents
}

// The relay records a stamp only for a letter it holds from that terminal and inmate, at the
// facility's price (or the one it replaced last); every forgery is refused with its own
// reason and moves no money. Only the relay refunds a stamp: on rejection, once.
func TestStampOnlyForAHeldLetterAtThePolicyPriceRefundedOnRejection(t *testing.T) {
	e := newEnv(t) // letters are held for review
	e.seed()
	e.stampPricing(25)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	c1, c2 := k1.connect(t, 0), k2.connect(t, 0)
	c1.batch(k1.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana") // the contact accepted the invitation: letters may flow
	letter := func(peer string) kiosk.Message {
		return msg(uuid.Must(uuid.NewV7()).String(), "A1", peer, "a letter")
	}
	l1, dept, never := letter("c-ana"), letter("dept-medical"), letter("c-ana")
	if ack := c1.batch(k1.item(wire.UpMessage, l1), k1.item(wire.UpCharge, stamp(l1, 25)),
		k1.item(wire.UpMessage, dept)); len(ack.Rejected) != 0 {
		t.Fatalf("a letter and its stamp: ack %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 175 {
		t.Fatalf("balance after one stamp = %s, want 175¢", b)
	}
	if got := e.downKinds(k2.id, wire.DownRemoteCharge); len(got) != 1 {
		t.Fatalf("the other kiosk was sent %d remote charges, want the stamp", len(got))
	}

	refund := kiosk.Credit{RecordID: vocab.StampRecordID(l1.ID), InmateID: "A1", Cents: 25, Reason: kiosk.CreditStampRejected, At: t0, MessageID: l1.ID}
	forged := []struct {
		name   string
		tm     *term
		c      *tconn
		kind   string
		body   any
		reason string
	}{
		{"a letter the relay never received", k1, c1, wire.UpCharge, stamp(never, 25), wire.RefuseStampNoLetter},
		{"a record id not the letter's", k1, c1, wire.UpCharge, kiosk.Charge{RecordID: vocab.StampRecordID("other"), InmateID: "A1", Cents: 25, MessageID: l1.ID}, wire.RefuseInvalid},
		{"another terminal sends the stamp again", k2, c2, wire.UpCharge, stamp(l1, 25), ""},
		{"a letter to a department", k1, c1, wire.UpCharge, stamp(dept, 25), wire.RefuseStampPrice},
		{"a terminal refunding its own stamp", k1, c1, wire.UpCredit, refund, wire.RefuseStampRefund},
	}
	for _, f := range forged {
		it := f.tm.item(f.kind, f.body)
		ack := f.c.batch(it)
		if f.reason == "" {
			// k2 sending l1's stamp record again: the same money under the same record id is a
			// duplicate of the one held, and charges nothing more.
			if len(ack.Rejected) != 0 {
				t.Fatalf("%s: ack %+v", f.name, ack)
			}
			continue
		}
		if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != f.reason {
			t.Fatalf("%s: ack %+v, want %s", f.name, ack, f.reason)
		}
	}
	// A price the policy never set, right after its letter (the stamp is the next item).
	cheap := letterHeld(t, c1, k1, letter("c-ana"))
	if ack := c1.batch(k1.item(wire.UpCharge, stamp(cheap, 10))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseStampPrice {
		t.Fatalf("a price the policy never set: ack %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 175 {
		t.Fatalf("forged stamps and refunds moved money: balance %s, want 175¢", b)
	}
	// k2's own letter, stamped by k1: not k1's letter.
	l2 := letter("c-ana")
	c2.batch(k2.item(wire.UpMessage, l2))
	if ack := c1.batch(k1.item(wire.UpCharge, stamp(l2, 25))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseStampNoLetter {
		t.Fatalf("stamping another terminal's letter: ack %+v", ack)
	}

	// Rejected at review: refunded once, to every kiosk (the one that charged it too).
	if _, err := e.r.RejectOutbound(l1.ID, "content"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.RejectOutbound(l1.ID, "content"); err == nil {
		t.Fatal("a letter was rejected twice")
	}
	if b := e.balanceOf("A1"); b != 200 {
		t.Fatalf("balance after the rejection = %s, want 200¢ (stamp refunded)", b)
	}
	for _, k := range []*term{k1, k2} {
		got := e.downKinds(k.id, wire.DownRemoteCredit)
		if len(got) != 1 || decodeAs[kiosk.Credit](t, got[0].Body) != refund {
			t.Fatalf("terminal %s was sent refunds %+v, want %+v once", k.id, got, refund)
		}
	}
	// A letter approved keeps its stamp.
	l3 := letter("c-ana")
	c1.batch(k1.item(wire.UpMessage, l3), k1.item(wire.UpCharge, stamp(l3, 25)))
	if _, err := e.r.ApproveOutbound(l3.ID); err != nil {
		t.Fatal(err)
	}
	if b := e.balanceOf("A1"); b != 175 {
		t.Fatalf("balance after an approved letter = %s, want 175¢", b)
	}
}

// letterHeld sends m from k and returns it once the relay holds it.
func letterHeld(t *testing.T, c *tconn, k *term, m kiosk.Message) kiosk.Message {
	t.Helper()
	if ack := c.batch(k.item(wire.UpMessage, m)); len(ack.Rejected) != 0 {
		t.Fatalf("letter: ack %+v", ack)
	}
	return m
}

// The rule for a price change in flight: the price before the last change is still taken
// from a terminal that has not heard of it; any other amount is refused. A stamp arriving
// after its letter was already rejected is refunded at once.
func TestStampPriceChangeInFlightAndLateStampOfRejectedLetter(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.stampPricing(25)
	e.stampPricing(30)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	// Another change that leaves the price alone keeps 25 as the previous price.
	p, _ := e.r.Policy("north")
	p.MaxContacts = 4
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana") // the contact accepted the invitation: letters may flow
	for _, tc := range []struct {
		cents  kiosk.Cents
		reason string
	}{{30, ""}, {25, ""}, {20, wire.RefuseStampPrice}} {
		m := letterHeld(t, c, k, msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "x"))
		ack := c.batch(k.item(wire.UpCharge, stamp(m, tc.cents)))
		if (tc.reason == "" && len(ack.Rejected) != 0) || (tc.reason != "" && (len(ack.Rejected) != 1 || ack.Rejected[0].Reason != tc.reason)) {
			t.Fatalf("stamp of %s: ack %+v, want %q", tc.cents, ack, tc.reason)
		}
	}
	if b := e.balanceOf("A1"); b != 145 {
		t.Fatalf("balance = %s, want 200 - 30 - 25 = 145¢", b)
	}
	late := letterHeld(t, c, k, msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "late"))
	if _, err := e.r.RejectOutbound(late.ID, "content"); err != nil {
		t.Fatal(err)
	}
	if ack := c.batch(k.item(wire.UpCharge, stamp(late, 30))); len(ack.Rejected) != 0 {
		t.Fatalf("late stamp: ack %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 145 {
		t.Fatalf("a late stamp on a rejected letter was kept: balance %s, want 145¢", b)
	}
	if got := e.downKinds(k.id, wire.DownRemoteCredit); len(got) != 1 {
		t.Fatalf("refunds sent: %d, want 1", len(got))
	}
}
