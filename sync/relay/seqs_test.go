package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// seqRecords lists the bSeqs records of the store: key -> the item id it names.
func seqRecords(t *testing.T, e *env) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		return forEachJSON(tx, bSeqs, "", func(k string, s seqRec) bool {
			out[k] = s.ItemID
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// From schema 12 a new item writes no per-seq record (its item id's record says where it is):
// a resend is still recognised and stored once, a reused seq is still a conflict that names
// the item held there, and an item held before under another epoch gets a seq record of its
// own, so that resending it again at its new seq is recognised too.
func TestSeqsKnownFromItemRecords(t *testing.T) {
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
	if recs := seqRecords(t, e); len(recs) != 0 {
		t.Fatalf("new items wrote seq records: %v", recs)
	}

	// A lost ack: the terminal resends all three on a new connection.
	c.c.Close(websocket.StatusNormalClosure, "")
	c = k.connect(t, 0)
	if ack := c.batch(old...); ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: 3, Reason: wire.RefuseSuspended}) {
		t.Fatalf("resend: ack %+v, want 3 with the refusal re-listed", ack)
	}
	if stored, _ := e.r.Items(ItemFilter{TerminalID: k.id}); len(stored) != 3 {
		t.Fatalf("%d items stored after the resend, want 3", len(stored))
	}

	// The same id with other content at a held seq is a conflict, as another id is.
	changed := old[1]
	body, err := json.Marshal(kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "logout", Actor: "A2"})
	if err != nil {
		t.Fatal(err)
	}
	changed.Body = body
	if ack := c.batch(old[0], changed); ack.Seq != 1 {
		t.Fatalf("changed item at seq 2: ack %+v, want seq 1", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	rf := findRefusal(t, e.refusals(k.id), k.id, changed.ID)
	if rf.Reason != ConflictSequence || rf.Seq != 2 || rf.HeldItemID != old[1].ID {
		t.Fatalf("conflict listed as %+v, want seq 2 holding %s", rf, old[1].ID)
	}
	k.seq = 2
	other := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev9", At: t0, Kind: "backup", Actor: "T1"})
	c = k.connect(t, 0)
	if ack := c.batch(other); ack.Seq != 0 {
		t.Fatalf("another item at seq 3: ack %+v, want nothing acknowledged", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	// Found in the item log: on a bbolt file by the conflict itself, elsewhere by the staff
	// listing, which then keeps what it found in the conflict's record.
	wantHeld := old[2].ID
	if rf := storedConflict(t, e, k.id, k.epoch, 3); (rf.HeldItemID == wantHeld) != (os.Getenv(storeEnv) != "jetstream") {
		t.Fatalf("conflict stored as %+v before the listing", rf)
	}
	stats, counted := e.r.db.(kv.StatsReporter)
	var before kv.Stats
	if counted {
		before = stats.KVStats()
	}
	if rf := findRefusal(t, e.refusals(k.id), k.id, other.ID); rf.Reason != ConflictSequence || rf.Seq != 3 || rf.HeldItemID != wantHeld {
		t.Fatalf("conflict listed as %+v, want seq 3 holding %q", rf, wantHeld)
	}
	if counted {
		// The walk of the item log is not a View's read, which every gateway's batches
		// would make run again.
		if n := stats.KVStats().StaleViews - before.StaleViews; n != 1 {
			t.Errorf("the listing that walked the item log made %d stale views, want 1", n)
		}
	}
	if rf := storedConflict(t, e, k.id, k.epoch, 3); rf.HeldItemID != wantHeld {
		t.Fatalf("conflict stored as %+v after the listing, want it to name %q", rf, wantHeld)
	}

	// A new epoch: the held items come again under new seqs. They are recognised by id, and
	// each such seq gets its own record, since the id's record names its first seq.
	k.epoch, k.seq = "epoch-two", 0
	renum := func(it wire.Item) wire.Item { k.seq++; it.Seq = k.seq; return it }
	again := []wire.Item{renum(old[1]), renum(old[2]), renum(other)}
	c = k.connect(t, 0)
	if ack := c.batch(again...); ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: 2, Reason: wire.RefuseSuspended}) {
		t.Fatalf("new epoch: ack %+v", ack)
	}
	if recs := seqRecords(t, e); len(recs) != 2 || recs[seqKey(k.id, "epoch-two", 1)] != old[1].ID || recs[seqKey(k.id, "epoch-two", 2)] != old[2].ID {
		t.Fatalf("seq records after the new epoch: %v, want the two items held before", recs)
	}
	// Its ack lost too: all three again, recognised, nothing stored twice.
	c.c.Close(websocket.StatusNormalClosure, "")
	c = k.connect(t, 0)
	if ack := c.batch(again...); ack.Seq != 3 || len(ack.Rejected) != 1 {
		t.Fatalf("resend in the new epoch: ack %+v, want 3", ack)
	}
	if stored, _ := e.r.Items(ItemFilter{TerminalID: k.id}); len(stored) != 4 {
		t.Fatalf("%d items stored, want 4 (three, and the new one once)", len(stored))
	}
}

// A store of schema 11 (a record for every stored seq) opens as schema 12 with nothing
// rewritten, and its seq records are still what resends are checked against.
func TestSchema11SeqRecordsStillRead(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	items := []wire.Item{
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "login_ok", Actor: "A2"}),
	}
	if ack := c.batch(items...); ack.Seq != 2 {
		t.Fatalf("ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	// What schema 11 wrote besides: a record for each seq. Here the record of seq 2 names an
	// item whose id the store also holds elsewhere (as a schema-11 resend under a new epoch
	// left it): only the record says seq 2 holds it.
	moved := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev7", At: t0, Kind: "login_ok", Actor: "A7"})
	err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		for _, it := range items[:1] {
			if err := putJSON(tx, bSeqs, seqKey(k.id, k.epoch, it.Seq), seqRec{ItemID: it.ID, Hash: itemHash(it.Kind, it.Body)}); err != nil {
				return err
			}
		}
		if err := putJSON(tx, bSeqs, seqKey(k.id, k.epoch, 2), seqRec{ItemID: moved.ID, Hash: itemHash(moved.Kind, moved.Body)}); err != nil {
			return err
		}
		if err := putJSON(tx, bItemIDs, moved.ID, itemRef{Hash: itemHash(moved.Kind, moved.Body), TerminalID: k.id, Epoch: "older", Seq: 5}); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(11))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	var version uint64
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))); return nil })
	if version != schemaVersion || schemaVersion < 12 {
		t.Fatalf("schema %d after open, want %d (at least 12)", version, schemaVersion)
	}
	moved.Seq = 2
	c = k.connect(t, 0)
	if ack := c.batch(items[0], moved); ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("resend of what the schema-11 records hold: ack %+v, want 2", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	c = k.connect(t, 0)
	if ack := c.batch(items...); ack.Seq != 1 {
		t.Fatalf("the item the record does not name, at seq 2: ack %+v, want seq 1", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	if rf := findRefusal(t, e.refusals(k.id), k.id, items[1].ID); rf.Reason != ConflictSequence || rf.HeldItemID != moved.ID {
		t.Fatalf("conflict listed as %+v, want seq 2 holding %s", rf, moved.ID)
	}
	if stored, _ := e.r.Items(ItemFilter{TerminalID: k.id}); len(stored) != 2 {
		t.Fatalf("%d items stored, want 2", len(stored))
	}
}

// A sequence conflict names the item held at the seq on a bbolt file even when that item is
// older than the newest heldScanMax items (which the conflict itself looks through): the
// staff listing finds it in the item log, by terminal, epoch and seq.
func TestConflictNamesAnOldHeldItem(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k, busy := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	held := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"})
	if ack := c.batch(held); ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	cb := busy.connect(t, 0)
	for sent := 0; sent <= heldScanMax; {
		var batch []wire.Item
		for range min(1000, heldScanMax+1-sent) {
			batch = append(batch, busy.item(wire.UpAudit, kiosk.AuditEvent{ID: fmt.Sprint("b", sent), At: t0, Kind: "login_ok", Actor: "A2"}))
			sent++
		}
		if ack := cb.batch(batch...); ack.Seq != uint64(sent) {
			t.Fatalf("busy kiosk: ack %+v, want %d", ack, sent)
		}
	}
	k.seq = 0
	other := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "logout", Actor: "A1"})
	c = k.connect(t, 0)
	if ack := c.batch(other); ack.Seq != 0 {
		t.Fatalf("another item at seq 1: ack %+v, want nothing acknowledged", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	if rf := storedConflict(t, e, k.id, k.epoch, 1); rf.HeldItemID != "" {
		t.Fatalf("conflict stored as %+v: named past heldScanMax items", rf)
	}
	for range 2 { // the second listing reads what the first kept
		if rf := findRefusal(t, e.refusals(k.id), k.id, other.ID); rf.Reason != ConflictSequence || rf.Seq != 1 || rf.HeldItemID != held.ID {
			t.Fatalf("conflict listed as %+v, want seq 1 holding %s", rf, held.ID)
		}
		if rf := storedConflict(t, e, k.id, k.epoch, 1); rf.HeldItemID != held.ID {
			t.Fatalf("conflict stored as %+v after the listing, want it to name %s", rf, held.ID)
		}
	}
}

// storedConflict is the sequence conflict's record as stored, not as the listing shows it.
func storedConflict(t *testing.T, e *env, termID, epoch string, seq uint64) Refusal {
	t.Helper()
	var rf Refusal
	err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		found, err := getJSON(tx, bConflicts, seqKey(termID, epoch, seq), &rf)
		if err == nil && !found {
			err = fmt.Errorf("no conflict stored at %s/%s/%d", termID, epoch, seq)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rf
}

// A store of schema 25 kept every terminal's sequence conflicts in one flat bucket. Opened by
// this program, each moves under its terminal, where the listing and the terminal's next
// batch read it: the conflict is listed as before, naming its held item, and stored once.
func TestSeqConflictsOfSchema25MoveUnderTheirTerminal(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	held := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"})
	if ack := c.batch(held); ack.Seq != 1 {
		t.Fatalf("ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	k.seq = 0
	other := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "logout", Actor: "A1"})
	c = k.connect(t, 0)
	if ack := c.batch(other); ack.Seq != 0 {
		t.Fatalf("another item at seq 1: ack %+v, want nothing acknowledged", ack)
	}
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	e.close()

	key := seqKey(k.id, k.epoch, 1)
	e.rewind(func(tx kv.Tx) error {
		root := tx.Bucket([]byte(bConflicts))
		nb := root.Bucket([]byte(k.id))
		if nb == nil {
			return fmt.Errorf("no conflicts under terminal %s", k.id)
		}
		raw := append([]byte(nil), getRaw(tx, bConflicts, key)...)
		if err := root.DeleteBucket([]byte(k.id)); err != nil {
			return err
		}
		if err := root.Put([]byte(key), raw); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(25))
	})
	e.open()
	if rf := storedConflict(t, e, k.id, k.epoch, 1); rf.Reason != ConflictSequence || rf.HeldItemID != held.ID {
		t.Fatalf("conflict stored as %+v after the upgrade, want seq 1 holding %s", rf, held.ID)
	}
	if rs := e.refusals(""); len(rs) != 1 || rs[0].ItemID != other.ID || rs[0].HeldItemID != held.ID {
		t.Fatalf("refusals after the upgrade: %+v, want the one conflict holding %s", rs, held.ID)
	}
}
