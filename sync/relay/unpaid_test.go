package relay

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// outboundOf is the letter id as the review API shows it.
func (e *env) outboundOf(id string) Outbound {
	e.t.Helper()
	all, err := e.r.Outbound(OutboundFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, o := range all {
		if o.ID == id {
			return o
		}
	}
	e.t.Fatalf("no outbound letter %s", id)
	return Outbound{}
}

// statusSent is the last message_status the relay queued for terminal termID about letter id.
func (e *env) statusSent(termID, id string) (wire.MessageStatus, bool) {
	e.t.Helper()
	var last wire.MessageStatus
	found := false
	for _, it := range e.downKinds(termID, wire.DownMessageStatus) {
		if st := decodeAs[wire.MessageStatus](e.t, it.Body); st.MessageID == id {
			last, found = st, true
		}
	}
	return last, found
}

// A hostile terminal sends letters without their stamps: none is delivered or approvable, each
// is rejected stamp_missing (visible to staff and sent to the terminal) by the next item it
// sends, and no money moves. A stamp in a later batch, over a new connection or under a new
// epoch, releases its letter; a wrong price rejects the letter too; the price is the one the
// letter owed when it came, whatever the policy says by the time its stamp arrives.
func TestUnpaidLetterIsNeverDelivered(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone }) // no review: paid letters go out at once
	e.seed()
	e.stampPricing(25)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "c-ana")
	k := e.enroll(wire.ModeKiosk, "")
	k.ackLetters = true
	c := k.connect(t, 0)
	letter := func() kiosk.Message { return msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "a letter") }
	delivered := func(id string) bool {
		all, err := e.r.Outbound(OutboundFilter{Status: kiosk.MsgDelivered})
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(all, func(o Outbound) bool { return o.ID == id })
	}

	// A letter alone: held, awaiting its stamp, not approvable.
	free := letter()
	ack := c.batch(k.item(wire.UpMessage, free))
	if len(ack.Rejected) != 0 || ack.Letters == nil || !slices.Equal(ack.Letters.Held, []uint64{k.seq}) {
		t.Fatalf("an unstamped letter: ack %+v, want it held", ack)
	}
	if o := e.outboundOf(free.ID); o.Status != kiosk.MsgHeld || !o.AwaitingStamp || o.StampDue != 25 || delivered(free.ID) {
		t.Fatalf("an unstamped letter as staff see it: %+v", o)
	}
	if _, err := e.r.ApproveOutbound(free.ID); err == nil {
		t.Fatal("staff approved a letter whose stamp never came")
	}
	// The next item is another letter, not the stamp: the first is rejected stamp_missing.
	next := letter()
	c.batch(k.item(wire.UpMessage, next))
	if o := e.outboundOf(free.ID); o.Status != kiosk.MsgRejected || o.Reason != wire.ReasonStampMissing || o.AwaitingStamp {
		t.Fatalf("a letter whose stamp never came: %+v, want rejected %s", o, wire.ReasonStampMissing)
	}
	if st, ok := e.statusSent(k.id, free.ID); !ok || st.State != kiosk.MsgRejected || st.Reason != wire.ReasonStampMissing {
		t.Fatalf("the terminal was told %+v (%v), want rejected %s", st, ok, wire.ReasonStampMissing)
	}
	// Its stamp afterwards is refused: the letter is not paid for after the fact.
	if ack := c.batch(k.item(wire.UpCharge, stamp(free, 25))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseStampLate {
		t.Fatalf("a stamp after its letter was refused unpaid: ack %+v", ack)
	}
	// That late stamp settled next: it was not next's stamp either.
	if o := e.outboundOf(next.ID); o.Status != kiosk.MsgRejected || o.Reason != wire.ReasonStampMissing {
		t.Fatalf("next: %+v", o)
	}
	if b := e.balanceOf("A1"); b != 200 {
		t.Fatalf("unpaid letters moved money: balance %s, want 200¢", b)
	}

	// A letter in one batch, the link cut, its stamp in the next batch: delivered and paid.
	paid := letter()
	c.batch(k.item(wire.UpMessage, paid))
	c.c.Close(websocket.StatusNormalClosure, "link cut")
	c = k.connect(t, 0)
	if ack := c.batch(k.item(wire.UpCharge, stamp(paid, 25))); len(ack.Rejected) != 0 {
		t.Fatalf("a stamp in the batch after its letter: ack %+v", ack)
	}
	if !delivered(paid.ID) || e.balanceOf("A1") != 175 {
		t.Fatalf("a paid letter: %+v, balance %s", e.outboundOf(paid.ID), e.balanceOf("A1"))
	}
	if st, ok := e.statusSent(k.id, paid.ID); !ok || st.State != kiosk.MsgDelivered {
		t.Fatalf("the terminal was told %+v (%v), want delivered", st, ok)
	}

	// The letter and its stamp in one batch: the ack says delivered.
	both := letter()
	ack = c.batch(k.item(wire.UpMessage, both), k.item(wire.UpCharge, stamp(both, 25)))
	if len(ack.Rejected) != 0 || ack.Letters == nil || !slices.Equal(ack.Letters.Delivered, []uint64{k.seq - 1}) || len(ack.Letters.Held) != 0 {
		t.Fatalf("a letter and its stamp in one batch: ack %+v (letters %+v)", ack, ack.Letters)
	}

	// The wrong price: the stamp is refused (the terminal gives it back) and the letter with it.
	cheap := letter()
	ack = c.batch(k.item(wire.UpMessage, cheap), k.item(wire.UpCharge, stamp(cheap, 10)))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseStampPrice {
		t.Fatalf("a stamp at the wrong price: ack %+v", ack)
	}
	if o := e.outboundOf(cheap.ID); o.Status != kiosk.MsgRejected || o.Reason != wire.RefuseStampPrice || delivered(cheap.ID) {
		t.Fatalf("a letter stamped at the wrong price: %+v", o)
	}

	// A policy change, twice, between a letter and its stamp: the letter owes what it owed.
	old := letter()
	c.batch(k.item(wire.UpMessage, old))
	e.stampPricing(30)
	e.stampPricing(35)
	if ack := c.batch(k.item(wire.UpCharge, stamp(old, 25))); len(ack.Rejected) != 0 || !delivered(old.ID) {
		t.Fatalf("a stamp at the price when its letter came: ack %+v, letter %+v", ack, e.outboundOf(old.ID))
	}

	// A new epoch (the store restored; its queue numbered again): the stamp comes first under
	// it, and releases the letter taken under the old one.
	epochal := letter()
	c.batch(k.item(wire.UpMessage, epochal))
	c.c.Close(websocket.StatusNormalClosure, "restored")
	fresh := uuid.New()
	k.epoch, k.seq = hex.EncodeToString(fresh[:]), 0
	c = k.connect(t, 0)
	if ack := c.batch(k.item(wire.UpCharge, stamp(epochal, 35))); len(ack.Rejected) != 0 || !delivered(epochal.ID) {
		t.Fatalf("a stamp under a new epoch: ack %+v, letter %+v", ack, e.outboundOf(epochal.ID))
	}

	// A request to a department owes nothing: delivered with no stamp, whatever follows.
	dept := msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "a request")
	c.batch(k.item(wire.UpMessage, dept))
	c.batch(k.item(wire.UpMessage, letter()))
	if o := e.outboundOf(dept.ID); !delivered(dept.ID) || o.StampDue != 0 {
		t.Fatalf("a request to a department: %+v", o)
	}
	if b := e.balanceOf("A1"); b != 200-25-25-25-35 {
		t.Fatalf("balance %s, want four stamps taken", b)
	}
}

// TestStampDueSchema6Migrates: a store of schema 6 (no bucket of letters awaiting stamps)
// opens as the current schema, and an unstamped letter is held after it.
func TestStampDueSchema6Migrates(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	e.stampPricing(25)
	e.letterContact("A1", "c-ana")
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := tx.DeleteBucket([]byte(bStampDue)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(6))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	m := msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "after the migration")
	if ack := c.batch(k.item(wire.UpMessage, m)); len(ack.Rejected) != 0 {
		t.Fatalf("a letter after the migration: %+v", ack)
	}
	if o := e.outboundOf(m.ID); o.Status != kiosk.MsgHeld || !o.AwaitingStamp {
		t.Fatalf("an unstamped letter after the migration: %+v", o)
	}
	var version uint64
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))); return nil })
	if version != schemaVersion {
		t.Fatalf("schema %d after open, want %d", version, schemaVersion)
	}
}

// A terminal enrolled again with the same key (its store kept) sends, under its new id and a
// new epoch, what the relay had not acknowledged: the letter again, then its stamp. The letter
// taken from the old terminal waits for that stamp and is released by it.
func TestUnpaidLetterStampAfterReenrollment(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	e.stampPricing(25)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "c-ana")
	old := e.enroll(wire.ModeKiosk, "")
	c := old.connect(t, 0)
	m := msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "before the new enrollment")
	letterItem := old.item(wire.UpMessage, m)
	c.batch(letterItem)
	c.c.Close(websocket.StatusNormalClosure, "store moved")

	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
	if err != nil {
		t.Fatal(err)
	}
	raw, status := e.postEnroll(en.Code, old.priv)
	if status != 200 {
		t.Fatalf("enroll again: %d %s", status, raw)
	}
	er := decodeAs[wire.EnrollResponse](t, raw)
	fresh := uuid.New()
	nt := &term{e: e, id: er.TerminalID, priv: old.priv, epoch: hex.EncodeToString(fresh[:]), mode: wire.ModeKiosk}
	nc := nt.connect(t, 0)
	again := letterItem
	again.Seq = 1
	nt.seq = 1
	if ack := nc.batch(again); len(ack.Rejected) != 0 {
		t.Fatalf("the letter again: %+v", ack)
	}
	if o := e.outboundOf(m.ID); !o.AwaitingStamp || o.Status != kiosk.MsgHeld {
		t.Fatalf("the letter sent again decided it: %+v", o)
	}
	if ack := nc.batch(nt.item(wire.UpCharge, stamp(m, 25))); len(ack.Rejected) != 0 {
		t.Fatalf("the stamp from the terminal enrolled again: %+v", ack)
	}
	if o := e.outboundOf(m.ID); o.AwaitingStamp || o.Status != kiosk.MsgDelivered {
		t.Fatalf("the letter after its stamp: %+v", o)
	}
	if st, ok := e.statusSent(nt.id, m.ID); !ok || st.State != kiosk.MsgDelivered {
		t.Fatalf("the terminal enrolled again was told %+v (%v), want delivered", st, ok)
	}
	if b := e.balanceOf("A1"); b != 75 {
		t.Fatalf("balance %s, want 75¢", b)
	}
}
