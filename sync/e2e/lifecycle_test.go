package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// historyKiosk is a fake-clock kiosk enrolled on a seeded relay, with history for A1: an
// approved contact, a letter sent to it, and minutes billed over two sessions.
func historyKiosk(t *testing.T) (*relayEnv, *terminal, *clock.Fake, client.Enrollment) {
	t.Helper()
	rl := startRelay(t, "")
	rl.seed()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	tm := openFakeTerminal(t, clk)
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	cid := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
	if _, err := tm.term.Send("A1", cid, "hi", "written before the trouble"); err != nil {
		t.Fatal(err)
	}
	use(tm, clk, 2*time.Minute+10*time.Second)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.login("B1", "1234")
	use(tm, clk, 30*time.Second)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	sameBalance(t, rl, tm, "A1")
	return rl, tm, clk, en
}

// use keeps an inmate at the screen for d, in steps below the stall threshold.
func use(tm *terminal, clk *clock.Fake, d time.Duration) {
	for step := 2 * time.Second; d > 0; d -= step {
		clk.Advance(min(step, d))
		tm.term.Touch()
		tm.term.Tick()
	}
}

// sameBalance waits until the relay and the terminal show the inmate the same balance.
func sameBalance(t *testing.T, rl *relayEnv, tm *terminal, inmate string) kiosk.Cents {
	t.Helper()
	var want kiosk.Cents
	testwait.UntilSaw(t, "one balance of "+inmate+" on the relay and the kiosk", func() (bool, string) {
		var bal relay.Balance
		rl.admin("GET", "/admin/v1/balances/"+inmate, nil, &bal)
		got, err := tm.term.Balance(inmate)
		want = bal.BalanceCents
		return err == nil && got == want, fmt.Sprintf("relay %s, kiosk %s %v", want, got, err)
	})
	return want
}

// terminalsByID is GET /admin/v1/terminals by id.
func (e *relayEnv) terminalsByID() map[string]relay.TerminalInfo {
	e.t.Helper()
	var tl struct {
		Terminals []relay.TerminalInfo `json:"terminals"`
	}
	e.admin("GET", "/admin/v1/terminals", nil, &tl)
	out := map[string]relay.TerminalInfo{}
	for _, ti := range tl.Terminals {
		out[ti.ID] = ti
	}
	return out
}

// A kiosk with history enrolls again with the same key into its kept store (the path kioskctl
// reissue and a damaged enrollment file lead to): the old terminal is revoked and gets nothing
// more, no minute is counted twice (the kiosk's balance is the relay's), and it keeps
// forwarding under its new id.
func TestReenrollSameKeyKeepsStoreAndMoney(t *testing.T) {
	rl, tm, clk, old := historyKiosk(t)
	before := sameBalance(t, rl, tm, "A1")
	// A long downlink history (here: technician renames) that no snapshot repeats, so the old
	// stream's position is far beyond the new terminal's snapshot.
	for i := range 40 {
		ro := relay.Roster{
			Inmates: []relay.RosterInmate{
				{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive},
				{ID: "A2", Name: "Bo", Badges: []string{"B2"}, Language: "es", Status: kiosk.StatusActive},
			},
			Technicians: []relay.RosterTechnician{{ID: "T1", Name: fmt.Sprintf("Tess %d", i), Badges: []string{"TB1"}, Role: "installer"}},
		}
		if err := rl.r.PutRoster("north", ro); err != nil {
			t.Fatal(err)
		}
	}
	testwait.UntilSaw(t, "the old terminal's downlink applied", func() (bool, string) {
		ti := rl.terminalsByID()[old.TerminalID]
		return ti.DownAcked == ti.DownQueued, fmt.Sprintf("%+v", ti)
	})

	tm.stopSync()
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	if en.TerminalID == old.TerminalID {
		t.Fatalf("enrolled again under the same id %s", en.TerminalID)
	}
	ts := rl.terminalsByID()
	if !ts[old.TerminalID].Revoked || ts[en.TerminalID].Replaces != old.TerminalID {
		t.Fatalf("after enrolling again: old %+v, new %+v", ts[old.TerminalID], ts[en.TerminalID])
	}
	oldQueued := ts[old.TerminalID].DownQueued
	tm.start()
	// A deposit made now reaches the new terminal after its snapshot, none goes to the old one.
	if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A1", Cents: 300, Ref: "after-reenroll"}); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the deposit made after enrolling again", func() (bool, string) {
		got, _ := tm.term.Balance("A1")
		return got == before+300, fmt.Sprintf("kiosk %s, want %s (status %+v)", got, before+300, tm.eng.Status())
	})
	sameBalance(t, rl, tm, "A1")
	if q := rl.terminalsByID()[old.TerminalID].DownQueued; q != oldQueued {
		t.Fatalf("downlink still queued for the replaced terminal: %d, was %d", q, oldQueued)
	}
	// Its snapshot (its own past minutes among them) has been applied in full.
	testwait.UntilSaw(t, "the whole snapshot applied", func() (bool, string) {
		ti := rl.terminalsByID()[en.TerminalID]
		return ti.DownAcked == ti.DownQueued, fmt.Sprintf("%+v", ti)
	})
	sameBalance(t, rl, tm, "A1")

	// It keeps forwarding: a new minute and a letter reach the relay under the new id.
	tm.login("B1", "1234")
	cs, _ := tm.term.Contacts("A1")
	m, err := tm.term.Send("A1", cs[0].ID, "again", "written after enrolling again")
	if err != nil {
		t.Fatal(err)
	}
	use(tm, clk, 20*time.Second)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	if got := sameBalance(t, rl, tm, "A1"); got >= before+300 {
		t.Fatalf("balance %s after a billed minute, want below %s", got, before+300)
	}
	var out struct {
		Messages []relay.Outbound `json:"messages"`
	}
	rl.admin("GET", "/admin/v1/outbound?inmate_id=A1", nil, &out)
	found := false
	for _, o := range out.Messages {
		found = found || (o.ID == m.ID && o.TerminalID == en.TerminalID)
	}
	if len(out.Messages) != 2 || !found {
		t.Fatalf("outbound of A1 = %+v; want the old letter and %s from %s", out.Messages, m.ID, en.TerminalID)
	}
}

// A kiosk whose store is wiped (same identity and enrollment, a fresh store) gets back policy,
// roster, balances, contacts, letters and notices from the relay.
func TestWipedKioskGetsItsStateBack(t *testing.T) {
	rl, tm, clk, en := historyKiosk(t)
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.RatePerMinute = 9
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	letter, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: "mom@example.org", Body: "see you Sunday"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rl.r.PostNotice(relay.NoticeRequest{FacilityID: "north", Text: "Kiosks close at 21:00"}); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "policy, letter and notice on the kiosk", func() (bool, string) {
		in, _ := tm.term.Inbox("A1")
		ns, _ := tm.term.Notices("")
		return tm.term.Policy().RatePerMinute == 9 && len(in) == 1 && len(ns) == 1, fmt.Sprintf("inbox %d, notices %d", len(in), len(ns))
	})
	want := sameBalance(t, rl, tm, "A1")

	// Wiped: the store file goes, the identity key and enrollment file stay.
	tm.close()
	if err := os.Remove(filepath.Join(tm.dir, kiosk.StoreFile)); err != nil {
		t.Fatal(err)
	}
	s, err := kiosk.OpenStore(tm.dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clk, PINParams: kiosk.TestPINParams(), ID: en.TerminalID})
	if err != nil {
		t.Fatal(err)
	}
	tm.store, tm.term = s, term
	tm.start()
	testwait.UntilSaw(t, "the wiped kiosk's state back", func() (bool, string) {
		bal, _ := tm.term.Balance("A1")
		cs, _ := tm.term.Contacts("A1")
		in, _ := tm.term.Inbox("A1")
		ns, _ := tm.term.Notices("")
		ok := tm.term.Policy().RatePerMinute == 9 && bal == want && len(cs) == 1 && cs[0].State == kiosk.ContactApproved &&
			len(in) == 1 && in[0].ID == letter.ID && len(ns) == 1
		return ok, fmt.Sprintf("rate %s, balance %s want %s, contacts %+v, inbox %d, notices %d, status %+v",
			tm.term.Policy().RatePerMinute, bal, want, cs, len(in), len(ns), tm.eng.Status())
	})
	sameBalance(t, rl, tm, "A2")
	// The roster is back: A1 logs in with badge and PIN and can write to Mom.
	tm.login("B1", "1234")
	cs, _ := tm.term.Contacts("A1")
	if _, err := tm.term.Send("A1", cs[0].ID, "back", "written after the wipe"); err != nil {
		t.Fatalf("send after the wipe: %v", err)
	}
	use(tm, clk, 10*time.Second)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	sameBalance(t, rl, tm, "A1")
}

// A badge moved in one roster update from a released inmate to a new one ends with the new
// inmate on the kiosk: the new one logs in with it, the released one cannot.
func TestRosterBadgeMovesToTheNewInmate(t *testing.T) {
	rl, _, tm, _ := syncedKiosk(t, nil)
	ro := relay.Roster{
		Inmates: []relay.RosterInmate{
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, Language: "es", Status: kiosk.StatusActive},
			{ID: "A9", Name: "Nia", Badges: []string{"B1"}, PIN: "9191", Language: "en", Status: kiosk.StatusActive},
		},
		Technicians: []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, Role: "installer"}},
	}
	if err := rl.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A9", Cents: 1000, Ref: "a9"}); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the roster update and A9's deposit on the kiosk", func() (bool, string) {
		bal, _ := tm.term.Balance("A9")
		a1, _ := tm.term.Inmate("A1")
		return bal == 1000 && a1.Status == kiosk.StatusSuspended, fmt.Sprintf("A9 %s, A1 %+v", bal, a1.Status)
	})
	res, err := tm.term.Badge("B1")
	if err != nil || res.PersonID != "A9" {
		t.Fatalf("badge B1: %+v %v, want the new inmate A9", res, err)
	}
	if _, err := tm.term.EnterPIN("B1", "1234"); err == nil {
		t.Fatal("the released inmate's PIN opened badge B1")
	}
	si := tm.login("B1", "9191")
	if si.InmateID != "A9" {
		t.Fatalf("logged in as %s with badge B1, want A9", si.InmateID)
	}
}

// A deposit the relay accepted stays on a kiosk enrolled after the facility lowered its
// max_deposit_cents; a tablet holds no technician.
func TestLoweredMaxDepositAndTabletTechnicians(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed() // $500 deposits, accepted under the default $1000 limit
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.MaxDeposit, p.OfflineSpendCap = 1000, 1000
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	url := "http://" + rl.addr()
	k := openTerminal(t, "", kiosk.StoreOptions{})
	k.enroll(url, rl.code(wire.ModeKiosk, ""))
	k.start()
	k.waitRoster()
	if got, _ := k.term.Balance("A1"); got != 50000 {
		t.Fatalf("A1 on the new kiosk = %s, want $500.00", got)
	}
	if res, err := k.term.Badge("TB1"); err != nil || res.Kind != kiosk.PersonTechnician {
		t.Fatalf("technician badge on the kiosk: %+v %v", res, err)
	}

	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(url, rl.code(wire.ModeTablet, "A1"))
	tab.start()
	testwait.UntilSaw(t, "A1's money on the tablet", func() (bool, string) {
		got, err := tab.term.Balance("A1")
		return got == 50000, fmt.Sprint(got, err)
	})
	if res, err := tab.term.Badge("TB1"); err == nil {
		t.Fatalf("technician badge on a tablet: %+v", res)
	}
}
