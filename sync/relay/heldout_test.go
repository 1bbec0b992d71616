package relay

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func letterIDs(os []Outbound) []string {
	var ids []string
	for _, o := range os {
		ids = append(ids, o.ID+" "+o.Status)
	}
	return ids
}

// The review queue of a facility lists its letters held, through every way a letter is held
// or let go: held for review, awaiting its stamp, paid, rejected for a missing stamp,
// approved. Another facility's held letter is not in it. A store upgraded from schema 14
// lists the letters it held, and verify names a held letter off the list.
func TestHeldLettersListedByFacility(t *testing.T) {
	e := newEnv(t) // letters are held for review
	e.seed()
	e.seedSouth()
	e.stampPricing(25)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	cn.batch(kn.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	cs.batch(ks.item(wire.UpContactRequest, kiosk.Contact{ID: "c-sid", InmateID: "S1", Name: "Sid", Email: "sid@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana")
	e.approveAccepted("c-sid")
	letter := func(inmate, peer string) kiosk.Message {
		return msg(uuid.Must(uuid.NewV7()).String(), inmate, peer, "a letter")
	}
	paid, unpaid, waiting := letter("A1", "c-ana"), letter("A1", "c-ana"), letter("A1", "c-ana")
	approved, south := letter("A1", "c-ana"), letter("S1", "c-sid")
	// paid and approved are paid for; unpaid is followed by another letter, not its stamp
	// (rejected); waiting still waits for its stamp.
	if ack := cn.batch(kn.item(wire.UpMessage, paid), kn.item(wire.UpCharge, stamp(paid, 25)),
		kn.item(wire.UpMessage, approved), kn.item(wire.UpCharge, stamp(approved, 25)),
		kn.item(wire.UpMessage, unpaid), kn.item(wire.UpMessage, waiting)); len(ack.Rejected) != 0 {
		t.Fatalf("north's letters: ack %+v", ack)
	}
	if ack := cs.batch(ks.item(wire.UpMessage, south)); len(ack.Rejected) != 0 {
		t.Fatalf("south's letter: ack %+v", ack)
	}
	if _, err := e.r.ApproveOutbound(approved.ID); err != nil {
		t.Fatal(err)
	}
	wantNorth := []string{paid.ID + " held", waiting.ID + " held"}
	slices.Sort(wantNorth)
	check := func(when string) {
		t.Helper()
		north, err := e.r.HeldOutbound("north")
		if got := letterIDs(north); err != nil || !slices.Equal(got, wantNorth) {
			t.Errorf("%s: north's queue %v (%v), want %v", when, got, err, wantNorth)
		}
		all, err := e.r.Outbound(OutboundFilter{Status: vocab.MsgHeld})
		want := append(slices.Clone(wantNorth), south.ID+" held")
		slices.Sort(want)
		if got := letterIDs(all); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: every held letter %v (%v), want %v", when, got, err, want)
		}
		mine, err := e.r.Outbound(OutboundFilter{InmateID: "A1"})
		want = []string{paid.ID + " held", unpaid.ID + " rejected", waiting.ID + " held", approved.ID + " delivered"}
		slices.Sort(want)
		if got := letterIDs(mine); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: A1's letters %v (%v), want %v", when, got, err, want)
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Errorf("%s: verify %+v (%v)", when, rep, err)
		}
	}
	check("as sent")
	if o, found, err := e.r.OutboundLetter(unpaid.ID); err != nil || !found || o.Status != vocab.MsgRejected || o.Body != "a letter" {
		t.Errorf("the unpaid letter: %+v found %v (%v), want it rejected with its text", o, found, err)
	}
	if ss, err := e.r.HeldOutbound(); err != nil || len(ss) != 0 {
		t.Errorf("the queue of no facility: %v (%v), want nothing", letterIDs(ss), err)
	}
	if _, err := e.r.HeldOutbound("no/such"); err == nil || !strings.Contains(err.Error(), "facility_id") {
		t.Errorf("a facility id with a slash: %v, want an error naming facility_id", err)
	}
	if os.Getenv(storeEnv) == "jetstream" {
		return // the rest rewinds the bbolt file
	}
	cn.c.Close(websocket.StatusNormalClosure, "")
	cs.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 14 had no lists of held letters
		if err := tx.DeleteBucket([]byte(bHeldOut)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(14))
	})
	e.open()
	check("after the upgrade")
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bHeldOut, "north/"+waiting.ID) })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "held_list" ||
		!strings.Contains(rep.Problems[0].Detail, waiting.ID) {
		t.Fatalf("verify of a held letter off its list: %+v (%v), want one held_list problem naming %s", rep, err, waiting.ID)
	}
}
