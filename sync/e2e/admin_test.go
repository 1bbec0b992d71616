package e2e

import (
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestAdminAPIReachesTerminal: what an administrator does over the admin HTTP API reaches the
// terminal's store, and the terminal's usage reaches GET /admin/v1/usage with equal totals.
func TestAdminAPIReachesTerminal(t *testing.T) {
	rl := startRelayHold(t, "", relay.HoldAll)
	rl.seed()
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()

	// Usage: two sessions for A1, each billed its first minute.
	tm.login("B1", "1234")
	mom := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
	m1, err := tm.term.Send("A1", mom, "hello", "first")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := tm.term.Send("A1", mom, "again", "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.login("B1", "1234")
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()

	// Review decisions on the two held messages.
	var held struct {
		Messages []relay.Outbound `json:"messages"`
	}
	rl.admin("GET", "/admin/v1/outbound?status=held&inmate_id=A1", nil, &held)
	if len(held.Messages) != 2 {
		t.Fatalf("held messages on the relay = %d, want 2", len(held.Messages))
	}
	rl.admin("POST", "/admin/v1/outbound/"+m1.ID+"/approve", nil, nil)
	rl.admin("POST", "/admin/v1/outbound/"+m2.ID+"/reject", map[string]string{"reason": "content_policy"}, nil)
	// Money, mail and roster.
	rl.admin("POST", "/admin/v1/deposits", relay.DepositRequest{InmateID: "A1", Cents: 1234, Ref: "wire-77"}, nil)
	rl.admin("POST", "/admin/v1/inbound", relay.InboundRequest{InmateID: "A1", From: mom, Subject: "re: hello", Body: "love, mom"}, nil)
	rl.admin("PUT", "/admin/v1/facilities/north/roster", relay.Roster{
		Inmates: []relay.RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2", "B2b"}, Language: "es", Status: kiosk.StatusSuspended},
		},
		Technicians: []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}},
	}, nil)

	testwait.UntilSaw(t, "admin changes on the terminal", func() (bool, string) {
		sent, _ := tm.term.Sent("A1")
		states := map[string]string{}
		for _, m := range sent {
			states[m.ID] = m.State
		}
		inbox, _ := tm.term.Inbox("A1")
		a2, _ := tm.term.Inmate("A2")
		return states[m1.ID] == kiosk.MsgDelivered && states[m2.ID] == kiosk.MsgRejected && len(inbox) == 1 &&
			a2.Status == kiosk.StatusSuspended && len(a2.Badges) == 2, ""
	})
	sent, _ := tm.term.Sent("A1")
	for _, m := range sent {
		if m.ID == m2.ID && m.Reason != "content_policy" {
			t.Errorf("rejected message reason = %q, want content_policy", m.Reason)
		}
	}
	if _, err := tm.term.Badge("B2b"); kiosk.ReasonOf(err) != kiosk.ReasonSuspended {
		t.Errorf("badge of the suspended inmate: %v, want %s", err, kiosk.ReasonSuspended)
	}

	// Totals agree: the relay's usage statement and the terminal's.
	var usage relay.Usage
	rl.admin("GET", "/admin/v1/usage?inmate_id=A1", nil, &usage)
	sessions, err := tm.term.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	var local kiosk.Cents
	for _, s := range sessions {
		local += s.Charged - s.Credited
	}
	if len(sessions) != 2 || local <= 0 || usage.TotalCents != local {
		t.Fatalf("usage: relay total %s over %d records, terminal %s over %d sessions", usage.TotalCents, len(usage.Records), local, len(sessions))
	}
	testwait.UntilSaw(t, "balances to agree", func() (bool, string) {
		var bal relay.Balance
		rl.admin("GET", "/admin/v1/balances/A1", nil, &bal)
		got, _ := tm.term.Balance("A1")
		return got == bal.BalanceCents && bal.BalanceCents == 50000+1234-local, ""
	})
	_ = en
}

// TestRevokedTerminalIsRefusedWithReason: a revoked terminal stays disconnected and its status
// says why; its queue is kept.
func TestRevokedTerminalIsRefusedWithReason(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	rl.admin("POST", "/admin/v1/terminals/"+en.TerminalID+"/revoke", nil, nil)
	testwait.UntilSaw(t, "the terminal to be refused", func() (bool, string) {
		st := tm.eng.Status()
		return !st.Connected && strings.Contains(st.LastError, wire.ReasonRevoked), st.LastError
	})
}

// TestTabletEnrollmentBindsInmate: a tablet enrolled for A2 is bound to A2 and only A2 logs in.
func TestTabletEnrollmentBindsInmate(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeTablet, "A2"))
	if en.Mode != wire.ModeTablet || en.InmateID != "A2" {
		t.Fatalf("enrollment = %+v", en)
	}
	if id, ok, err := tm.term.BoundInmate(); err != nil || !ok || id != "A2" {
		t.Fatalf("bound inmate = %q %v %v", id, ok, err)
	}
	tm.start()
	testwait.UntilSaw(t, "A2 on the tablet", func() (bool, string) {
		_, err := tm.term.Inmate("A2")
		bal, _ := tm.term.Balance("A2")
		return err == nil && bal > 0, ""
	})
	p, err := tm.term.EnterBoundPIN("2345")
	if err != nil || p.PersonID != "A2" {
		t.Fatalf("bound PIN: %+v %v", p, err)
	}
	if st := tm.eng.Status(); st.Mode != wire.ModeTablet || st.InmateID != "A2" {
		t.Fatalf("status = %+v", st)
	}
}
