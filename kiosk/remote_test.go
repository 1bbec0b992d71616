package kiosk

import (
	"encoding/json"
	"testing"
	"time"
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
