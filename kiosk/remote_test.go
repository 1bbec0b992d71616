package kiosk

import (
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// Facts from other terminals move balance and cool-down here, once each, however often they come.
func TestRemoteFactsHoldFacilityWide(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("A1", 100)
	var seq uint64
	apply := func(kind string, body any) string {
		t.Helper()
		raw, _ := json.Marshal(body)
		seq++
		refused, err := r.term.ApplyDownlink(seq, kind, raw)
		if err != nil {
			t.Fatalf("apply %s: %v", kind, err)
		}
		return refused
	}
	balance := func() Cents {
		t.Helper()
		b, err := r.term.Balance("A1")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	charge := Charge{RecordID: "S-other/000000", SessionID: "S-other", InmateID: "A1", Minute: 0, Cents: 5, At: rigStart}
	apply(DownRemoteCharge, charge)
	apply(DownRemoteCharge, charge) // resent after a reconnect
	if got := balance(); got != 95 {
		t.Fatalf("balance after one remote minute sent twice = %v, want $0.95", got)
	}
	apply(DownRemoteCredit, Credit{RecordID: "S-other/000000", SessionID: "S-other", InmateID: "A1", Cents: 5, Reason: CreditTerminalFault})
	if got := balance(); got != 100 {
		t.Fatalf("balance after the remote credit = %v, want $1.00", got)
	}
	if refused := apply(DownRemoteCharge, Charge{RecordID: "x", InmateID: "A1", Cents: -500}); refused == "" {
		t.Fatal("a negative remote charge was applied")
	}
	if got := balance(); got != 100 {
		t.Fatalf("balance after a refused charge = %v, want $1.00", got)
	}

	// A session that ended elsewhere two minutes ago starts the cool-down here.
	end := r.clk.Now().Add(-2 * time.Minute)
	apply(DownRemoteSessionEnd, Session{ID: "S-other", InmateID: "A1", Start: end.Add(-10 * time.Minute), End: end, EndReason: EndLogout})
	_, err := r.term.Badge("B-A1")
	if ReasonOf(err) != ReasonCooldown {
		t.Fatalf("badge after a remote session end: %v, want a cool-down refusal", err)
	}
	var e *Error
	if !asError(err, &e) || !e.Until.Equal(end.Add(30*time.Minute)) {
		t.Fatalf("cool-down until %v, want %v", e.Until, end.Add(30*time.Minute))
	}
	if rep, err := r.term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after remote facts: %+v, %v", rep.Problems, err)
	}
	r.restart()
	if got := balance(); got != 100 {
		t.Fatalf("balance after restart = %v, want $1.00", got)
	}
	r.clk.Advance(28 * time.Minute)
	if _, err := r.term.Badge("B-A1"); err != nil {
		t.Fatalf("badge after the cool-down: %v", err)
	}
}

// A terminal enrolled while it runs names itself by its new id in the sessions that follow.
func TestSessionsNameTheEnrolledTerminal(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("A1", 500)
	if err := r.term.SetEnrollment(Enrollment{TerminalID: "t-9", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.login("A1"); err != nil {
		t.Fatal(err)
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	sessions, err := r.term.Usage("A1")
	if err != nil || len(sessions) != 1 || sessions[0].Terminal != "t-9" {
		t.Fatalf("usage = %+v, %v; want one session on terminal t-9", sessions, err)
	}
}

// FuzzApplyDownlink: whatever the relay sends, applying it never panics, never fails for
// anything but storage, and leaves a store whose own invariants hold.
func FuzzApplyDownlink(f *testing.F) {
	kinds := []string{DownInboundMessage, DownMessageStatus, DownInmate, DownTechnician, DownTechnicianRemove,
		DownDeposit, DownContact, DownPolicy, DownRemoteCharge, DownRemoteCredit, DownRemoteSessionEnd, DownNotice,
		DownSentMessage, DownHistory, DownMessageRead, DownRefund, DownCatalogItem, DownCatalogWithdrawn, DownQuizResult, DownLibraryUse}
	f.Add(uint8(18), `{"attempt_id":"a1","inmate_id":"A1","course_id":"c1","quiz_id":"q1","outcome":"failed","right":2,"questions":3,"pass_score":3,"attempts_used":1,"attempts_left":2,"at":"2026-11-26T09:00:00Z"}`)
	f.Add(uint8(18), `{"attempt_id":"a1","inmate_id":"A1","course_id":"c1","quiz_id":"q1","outcome":"failed","right":4,"questions":3,"credit_cents":50}`)
	f.Add(uint8(19), `{"inmate_id":"A1","day":"2025-03-05","terminal_id":"T2","minutes":40,"at":"2026-11-26T09:00:00Z"}`)
	f.Add(uint8(19), `{"inmate_id":"A1","day":"2025-02-30","terminal_id":"T2/x","minutes":-1}`)
	f.Add(uint8(5), `{"ref":"d1","inmate_id":"A1","cents":500}`)
	f.Add(uint8(12), `{"ref":"r1","deposit_ref":"seed","inmate_id":"A1","cents":300,"at":"2026-11-26T09:00:00Z"}`)
	f.Add(uint8(12), `{"ref":"r1","deposit_ref":"seed","inmate_id":"A1","cents":-3}`)
	f.Add(uint8(6), `{"id":"c1","inmate_id":"A1","name":"Ana","email":"ana@example.org","state":"approved","invite":"invited","invite_expires":"2026-12-06T09:00:00Z"}`)
	f.Add(uint8(6), `{"id":"c1","inmate_id":"A1","name":"Ana","email":"ana@example.org","state":"approved","invite":"maybe"}`)
	f.Add(uint8(8), `{"record_id":"S/000001","session_id":"S","inmate_id":"A1","minute":1,"cents":5}`)
	f.Add(uint8(10), `{"id":"S","inmate_id":"A1","end":"2026-11-26T09:00:00Z"}`)
	f.Add(uint8(0), `{"id":"0190b0c0-0000-7000-8000-000000000001","inmate_id":"A1","box":"inbox","peer":"c1","body":"hi"}`)
	f.Add(uint8(6), `{"id":"c1","inmate_id":"A1","name":"Ana","email":"ana@example.org","state":"approved"}`)
	f.Add(uint8(2), `{"id":"A2","name":"B","badges":["x"],"pin_hash":"","language":"es","status":"active"}`)
	f.Add(uint8(12), `{"id":"k1","inmate_id":"A1","box":"outbox","peer":"dept-medical","body":"hi","state":"held"}`)
	f.Add(uint8(13), `{"inmate_id":"A1","session_id":"S","letters":[{"id":"k2","inmate_id":"A1","peer":"d","body":"x","state":"sent"}]}`)
	f.Add(uint8(14), `{"message_id":"0190b0c0-0000-7000-8000-000000000001","inmate_id":"A1","at":"2026-11-26T09:00:00Z"}`)
	f.Add(uint8(99), `not json`)
	s, err := OpenStore(f.TempDir(), StoreOptions{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clock.NewFake(rigStart), PINParams: TestPINParams()})
	if err != nil {
		f.Fatal(err)
	}
	h, _ := HashPINWith(rigPIN, TestPINParams())
	if err := term.UpsertInmate(Inmate{ID: "A1", Name: "Ana", Badges: []string{"B-A1"}, PINHash: h, Language: "en",
		Status: StatusActive, Messaging: true}, "fuzz"); err != nil {
		f.Fatal(err)
	}
	if err := term.Deposit("A1", 1000, "seed"); err != nil {
		f.Fatal(err)
	}
	var seq uint64
	f.Fuzz(func(t *testing.T, k uint8, body string) {
		kind := ""
		if int(k) < len(kinds) {
			kind = kinds[k]
		} else {
			kind = body
		}
		seq++
		if _, err := term.ApplyDownlink(seq, kind, json.RawMessage(body)); err != nil {
			t.Fatalf("apply %s %q: %v", kind, body, err)
		}
		if rep, err := term.Verify("fuzz"); err != nil || !rep.OK {
			t.Fatalf("after %s %q the store does not verify: %+v %v", kind, body, rep.Problems, err)
		}
	})
}

// A terminal's own minutes sent back to it as remote records (a relay snapshot holds every
// record of the inmate, this terminal's too) are already in its ledger: they change nothing.
func TestOwnRecordsComingBackCountOnce(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("A1", 1000)
	r.mustLogin("A1")
	r.run(2*time.Minute+20*time.Second, true) // minutes 0, 1 and 2 billed
	if err := r.term.ReportStall(12 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.term.ReportStall(15 * time.Second); err != nil { // minute 2 credited
		t.Fatal(err)
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	want := r.balance("A1")
	if want != 1000-15+5 {
		t.Fatalf("balance before the snapshot = %v, want $9.90", want)
	}
	var charges []Charge
	var credits []Credit
	if err := r.store.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bCharges)).ForEach(func(_, v []byte) error {
			var c Charge
			charges = append(charges, c)
			return json.Unmarshal(v, &charges[len(charges)-1])
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte(bCredits)).ForEach(func(_, v []byte) error {
			var c Credit
			credits = append(credits, c)
			return json.Unmarshal(v, &credits[len(credits)-1])
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(charges) != 3 || len(credits) != 1 {
		t.Fatalf("own ledger: %d charges, %d credits; want 3 and 1", len(charges), len(credits))
	}
	var seq uint64
	for round := 0; round < 2; round++ { // a second snapshot changes nothing either
		for _, c := range charges {
			seq++
			raw, _ := json.Marshal(c)
			if refused, err := r.term.ApplyDownlink(seq, DownRemoteCharge, raw); err != nil || refused != "" {
				t.Fatalf("own charge %s back from the relay: refused %q, %v", c.RecordID, refused, err)
			}
		}
		for _, cr := range credits {
			seq++
			raw, _ := json.Marshal(cr)
			if refused, err := r.term.ApplyDownlink(seq, DownRemoteCredit, raw); err != nil || refused != "" {
				t.Fatalf("own credit %s back from the relay: refused %q, %v", cr.RecordID, refused, err)
			}
		}
	}
	if got := r.balance("A1"); got != want {
		t.Fatalf("balance after its own records came back = %v, want %v", got, want)
	}
	if applied, _ := r.term.DownlinkApplied(); applied != seq {
		t.Fatalf("downlink applied = %d, want %d (skipped records still count as applied)", applied, seq)
	}
	// Another terminal's minute of the same inmate still counts.
	seq++
	raw, _ := json.Marshal(Charge{RecordID: "S-other/000000", SessionID: "S-other", InmateID: "A1", Cents: 5, At: rigStart})
	if _, err := r.term.ApplyDownlink(seq, DownRemoteCharge, raw); err != nil {
		t.Fatal(err)
	}
	if got := r.balance("A1"); got != want-5 {
		t.Fatalf("balance after another terminal's minute = %v, want %v", got, want-5)
	}
	if rep, err := r.term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep.Problems, err)
	}
}
