package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// openFakeTerminal is openTerminal on a fake clock, so minutes can be billed and cool-downs
// passed without waiting; terminals of one facility share the clock as they share the wall.
func openFakeTerminal(t testing.TB, clk *clock.Fake) *terminal {
	t.Helper()
	dir := t.TempDir()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatalf("open terminal store: %v", err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clk, PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatalf("new terminal: %v", err)
	}
	tm := &terminal{t: t, dir: dir, store: s, term: term}
	t.Cleanup(tm.close)
	return tm
}

// refusal is what the welcome screen shows for a badge: the reason and until when.
func refusal(tm *terminal, badge string) (kiosk.Reason, time.Time) {
	_, err := tm.term.Badge(badge)
	var ke *kiosk.Error
	if !errors.As(err, &ke) {
		return "", time.Time{}
	}
	return ke.Reason, ke.Until
}

// lastSession is the inmate's latest session as the terminal's usage statement shows it.
func lastSession(t testing.TB, tm *terminal, inmate string) kiosk.Session {
	t.Helper()
	us, err := tm.term.Usage(inmate)
	if err != nil || len(us) == 0 {
		t.Fatalf("usage of %s: %+v %v", inmate, us, err)
	}
	last := us[0]
	for _, s := range us {
		if s.End.After(last.End) {
			last = s
		}
	}
	return last
}

// TestFacilityOneInmateTwoKiosks: what an inmate does on one kiosk holds on every kiosk of the
// facility: the balance, the cool-down and approved contacts, and a kiosk enrolled later
// learns them from the relay's snapshot.
func TestFacilityOneInmateTwoKiosks(t *testing.T) {
	const cooldown = 10 * time.Minute
	rl := startRelay(t, "")
	rl.seed()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxSession = kiosk.Duration(24 * time.Hour)
	p.Cooldown = kiosk.Duration(cooldown)
	p.RatePerMinute = 7
	p.OfflineSpendCap = 100000
	p.Curfew = nil
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	url := "http://" + rl.addr()
	a, b := openFakeTerminal(t, clk), openFakeTerminal(t, clk)
	for _, tm := range []*terminal{a, b} {
		tm.enroll(url, rl.code(wire.ModeKiosk, ""))
		tm.start()
		tm.waitRoster()
		testwait.UntilSaw(t, "the facility's policy on the terminal", func() (bool, string) {
			got := tm.term.Policy()
			return got.Cooldown.D() == cooldown && got.RatePerMinute == 7, fmt.Sprintf("%+v", got)
		})
	}
	const deposits = kiosk.Cents(50000)
	// use has the inmate at the screen for d: touches and ticks as the kiosk's loop would, in
	// steps below the stall threshold (a longer silence is a frozen terminal, and credited).
	use := func(tm *terminal, d time.Duration) {
		for step := 2 * time.Second; d > 0; d -= step {
			clk.Advance(min(step, d))
			tm.term.Touch()
			tm.term.Tick()
		}
	}

	// Kiosk A: a session of three full minutes (four begun: minutes 0 to 3) and a contact request.
	a.login("B1", "1234")
	c, err := a.term.AddContact("A1", "Mom", "mom@example.org")
	if err != nil {
		t.Fatal(err)
	}
	use(a, 3*time.Minute+10*time.Second)
	if err := a.term.Logout(); err != nil {
		t.Fatal(err)
	}
	sessA := lastSession(t, a, "A1")
	chargedA := sessA.Charged - sessA.Credited
	if sessA.Minutes != 4 || chargedA != 4*7 {
		t.Fatalf("session on A: %d minutes, %s charged; want 4 minutes, 28 cents", sessA.Minutes, chargedA)
	}
	if got, _ := a.term.Balance("A1"); got != deposits-chargedA {
		t.Fatalf("balance on A = %s, want %s", got, deposits-chargedA)
	}
	wantUntil := sessA.End.Add(cooldown)

	// The contact request reaches the relay and is approved over the admin API.
	testwait.UntilSaw(t, "the contact request on the relay", func() (bool, string) {
		var list struct {
			Contacts []relay.ContactRecord `json:"contacts"`
		}
		rl.admin("GET", "/admin/v1/contacts?status=pending&inmate_id=A1", nil, &list)
		for _, rc := range list.Contacts {
			if rc.ID == c.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(list.Contacts)
	})
	rl.admin("POST", "/admin/v1/contacts/"+c.ID+"/approve", nil, nil)
	if st, page := familyAnswer(t, rl, spooledCode(t, rl.spool(), c.ID), relay.AnswerAccept); st != http.StatusOK {
		t.Fatalf("accept the invitation: %d\n%s", st, page)
	}
	a.waitSynced()

	// Kiosk B: the lowered balance, the cool-down from A's session end, the approved contact.
	testwait.UntilSaw(t, "A's charges, session end, the approval and the acceptance on B", func() (bool, string) {
		bal, _ := b.term.Balance("A1")
		reason, until := refusal(b, "B1")
		cs, _ := b.term.Contacts("A1")
		// Approved and accepted: the acceptance is a second fan-out, after the approval's,
		// and B may hold the one without the other for a moment.
		approved := len(cs) == 1 && cs[0].ID == c.ID && cs[0].State == kiosk.ContactApproved && cs[0].Invite == kiosk.InviteAccepted
		return bal == deposits-chargedA && reason == kiosk.ReasonCooldown && approved,
			fmt.Sprintf("balance %s, refusal %q until %v, contacts %+v", bal, reason, until, cs)
	})
	if reason, until := refusal(b, "B1"); reason != kiosk.ReasonCooldown || !until.Equal(wantUntil) {
		t.Fatalf("B refuses A1 with %q until %v; want %q until %v (A's session end + cool-down)", reason, until, kiosk.ReasonCooldown, wantUntil)
	}
	// A second before the end of the cool-down B still refuses; at its end it lets A1 in.
	clk.Advance(wantUntil.Sub(clk.Now()) - time.Second)
	if reason, _ := refusal(b, "B1"); reason != kiosk.ReasonCooldown {
		t.Fatalf("B a second before the cool-down ends: %q, want %q", reason, kiosk.ReasonCooldown)
	}
	clk.Advance(time.Second)
	b.login("B1", "1234")
	m, err := b.term.Send("A1", c.ID, "hello", "written on kiosk B")
	if err != nil {
		t.Fatalf("send to the contact approved via A, from B: %v", err)
	}
	if sent, _ := b.term.Sent("A1"); len(sent) != 1 || sent[0].ID != m.ID || sent[0].PeerName != "Mom" {
		t.Fatalf("sent on B = %+v", sent)
	}
	use(b, 30*time.Second)
	if err := b.term.Logout(); err != nil {
		t.Fatal(err)
	}
	sessB := lastSession(t, b, "A1")
	chargedB := sessB.Charged - sessB.Credited
	if chargedB != 7 {
		t.Fatalf("session on B charged %s, want 7 cents (one begun minute)", chargedB)
	}
	b.waitSynced()

	// The relay and both kiosks agree on what A1 has left.
	want := deposits - chargedA - chargedB
	testwait.UntilSaw(t, "one balance on the relay and both kiosks", func() (bool, string) {
		var bal relay.Balance
		rl.admin("GET", "/admin/v1/balances/A1", nil, &bal)
		ba, _ := a.term.Balance("A1")
		bb, _ := b.term.Balance("A1")
		return bal.BalanceCents == want && ba == want && bb == want, fmt.Sprintf("relay %s, A %s, B %s, want %s", bal.BalanceCents, ba, bb, want)
	})
	// And A, too, now refuses A1 until B's session end + cool-down.
	wantUntil = sessB.End.Add(cooldown)
	testwait.UntilSaw(t, "B's session end on A", func() (bool, string) {
		reason, until := refusal(a, "B1")
		return reason == kiosk.ReasonCooldown && until.Equal(wantUntil), fmt.Sprintf("%q until %v", reason, until)
	})

	// Kiosk C, enrolled after all this, learns it from the relay's snapshot.
	cc := openFakeTerminal(t, clk)
	cc.enroll(url, rl.code(wire.ModeKiosk, ""))
	cc.start()
	testwait.UntilSaw(t, "the snapshot on the new kiosk", func() (bool, string) {
		bal, _ := cc.term.Balance("A1")
		reason, until := refusal(cc, "B1")
		cs, _ := cc.term.Contacts("A1")
		approved := len(cs) == 1 && cs[0].ID == c.ID && cs[0].State == kiosk.ContactApproved
		return bal == want && reason == kiosk.ReasonCooldown && until.Equal(wantUntil) && approved,
			fmt.Sprintf("balance %s, refusal %q until %v, contacts %+v", bal, reason, until, cs)
	})
	// A2, who did nothing, has all their money on the new kiosk (once the snapshot reaches them).
	testwait.UntilSaw(t, "A2 in the snapshot", func() (bool, string) {
		bal, _ := cc.term.Balance("A2")
		return bal == deposits, fmt.Sprintf("A2 %s, want %s", bal, deposits)
	})
	if bal, _ := cc.term.Balance("A1"); bal != want {
		t.Fatalf("A1 on the new kiosk after the whole snapshot = %s, want %s", bal, want)
	}
}
