package kiosk

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMinuteBilling(t *testing.T) {
	for _, tc := range []struct {
		after   time.Duration
		minutes int
	}{
		{0, 1},
		{59 * time.Second, 1},
		{time.Minute, 2},
		{time.Minute + time.Second, 2},
		{59*time.Minute + 59*time.Second, 60},
	} {
		t.Run(tc.after.String(), func(t *testing.T) {
			r := newRig(t, nil)
			r.addInmate("a", 1000)
			info := r.mustLogin("a")
			if info.Minutes != 1 || info.Cost != 5 || info.Balance != 995 {
				t.Fatalf("at login: %+v; want minute 0 billed (1 minute, 5c, balance 995)", info)
			}
			r.run(tc.after, true)
			info, ok := r.term.Active()
			if !ok {
				t.Fatalf("session ended before %v", tc.after)
			}
			want := Cents(tc.minutes) * 5
			if info.Minutes != tc.minutes || info.Cost != want || info.Balance != 1000-want {
				t.Fatalf("at %v: minutes %d cost %v balance %v; want %d, %v, %v", tc.after, info.Minutes, info.Cost,
					info.Balance, tc.minutes, want, 1000-want)
			}
			checkLedger(t, r.store, false)
		})
	}
}

// sessionEnd runs one scenario per end reason and checks what the inmate's statement shows.
func TestSessionEndReasons(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  func(*Policy)
		deposit Cents
		act     func(r *rig)
		reason  Reason
		minutes int
		length  time.Duration // End - Start on the statement
	}{
		{name: "logout", deposit: 1000, act: func(r *rig) {
			r.run(90*time.Second, true)
			if err := r.term.Logout(); err != nil {
				r.tb.Fatal(err)
			}
		}, reason: EndLogout, minutes: 2, length: 90 * time.Second},
		{name: "idle", deposit: 1000, act: func(r *rig) { r.run(5*time.Minute, false) },
			// 3:00 idle ends it before minute 3 would begin at the same instant.
			reason: EndIdle, minutes: 3, length: 3 * time.Minute},
		{name: "idle after last input", deposit: 1000, act: func(r *rig) {
			r.run(100*time.Second, true)
			r.run(5*time.Minute, false)
		}, reason: EndIdle, minutes: 5, length: 100*time.Second + 3*time.Minute},
		{name: "max length", policy: func(p *Policy) { p.MaxSession = Duration(10 * time.Minute) }, deposit: 1000,
			act: func(r *rig) { r.run(15*time.Minute, true) }, reason: EndMaxLength, minutes: 10, length: 10 * time.Minute},
		{name: "balance runs out", deposit: 17, act: func(r *rig) { r.run(5*time.Minute, true) },
			reason: EndBalance, minutes: 3, length: 3 * time.Minute},
		{name: "curfew starts", deposit: 1000, policy: func(p *Policy) {
			p.Curfew = []CurfewWindow{{Weekday: time.Wednesday, Start: "10:05", End: "11:00"}}
		}, act: func(r *rig) { r.run(10*time.Minute, true) }, reason: EndCurfew, minutes: 5, length: 5 * time.Minute},
		{name: "lockdown", deposit: 1000, act: func(r *rig) {
			r.run(150*time.Second, true)
			p := r.term.Policy()
			p.Lockdown = true
			if err := r.term.SetPolicy(p, "warden"); err != nil {
				r.tb.Fatal(err)
			}
			r.term.Tick()
		}, reason: EndLockdown, minutes: 3, length: 150 * time.Second},
		{name: "offline cap", deposit: 1000, policy: func(p *Policy) { p.OfflineSpendCap = 20 },
			act: func(r *rig) { r.run(10*time.Minute, true) }, reason: EndOfflineLimit, minutes: 4, length: 4 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.policy)
			r.addInmate("a", tc.deposit)
			info := r.mustLogin("a")
			tc.act(r)
			if _, ok := r.term.Active(); ok {
				t.Fatal("session still active")
			}
			ended := r.eventsOf(EventSessionEnded)
			if len(ended) != 1 || ended[0].Reason != tc.reason || ended[0].SessionID != info.SessionID {
				t.Fatalf("session-ended events %+v; want one with reason %s", ended, tc.reason)
			}
			s := r.lastSession("a")
			if s.ID != info.SessionID || s.EndReason != tc.reason || s.Minutes != tc.minutes ||
				s.Charged != Cents(tc.minutes)*5 || s.End.Sub(s.Start) != tc.length {
				t.Fatalf("statement %+v (length %v); want reason %s, %d minutes, length %v", s, s.End.Sub(s.Start),
					tc.reason, tc.minutes, tc.length)
			}
			if got := r.balance("a"); got != tc.deposit-Cents(tc.minutes)*5 {
				t.Fatalf("balance %v; want %v", got, tc.deposit-Cents(tc.minutes)*5)
			}
			// Ticks after the end bill nothing.
			r.run(2*time.Minute, true)
			checkLedger(t, r.store, false)
			if s2 := r.lastSession("a"); s2.Minutes != tc.minutes {
				t.Fatalf("after the end, minutes became %d", s2.Minutes)
			}
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  func(*Policy)
		deposit Cents
		prep    func(r *rig)
		reason  Reason
		until   time.Time
	}{
		{name: "balance under one minute", deposit: 4, reason: ReasonInsufficientBalance},
		{name: "no account at all", reason: ReasonInsufficientBalance},
		{name: "lockdown", deposit: 100, policy: func(p *Policy) { p.Lockdown = true }, reason: ReasonLockdown},
		{name: "curfew", deposit: 100, policy: func(p *Policy) {
			p.Curfew = []CurfewWindow{{Weekday: time.Wednesday, Start: "09:00", End: "10:30"}}
		}, reason: ReasonCurfew, until: rigStart.Add(30 * time.Minute)},
		{name: "curfew from the day before", deposit: 100, policy: func(p *Policy) {
			p.Curfew = []CurfewWindow{{Weekday: time.Tuesday, Start: "22:00", End: "10:15"}}
		}, reason: ReasonCurfew, until: rigStart.Add(15 * time.Minute)},
		{name: "cool-down", deposit: 100, prep: func(r *rig) {
			r.mustLogin("a")
			r.run(30*time.Second, true)
			if err := r.term.Logout(); err != nil {
				r.tb.Fatal(err)
			}
			r.run(10*time.Minute, false)
		}, reason: ReasonCooldown, until: rigStart.Add(30*time.Second + 30*time.Minute)},
		{name: "offline cap", deposit: 100, policy: func(p *Policy) { p.OfflineSpendCap = 10; p.Cooldown = 0 },
			prep: func(r *rig) { r.mustLogin("a"); r.run(5*time.Minute, true) }, reason: ReasonOfflineLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.policy)
			r.addInmate("a", tc.deposit)
			if tc.prep != nil {
				tc.prep(r)
			}
			_, err := r.term.Badge("B-a")
			if ReasonOf(err) != tc.reason || KindOf(err) != KindRefused {
				t.Fatalf("badge: %v; want refusal %s", err, tc.reason)
			}
			if _, err := r.login("a"); ReasonOf(err) != tc.reason {
				t.Fatalf("login: %v; want refusal %s", err, tc.reason)
			}
			var e *Error
			if !asError(err, &e) || !e.Until.Equal(tc.until) {
				t.Fatalf("refusal %v carries until %v; want %v", err, e.Until, tc.until)
			}
			if _, ok := r.term.Active(); ok {
				t.Fatal("a refused login started a session")
			}
			checkLedger(t, r.store, false)
		})
	}
}

func asError(err error, e **Error) bool {
	*e = &Error{}
	return errors.As(err, e)
}

func TestEligibleBetweenRulesAtLogin(t *testing.T) {
	// Eligibility is checked again at AcceptNotice: a lockdown set after the PIN refuses.
	r := newRig(t, nil)
	r.addInmate("a", 100)
	p, err := r.term.EnterPIN("B-a", rigPIN)
	if err != nil {
		t.Fatal(err)
	}
	pol := r.term.Policy()
	pol.Lockdown = true
	if err := r.term.SetPolicy(pol, "warden"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.AcceptNotice(p); ReasonOf(err) != ReasonLockdown {
		t.Fatalf("accept after lockdown: %v; want lockdown refusal", err)
	}
	if r.balance("a") != 100 {
		t.Fatal("a refused session billed")
	}
}

func TestCooldown(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.addInmate("b", 1000)
	r.mustLogin("a")
	r.run(2*time.Minute, true)
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	end := rigStart.Add(2 * time.Minute)
	// Someone else may use the terminal at once.
	r.mustLogin("b")
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.run(29*time.Minute+59*time.Second, false)
	_, err := r.login("a")
	var e *Error
	if ReasonOf(err) != ReasonCooldown || !asError(err, &e) || !e.Until.Equal(end.Add(30*time.Minute)) {
		t.Fatalf("login 1s before the cool-down ends: %v; want cooldown until %v", err, end.Add(30*time.Minute))
	}
	// Wall-clock jumps neither shorten nor lengthen it while the terminal runs.
	r.clk.JumpWall(2 * time.Hour)
	if _, err := r.login("a"); ReasonOf(err) != ReasonCooldown {
		t.Fatalf("after the wall clock jumped 2h ahead: %v; want still cooling down", err)
	}
	r.clk.JumpWall(-2 * time.Hour)
	r.run(time.Second, false)
	r.mustLogin("a")
}

func TestCooldownSurvivesRestart(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	r.run(time.Minute, true)
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.restart()
	r.run(10*time.Minute, false)
	_, err := r.login("a")
	var e *Error
	if ReasonOf(err) != ReasonCooldown || !asError(err, &e) || !e.Until.Equal(rigStart.Add(31*time.Minute)) {
		t.Fatalf("after restart: %v; want cooldown until %v", err, rigStart.Add(31*time.Minute))
	}
	if got := r.account("a").CooldownUntil; !got.Equal(rigStart.Add(31 * time.Minute)) {
		t.Fatalf("stored cool-down %v", got)
	}
	r.run(21*time.Minute, false)
	r.mustLogin("a")
}

func TestCooldownAfterRestartWithClockBack(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	// The terminal restarts with its wall clock two hours behind (a dead RTC battery): the
	// stored cool-down would last 2h30m; it is held to the policy's 30 minutes.
	r.clk.JumpWall(-2 * time.Hour)
	r.restart()
	_, err := r.login("a")
	var e *Error
	if ReasonOf(err) != ReasonCooldown || !asError(err, &e) || !e.Until.Equal(r.clk.Now().Add(30*time.Minute)) {
		t.Fatalf("login: %v; want cooldown until %v", err, r.clk.Now().Add(30*time.Minute))
	}
	r.run(29*time.Minute, false)
	if _, err := r.login("a"); ReasonOf(err) != ReasonCooldown {
		t.Fatalf("after 29 minutes: %v; want still cooling down", err)
	}
	r.run(time.Minute, false)
	r.mustLogin("a")
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  func(*Policy)
		deposit Cents
		run     time.Duration
		reason  Reason
		at      []time.Duration // elapsed time of each warning
		left    []time.Duration
	}{
		{name: "max length", deposit: 1000, run: 61 * time.Minute, reason: EndMaxLength,
			at: []time.Duration{55 * time.Minute, 59 * time.Minute}, left: []time.Duration{5 * time.Minute, time.Minute}},
		{name: "balance", deposit: 50, run: 11 * time.Minute, reason: EndBalance,
			at: []time.Duration{5 * time.Minute, 9 * time.Minute}, left: []time.Duration{5 * time.Minute, time.Minute}},
		{name: "balance short at login", deposit: 15, run: 4 * time.Minute, reason: EndBalance,
			at: []time.Duration{time.Second, 2 * time.Minute}, left: []time.Duration{3*time.Minute - time.Second, time.Minute}},
		{name: "curfew", deposit: 1000, policy: func(p *Policy) {
			p.Curfew = []CurfewWindow{{Weekday: time.Wednesday, Start: "10:20", End: "12:00"}}
		}, run: 21 * time.Minute, reason: EndCurfew,
			at: []time.Duration{15 * time.Minute, 19 * time.Minute}, left: []time.Duration{5 * time.Minute, time.Minute}},
		{name: "offline cap", deposit: 1000, policy: func(p *Policy) { p.OfflineSpendCap = 40 }, run: 9 * time.Minute,
			reason: EndOfflineLimit, at: []time.Duration{3 * time.Minute, 7 * time.Minute},
			left: []time.Duration{5 * time.Minute, time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.policy)
			r.addInmate("a", tc.deposit)
			r.mustLogin("a")
			var at []time.Duration
			var left []time.Duration
			for el := time.Duration(0); el < tc.run; {
				r.clk.Advance(time.Second)
				el += time.Second
				r.term.Touch()
				for _, ev := range r.term.Tick() {
					if ev.Kind == EventWarning {
						if ev.Reason != tc.reason {
							t.Errorf("warning at %v for %s; want %s", el, ev.Reason, tc.reason)
						}
						at, left = append(at, el), append(left, ev.Remaining)
					}
				}
			}
			if len(at) != len(tc.at) || len(r.eventsOf(EventWarning)) != len(tc.at) {
				t.Fatalf("warnings at %v; want at %v", at, tc.at)
			}
			for i := range at {
				if at[i] != tc.at[i] || left[i] != tc.left[i] {
					t.Fatalf("warnings at %v with %v left; want at %v with %v left", at, left, tc.at, tc.left)
				}
			}
			if ended := r.eventsOf(EventSessionEnded); len(ended) != 1 || ended[0].Reason != tc.reason {
				t.Fatalf("ended %+v; want %s", ended, tc.reason)
			}
		})
	}
}

func TestIdleWarning(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	r.run(2*time.Minute+29*time.Second, false)
	if n := len(r.eventsOf(EventIdleWarning)); n != 0 {
		t.Fatalf("%d idle warnings before 2:30", n)
	}
	r.run(time.Second, false)
	w := r.eventsOf(EventIdleWarning)
	if len(w) != 1 || w[0].Remaining != 30*time.Second {
		t.Fatalf("idle warnings at 2:30: %+v; want one with 30s left", w)
	}
	r.run(10*time.Second, false)
	if n := len(r.eventsOf(EventIdleWarning)); n != 1 {
		t.Fatalf("idle warning raised %d times for one stretch", n)
	}
	r.term.Touch() // "I'm still here"
	r.run(2*time.Minute+30*time.Second, false)
	if n := len(r.eventsOf(EventIdleWarning)); n != 2 {
		t.Fatalf("%d idle warnings; want a second one after the next idle stretch", n)
	}
	if _, ok := r.term.Active(); !ok {
		t.Fatal("session ended before the idle timeout")
	}
	r.run(30*time.Second, false)
	if _, ok := r.term.Active(); ok {
		t.Fatal("session still active after the idle timeout")
	}
	if s := r.lastSession("a"); s.EndReason != EndIdle {
		t.Fatalf("ended with %s", s.EndReason)
	}
}

func TestWallClockJumps(t *testing.T) {
	for _, jump := range []time.Duration{3 * time.Hour, -3 * time.Hour, 24 * time.Hour, -400 * 24 * time.Hour} {
		t.Run(jump.String(), func(t *testing.T) {
			r := newRig(t, nil)
			r.addInmate("a", 1000)
			r.mustLogin("a")
			r.run(90*time.Second, true)
			r.clk.JumpWall(jump)
			r.run(time.Second, true)
			info, ok := r.term.Active()
			if !ok || info.Minutes != 2 {
				t.Fatalf("after a wall jump of %v: active %v, minutes %d; want still on, 2 minutes", jump, ok, info.Minutes)
			}
			if !info.StartedAt.Equal(rigStart) {
				t.Fatalf("start shown as %v", info.StartedAt)
			}
			r.run(29*time.Second, true) // 2:00
			if info, _ := r.term.Active(); info.Minutes != 3 {
				t.Fatalf("at 2:00 after the jump: %d minutes; want 3", info.Minutes)
			}
			if err := r.term.Logout(); err != nil {
				t.Fatal(err)
			}
			s := r.lastSession("a")
			if s.Minutes != 3 || s.Charged != 15 {
				t.Fatalf("statement %+v; want 3 minutes, 15c", s)
			}
			if got := s.End.Sub(s.Start); got != 2*time.Minute+jump {
				t.Fatalf("recorded end is %v after start; want wall times (%v)", got, 2*time.Minute+jump)
			}
			checkLedger(t, r.store, false)
		})
	}
}

func TestStallCredit(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	info := r.mustLogin("a")
	r.run(2*time.Minute+20*time.Second, true) // minute 2
	if err := r.term.ReportStall(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := r.balance("a"); got != 1000-15 {
		t.Fatalf("a short stall was credited: balance %v", got)
	}
	if err := r.term.ReportStall(12 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.term.ReportStall(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := r.balance("a"); got != 1000-15+5 {
		t.Fatalf("balance %v after stall reports in minute 2; want one minute credited (%v)", got, 1000-10)
	}

	// The process froze (no Tick for 3 minutes) from 3:30: minutes 3..6 are credited, 6 as it begins.
	r.run(70*time.Second, true)
	r.clk.Advance(3 * time.Minute)
	r.term.Touch()
	r.term.Tick()
	got, ok := r.term.Active()
	if !ok {
		t.Fatal("a freeze ended the session")
	}
	if got.Minutes != 7 || got.Cost != 7*5-5*5 {
		t.Fatalf("after freeze: %d minutes, cost %v; want 7 minutes, 5 credited (cost 10c)", got.Minutes, got.Cost)
	}
	// A freeze with no input is not idleness.
	r.clk.Advance(4 * time.Minute)
	r.term.Tick()
	if _, ok := r.term.Active(); !ok {
		t.Fatal("a 4-minute freeze counted as idleness")
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	s := r.lastSession("a")
	if s.ID != info.SessionID || s.Minutes != 11 || s.Credited != 9*5 {
		t.Fatalf("statement %+v; want 11 minutes with 9 credited", s)
	}
	checkLedger(t, r.store, false)
}

func TestRecoverAfterPowerCut(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	info := r.mustLogin("a")
	r.run(150*time.Second, true)
	r.restart()
	if _, ok := r.term.Active(); ok {
		t.Fatal("a session survived a restart")
	}
	s := r.lastSession("a")
	if s.ID != info.SessionID || s.EndReason != EndTerminalFault || s.Minutes != 3 || s.Charged != 15 || s.Credited != 5 {
		t.Fatalf("recovered session %+v; want terminal fault, 3 minutes, last credited", s)
	}
	if got := r.balance("a"); got != 1000-10 {
		t.Fatalf("balance %v; want %v", got, 990)
	}
	checkLedger(t, r.store, false)
	// Recovery is done once.
	r.restart()
	if got := r.balance("a"); got != 990 {
		t.Fatalf("second restart moved the balance to %v", got)
	}
	checkLedger(t, r.store, false)
	// The terminal, not the inmate, ended it: no cool-down.
	r.mustLogin("a")
	evs, err := r.store.RecentAudit(10, func(ev AuditEvent) bool { return ev.Kind == "session_recovered" })
	if err != nil || len(evs) != 1 {
		t.Fatalf("recovery audit: %v %v", evs, err)
	}
}

func TestSessionInfo(t *testing.T) {
	r := newRig(t, func(p *Policy) {
		p.Curfew = []CurfewWindow{{Weekday: time.Wednesday, Start: "10:40", End: "12:00"}}
	})
	r.addInmate("a", 1000)
	info := r.mustLogin("a")
	want := SessionInfo{InmateID: "a", InmateName: "Inmate a", Language: "en", SessionID: info.SessionID, StartedAt: rigStart,
		Minutes: 1, Cost: 5, Balance: 995, TimeLeft: 40 * time.Minute, EndsBy: EndCurfew}
	if info != want {
		t.Fatalf("info %+v\nwant %+v", info, want)
	}
	r.run(90*time.Second, true)
	info, _ = r.term.Active()
	if info.Minutes != 2 || info.TimeLeft != 40*time.Minute-90*time.Second || info.EndsBy != EndCurfew {
		t.Fatalf("info %+v", info)
	}
	// A small balance ends it sooner.
	r2 := newRig(t, nil)
	r2.addInmate("b", 30)
	info = r2.mustLogin("b")
	if info.TimeLeft != 6*time.Minute || info.EndsBy != EndBalance {
		t.Fatalf("with 30c: %v left, ends by %s; want 6m, balance", info.TimeLeft, info.EndsBy)
	}
	// A deposit during the session extends it.
	r2.deposit("b", 1000, "top-up")
	info, _ = r2.term.Active()
	if info.TimeLeft != 60*time.Minute || info.EndsBy != EndMaxLength || info.Balance != 1025 {
		t.Fatalf("after deposit: %+v", info)
	}
}

func TestOneSessionAtATime(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 100)
	r.addInmate("b", 100)
	r.mustLogin("a")
	if _, err := r.login("b"); KindOf(err) != KindConflict {
		t.Fatalf("second login while a session runs: %v; want conflict", err)
	}
	if r.balance("b") != 100 {
		t.Fatal("refused login billed")
	}
}

func TestChargesAckedLowerUnsynced(t *testing.T) {
	r := newRig(t, func(p *Policy) { p.OfflineSpendCap = 20; p.Cooldown = 0 })
	r.addInmate("a", 1000)
	r.mustLogin("a")
	r.run(10*time.Minute, true)
	if s := r.lastSession("a"); s.EndReason != EndOfflineLimit {
		t.Fatalf("ended %s", s.EndReason)
	}
	if u := r.account("a").Unsynced; u != 20 {
		t.Fatalf("unsynced %v; want 20", u)
	}
	items, err := r.store.Pending(0, 1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	// The relay takes everything queued so far (twice: the second ack changes nothing).
	for range 2 {
		if _, err := r.store.Ack(r.clk.Now(), items[len(items)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if u := r.account("a").Unsynced; u != 0 {
		t.Fatalf("unsynced %v after ack; want 0", u)
	}
	r.mustLogin("a")
	checkLedger(t, r.store, true)
}

func TestTechnicianGetsNoBilledSession(t *testing.T) {
	r := newRig(t, nil)
	h, _ := HashPINWith(rigPIN, TestPINParams())
	if err := r.term.UpsertTechnician(Technician{ID: "tech1", Name: "Tess", Badges: []string{"T-1"}, PINHash: h, Role: "installer"}, "test"); err != nil {
		t.Fatal(err)
	}
	p, err := r.term.EnterPIN("T-1", rigPIN)
	if err != nil {
		t.Fatal(err)
	}
	info, err := r.term.AcceptNotice(p)
	if err != nil || !info.Technician || info.TechnicianID != "tech1" || info.SessionID != "" {
		t.Fatalf("technician: %+v, %v", info, err)
	}
	if _, ok := r.term.Active(); ok {
		t.Fatal("technician got a billed session")
	}
}

// TestConcurrentUse runs the tick loop, the screens (Touch, Active, Send), deposits from sync
// and stall reports at once: under -race this finds unguarded state, and a lock-order mistake
// between the meter and the store hangs it.
func TestConcurrentUse(t *testing.T) {
	// The idle timeout is the whole session: the screens goroutine touches as fast as the
	// machine lets it, and a loaded machine may let the tick loop run three fake minutes
	// between two touches, which is an idle logout, not what this test is about.
	r := newRig(t, func(p *Policy) {
		p.Cooldown = 0
		p.IdleTimeout = p.MaxSession
	})
	r.addInmate("a", 100000)
	r.mustLogin("a")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { // the tick loop
		defer wg.Done()
		defer close(done)
		for range 600 {
			r.clk.Advance(time.Second)
			r.term.Tick()
		}
	}()
	go func() { // the screens
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			r.term.Touch()
			if info, ok := r.term.Active(); ok && n%20 == 0 {
				if _, err := r.term.Send(info.InmateID, "dept-medical", "Hi", "text"); err != nil && ReasonOf(err) != ReasonNoSession {
					t.Errorf("send: %v", err)
				}
			}
		}
	}()
	go func() { // deposits
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if err := r.term.Deposit("a", 10, fmt.Sprintf("c-%d", n)); err != nil {
				t.Errorf("deposit: %v", err)
			}
		}
	}()
	go func() { // stalls reported by the UI
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := r.term.ReportStall(11 * time.Second); err != nil {
				t.Errorf("stall: %v", err)
			}
		}
	}()
	wg.Wait()
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	checkLedger(t, r.store, false)
	if s := r.lastSession("a"); s.Minutes != 11 || s.EndReason != EndLogout {
		t.Fatalf("after 10 minutes of concurrent use: %+v", s)
	}
}

// TestBillingWriteFails: when the store cannot take a minute's charge, the minute is not
// begun, the session ends at once as a terminal fault (the screens are told), and the next
// start closes it for good with its last billed minute credited.
func TestBillingWriteFails(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	info := r.mustLogin("a")
	r.run(90*time.Second, true)
	if err := r.store.Close(); err != nil { // every later write fails
		t.Fatal(err)
	}
	r.run(40*time.Second, true)
	if _, ok := r.term.Active(); ok {
		t.Fatal("session still active after its minute could not be billed")
	}
	ended := r.eventsOf(EventSessionEnded)
	if len(ended) != 1 || ended[0].Reason != EndTerminalFault || ended[0].SessionID != info.SessionID {
		t.Fatalf("ended events %+v; want one terminal fault", ended)
	}
	r.open()
	s := r.lastSession("a")
	if s.ID != info.SessionID || s.EndReason != EndTerminalFault || s.Minutes != 2 || s.Credited != 5 {
		t.Fatalf("after restart: %+v; want 2 minutes billed, the last credited, terminal fault", s)
	}
	checkLedger(t, r.store, false)
	if got := r.balance("a"); got != 995 {
		t.Fatalf("balance %v; want 995", got)
	}
}

// TestIdleCooldownIsShort: walking away from the terminal costs idle_cooldown (5m by default),
// not the 30 minutes a chosen logout does, also after a restart.
func TestIdleCooldownIsShort(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	r.run(5*time.Minute, false) // the idle timeout (3m) ends it at 10:03
	if got := r.lastSession("a").EndReason; got != EndIdle {
		t.Fatalf("session ended %q; want idle", got)
	}
	end := rigStart.Add(3 * time.Minute)
	// 10:05 now: the idle cool-down ends at 10:08.
	_, err := r.login("a")
	var e *Error
	if ReasonOf(err) != ReasonCooldown || !asError(err, &e) || !e.Until.Equal(end.Add(5*time.Minute)) {
		t.Fatalf("login 2m after an idle logout: %v; want cooldown until %v", err, end.Add(5*time.Minute))
	}
	r.restart()
	if _, err := r.login("a"); ReasonOf(err) != ReasonCooldown || !asError(err, &e) || !e.Until.Equal(end.Add(5*time.Minute)) {
		t.Fatalf("after a restart: %v; want cooldown until %v", err, end.Add(5*time.Minute))
	}
	r.run(3*time.Minute, false)
	r.mustLogin("a")
}

// TestLoweredCooldownReleasesWaiting: the facility lowers the cool-down from 30 to 10 minutes;
// an inmate who logged out 12 minutes ago may log in at once, before and after a restart.
func TestLoweredCooldownReleasesWaiting(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			r := newRig(t, nil)
			r.addInmate("a", 1000)
			r.mustLogin("a")
			if err := r.term.Logout(); err != nil {
				t.Fatal(err)
			}
			r.run(12*time.Minute, false)
			if _, err := r.login("a"); ReasonOf(err) != ReasonCooldown {
				t.Fatalf("12m after logout with a 30m cool-down: %v; want cooldown", err)
			}
			if restart {
				r.restart()
			}
			r.setPolicy(func(p *Policy) { p.Cooldown = Duration(15 * time.Minute) })
			var e *Error
			if _, err := r.login("a"); ReasonOf(err) != ReasonCooldown || !asError(err, &e) ||
				!e.Until.Equal(rigStart.Add(15*time.Minute)) {
				t.Fatalf("cool-down lowered to 15m: %v; want cooldown until %v", err, rigStart.Add(15*time.Minute))
			}
			r.setPolicy(func(p *Policy) { p.Cooldown = Duration(10 * time.Minute) })
			r.mustLogin("a")
		})
	}
}

func TestIdleCooldownValidated(t *testing.T) {
	p := DefaultPolicy()
	p.IdleCooldown = Duration(25 * time.Hour)
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "idle_cooldown") {
		t.Fatalf("idle_cooldown 25h: %v; want an error naming idle_cooldown", err)
	}
	if _, err := ParsePolicy([]byte(`{"idle_cooldown": "-1m"}`)); err == nil || !strings.Contains(err.Error(), "idle_cooldown") {
		t.Fatalf("idle_cooldown -1m: %v; want an error naming idle_cooldown", err)
	}
}
