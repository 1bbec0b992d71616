package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// refusals reads the staff view over HTTP, as a reviewer would.
func (e *env) refusals(terminalID string) []Refusal {
	e.t.Helper()
	var out struct {
		Refusals []Refusal `json:"refusals"`
	}
	path := "/admin/v1/refusals"
	if terminalID != "" {
		path += "?terminal_id=" + terminalID
	}
	e.must(http.StatusOK, "GET", path, nil, &out)
	return out.Refusals
}

// findRefusal returns the refusal listed for (terminal, item id), failing the test without one.
func findRefusal(t *testing.T, rs []Refusal, terminalID, itemID string) Refusal {
	t.Helper()
	for _, rf := range rs {
		if rf.TerminalID == terminalID && rf.ItemID == itemID {
			return rf
		}
	}
	t.Fatalf("no refusal listed for item %s of terminal %s in %+v", itemID, terminalID, rs)
	return Refusal{}
}

// downKinds counts the downlink items of kind queued for a terminal (sent or not).
func (e *env) downKinds(termID, kind string) []wire.DownItem {
	e.t.Helper()
	items, err := e.r.pendingDown(termID, 0, 1<<20, 1<<30)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []wire.DownItem
	for _, it := range items {
		if it.Kind == kind {
			out = append(out, it)
		}
	}
	return out
}

func credit(ch kiosk.Charge, cents kiosk.Cents, reason string) kiosk.Credit {
	return kiosk.Credit{RecordID: ch.RecordID, SessionID: ch.SessionID, InmateID: ch.InmateID, Minute: ch.Minute,
		Cents: cents, Reason: reason, At: t0}
}

// A credit gives back a charge the relay holds, once, at most its cents, and only from the
// terminal that billed it. Forged credits are refused with their own reason, move no money,
// reach no other kiosk and are listed for staff; the genuine one still reaches the others.
func TestCreditsMustMatchACharge(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	k1 := e.enroll(wire.ModeKiosk, "")
	k2 := e.enroll(wire.ModeKiosk, "")
	c1 := k1.connect(t, 0)
	c2 := k2.connect(t, 0)

	ch0 := charge("A1", "s1", 0, 5)
	ch1 := charge("A1", "s1", 1, 5)
	if ack := c1.batch(k1.item(wire.UpCharge, ch0), k1.item(wire.UpCharge, ch1)); ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("charges: ack %+v", ack)
	}
	noCharge := credit(kiosk.Charge{RecordID: "forged/000000", SessionID: "forged", InmateID: "A1"}, 100, kiosk.CreditTerminalFault)
	otherSession := credit(ch1, 5, kiosk.CreditStall)
	otherSession.SessionID = "s9"
	forged := []struct {
		name   string
		tm     *term
		c      *tconn
		body   kiosk.Credit
		reason string
	}{
		{"no such charge", k1, c1, noCharge, wire.RefuseNoSuchCharge},
		{"another session's record", k1, c1, otherSession, wire.RefuseNoSuchCharge},
		{"more than the charge", k1, c1, credit(ch0, 100, kiosk.CreditTerminalFault), wire.RefuseCreditExceedsCharge},
		{"another terminal's charge", k2, c2, credit(ch1, 5, kiosk.CreditTerminalFault), wire.RefuseOtherTerminalsCharge},
	}
	var refusedIDs []string
	for _, f := range forged {
		it := f.tm.item(wire.UpCredit, f.body)
		ack := f.c.batch(it)
		if ack.Seq != it.Seq || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: it.Seq, Reason: f.reason}) {
			t.Fatalf("%s: ack %+v, want %s refused", f.name, ack, f.reason)
		}
		refusedIDs = append(refusedIDs, it.ID)
	}
	// The genuine fault credit of minute 0: accepted and fanned out.
	good := k1.item(wire.UpCredit, credit(ch0, 5, kiosk.CreditTerminalFault))
	if ack := c1.batch(good); ack.Seq != good.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("genuine credit: ack %+v", ack)
	}
	// The same charge credited again (another amount, another reason): already credited.
	again := k1.item(wire.UpCredit, credit(ch0, 4, kiosk.CreditStall))
	if ack := c1.batch(again); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseAlreadyCredited {
		t.Fatalf("second credit: ack %+v", ack)
	}
	refusedIDs = append(refusedIDs, again.ID)

	b, err := e.r.Balance("A1")
	if err != nil || b.BalanceCents != 95 || b.Credits != 5 || b.Charges != 10 {
		t.Fatalf("balance of A1 = %+v (%v), want 100 - 10 + 5 = 95", b, err)
	}
	credits := e.downKinds(k2.id, wire.DownRemoteCredit)
	if len(credits) != 1 || decodeAs[kiosk.Credit](t, credits[0].Body) != credit(ch0, 5, kiosk.CreditTerminalFault) {
		t.Fatalf("kiosk 2 was queued remote credits %+v, want only the genuine one", credits)
	}
	u, err := e.r.Usage("A1")
	if err != nil || u.TotalCents != 5 {
		t.Fatalf("usage of A1: total %d (%v), want 5", u.TotalCents, err)
	}

	rs := e.refusals("")
	for i, id := range refusedIDs {
		tm := k1
		if i == 3 {
			tm = k2
		}
		rf := findRefusal(t, rs, tm.id, id)
		if rf.Kind != wire.UpCredit || rf.Reason == "" || rf.Seq == 0 || rf.At.IsZero() || rf.Epoch != tm.epoch {
			t.Fatalf("refusal listed as %+v", rf)
		}
	}
	if got := e.refusals(k2.id); len(got) != 1 || got[0].Reason != wire.RefuseOtherTerminalsCharge {
		t.Fatalf("refusals of kiosk 2 = %+v", got)
	}
	// A resend of the forged credit (the terminal crashed before applying the ack) is refused again.
	c1.c.Close(websocket.StatusNormalClosure, "")
	c1 = k1.connect(t, 0)
	first := uint64(3) // the "no such charge" credit
	items, _ := e.r.Items(ItemFilter{TerminalID: k1.id})
	var resend wire.Item
	for _, it := range items {
		if it.Seq == first {
			resend = it.Item
		}
	}
	if ack := c1.batch(resend); len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: first, Reason: wire.RefuseNoSuchCharge}) {
		t.Fatalf("resent forged credit: ack %+v", ack)
	}
	if len(e.refusals("")) != len(rs) {
		t.Fatal("a resend added a refusal to the listing")
	}
}

// A restored terminal reuses seqs: the relay acknowledges only what matches, never an item it
// did not store, lists the conflict and asks for a new epoch. Under the new epoch the items
// it already holds are recognised by id (not stored twice) and the new ones are stored.
func TestSequenceConflictNeedsNewEpoch(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	old := []wire.Item{
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "login_ok", Actor: "A2"}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c9", InmateID: "A3", Name: "Sis", Email: "sis@example.org"}), // A3 suspended: refused
	}
	if ack := c.batch(old...); ack.Seq != 3 || len(ack.Rejected) != 1 {
		t.Fatalf("first batch: ack %+v", ack)
	}
	// Restored from a backup taken after item 1: seq 2 now holds another item.
	k.seq = 1
	fresh := []wire.Item{
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev3", At: t0, Kind: "backup", Actor: "T1"}),
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev4", At: t0, Kind: "login_ok", Actor: "A1"}),
	}
	ack := c.batch(old[0], fresh[0], fresh[1])
	if ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("conflicting batch: ack %+v, want seq 1 (only the matching prefix)", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	stored, _ := e.r.Items(ItemFilter{TerminalID: k.id})
	if len(stored) != 3 {
		t.Fatalf("%d items stored, want the first 3 only", len(stored))
	}
	rf := findRefusal(t, e.refusals(k.id), k.id, fresh[0].ID)
	if rf.Reason != ConflictSequence || rf.Seq != 2 || rf.HeldItemID != old[1].ID || rf.Epoch != k.epoch {
		t.Fatalf("conflict listed as %+v", rf)
	}
	if !containsAll(e.logText(), "sequence conflict", fresh[0].ID) {
		t.Fatalf("conflict not logged: %s", e.logText())
	}

	// The terminal starts a new epoch and renumbers what waits: the refused contact request
	// (its refusal never applied), then the two new items.
	k.epoch, k.seq = "epoch-two", 0
	renum := func(it wire.Item) wire.Item { k.seq++; it.Seq = k.seq; return it }
	c = k.connect(t, 0)
	ack = c.batch(renum(old[2]), renum(fresh[0]), renum(fresh[1]))
	if ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: 1, Reason: wire.RefuseSuspended}) {
		t.Fatalf("new epoch: ack %+v, want 3 with the old refusal re-listed at seq 1", ack)
	}
	stored, _ = e.r.Items(ItemFilter{TerminalID: k.id})
	if len(stored) != 5 || stored[3].ID != fresh[0].ID || stored[4].ID != fresh[1].ID {
		t.Fatalf("stored %+v, want the 3 old items and the 2 new ones once each", stored)
	}
	// The same id with other bytes is refused id_conflict, listed, and not stored as the original.
	twisted := old[0]
	twisted.Body = json.RawMessage(`{"id":"ev1","at":"2026-03-02T10:00:00Z","kind":"login_failed","actor":"A1"}`)
	ack = c.batch(renum(twisted))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("reused item id: ack %+v", ack)
	}
	rf = findRefusal(t, e.refusals(k.id), k.id, old[0].ID)
	if rf.Reason != wire.RefuseIDConflict || rf.Epoch != "epoch-two" {
		t.Fatalf("id conflict listed as %+v", rf)
	}
	var ev kiosk.AuditEvent
	if err := e.r.view("read", func(tx kv.Tx) error {
		_, err := getJSON(tx, bAudit, k.id+"/ev1", &ev)
		return err
	}); err != nil || ev.Kind != "login_ok" {
		t.Fatalf("audit ev1 = %+v (%v): the original was changed", ev, err)
	}

	// Another terminal (a re-enrolled one) resending the same bytes: a duplicate, not a conflict.
	k2 := e.enroll(wire.ModeKiosk, "")
	c2 := k2.connect(t, 0)
	renum2 := func(it wire.Item) wire.Item { k2.seq++; it.Seq = k2.seq; return it }
	if ack := c2.batch(renum2(old[1]), renum2(fresh[1])); ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("resend from a new terminal id: ack %+v", ack)
	}
	if stored, _ := e.r.Items(ItemFilter{TerminalID: k2.id}); len(stored) != 0 {
		t.Fatalf("resend stored again: %+v", stored)
	}
}

// A gap (the relay lost items, or an epoch it does not know starts past 1) is not acknowledged,
// is listed for staff, and ends the connection with "sequence gap".
func TestGapListedAndNotAcknowledged(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	k.seq = 7
	it := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev8", At: t0, Kind: "x"})
	if ack := c.batch(it); ack.Seq != 0 {
		t.Fatalf("gap: ack %+v", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonSequenceGap)
	if rf := findRefusal(t, e.refusals(""), k.id, it.ID); rf.Reason != ConflictGap || rf.Seq != 8 {
		t.Fatalf("gap listed as %+v", rf)
	}
	c = k.connect(t, 0)
	c.batch(it)
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonSequenceGap)
	if n := len(e.refusals("")); n != 1 {
		t.Fatalf("the same gap listed %d times", n)
	}
}

func msg(id, inmate, peer, body string) kiosk.Message {
	return kiosk.Message{ID: id, InmateID: inmate, Box: kiosk.BoxOutbox, Peer: peer, Body: body, State: kiosk.MsgQueued, CreatedAt: t0, UpdatedAt: t0}
}

// A message id another terminal already used is refused id_conflict and listed; the first
// message stays as it was. The same message resent (same bytes, new item id) is one message.
func TestMessageIDReused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	k1 := e.enroll(wire.ModeKiosk, "")
	k2 := e.enroll(wire.ModeKiosk, "")
	c1, c2 := k1.connect(t, 0), k2.connect(t, 0)
	id := uuid.Must(uuid.NewV7()).String()
	if ack := c1.batch(k1.item(wire.UpMessage, msg(id, "A1", "dept-medical", "my tooth hurts"))); len(ack.Rejected) != 0 {
		t.Fatalf("first message: ack %+v", ack)
	}
	reuse := k2.item(wire.UpMessage, msg(id, "A2", "dept-records", "a letter to records"))
	if ack := c2.batch(reuse); len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: reuse.Seq, Reason: wire.RefuseIDConflict}) {
		t.Fatalf("reused message id: ack %+v", ack)
	}
	if rf := findRefusal(t, e.refusals(k2.id), k2.id, reuse.ID); rf.Reason != wire.RefuseIDConflict || rf.Kind != wire.UpMessage {
		t.Fatalf("listed as %+v", rf)
	}
	// A PREA report may not take the id either.
	prea := k2.item(wire.UpPREA, msg(id, "A2", kiosk.PREAChannel, "report"))
	if ack := c2.batch(prea); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("PREA with a message's id: ack %+v", ack)
	}
	// The same message again in a new item (its bytes unchanged): a duplicate.
	if ack := c1.batch(k1.item(wire.UpMessage, msg(id, "A1", "dept-medical", "my tooth hurts"))); len(ack.Rejected) != 0 {
		t.Fatalf("same message again: ack %+v", ack)
	}
	out, err := e.r.Outbound(OutboundFilter{})
	if err != nil || len(out) != 1 || out[0].Body != "my tooth hurts" || out[0].InmateID != "A1" || out[0].TerminalID != k1.id {
		t.Fatalf("outbound = %+v (%v), want only the honest first message", out, err)
	}
	if reps, _ := e.r.PREAReports(""); len(reps) != 0 {
		t.Fatalf("PREA reports = %+v", reps)
	}
}

// A PREA report is accepted from any inmate the terminal serves (suspended too), never for
// another facility's inmate nor, on a tablet, another inmate.
func TestPREAOnlyForInmatesServed(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	if err := e.r.PutRoster("south", Roster{Inmates: []RosterInmate{{ID: "S1", Name: "Sam", Badges: []string{"SB1"}, PIN: "1111", Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A1")
	c, ct := k.connect(t, 0), tab.connect(t, 0)
	other := k.item(wire.UpPREA, msg(uuid.Must(uuid.NewV7()).String(), "S1", kiosk.PREAChannel, "report"))
	own := k.item(wire.UpPREA, msg(uuid.Must(uuid.NewV7()).String(), "A3", kiosk.PREAChannel, "report"))
	ack := c.batch(other, own)
	if ack.Seq != 2 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: other.Seq, Reason: wire.RefuseNotYours}) {
		t.Fatalf("ack %+v", ack)
	}
	notMine := tab.item(wire.UpPREA, msg(uuid.Must(uuid.NewV7()).String(), "A2", kiosk.PREAChannel, "report"))
	if ack := ct.batch(notMine); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseNotYours {
		t.Fatalf("tablet: ack %+v", ack)
	}
	reps, err := e.r.PREAReports("")
	if err != nil || len(reps) != 1 || reps[0].InmateID != "A3" {
		t.Fatalf("PREA reports = %+v (%v), want only A3's", reps, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// A relay file from schema 1 (before the seq and item id indexes) is upgraded with both filled
// from the stored items: a reused seq is still caught and old refusals are listed.
func TestUpgradeFillsSeqIndexes(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	first := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok"})
	refused := k.item(wire.UpContactRequest, kiosk.Contact{ID: "c9", InmateID: "A3", Name: "Sis", Email: "sis@example.org"})
	if ack := c.batch(first, refused); ack.Seq != 2 || len(ack.Rejected) != 1 {
		t.Fatalf("ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	db, err := boltkv.Open(e.dir+"/"+DBFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), func(tx kv.Tx) error {
		for _, b := range []string{bSeqs, bItemIDs, bRefused, bConflicts} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()

	if rs := e.refusals(""); len(rs) != 1 || rs[0].ItemID != refused.ID || rs[0].Reason != wire.RefuseSuspended {
		t.Fatalf("refusals after upgrade = %+v", rs)
	}
	c = k.connect(t, 0)
	k.seq = 1
	if ack := c.batch(first, k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "backup"})); ack.Seq != 1 {
		t.Fatalf("ack %+v, want only seq 1", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
}
