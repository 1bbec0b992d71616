package kiosk

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storeHolds reports every bucket key or value holding needle.
func storeHolds(t *testing.T, s *Store, needle string) []string {
	t.Helper()
	var hits []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, []byte(needle)) || bytes.Contains(v, []byte(needle)) {
					hits = append(hits, string(name)+"/"+string(k))
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// busyInmate gives an inmate a bit of everything: contact, sent message, inbox message,
// draft, a billed session with a credit, deposits and a failed login.
func busyInmate(t *testing.T, r *mbRig, id string) {
	t.Helper()
	r.addInmate(t, id, true)
	c := r.approved(t, id, "Rosa Diaz", "rosa@example.org")
	if _, err := r.t.Send(id, c.ID, "hello", "see you Sunday"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.DeliverInbound(Message{ID: "01920c6e-8f00-7000-8000-0000000000a1", InmateID: id, Box: BoxInbox,
		Peer: c.ID, PeerName: "Rosa Diaz", Body: "love, Rosa", CreatedAt: mbStart}); err != nil {
		t.Fatal(err)
	}
	if err := r.t.SaveDraft(Draft{InmateID: id, Peer: c.ID, Body: "half a thought"}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(3*time.Minute + time.Second)
	r.t.Tick()
	if err := r.t.ReportStall(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.EnterPIN("badge-"+id, "0000"); err == nil {
		t.Fatal("wrong PIN accepted")
	}
}

func TestReissueWaitsForTheRelayThenForgetsTheInmate(t *testing.T) {
	r := newMBRig(t)
	const id, name = "A-4417", "Inmate A-4417"
	if err := r.t.UpsertTechnician(Technician{ID: "T-9", Name: "Sam Tech", Badges: []string{"tech-9"},
		PINHash: testHash(t, "9731"), Role: "installer"}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-77", Facility: "north", Mode: "tablet", InmateID: id}); err != nil {
		t.Fatal(err)
	}
	busyInmate(t, r, id)
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify before reissue: %+v, %v", rep, err)
	}
	if len(storeHolds(t, r.store, id)) == 0 {
		t.Fatal("test setup: nothing names the inmate")
	}
	before, _ := r.store.Info()

	waiting, _, _ := r.store.QueueStats()
	_, err := r.t.Reissue("kioskctl:test")
	wantKind(t, err, KindRefused)
	if !strings.Contains(err.Error(), "items are still waiting") ||
		!strings.Contains(err.Error(), " "+itoa(waiting)+" items") {
		t.Fatalf("refusal %q does not say %d items wait", err, waiting)
	}
	if len(storeHolds(t, r.store, name)) == 0 {
		t.Fatal("a refused reissue removed records")
	}

	if _, err := r.store.Ack(r.clock.Now(), 1<<62); err != nil {
		t.Fatal(err)
	}
	rep, err := r.t.Reissue("kioskctl:test")
	if err != nil {
		t.Fatalf("reissue after the relay took everything: %v", err)
	}
	if len(rep.Inmates) != 1 || rep.Inmates[0] != id || rep.Removed[bMessages] != 2 || rep.Removed[bCharges] == 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, needle := range []string{id, name, "badge-" + id, "Rosa Diaz", "rosa@example.org", "half a thought"} {
		if hits := storeHolds(t, r.store, needle); len(hits) > 0 {
			t.Errorf("%q still in the store: %v", needle, hits)
		}
	}
	after, _ := r.store.Info()
	if after.Epoch != before.Epoch || after.NextSeq <= before.NextSeq {
		t.Errorf("identity changed: before %+v, after %+v", before, after)
	}
	if e, ok, err := r.t.Enrollment(); err != nil || !ok || e.TerminalID != "t-77" || e.Mode != "tablet" || e.InmateID != "" {
		t.Errorf("enrollment after reissue: %+v %v %v", e, ok, err)
	}
	if _, ok, _ := r.t.BoundInmate(); ok {
		t.Error("tablet still bound")
	}
	if _, err := r.t.Technician("T-9"); err != nil {
		t.Errorf("technician lost: %v", err)
	}
	// The reissue itself is on its way to the relay, naming no one.
	items := r.queued(t, ItemAudit)
	if len(items) != 1 || !strings.Contains(string(items[0].Body), `"reissued"`) || !strings.Contains(string(items[0].Body), "kioskctl:test") {
		t.Fatalf("queued audit: %v", items)
	}
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after reissue: %+v, %v", rep, err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestReissueRefusesDuringASession(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "A-1", true)
	if _, err := r.store.Ack(r.clock.Now(), 1<<62); err != nil {
		t.Fatal(err)
	}
	r.login(t, "A-1")
	_, err := r.t.Reissue("test")
	wantKind(t, err, KindRefused)
	if !strings.Contains(err.Error(), "logged in") {
		t.Fatalf("refusal: %v", err)
	}
}

func TestVerifyNamesEachBrokenRule(t *testing.T) {
	r := newMBRig(t)
	busyInmate(t, r, "A-1")
	rep, err := r.t.Verify("kioskctl:test")
	if err != nil || !rep.OK || len(rep.Problems) != 0 || rep.Records[bCharges] == 0 {
		t.Fatalf("verify of a sound store: %+v, %v", rep, err)
	}
	if ev, _ := r.store.RecentAudit(1, nil); len(ev) != 1 || ev[0].Kind != "verify" || ev[0].Actor != "kioskctl:test" {
		t.Fatalf("verify not audited: %+v", ev)
	}
	// Break one rule of each kind behind the domain's back.
	err = r.store.db.Update(func(tx *bolt.Tx) error {
		var acc Account
		getJSON(tx, bAccounts, "A-1", &acc)
		acc.Balance += 7
		putJSON(tx, bAccounts, "A-1", acc)
		putJSON(tx, bCharges, "ghost/000000", Charge{RecordID: "ghost/000000", SessionID: "ghost", InmateID: "A-1", Cents: 0})
		c := tx.Bucket([]byte(bMsgIndex)).Cursor()
		k, v := c.First()
		inmate, msg, _ := strings.Cut(string(k), "/")
		other := "inbox"
		if string(v) == "inbox" {
			other = "outbox"
		}
		tx.Bucket([]byte(bMsgIndex)).Put([]byte(inmate+"x/"+msg), []byte(other))
		_, err := addCount(tx, kOutqCount, 3)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = r.t.Verify("test")
	if err != nil || rep.OK {
		t.Fatalf("verify of a broken store: %+v, %v", rep, err)
	}
	got := map[string]string{}
	for _, p := range rep.Problems {
		got[p.Check] += p.Detail + "; "
	}
	for check, says := range map[string]string{
		"balance":        "inmate A-1 has balance",
		"charge_session": "charge ghost/000000 belongs to no session",
		"message_box":    "indexed in two boxes",
		"outq_count":     "counter says",
	} {
		if !strings.Contains(got[check], says) {
			t.Errorf("problem %s: %q, want %q (all: %v)", check, got[check], says, rep.Problems)
		}
	}
}

// TestVerifyFindsLedgerDamage breaks, behind the domain's back, each ledger rule the tests
// once checked with their own copy and kioskctl verify did not, one store per rule: verify
// must name the rule.
func TestVerifyFindsLedgerDamage(t *testing.T) {
	// firstOf decodes the first record of bucket into v and returns its key; a record that
	// does not decode leaves v empty, and the broken rule then shows as a different problem.
	firstOf := func(tx *bolt.Tx, bucket string, v any) string {
		k, raw := tx.Bucket([]byte(bucket)).Cursor().First()
		_ = json.Unmarshal(raw, v)
		return string(k)
	}
	for _, c := range []struct {
		check, says string
		breakIt     func(tx *bolt.Tx) error
	}{
		{"credit_key", "is stored under key", func(tx *bolt.Tx) error {
			var cr Credit
			k := firstOf(tx, bCredits, &cr)
			cr.RecordID += "x"
			return putJSON(tx, bCredits, k, cr)
		}},
		{"session_minutes", "bills minute", func(tx *bolt.Tx) error {
			// Minute 0 unbilled, one past the end billed instead: as many charges as minutes.
			var s Session
			firstOf(tx, bSessions, &s)
			var ch Charge
			if _, err := getJSON(tx, bCharges, chargeKey(s.ID, 0), &ch); err != nil {
				return err
			}
			if err := tx.Bucket([]byte(bCharges)).Delete([]byte(ch.RecordID)); err != nil {
				return err
			}
			ch.Minute = s.Minutes
			ch.RecordID = chargeKey(s.ID, ch.Minute)
			return putJSON(tx, bCharges, ch.RecordID, ch)
		}},
		{"session_open", "has not ended but is not marked open", func(tx *bolt.Tx) error {
			var s Session
			k := firstOf(tx, bSessions, &s)
			s.End = time.Time{}
			return putJSON(tx, bSessions, k, s)
		}},
		{"session_open", "is marked open but ended", func(tx *bolt.Tx) error {
			var s Session
			k := firstOf(tx, bSessions, &s)
			return tx.Bucket([]byte(bMeta)).Put([]byte(kOpenSession), []byte(k))
		}},
		{"unsynced", "inmate A-1 has", func(tx *bolt.Tx) error {
			var acc Account
			k := firstOf(tx, bAccounts, &acc)
			acc.Unsynced += 5
			return putJSON(tx, bAccounts, k, acc)
		}},
		{"queue_duplicate", "waits twice", func(tx *bolt.Tx) error {
			var s Session
			firstOf(tx, bSessions, &s)
			_, err := enqueue(tx, mbStart, ItemSessionEnd, s)
			return err
		}},
		{"queue_record", "which is not stored", func(tx *bolt.Tx) error {
			_, err := enqueue(tx, mbStart, ItemCharge, Charge{RecordID: "ghost/000000", SessionID: "ghost", InmateID: "A-1"})
			return err
		}},
	} {
		t.Run(c.check+" "+c.says, func(t *testing.T) {
			r := newMBRig(t)
			busyInmate(t, r, "A-1")
			if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
				t.Fatalf("verify of a sound store: %+v, %v", rep, err)
			}
			if err := r.store.db.Update(c.breakIt); err != nil {
				t.Fatal(err)
			}
			rep, err := r.t.Verify("test")
			if err != nil || rep.OK {
				t.Fatalf("verify of a broken store: %+v, %v", rep, err)
			}
			for _, p := range rep.Problems {
				if p.Check == c.check && strings.Contains(p.Detail, c.says) {
					return
				}
			}
			t.Errorf("no problem %s saying %q in %+v", c.check, c.says, rep.Problems)
		})
	}
}

func TestBackupUnderLoadHoldsEverythingAcknowledged(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "A-1", true)
	c := r.approved(t, "A-1", "Rosa Diaz", "rosa@example.org")

	var mu sync.Mutex
	var sent []string
	minutes := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m, err := r.t.Send("A-1", c.ID, "", "message "+itoa(i))
			if err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			r.clock.Advance(61 * time.Second)
			r.t.Tick()
			info, _ := r.t.Active()
			mu.Lock()
			sent = append(sent, m.ID)
			minutes = info.Minutes
			mu.Unlock()
		}
	}()
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	acked := append([]string(nil), sent...)
	ackedMinutes := minutes
	mu.Unlock()

	dir := t.TempDir()
	path := filepath.Join(dir, StoreFile)
	var size int64
	err := WriteFileAtomic(path, func(w io.Writer) error {
		n, err := r.t.Backup(w, "kioskctl:test", func(n int64) { size = n })
		if err == nil && n != size {
			t.Errorf("wrote %d bytes, announced %d", n, size)
		}
		return err
	})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	b, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer b.Close()
	bt, err := NewTerminal(TerminalConfig{Store: b, Clock: r.clock, PINParams: TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bt.Verify("test")
	if err != nil || !rep.OK {
		t.Fatalf("verify backup: %+v %v", rep, err)
	}
	for _, id := range acked {
		if err := b.view(func(tx *bolt.Tx) error {
			if tx.Bucket([]byte(bMessages)).Get([]byte(id)) == nil {
				t.Errorf("message %s acknowledged before the backup is not in it", id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if rep.Records[bCharges] < ackedMinutes {
		t.Errorf("backup holds %d charges, %d minutes were billed before it began", rep.Records[bCharges], ackedMinutes)
	}
	if ev, _ := b.RecentAudit(1, func(ev AuditEvent) bool { return ev.Kind == "backup" }); len(ev) != 1 || ev[0].Actor != "kioskctl:test" {
		t.Errorf("the backup does not hold its own audit event: %+v", ev)
	}
}

func TestCompactNeedsTheStoreToItself(t *testing.T) {
	r := newMBRig(t)
	busyInmate(t, r, "A-1")
	_, err := CompactStore(r.dir, r.clock.Now(), "test", StoreOptions{LockTimeout: 50 * time.Millisecond})
	wantKind(t, err, KindConflict)
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("compact of a held store: %v", err)
	}
	before := storeHolds(t, r.store, "A-1")
	r.store.Close()
	info, err := CompactStore(r.dir, r.clock.Now(), "kioskctl:test", StoreOptions{})
	if err != nil || info.AfterBytes == 0 || info.AfterBytes > info.BeforeBytes {
		t.Fatalf("compact: %+v, %v", info, err)
	}
	r.open(t)
	if after := storeHolds(t, r.store, "A-1"); len(after) < len(before) {
		t.Fatalf("compaction lost records: %d before, %d after", len(before), len(after))
	}
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after compaction: %+v %v", rep, err)
	}
	if ev, _ := r.store.RecentAudit(2, nil); len(ev) != 2 || ev[1].Kind != "compact" {
		t.Fatalf("compaction not audited: %+v", ev)
	}
}
