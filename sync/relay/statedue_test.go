package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// dueToState lists what facility's state_due holds, as its writer reads it.
func dueToState(t *testing.T, e *env, facility string) []string {
	t.Helper()
	var keys []string
	if err := e.r.viewFor(facility, "test", func(tx kv.Tx) error {
		keys = keys[:0]
		return forEachRaw(tx, bStateDue, facility+"/", func(k string, _ []byte) bool {
			keys = append(keys, k)
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// inKV reports whether the kv state holds root[key].
func inKV(t *testing.T, e *env, root, key string) bool {
	t.Helper()
	var found bool
	if err := e.r.view("test", func(tx kv.Tx) error { found = getRaw(tx, root, key) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return found
}

// reportTexts is the text of each PREA report listed for facility, by id.
func reportTexts(t *testing.T, e *env, facility string) map[string]string {
	t.Helper()
	reports, err := e.r.PREAReportsOf(facility)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range reports {
		out[o.ID] = o.Body
	}
	return out
}

// A PREA report filed on a held facility's kiosk is the state's record, written once: the
// holder writes it in its entry under the facility (state_due) and then into the kv state,
// and nothing of north's moves in the kv state meanwhile. The same report resent under
// another item id is one report; its id reused for another text, here or at another
// facility, is refused; and the facility's coordinator reads both reports while north is
// held and after. Before the outbox, the kiosk's batch failed with a storage error.
func TestAHeldFacilitysPREAReportsReachTheStateOnce(t *testing.T) {
	var kn, ks *term
	e, _ := heldNorth(t, func(e *env) {
		kn = e.enroll(wire.ModeKiosk, "")
		ks = e.enrollAt("south", wire.ModeKiosk, "")
	})
	named, anonymous := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	const secret, other = "the officer on night shift in block C", "a second text under the first one's id"
	wrote := secondWrites(t, e, "north", func() {
		cn := kn.connect(t, 0)
		if ack := cn.batch(kn.item(wire.UpPREA, msg(named, "A1", kiosk.PREAChannel, secret)),
			kn.item(wire.UpPREA, msg(anonymous, "", kiosk.PREAChannel, secret))); ack.Seq != 2 || len(ack.Rejected) != 0 {
			t.Fatalf("north's reports: ack %+v", ack)
		}
		if ack := cn.batch(kn.item(wire.UpPREA, msg(named, "A1", kiosk.PREAChannel, secret))); len(ack.Rejected) != 0 {
			t.Fatalf("the report resent under another item id: ack %+v, want it taken as the same report", ack)
		}
		if ack := cn.batch(kn.item(wire.UpPREA, msg(named, "A1", kiosk.PREAChannel, other))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
			t.Fatalf("another report under the id: ack %+v, want id_conflict", ack)
		}
		cs := ks.connect(t, 0)
		if ack := cs.batch(ks.item(wire.UpPREA, msg(anonymous, "", kiosk.PREAChannel, other))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
			t.Fatalf("south's report under north's id: ack %+v, want id_conflict", ack)
		}
		if due := dueToState(t, e, "north"); len(due) != 0 {
			t.Fatalf("north's state_due after its batches: %q, want it drained", due)
		}
		for _, id := range []string{named, anonymous} {
			if !inKV(t, e, bPREA, id) {
				t.Fatalf("report %s is not in the kv state", id)
			}
		}
		if got := reportTexts(t, e, "north"); len(got) != 2 || got[named] != secret || got[anonymous] != secret {
			t.Fatalf("north's coordinator reads %q while north is held, want its two reports", got)
		}
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	verifyClean(t, e)
	if got := reportTexts(t, e, "north"); len(got) != 2 || got[named] != secret {
		t.Fatalf("north's coordinator reads %q after north is let go", got)
	}
	if got := reportTexts(t, e, "south"); len(got) != 0 {
		t.Fatalf("south's coordinator reads %q, want nothing", got)
	}
	if strings.Contains(e.logText(), secret) {
		t.Fatal("a report's text reached the log")
	}
}

// A report whose holder stopped between its entry and its drain is in north's records only
// (state_due): the coordinator reads it, a report reusing its id for another text is still
// refused, and the next holder's claim writes it into the kv state. A report that another
// facility's terminal filed under the same id meanwhile is not written over: north's stays in
// its state_due, shown to north's coordinator, and verify names it.
func TestAPREAReportLeftDueIsWrittenByTheNextHolder(t *testing.T) {
	var kn, ks *term
	e, _, l := heldNorthOn(t, func(e *env) {
		kn = e.enroll(wire.ModeKiosk, "")
		ks = e.enrollAt("south", wire.ModeKiosk, "")
	})
	var drains atomic.Bool // false: the holder stops before each drain
	e.r.hooks.stateDrain = func(string) bool { return drains.Load() }
	left, collided := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	const text, southText = "report one", "south's own report"
	cn := kn.connect(t, 0)
	if ack := cn.batch(kn.item(wire.UpPREA, msg(left, "A1", kiosk.PREAChannel, text)),
		kn.item(wire.UpPREA, msg(collided, "", kiosk.PREAChannel, text))); len(ack.Rejected) != 0 {
		t.Fatalf("north's reports: ack %+v", ack)
	}
	if due := dueToState(t, e, "north"); len(due) != 2 {
		t.Fatalf("north's state_due: %q, want both reports", due)
	}
	if inKV(t, e, bPREA, left) {
		t.Fatal("a report in the kv state with no drain")
	}
	if got := reportTexts(t, e, "north"); len(got) != 2 || got[left] != text {
		t.Fatalf("north's coordinator reads %q before the drain, want both reports", got)
	}
	if ack := cn.batch(kn.item(wire.UpPREA, msg(left, "A1", kiosk.PREAChannel, "another text"))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("another report under an undrained report's id: ack %+v, want id_conflict", ack)
	}
	cs := ks.connect(t, 0)
	if ack := cs.batch(ks.item(wire.UpPREA, msg(collided, "", kiosk.PREAChannel, southText))); len(ack.Rejected) != 0 {
		t.Fatalf("south's report: ack %+v (south cannot see north's undrained id)", ack)
	}
	cn.c.CloseNow()

	// North's holder stops; the next claim drains.
	letNorthGo(t, e)
	drains.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.r.holdFacility(ctx, l, "north", "gw-next", faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
		t.Fatal(err)
	}
	if !inKV(t, e, bPREA, left) {
		t.Fatal("the next holder's claim did not write the report left due")
	}
	if due := dueToState(t, e, "north"); len(due) != 1 || !strings.HasSuffix(due[0], collided) {
		t.Fatalf("north's state_due after the claim: %q, want only the report whose id south took", due)
	}
	if got := reportTexts(t, e, "north"); len(got) != 2 || got[left] != text || got[collided] != text {
		t.Fatalf("north's coordinator reads %q, want both of north's reports", got)
	}
	if got := reportTexts(t, e, "south"); len(got) != 1 || got[collided] != southText {
		t.Fatalf("south's coordinator reads %q, want south's report", got)
	}
	if !strings.Contains(e.logText(), "left in state_due") {
		t.Fatal("the collision is not in the log")
	}
	letNorthGo(t, e)
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "state_due" || !strings.Contains(rep.Problems[0].Detail, collided) {
		t.Fatalf("verify: %v %+v, want the collision named", err, rep.Problems)
	}
}

// A tablet enrolled while its facility is held gets its inmate's letters in its snapshot,
// text and all. The snapshot is written on the held state, which cannot walk the item log the
// letters' text is kept in; before the held transaction read such an item from the kv state,
// the snapshot failed at each try and the tablet never had it.
func TestAHeldFacilitysNewTabletGetsItsInmatesLetters(t *testing.T) {
	id := uuid.Must(uuid.NewV7()).String()
	const text = "my tooth hurts"
	e, _ := heldNorth(t, func(e *env) {
		k := e.enroll(wire.ModeKiosk, "")
		c := k.connect(t, 0)
		if ack := c.batch(k.item(wire.UpMessage, msg(id, "A1", "dept-medical", text))); len(ack.Rejected) != 0 {
			t.Fatalf("the letter before the claim: ack %+v", ack)
		}
		c.c.CloseNow()
	})
	tablet := e.enroll(wire.ModeTablet, "A1")
	tc := tablet.connect(t, 0)
	tc.waitDown(wire.DownSentMessage, func(b json.RawMessage) bool {
		m := decodeAs[kiosk.Message](t, b)
		return m.ID == id && m.Body == text
	})
	tc.c.CloseNow()
	if strings.Contains(e.logText(), "queued later") {
		t.Fatalf("the snapshot was put off:\n%s", e.logText())
	}
	letNorthGo(t, e)
	verifyClean(t, e)
}

// A letter written on a held facility's kiosk is the facility's record (schema 24), which its
// holder writes, and its index by id the state's, written once through state_due: a letter to
// a department and a stamped letter to a contact are taken, and nothing of north's is written
// beside the holder. A resend is the same letter, another text under its id is refused here
// and at another facility, the review queue shows the held letter while north is held, and
// staff approve it by its id through the holder: the kiosk hears it delivered. Staff reject
// another: its stamp comes back once, and the kiosk hears of the credit. Before the move, the
// kiosk's batch failed with a storage error.
func TestAHeldFacilitysLettersAreWrittenByItsHolder(t *testing.T) {
	var kn, ks *term
	e, _ := heldNorth(t, func(e *env) {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
		e.stampPricing(25)
		e.letterContact("A1", "pal")
		kn = e.enroll(wire.ModeKiosk, "")
		ks = e.enrollAt("south", wire.ModeKiosk, "")
	})
	dept := msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "my tooth hurts")
	toPal := msg(uuid.Must(uuid.NewV7()).String(), "A1", "pal", "hello pal")
	wrote := secondWrites(t, e, "north", func() {
		cn := kn.connect(t, 0)
		if ack := cn.batch(kn.item(wire.UpMessage, dept)); len(ack.Rejected) != 0 {
			t.Fatalf("the letter to a department: ack %+v", ack)
		}
		if ack := cn.batch(kn.item(wire.UpMessage, toPal), kn.item(wire.UpCharge, stamp(toPal, 25))); len(ack.Rejected) != 0 {
			t.Fatalf("the stamped letter to a contact: ack %+v", ack)
		}
		if ack := cn.batch(kn.item(wire.UpMessage, dept)); len(ack.Rejected) != 0 {
			t.Fatalf("the letter resent under another item id: ack %+v, want it taken as the same letter", ack)
		}
		other := dept
		other.Body = "another text"
		if ack := cn.batch(kn.item(wire.UpMessage, other)); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
			t.Fatalf("another letter under the id: ack %+v, want id_conflict", ack)
		}
		cs := ks.connect(t, 0)
		theirs := msg(dept.ID, "S1", "dept-medical", "south's letter")
		if ack := cs.batch(ks.item(wire.UpMessage, theirs)); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
			t.Fatalf("south's letter under north's id: ack %+v, want id_conflict", ack)
		}
		cs.c.CloseNow()
		if b, err := e.r.Balance("A1"); err != nil || b.BalanceCents != 175 {
			t.Fatalf("A1's account: %+v %v, want the stamp taken once: 175¢", b, err)
		}
		held, err := e.r.HeldOutbound("north")
		if err != nil || len(held) != 1 || held[0].ID != toPal.ID || held[0].Body != "hello pal" {
			t.Fatalf("north's review queue while held: %+v %v, want the letter to pal", held, err)
		}
		if _, err := e.r.ApproveOutbound(toPal.ID); err != nil {
			t.Fatalf("approve the letter while north is held: %v", err)
		}
		cn.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
			st := decodeAs[wire.MessageStatus](t, b)
			return st.MessageID == toPal.ID && st.State == kiosk.MsgDelivered
		})
		// Staff reject a second stamped letter: its stamp comes back, once, through the holder.
		again := msg(uuid.Must(uuid.NewV7()).String(), "A1", "pal", "hello again")
		if ack := cn.batch(kn.item(wire.UpMessage, again), kn.item(wire.UpCharge, stamp(again, 25))); len(ack.Rejected) != 0 {
			t.Fatalf("the second stamped letter: ack %+v", ack)
		}
		if _, err := e.r.RejectOutbound(again.ID, "content"); err != nil {
			t.Fatalf("reject the letter while north is held: %v", err)
		}
		cn.waitDown(wire.DownRemoteCredit, func(b json.RawMessage) bool { return decodeAs[kiosk.Credit](t, b).MessageID == again.ID })
		if _, err := e.r.RejectOutbound(again.ID, "content"); err == nil {
			t.Fatal("a letter rejected twice")
		}
		if b, err := e.r.Balance("A1"); err != nil || b.BalanceCents != 175 {
			t.Fatalf("A1's account after the rejection: %+v %v, want 175¢: the second stamp given back once", b, err)
		}
		// Staff's lists of letters read north's from its held state (the kv state has none of
		// them yet): every letter, one inmate's, and those of one status.
		lists := []struct {
			flt  OutboundFilter
			want []string
		}{
			{OutboundFilter{}, []string{dept.ID + " " + kiosk.MsgDelivered, toPal.ID + " " + kiosk.MsgDelivered, again.ID + " " + kiosk.MsgRejected}},
			{OutboundFilter{InmateID: "A1"}, []string{dept.ID + " " + kiosk.MsgDelivered, toPal.ID + " " + kiosk.MsgDelivered, again.ID + " " + kiosk.MsgRejected}},
			{OutboundFilter{InmateID: "S1"}, nil},
			{OutboundFilter{Status: kiosk.MsgRejected}, []string{again.ID + " " + kiosk.MsgRejected}},
			{OutboundFilter{Status: kiosk.MsgHeld}, nil},
		}
		for _, l := range lists {
			if got, err := e.r.Outbound(l.flt); err != nil || !slices.Equal(letterIDs(got), l.want) {
				t.Fatalf("letters listed by %+v while north is held: %v %v, want %v", l.flt, letterIDs(got), err, l.want)
			}
		}
		cn.c.CloseNow()
		if o, found, err := e.r.OutboundLetter(toPal.ID); err != nil || !found || o.Status != kiosk.MsgDelivered || o.Body != "hello pal" {
			t.Fatalf("the approved letter: %+v %v %v", o, found, err)
		}
		if due := dueToState(t, e, "north"); len(due) != 0 {
			t.Fatalf("north's state_due: %q, want it drained", due)
		}
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	verifyClean(t, e)
	mine, err := e.r.Outbound(OutboundFilter{InmateID: "A1"})
	if err != nil || len(mine) != 3 {
		t.Fatalf("A1's letters after north is let go: %v %v, want the three, once each", letterIDs(mine), err)
	}
	if theirs, err := e.r.Outbound(OutboundFilter{InmateID: "S1"}); err != nil || len(theirs) != 0 {
		t.Fatalf("S1's letters: %v %v, want none", letterIDs(theirs), err)
	}
}

// contactNamed is the contact request of inmate A1 for id at the address id@example.org.
func contactNamed(id string) kiosk.Contact {
	return kiosk.Contact{ID: id, InmateID: "A1", Name: "Pen Pal", Email: id + "@example.org", State: kiosk.ContactPending}
}

// A contact is the state's record, which staff decide: a held facility's kiosk asks for it
// and removes it through state_due, on the condition that the kv state still holds what its
// transaction read, and nothing of north's is written beside the holder. Staff list the
// facility's contacts while it is held, approve one (the kiosk hears it), and a letter to it
// goes; the limit counts contacts not drained yet; another address under an id is refused; a
// removal that staff's approval overtook before the drain is made again on the approved
// record, and its invitation no longer opens; one the kiosk asked back before the drain is
// not. Before, the kiosk's batch failed.
func TestAHeldFacilitysContactsGoThroughItsHolder(t *testing.T) {
	var kn *term
	e, _ := heldNorth(t, func(e *env) { kn = e.enroll(wire.ModeKiosk, "") })
	var drains atomic.Bool
	drains.Store(true)
	e.r.hooks.stateDrain = func(string) bool { return drains.Load() }
	wrote := secondWrites(t, e, "north", func() {
		cn := kn.connect(t, 0)
		if ack := cn.batch(kn.item(wire.UpContactRequest, contactNamed("pal")), kn.item(wire.UpContactRequest, contactNamed("aunt"))); len(ack.Rejected) != 0 {
			t.Fatalf("two contact requests: ack %+v", ack)
		}
		drains.Store(false) // the next request is counted before its drain
		if ack := cn.batch(kn.item(wire.UpContactRequest, contactNamed("uncle"))); len(ack.Rejected) != 0 {
			t.Fatalf("a third request: ack %+v", ack)
		}
		if ack := cn.batch(kn.item(wire.UpContactRequest, contactNamed("cousin"))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != RefuseContactLimit {
			t.Fatalf("a fourth request over the limit of 3: ack %+v, want %s", ack, RefuseContactLimit)
		}
		other := contactNamed("pal")
		other.Email = "someone.else@example.org"
		if ack := cn.batch(kn.item(wire.UpContactRequest, other)); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
			t.Fatalf("another address under pal's id: ack %+v, want id_conflict", ack)
		}
		listed, err := e.r.ContactsOf("north")
		if err != nil || len(listed) != 3 {
			t.Fatalf("north's contacts while held: %+v %v, want pal, aunt and uncle", listed, err)
		}
		drains.Store(true)
		if err := e.r.finishStateDue(); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"pal", "aunt", "uncle"} {
			if c, found, err := e.r.Contact(id); err != nil || !found || c.State != kiosk.ContactPending {
				t.Fatalf("contact %s in the kv state: %+v %v %v, want pending", id, c, found, err)
			}
		}
		e.approveAccepted("pal")
		cn.waitDown(wire.DownContact, func(b json.RawMessage) bool {
			c := decodeAs[kiosk.Contact](t, b)
			return c.ID == "pal" && c.State == kiosk.ContactApproved
		})
		if ack := cn.batch(kn.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "pal", "dear pal"))); len(ack.Rejected) != 0 {
			t.Fatalf("a letter to the approved contact: ack %+v", ack)
		}

		// Staff approve aunt after the kiosk removed her, before the removal is drained.
		drains.Store(false)
		aunt := contactNamed("aunt")
		aunt.State = kiosk.ContactRemoved
		if ack := cn.batch(kn.item(wire.UpContactRemove, aunt)); len(ack.Rejected) != 0 {
			t.Fatalf("remove aunt: ack %+v", ack)
		}
		if _, err := e.r.ApproveContact("aunt"); err != nil {
			t.Fatalf("approve aunt: %v", err)
		}
		code := spooledCode(t, e.spool, "aunt")
		drains.Store(true)
		if err := e.r.finishStateDue(); err != nil {
			t.Fatal(err)
		}
		if c, _, err := e.r.Contact("aunt"); err != nil || c.State != kiosk.ContactRemoved {
			t.Fatalf("aunt after the drain: %+v %v, want removed: the inmate's removal stands", c, err)
		}
		if _, err := e.r.LookupInvitation(code); err == nil {
			t.Fatal("the removed contact's invitation still opens")
		}

		// The kiosk removes uncle and asks for him again; staff approve him before the drain:
		// the inmate's last word is a request, so the approval stands.
		drains.Store(false)
		uncle := contactNamed("uncle")
		uncle.State = kiosk.ContactRemoved
		if ack := cn.batch(kn.item(wire.UpContactRemove, uncle), kn.item(wire.UpContactRequest, contactNamed("uncle"))); len(ack.Rejected) != 0 {
			t.Fatalf("remove uncle and ask again: ack %+v", ack)
		}
		if _, err := e.r.ApproveContact("uncle"); err != nil {
			t.Fatalf("approve uncle: %v", err)
		}
		drains.Store(true)
		if err := e.r.finishStateDue(); err != nil {
			t.Fatal(err)
		}
		if c, _, err := e.r.Contact("uncle"); err != nil || c.State != kiosk.ContactApproved {
			t.Fatalf("uncle after the drain: %+v %v, want approved: a removal asked back is not made again", c, err)
		}
		if _, err := e.r.LookupInvitation(spooledCode(t, e.spool, "uncle")); err != nil {
			t.Fatalf("uncle's invitation: %v, want it open", err)
		}
		if due := dueToState(t, e, "north"); len(due) != 0 {
			t.Fatalf("north's state_due: %q, want it drained", due)
		}

		// The kiosk asks for aunt again, and the state's record of her changes before the
		// drain (no console call changes a removed contact; an operator's edit, written here
		// straight into the kv state, stands for one): the request is dropped and logged,
		// the record stays as it was changed, and nothing is left due.
		drains.Store(false)
		if ack := cn.batch(kn.item(wire.UpContactRequest, contactNamed("aunt"))); len(ack.Rejected) != 0 {
			t.Fatalf("ask for aunt again: ack %+v", ack)
		}
		var edited []byte
		if err := e.r.db.Update(t.Context(), func(tx kv.Tx) error {
			var rec map[string]any
			if err := json.Unmarshal(getRaw(tx, bContacts, "aunt"), &rec); err != nil {
				return err
			}
			rec["name"] = "Aunt, as the operator wrote her"
			raw, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			edited = raw
			return putRaw(tx, bContacts, "aunt", raw)
		}); err != nil {
			t.Fatal(err)
		}
		drains.Store(true)
		if err := e.r.finishStateDue(); err != nil {
			t.Fatal(err)
		}
		if c, _, err := e.r.Contact("aunt"); err != nil || c.State != kiosk.ContactRemoved || c.Name != "Aunt, as the operator wrote her" {
			t.Fatalf("aunt after the drain: %+v %v, want the edited record, removed: the request overtaken is dropped", c, err)
		}
		if got := storedBytes(t, e, bContacts, "aunt"); !bytes.Equal(got, edited) {
			t.Fatalf("aunt's record after the drain: %s, want it as edited: %s", got, edited)
		}
		if due := dueToState(t, e, "north"); len(due) != 0 {
			t.Fatalf("north's state_due after the drain: %q, want the dropped request gone", due)
		}
		if !strings.Contains(e.logText(), "the terminal's write is dropped") {
			t.Fatalf("the dropped request is not in the log:\n%s", e.logText())
		}
		cn.c.CloseNow()
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	verifyClean(t, e)
}
