package kiosk

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// PINs long enough that they cannot turn up by chance in ids, hashes or timestamps,
// so a byte scan of the store for them means something.
const (
	pinAna   = "739158264027" // I-1, badge B-1001, Spanish
	pinBen   = "864201975311" // I-2, badges B-2001 and B-2002, suspended
	pinCy    = "502468813579" // I-3, badge B-3001, has a tablet
	pinSam   = "913572468024" // T-1, badge T-9001, technician
	pinWrong = "111122223333"
)

var loginStart = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

type loginFixture struct {
	t     *testing.T
	dir   string
	clk   *clock.Fake
	store *Store
	term  *Terminal
}

func testHash(t testing.TB, pin string) string {
	t.Helper()
	h, err := HashPINWith(pin, TestPINParams())
	if err != nil {
		t.Fatalf("hash pin: %v", err)
	}
	return h
}

func testRoster(t testing.TB) Roster {
	return Roster{
		Inmates: []Inmate{
			{ID: "I-1", Name: "Ana Ruiz", Badges: []string{"B-1001"}, PINHash: testHash(t, pinAna), Language: "es", Status: StatusActive, Messaging: true},
			{ID: "I-2", Name: "Ben Ode", Badges: []string{"B-2001", "B-2002"}, PINHash: testHash(t, pinBen), Language: "en", Status: StatusSuspended},
			{ID: "I-3", Name: "Cy Park", Badges: []string{"B-3001"}, PINHash: testHash(t, pinCy), Language: "en", Status: StatusActive, TabletBound: true},
		},
		Technicians: []Technician{
			{ID: "T-1", Name: "Sam Lee", Badges: []string{"T-9001"}, PINHash: testHash(t, pinSam), Role: "installer"},
		},
	}
}

// newLoginFixture opens a real store in a temp dir, with the test roster imported.
func newLoginFixture(t *testing.T) *loginFixture {
	t.Helper()
	f := &loginFixture{t: t, dir: t.TempDir(), clk: clock.NewFake(loginStart)}
	f.open()
	if _, err := f.store.ImportRoster(f.clk.Now(), "test", testRoster(t), "tester"); err != nil {
		t.Fatalf("import test roster: %v", err)
	}
	for _, id := range []string{"I-1", "I-2", "I-3"} {
		if err := f.term.Deposit(id, 1000, "seed-"+id); err != nil {
			t.Fatalf("deposit for %s: %v", id, err)
		}
	}
	t.Cleanup(func() {
		if f.store != nil {
			f.store.Close()
		}
	})
	return f
}

func (f *loginFixture) open() {
	f.t.Helper()
	s, err := OpenStore(f.dir, StoreOptions{})
	if err != nil {
		f.t.Fatalf("open store: %v", err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: f.clk, PINParams: TestPINParams(), Logf: f.t.Logf})
	if err != nil {
		f.t.Fatalf("new terminal: %v", err)
	}
	f.store, f.term = s, term
}

// reopen closes the store and opens it again, as a restart does.
func (f *loginFixture) reopen() {
	f.t.Helper()
	if err := f.store.Close(); err != nil {
		f.t.Fatalf("close store: %v", err)
	}
	f.store = nil
	f.open()
}

func wantReason(t *testing.T, what string, err error, want Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded; want refusal %q", what, want)
	}
	if KindOf(err) != KindRefused || ReasonOf(err) != want {
		t.Fatalf("%s: error %v (kind %v, reason %q); want refusal %q", what, err, KindOf(err), ReasonOf(err), want)
	}
}

func TestLoginOutcomes(t *testing.T) {
	f := newLoginFixture(t)
	cases := []struct {
		name   string
		badge  string
		pin    string
		reason Reason // "" means the login goes through
		left   int    // attempts left after a wrong PIN
	}{
		{name: "unknown badge", badge: "B-0000", pin: pinAna, reason: ReasonUnknownBadge},
		{name: "suspended inmate", badge: "B-2001", pin: pinBen, reason: ReasonSuspended},
		{name: "suspended inmate's second badge", badge: "B-2002", pin: pinBen, reason: ReasonSuspended},
		{name: "wrong PIN", badge: "B-1001", pin: pinWrong, reason: ReasonWrongPIN, left: 4},
		{name: "another person's PIN", badge: "B-1001", pin: pinCy, reason: ReasonWrongPIN, left: 3},
		{name: "not digits", badge: "B-1001", pin: "12ab", reason: ReasonWrongPIN, left: 2},
		{name: "right PIN", badge: "B-1001", pin: pinAna},
		{name: "badge with reader whitespace", badge: " B-1001\r\n", pin: pinAna},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := f.term.Badge(c.badge)
			switch c.reason {
			case "", ReasonWrongPIN:
				if err != nil {
					t.Fatalf("Badge(%q) = %v; want accepted", c.badge, err)
				}
				if res.Kind != PersonInmate || res.PersonID != "I-1" || res.Language != "es" {
					t.Fatalf("Badge(%q) = %+v; want inmate I-1 in Spanish", c.badge, res)
				}
			default:
				wantReason(t, "Badge", err, c.reason)
			}
			p, err := f.term.EnterPIN(c.badge, c.pin)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("EnterPIN = %v; want a pending login", err)
				}
				if p.Kind != PersonInmate || p.PersonID != "I-1" || p.Name != "Ana Ruiz" || p.Language != "es" ||
					p.Notice != DefaultPolicy().MonitoringNotice["es"] || !p.At.Equal(loginStart) {
					t.Fatalf("EnterPIN = %+v; want I-1 with the Spanish notice", p)
				}
				return
			}
			wantReason(t, "EnterPIN", err, c.reason)
			if strings.Contains(err.Error(), c.pin) {
				t.Fatalf("error %q repeats the PIN", err)
			}
			if c.reason == ReasonWrongPIN {
				if left, ok := AttemptsLeft(err); !ok || left != c.left {
					t.Fatalf("AttemptsLeft(%v) = %d, %v; want %d", err, left, ok, c.left)
				}
			}
		})
	}
	if _, err := f.term.EnterPIN("B-1001", ""); KindOf(err) != KindInvalid {
		t.Fatalf("empty PIN: %v; want invalid (not counted)", err)
	}
}

func TestLockoutPersistsAndExpires(t *testing.T) {
	f := newLoginFixture(t)
	for i := 1; i <= 4; i++ {
		_, err := f.term.EnterPIN("B-1001", pinWrong)
		wantReason(t, "wrong PIN", err, ReasonWrongPIN)
		if left, _ := AttemptsLeft(err); left != 5-i {
			t.Fatalf("wrong PIN %d: %d attempts left; want %d", i, left, 5-i)
		}
		f.clk.Advance(10 * time.Second)
	}
	lockedAt := f.clk.Now()
	_, err := f.term.EnterPIN("B-1001", pinWrong)
	wantReason(t, "5th wrong PIN", err, ReasonLocked)
	until := lockedAt.Add(15 * time.Minute)
	var e *Error
	if !errors.As(err, &e) || !e.Until.Equal(until) {
		t.Fatalf("5th wrong PIN: %v; want locked until %v", err, until)
	}
	// Locked: the right PIN is refused and the badge is refused before any PIN.
	_, err = f.term.EnterPIN("B-1001", pinAna)
	wantReason(t, "right PIN while locked", err, ReasonLocked)
	_, err = f.term.Badge("B-1001")
	wantReason(t, "badge while locked", err, ReasonLocked)

	f.reopen()
	_, err = f.term.Badge("B-1001")
	wantReason(t, "badge after restart", err, ReasonLocked)
	_, err = f.term.EnterPIN("B-1001", pinAna)
	wantReason(t, "right PIN after restart", err, ReasonLocked)

	// Other people are not affected.
	if _, err := f.term.EnterPIN("B-3001", pinCy); err != nil {
		t.Fatalf("another inmate during the lock: %v", err)
	}

	f.clk.Advance(until.Sub(f.clk.Now()) - time.Second)
	_, err = f.term.Badge("B-1001")
	wantReason(t, "one second before the lock ends", err, ReasonLocked)
	f.clk.Advance(time.Second)
	res, err := f.term.Badge("B-1001")
	if err != nil || res.AttemptsLeft != 5 {
		t.Fatalf("badge when the lock ends: %+v, %v; want accepted with 5 attempts", res, err)
	}
	if _, err := f.term.EnterPIN("B-1001", pinAna); err != nil {
		t.Fatalf("right PIN when the lock ends: %v", err)
	}
}

func TestLockoutFollowsPolicy(t *testing.T) {
	f := newLoginFixture(t)
	p := DefaultPolicy()
	p.MaxWrongPINs = 2
	p.Lockout = Duration(5 * time.Minute)
	if err := f.term.SetPolicy(p, "tester"); err != nil {
		t.Fatal(err)
	}
	_, err := f.term.EnterPIN("B-1001", pinWrong)
	wantReason(t, "1st wrong PIN", err, ReasonWrongPIN)
	_, err = f.term.EnterPIN("B-1001", pinWrong)
	wantReason(t, "2nd wrong PIN", err, ReasonLocked)
	f.clk.Advance(5 * time.Minute)
	if _, err := f.term.EnterPIN("B-1001", pinAna); err != nil {
		t.Fatalf("after a 5 minute lock: %v", err)
	}
}

func TestSuccessResetsWrongPINCount(t *testing.T) {
	f := newLoginFixture(t)
	for i := 0; i < 4; i++ {
		f.term.EnterPIN("B-1001", pinWrong)
	}
	if st, _ := f.term.LoginState("I-1"); st.Failures != 4 {
		t.Fatalf("after 4 wrong PINs the count is %d", st.Failures)
	}
	if _, err := f.term.EnterPIN("B-1001", pinAna); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
	if st, _ := f.term.LoginState("I-1"); st != (LoginState{}) {
		t.Fatalf("after the right PIN the state is %+v; want cleared", st)
	}
	for i := 0; i < 4; i++ {
		_, err := f.term.EnterPIN("B-1001", pinWrong)
		wantReason(t, "wrong PIN after a reset", err, ReasonWrongPIN)
	}
}

func TestConcurrentWrongPINsAllCount(t *testing.T) {
	f := newLoginFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.term.EnterPIN("B-1001", pinWrong)
		}()
	}
	wg.Wait()
	counts := map[Reason]int{}
	for _, err := range errs {
		counts[ReasonOf(err)]++
	}
	if counts[ReasonWrongPIN] != 4 || counts[ReasonLocked] != 1 {
		t.Fatalf("5 simultaneous wrong PINs gave %v; want 4 wrong_pin and 1 locked", counts)
	}
}

func TestTechnicianLogin(t *testing.T) {
	f := newLoginFixture(t)
	res, err := f.term.Badge("T-9001")
	if err != nil || res.Kind != PersonTechnician || res.PersonID != "T-1" || res.Language != "en" {
		t.Fatalf("Badge(technician) = %+v, %v", res, err)
	}
	_, err = f.term.EnterPIN("T-9001", pinAna)
	wantReason(t, "technician with a wrong PIN", err, ReasonWrongPIN)
	p, err := f.term.EnterPIN("T-9001", pinSam)
	if err != nil || p.Kind != PersonTechnician || p.PersonID != "T-1" || p.Name != "Sam Lee" || p.Notice == "" {
		t.Fatalf("EnterPIN(technician) = %+v, %v; want a pending technician", p, err)
	}
	evs, _ := f.store.RecentAudit(1, nil)
	if len(evs) != 1 || evs[0].Kind != "login_ok" || evs[0].Actor != "T-1" || evs[0].Detail["person"] != PersonTechnician {
		t.Fatalf("last audit event %+v; want login_ok by technician T-1", evs)
	}
}

func TestTabletBoundPIN(t *testing.T) {
	f := newLoginFixture(t)
	_, err := f.term.EnterBoundPIN(pinCy)
	wantReason(t, "unbound terminal", err, ReasonNotBound)
	if err := f.term.BindTablet("I-404"); KindOf(err) != KindNotFound {
		t.Fatalf("BindTablet(unknown) = %v; want not found", err)
	}
	if err := f.term.BindTablet("I-3"); err != nil {
		t.Fatalf("BindTablet: %v", err)
	}
	f.reopen()
	if id, ok, err := f.term.BoundInmate(); id != "I-3" || !ok || err != nil {
		t.Fatalf("BoundInmate after restart = %q, %v, %v; want I-3", id, ok, err)
	}
	res, err := f.term.PrecheckBound()
	if err != nil || res.PersonID != "I-3" {
		t.Fatalf("PrecheckBound = %+v, %v; want I-3", res, err)
	}
	_, err = f.term.EnterBoundPIN(pinAna)
	wantReason(t, "tablet, another person's PIN", err, ReasonWrongPIN)
	p, err := f.term.EnterBoundPIN(pinCy)
	if err != nil || p.PersonID != "I-3" || p.Kind != PersonInmate {
		t.Fatalf("EnterBoundPIN = %+v, %v; want I-3", p, err)
	}
	evs, _ := f.store.RecentAudit(1, nil)
	if evs[0].Kind != "login_ok" || evs[0].Detail["via"] != "tablet" {
		t.Fatalf("audit %+v; want login_ok via tablet", evs[0])
	}

	// The relay takes the tablet away: the binding no longer logs anyone in.
	cy, _ := f.term.Inmate("I-3")
	cy.PINHash = testHash(t, pinCy)
	cy.TabletBound = false
	if err := f.term.UpsertInmate(cy, "relay"); err != nil {
		t.Fatal(err)
	}
	_, err = f.term.EnterBoundPIN(pinCy)
	wantReason(t, "tablet taken away", err, ReasonNotBound)

	if err := f.term.UnbindTablet(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := f.term.BoundInmate(); ok {
		t.Fatal("still bound after UnbindTablet")
	}
}

func TestPendingClaimedOnce(t *testing.T) {
	f := newLoginFixture(t)
	claim := func(p Pending) error {
		f.term.mu.Lock()
		defer f.term.mu.Unlock()
		return f.term.claimPendingLocked(p, f.clk.Now())
	}
	p, err := f.term.EnterPIN("B-1001", pinAna)
	if err != nil {
		t.Fatal(err)
	}
	forged := Pending{Kind: PersonInmate, PersonID: "I-3", At: p.At}
	if err := claim(forged); KindOf(err) != KindConflict {
		t.Fatalf("claim of a forged pending = %v; want conflict", err)
	}
	if err := claim(p); err != nil {
		t.Fatalf("claim = %v", err)
	}
	if err := claim(p); KindOf(err) != KindConflict {
		t.Fatalf("second claim = %v; want conflict", err)
	}

	// A newer login replaces an older one left on screen.
	old, _ := f.term.EnterPIN("B-1001", pinAna)
	f.clk.Advance(time.Second)
	newer, _ := f.term.EnterPIN("B-3001", pinCy)
	if err := claim(old); KindOf(err) != KindConflict {
		t.Fatalf("claim of a replaced login = %v; want conflict", err)
	}
	f.clk.Advance(DefaultPolicy().IdleTimeout.D() + time.Second)
	if err := claim(newer); ReasonOf(err) != ReasonLoginExpired {
		t.Fatalf("claim after the idle timeout = %v; want %q", err, ReasonLoginExpired)
	}
}

func TestLoginAuditNeverHoldsPIN(t *testing.T) {
	f := newLoginFixture(t)
	type attempt struct {
		badge, pin string
		kind       string
		actor      string
		reason     string
	}
	attempts := []attempt{
		{"B-0000", pinAna, "login_refused", "", "unknown_badge"},
		{"B-2001", pinBen, "login_refused", "I-2", "suspended"},
		{"B-1001", pinWrong, "login_failed", "I-1", "wrong_pin"},
		{"B-1001", pinAna, "login_ok", "I-1", ""},
		{"T-9001", pinSam, "login_ok", "T-1", ""},
		// Someone types their PIN into the badge field.
		{pinCy, pinCy, "login_refused", "", "unknown_badge"},
	}
	for _, a := range attempts {
		f.term.EnterPIN(a.badge, a.pin)
	}
	evs, err := f.store.RecentAudit(len(attempts), nil)
	if err != nil || len(evs) != len(attempts) {
		t.Fatalf("RecentAudit = %d events, %v", len(evs), err)
	}
	for i, a := range attempts {
		ev := evs[len(attempts)-1-i]
		if ev.Kind != a.kind || ev.Actor != a.actor || ev.Detail["reason"] != a.reason || ev.Detail["stage"] != "pin" {
			t.Errorf("attempt %d (%s): audit %+v; want %s by %q reason %q", i, a.badge, ev, a.kind, a.actor, a.reason)
		}
	}
	if evs[len(attempts)-1].Detail["badge"] != "B-0000" {
		t.Errorf("unknown badge audit %+v; want the badge recorded", evs[len(attempts)-1])
	}
	f.term.Badge("B-0001") // a badge-step refusal is audited too
	if evs, _ := f.store.RecentAudit(1, nil); evs[0].Kind != "login_refused" || evs[0].Detail["stage"] != "badge" {
		t.Errorf("badge refusal audit %+v", evs[0])
	}

	f.reopen()
	for _, pin := range []string{pinAna, pinBen, pinCy, pinSam, pinWrong} {
		scanStoreFor(t, f.store, pin)
	}
}

// scanStoreFor fails if needle appears in any key or value of any bucket.
func scanStoreFor(t *testing.T, s *Store, needle string) {
	t.Helper()
	n := []byte(needle)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, n) || bytes.Contains(v, n) {
					t.Errorf("bucket %s key %q holds a PIN: %s", name, k, v)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBadgeRefusesIneligibleBeforePIN(t *testing.T) {
	f := newLoginFixture(t)
	if err := f.term.SetPolicy(testPolicy(nil), "test"); err != nil { // no free sessions
		t.Fatal(err)
	}
	if err := f.term.UpsertInmate(Inmate{ID: "I-5", Name: "Eve Poor", Badges: []string{"B-5001"},
		PINHash: testHash(t, "86420864"), Language: "en", Status: StatusActive}, "tester"); err != nil {
		t.Fatal(err)
	}
	_, err := f.term.Badge("B-5001")
	wantReason(t, "no money", err, ReasonInsufficientBalance)
	_, err = f.term.EnterPIN("B-5001", "86420864")
	wantReason(t, "no money, right PIN", err, ReasonInsufficientBalance)

	p := DefaultPolicy()
	p.Lockdown = true
	if err := f.term.SetPolicy(p, "T-1"); err != nil {
		t.Fatal(err)
	}
	_, err = f.term.Badge("B-1001")
	wantReason(t, "lockdown", err, ReasonLockdown)
	_, err = f.term.EnterPIN("B-1001", pinWrong)
	wantReason(t, "lockdown, wrong PIN", err, ReasonLockdown)
	if st, _ := f.term.LoginState("I-1"); st.Failures != 0 {
		t.Fatalf("a PIN typed during a lockdown was counted: %+v", st)
	}
	// Technicians are not subject to the inmates' rules.
	if _, err := f.term.EnterPIN("T-9001", pinSam); err != nil {
		t.Fatalf("technician during a lockdown: %v", err)
	}
	evs, _ := f.store.RecentAudit(10, func(ev AuditEvent) bool { return ev.Kind == "login_refused" })
	if len(evs) != 4 || evs[0].Detail["reason"] != string(ReasonLockdown) {
		t.Fatalf("refusals audited: %+v", evs)
	}
}

// benchLogin measures badge + PIN + notice on a real, fsynced store, with PINs hashed at cost p.
// Logout (outside the timer) frees the terminal for the next round.
func benchLogin(b *testing.B, p PINParams) {
	s, err := OpenStore(b.TempDir(), StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: p})
	if err != nil {
		b.Fatal(err)
	}
	pol := DefaultPolicy()
	pol.Cooldown = 0
	pol.MaxDeposit = 1_000_000
	pol.OfflineSpendCap = pol.MaxDeposit
	if err := term.SetPolicy(pol, "bench"); err != nil {
		b.Fatal(err)
	}
	h, err := HashPINWith(pinAna, p)
	if err != nil {
		b.Fatal(err)
	}
	if err := term.UpsertInmate(Inmate{ID: "I-1", Name: "Ana Ruiz", Badges: []string{"B-1001"}, PINHash: h,
		Language: "en", Status: StatusActive, Messaging: true}, "bench"); err != nil {
		b.Fatal(err)
	}
	if err := term.Deposit("I-1", pol.MaxDeposit, "bench"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := term.Badge("B-1001"); err != nil {
			b.Fatal(err)
		}
		pend, err := term.EnterPIN("B-1001", pinAna)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := term.AcceptNotice(pend); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := term.Logout(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkLogin is a login at the argon2id cost a terminal uses.
func BenchmarkLogin(b *testing.B) { benchLogin(b, DefaultPINParams()) }

// BenchmarkLoginCheapHash is the same login with a nearly free hash: the baseline that shows
// what argon2id costs (the rest is bbolt with fsync).
func BenchmarkLoginCheapHash(b *testing.B) { benchLogin(b, TestPINParams()) }

// A wall clock set back after a lockout (an RTC battery died, the date reset at boot) does not
// lengthen the lock beyond one Policy.Lockout from the new time.
func TestLockoutSurvivesAClockSetBack(t *testing.T) {
	f := newLoginFixture(t)
	for i := 0; i < 5; i++ {
		f.term.EnterPIN("B-1001", pinWrong)
	}
	f.clk.JumpWall(-72 * time.Hour) // the terminal restarts with its date three days back
	f.reopen()
	_, err := f.term.Badge("B-1001")
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonLocked || !e.Until.Equal(f.clk.Now().Add(15*time.Minute)) {
		t.Fatalf("badge after the clock went back 3 days: %v; want locked until %v", err, f.clk.Now().Add(15*time.Minute))
	}
	f.clk.Advance(15 * time.Minute)
	if _, err := f.term.EnterPIN("B-1001", pinAna); err != nil {
		t.Fatalf("right PIN 15 minutes later: %v", err)
	}
}
