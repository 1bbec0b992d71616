package relay

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Ids repeated within one batch, and ids that do not sort after those stored (a terminal
// whose clock is behind, a random UUIDv4 of an older terminal), are recognised as any other:
// the relay skips the look-up only of an id after every key it holds, counting those stored
// earlier in the same transaction (keybound.go).
func TestIDsRepeatedInOneBatch(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	early := "00000000-0000-4000-8000-000000000001" // sorts before every UUIDv7
	first := k.item(wire.UpMessage, msg(early, "A1", "dept-medical", "the first letter"))
	if ack := c.batch(first); len(ack.Rejected) != 0 {
		t.Fatalf("first letter: ack %+v", ack)
	}

	// First in the next batch, so before the transaction puts anything: the first letter's
	// item id for another letter, and the first letter's id for another text.
	oldItem := k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "an old item id"))
	oldItem.ID = first.ID
	early2 := k.item(wire.UpMessage, msg(early, "A1", "dept-records", "not the first letter"))

	late := uuid.Must(uuid.NewV7()).String() // after every key held
	prea := uuid.Must(uuid.NewV7()).String()
	letter := k.item(wire.UpMessage, msg(late, "A1", "dept-medical", "a letter"))
	// The same letter under a new item id: a duplicate, one letter.
	again := k.item(wire.UpMessage, msg(late, "A1", "dept-medical", "a letter"))
	// Its message id for another text: refused, the letter unchanged.
	reused := k.item(wire.UpMessage, msg(late, "A1", "dept-records", "another letter"))
	// A PREA report, and a letter under its id.
	report := k.item(wire.UpPREA, msg(prea, "A1", kiosk.PREAChannel, "a report"))
	onReport := k.item(wire.UpMessage, msg(prea, "A1", "dept-medical", "on the report's id"))
	// The letter's item id again, with other content.
	sameItem := k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "same item id"))
	sameItem.ID = letter.ID
	batch := []wire.Item{oldItem, early2, letter, again, reused, report, onReport, sameItem}
	// Audit events after them bring the batch to the size from which the bounds are kept.
	for len(batch) < minBoundedItems {
		batch = append(batch, k.item(wire.UpAudit, kiosk.AuditEvent{ID: uuid.Must(uuid.NewV7()).String(), At: t0, Kind: "login_ok", Actor: "A1"}))
	}
	last := batch[len(batch)-1]
	ack := c.batch(batch...)
	want := []wire.Rejection{
		{Seq: oldItem.Seq, Reason: wire.RefuseIDConflict},
		{Seq: early2.Seq, Reason: wire.RefuseIDConflict},
		{Seq: reused.Seq, Reason: wire.RefuseIDConflict},
		{Seq: onReport.Seq, Reason: wire.RefuseIDConflict},
		{Seq: sameItem.Seq, Reason: wire.RefuseIDConflict},
	}
	if ack.Seq != last.Seq || !slices.Equal(ack.Rejected, want) {
		t.Fatalf("ack seq %d, refused %+v; want seq %d, refused %+v", ack.Seq, ack.Rejected, last.Seq, want)
	}

	out, err := e.r.Outbound(OutboundFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range out {
		got[o.ID] = o.Peer + ": " + o.Body
	}
	if len(out) != 2 || got[early] != "dept-medical: the first letter" || got[late] != "dept-medical: a letter" {
		t.Fatalf("outbound = %v, want the two letters as first sent", got)
	}
	if reps, err := e.r.PREAReports(""); err != nil || len(reps) != 1 || reps[0].ID != prea || reps[0].Body != "a report" {
		t.Fatalf("PREA reports = %+v (%v), want the one report", reps, err)
	}
}
