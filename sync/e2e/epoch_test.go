package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// backup writes the terminal's store to a file, as kioskctl backup does, and returns its path.
func (tm *terminal) backup(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := kiosk.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := tm.term.Backup(w, "T1", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyFile copies src to dst (a backup taken or put back while its owner is stopped).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := kiosk.WriteFileAtomic(dst, func(w io.Writer) error { _, err := io.Copy(w, in); return err }); err != nil {
		t.Fatal(err)
	}
}

// waitingIDs lists the ids of the items in the terminal's queue.
func (tm *terminal) waitingIDs() []string {
	tm.t.Helper()
	items, err := tm.store.Pending(0, 1<<20, 1<<30)
	if err != nil {
		tm.t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

// storedOnce asserts each item id is stored on the relay exactly once (under any terminal id
// or epoch), not refused.
func storedOnce(t *testing.T, r *relay.Relay, ids []string) {
	t.Helper()
	items, err := r.Items(relay.ItemFilter{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	refused := map[string]string{}
	for _, it := range items {
		count[it.ID]++
		refused[it.ID] = it.Refused
	}
	for _, id := range ids {
		if count[id] != 1 || refused[id] != "" {
			t.Fatalf("item %s is stored %d times on the relay (refused %q), want once", id, count[id], refused[id])
		}
	}
}

// messagesOf returns the subjects of inmate's messages the relay holds, counting each.
func messagesOf(t *testing.T, r *relay.Relay, inmate string) map[string]int {
	t.Helper()
	out, err := r.Outbound(relay.OutboundFilter{InmateID: inmate})
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	for _, m := range out {
		subjects[m.Subject]++
	}
	return subjects
}

// A kiosk restored from `kioskctl backup` reuses seqs the relay holds. Nothing it makes after
// the restore may be acknowledged and dropped: the relay refuses the numbering, the terminal
// starts a new epoch by itself, and every new letter and charge arrives once.
func TestRestoredTerminalLosesNothing(t *testing.T) {
	rl, _, tm, en := syncedKiosk(t, nil)
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 3)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()

	// Items waiting at backup time: two letters the relay has not seen yet.
	tm.stopSync()
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 3, 2)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	backup := tm.backup(t)
	oldEpoch, _ := tm.store.Epoch()

	// After the backup: more letters and a session, all acknowledged by the relay.
	tm.start()
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 5, 3)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	before := messagesOf(t, rl.r, "A1")
	if len(before) != 8 {
		t.Fatalf("relay holds %d letters before the restore, want 8", len(before))
	}

	// The technician restores the backup: the store forgets the last three letters and numbers
	// on from where the backup left off, over seqs the relay holds.
	tm.close()
	copyFile(t, backup, filepath.Join(tm.dir, kiosk.StoreFile))
	tm.reopen(kiosk.StoreOptions{})
	if ep, _ := tm.store.Epoch(); ep != oldEpoch {
		t.Fatalf("restored store has epoch %s, want the backup's %s", ep, oldEpoch)
	}
	restored := map[string]bool{}
	for _, id := range tm.waitingIDs() {
		restored[id] = true // waiting in the backup: the relay already holds these
	}
	// New letters and a new session (charges) on the restored terminal.
	tm.login("B1", "1234")
	for i := 0; i < 3; i++ {
		if _, err := tm.term.Send("A1", "dept-medical", fmt.Sprintf("after restore #%d", i), "a new letter"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	waiting := tm.waitingIDs()
	var newCharges int
	items, _ := tm.store.Pending(0, 1<<20, 1<<30)
	for _, it := range items {
		if it.Kind == kiosk.ItemCharge && !restored[it.ID] {
			newCharges++
		}
	}
	if newCharges == 0 {
		t.Fatal("the new session billed nothing")
	}
	usageBefore, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}

	tm.start()
	tm.waitSynced()

	// Every item the restored terminal held or made is on the relay exactly once.
	storedOnce(t, rl.r, waiting)
	after := messagesOf(t, rl.r, "A1")
	for subject, n := range after {
		if n != 1 {
			t.Fatalf("letter %q stored %d times", subject, n)
		}
	}
	for i := 0; i < 3; i++ {
		if after[fmt.Sprintf("after restore #%d", i)] != 1 {
			t.Fatalf("letter %d written after the restore is not on the relay: %v", i, after)
		}
	}
	if len(after) != 11 {
		t.Fatalf("relay holds %d letters, want the 8 from before and the 3 new ones", len(after))
	}
	usageAfter, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(usageAfter.Records) - len(usageBefore.Records); got != newCharges {
		t.Fatalf("%d new usage records on the relay, want the %d new charges", got, newCharges)
	}
	// The terminal is on a new epoch, says so, and staff see the conflict.
	if ep, _ := tm.store.Epoch(); ep == oldEpoch {
		t.Fatal("the terminal is still on its old epoch")
	}
	if st := tm.eng.Status(); st.LastRecovery == "" || st.LastRecoveryAt.IsZero() {
		t.Fatalf("status does not show the recovery: %+v", st)
	}
	var refusals struct {
		Refusals []relay.Refusal `json:"refusals"`
	}
	rl.admin("GET", "/admin/v1/refusals?terminal_id="+en.TerminalID, nil, &refusals)
	found := false
	for _, rf := range refusals.Refusals {
		found = found || (rf.Reason == relay.ConflictSequence && rf.Epoch == oldEpoch && rf.HeldItemID != "")
	}
	if !found {
		t.Fatalf("no sequence conflict listed for staff: %+v", refusals.Refusals)
	}
}

// A relay restored from its own backup has lost items the terminal already dropped: the
// terminal's next seqs leave a gap. The terminal starts a new epoch by itself and everything
// still waiting reaches the relay once.
func TestRestoredRelayTerminalRecovers(t *testing.T) {
	bboltOnly(t) // restores a copy of relay.db
	rl, px, tm, en := syncedKiosk(t, nil)
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 2)
	tm.waitSynced()
	relayBackup := filepath.Join(t.TempDir(), "relay.db")
	rl.stop()
	copyFile(t, filepath.Join(rl.dir, relay.DBFile), relayBackup)
	rl.open()
	px.setBackend(rl.addr())

	tm.sendNumbered("A1", 2, 3) // acknowledged, then lost with the relay's restore
	tm.waitSynced()
	tm.stopSync()
	rl.stop()
	copyFile(t, relayBackup, filepath.Join(rl.dir, relay.DBFile))
	rl.open()
	px.setBackend(rl.addr())
	oldEpoch, _ := tm.store.Epoch()

	tm.sendNumbered("A1", 5, 4)
	waiting := tm.waitingIDs()
	tm.start()
	tm.waitSynced()
	storedOnce(t, rl.r, waiting)
	got := messagesOf(t, rl.r, "A1")
	for i := 5; i < 9; i++ {
		if got[fmt.Sprintf("A1 #%06d", i)] != 1 {
			t.Fatalf("letter #%d is not on the relay once: %v", i, got)
		}
	}
	if ep, _ := tm.store.Epoch(); ep == oldEpoch {
		t.Fatal("the terminal is still on its old epoch")
	}
	rs, err := rl.r.Refusals(relay.RefusalFilter{TerminalID: en.TerminalID})
	if err != nil || len(rs) != 1 || rs[0].Reason != relay.ConflictGap {
		t.Fatalf("refusals = %+v (%v), want the gap", rs, err)
	}
}

// A real kiosk's credit for a minute lost to a freeze still reaches the relay and gives the
// money back there: the credit names the charge it returns.
func TestStallCreditEndToEnd(t *testing.T) {
	rl, _, tm, en := syncedKiosk(t, nil)
	tm.login("B1", "1234")
	if err := tm.term.ReportStall(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	u, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	var charged, credited kiosk.Cents
	for _, rec := range u.Records {
		if rec.Kind == "credit" {
			credited += rec.Cents
		} else {
			charged += rec.Cents
		}
	}
	if charged == 0 || credited != charged || u.TotalCents != 0 {
		t.Fatalf("usage on the relay = %+v, want every billed minute credited", u)
	}
	b, err := rl.r.Balance("A1")
	if err != nil || b.BalanceCents != 50000 {
		t.Fatalf("balance of A1 on the relay = %+v (%v), want the 50000 deposited", b, err)
	}
	if rs, _ := rl.r.Refusals(relay.RefusalFilter{TerminalID: en.TerminalID}); len(rs) != 0 {
		t.Fatalf("refusals = %+v", rs)
	}
	local, _ := tm.term.Balance("A1")
	if local != b.BalanceCents {
		t.Fatalf("terminal balance %v, relay %v", local, b.BalanceCents)
	}
}

// A backup taken before the terminal enrolled again names the old terminal id, and its
// downlink position counts the old id's stream. Restored, the store takes on the identity of
// the enrollment file as sync starts: it applies the new id's stream from the beginning (a
// deposit made between the re-enrollment and the restore is not skipped as already applied)
// and forwards on a new epoch.
func TestRestoreAcrossReenrollment(t *testing.T) {
	rl, px, tm, _ := syncedKiosk(t, nil)
	// Enough downlink on the old id that its position is past the new stream's first items.
	for i := range 20 {
		if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprintf("early-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	testwait.UntilSaw(t, "the early deposits on the kiosk", func() (bool, string) {
		b, err := tm.term.Balance("A2")
		return err == nil && b == 50020, fmt.Sprint(b, err)
	})
	tm.stopSync()
	backup := tm.backup(t)
	oldApplied, _ := tm.term.DownlinkApplied()

	en := tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A1", Cents: 777, Ref: "after-reenroll"}); err != nil {
		t.Fatal(err)
	}
	tm.close()
	copyFile(t, backup, filepath.Join(tm.dir, kiosk.StoreFile))
	tm.reopen(kiosk.StoreOptions{})
	tm.start()
	want, err := rl.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the deposit made after the re-enrollment on the restored kiosk", func() (bool, string) {
		b, err := tm.term.Balance("A1")
		applied, _ := tm.term.DownlinkApplied()
		return err == nil && b == want.BalanceCents, fmt.Sprintf("balance %v (relay %s), %v; downlink applied %d (the old id's was %d)",
			b, want.BalanceCents, err, applied, oldApplied)
	})
	got, ok, err := tm.term.Enrollment()
	if err != nil || !ok || got.TerminalID != en.TerminalID {
		t.Fatalf("the restored store's enrollment = %+v %v %v, want terminal %s", got, ok, err, en.TerminalID)
	}
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 2)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	if n := len(messagesOf(t, rl.r, "A1")); n != 2 {
		t.Fatalf("relay holds %d letters from the restored kiosk, want 2", n)
	}
}

// A backup restored when nothing came down since it was taken: the downlink position is the
// same, but the minutes the kiosk billed after the backup are gone from its store. The hello's uplink seq, below what the relay holds, shows the restore: the relay
// sends a complete snapshot, which brings the kiosk's own charges back, and the kiosk starts a
// new epoch. Its balance agrees with the relay's again, and nothing is forwarded twice.
func TestRestoredBackupGetsItsOwnRecordsBack(t *testing.T) {
	rl, _, tm, _ := syncedKiosk(t, nil)
	tm.stopSync()
	backup := tm.backup(t)
	appliedAtBackup, _ := tm.term.DownlinkApplied()
	oldEpoch, _ := tm.store.Epoch()
	tm.start()
	tm.login("B1", "1234") // its first minute is billed at once
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	want, err := rl.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tm.term.Balance("A1"); got != want.BalanceCents || want.Charges == 0 {
		t.Fatalf("before the restore: kiosk %s, relay %+v", got, want)
	}
	if applied, _ := tm.term.DownlinkApplied(); applied != appliedAtBackup {
		t.Fatalf("downlink moved since the backup (%d -> %d): this test needs it still", appliedAtBackup, applied)
	}

	tm.close()
	copyFile(t, backup, filepath.Join(tm.dir, kiosk.StoreFile))
	tm.reopen(kiosk.StoreOptions{})
	tm.start()
	testwait.UntilSaw(t, "the kiosk's own charges back from the relay", func() (bool, string) {
		got, err := tm.term.Balance("A1")
		return err == nil && got == want.BalanceCents, fmt.Sprintf("kiosk %v %v, relay %s; status %+v", got, err, want.BalanceCents, tm.eng.Status())
	})
	if epoch, _ := tm.store.Epoch(); epoch == oldEpoch {
		t.Fatal("the restored kiosk still numbers its uplink in the backup's epoch")
	}
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 1)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	if n := len(messagesOf(t, rl.r, "A1")); n != 1 {
		t.Fatalf("relay holds %d letters, want the one written after the restore", n)
	}
	mine, err := tm.term.Ledger()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := rl.r.LedgerFor(tm.eng.Enrollment().TerminalID, mine.LetterIDs())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range kiosk.Reconcile(mine, theirs) {
		if p.Check == "relay_balance" {
			t.Errorf("after the restore: %s", p.Detail)
		}
	}
}

// A backup taken before an inmate left the roster, restored after: the store has them active
// again, and the relay's snapshot (which lists the people of the roster now) said nothing of
// them. The snapshot now repeats who left, so the restored kiosk refuses them as it did before.
func TestRestoredBackupDoesNotBringBackAReleasedInmate(t *testing.T) {
	rl, _, tm, _ := syncedKiosk(t, nil)
	tm.stopSync()
	backup := tm.backup(t)
	tm.start()
	ro := relay.Roster{
		Inmates:     []relay.RosterInmate{{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive}},
		Technicians: []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, Role: "installer"}},
	}
	if err := rl.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "A2 refused on the kiosk after the release", func() (bool, string) {
		reason, _ := refusal(tm, "B2")
		return reason == kiosk.ReasonSuspended, fmt.Sprintf("badge B2: %q", reason)
	})

	tm.close()
	copyFile(t, backup, filepath.Join(tm.dir, kiosk.StoreFile))
	tm.reopen(kiosk.StoreOptions{})
	if reason, _ := refusal(tm, "B2"); reason == kiosk.ReasonSuspended {
		t.Fatal("the backup already has A2 released: this test needs it from before")
	}
	tm.start()
	testwait.UntilSaw(t, "A2 refused again on the restored kiosk", func() (bool, string) {
		reason, _ := refusal(tm, "B2")
		return reason == kiosk.ReasonSuspended, fmt.Sprintf("badge B2: %q; status %+v", reason, tm.eng.Status())
	})
	if _, err := tm.term.Badge("B1"); err != nil {
		t.Fatalf("A1, still on the roster, refused: %v", err)
	}
}
