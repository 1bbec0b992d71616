package kiosk

import (
	"encoding/json"
	"testing"
	"time"
)

// NewEpoch renumbers what waits to 1..n in the same order with the same ids, kinds, times and
// bodies, under a fresh epoch; the audit says why; acknowledgements and refusals keep working
// on the new numbers; an empty queue is fine.
func TestNewEpochRenumbersTheQueue(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	r.run(150*time.Second, true) // three begun minutes: three charges waiting
	before, err := r.store.Pending(0, 1000, 1<<30)
	if err != nil || len(before) < 4 {
		t.Fatalf("queue before: %d items, %v", len(before), err)
	}
	// Acknowledge the oldest two first, so the waiting seqs do not start at 1.
	if _, err := r.store.Ack(r.clk.Now(), before[1].Seq); err != nil {
		t.Fatal(err)
	}
	before = before[2:]
	oldEpoch, _ := r.store.Epoch()
	unsynced := r.account("a").Unsynced
	if unsynced == 0 {
		t.Fatal("no charge waiting")
	}

	epoch, err := r.term.NewEpoch("sequence conflict")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.store.Epoch(); got != epoch || epoch == oldEpoch || len(epoch) != 32 {
		t.Fatalf("epoch %q (store says %q), old %q", epoch, got, oldEpoch)
	}
	after, err := r.store.Pending(0, 1000, 1<<30)
	if err != nil || len(after) != len(before)+1 {
		t.Fatalf("queue after: %d items (%v), want %d + the audit", len(after), err, len(before))
	}
	for i, it := range before {
		got := after[i]
		if got.Seq != uint64(i+1) || got.ID != it.ID || got.Kind != it.Kind || !got.CreatedAt.Equal(it.CreatedAt) || string(got.Body) != string(it.Body) {
			t.Fatalf("item %d after renumbering = %+v, was %+v", i, got, it)
		}
	}
	last := after[len(after)-1]
	var ev AuditEvent
	if err := json.Unmarshal(last.Body, &ev); err != nil || last.Kind != ItemAudit || ev.Kind != "new_epoch" ||
		ev.Detail["reason"] != "sequence conflict" || ev.Detail["old_epoch"] != oldEpoch || ev.Detail["new_epoch"] != epoch ||
		last.Seq != uint64(len(after)) {
		t.Fatalf("last item %+v (%+v), want the new_epoch audit at seq %d", last, ev, len(after))
	}
	if n, _, _ := r.store.QueueStats(); n != len(after) {
		t.Fatalf("queue count %d, want %d", n, len(after))
	}
	if rep, err := r.term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after new epoch: %+v, %v", rep.Problems, err)
	}

	// Refuse the first, acknowledge the rest: the charges settle by their bodies.
	if err := r.term.MarkRefused(1, "invalid"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.term.MarkForwarded(uint64(len(after))); err != nil || n != len(after)-1 {
		t.Fatalf("MarkForwarded = %d, %v; want %d", n, err, len(after)-1)
	}
	if got := r.account("a").Unsynced; got >= unsynced {
		t.Fatalf("unsynced %v after the charges were acknowledged, was %v", got, unsynced)
	}

	// Empty queue: only the audit waits, at seq 1, and numbering goes on from it.
	if _, err := r.store.Ack(r.clk.Now(), 1<<62); err != nil { // the verify audit
		t.Fatal(err)
	}
	if n, _, _ := r.store.QueueStats(); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
	if _, err := r.store.NewEpoch(r.clk.Now(), "sequence gap"); err != nil {
		t.Fatal(err)
	}
	if items, _ := r.store.Pending(0, 10, 1<<20); len(items) != 1 || items[0].Seq != 1 || items[0].Kind != ItemAudit {
		t.Fatalf("after a new epoch on an empty queue: %+v", items)
	}
	if info, err := r.store.Info(); err != nil || info.NextSeq != 2 {
		t.Fatalf("next seq = %d (%v), want 2", info.NextSeq, err)
	}
}

// Enrolling under a new terminal id starts a new uplink epoch: the relay knows no seq of the new
// id, so the waiting items are renumbered from 1 with their ids kept. The first enrollment and
// the same enrollment recorded again keep the epoch.
func TestNewTerminalIDStartsANewEpoch(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	enroll := func(id string) {
		t.Helper()
		if err := r.term.SetEnrollment(Enrollment{TerminalID: id, Facility: "north", Mode: "kiosk"}); err != nil {
			t.Fatal(err)
		}
	}
	epoch0, _ := r.store.Epoch()
	enroll("t-1")
	enroll("t-1")
	if got, _ := r.store.Epoch(); got != epoch0 {
		t.Fatalf("epoch changed without a new terminal id: %q -> %q", epoch0, got)
	}
	r.mustLogin("a")
	r.run(90*time.Second, true)
	before, err := r.store.Pending(0, 1000, 1<<30)
	if err != nil || len(before) < 3 {
		t.Fatalf("queue before: %d items, %v", len(before), err)
	}
	if _, err := r.store.Ack(r.clk.Now(), before[0].Seq); err != nil {
		t.Fatal(err)
	}
	before = before[1:]

	enroll("t-2")
	if got, _ := r.store.Epoch(); got == epoch0 {
		t.Fatal("a new terminal id kept the old epoch: the relay would see a sequence gap")
	}
	after, err := r.store.Pending(0, 1000, 1<<30)
	if err != nil || len(after) < len(before) {
		t.Fatalf("queue after: %d items, %v; want the %d waiting first", len(after), err, len(before))
	}
	for i, it := range before {
		if after[i].Seq != uint64(i+1) || after[i].ID != it.ID {
			t.Fatalf("item %d after enrolling again: seq %d id %s, want seq %d id %s", i, after[i].Seq, after[i].ID, i+1, it.ID)
		}
	}
	if rep, err := r.term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
