package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Library minutes are the person's: an inmate who used 40 of 60 on kiosk A has 20 left on
// kiosk B once both synced, and B refuses the 21st.
func TestLibraryMinutesPerPersonAcrossKiosks(t *testing.T) {
	rl, px, a, _ := syncedKiosk(t, nil)
	unbilledSessions(t, rl, func(p *kiosk.Policy) { p.LibraryMinutesPerDay = 60 })
	b := openTerminal(t, "", kiosk.StoreOptions{})
	b.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	b.start()
	b.waitRoster()
	for _, tm := range []*terminal{a, b} {
		testwait.UntilSaw(t, "the policy on the kiosk", func() (bool, string) {
			p := tm.term.Policy()
			return p.LibraryMinutesPerDay == 60 && p.Pricing == kiosk.PricingPerMessage, fmt.Sprint(p.LibraryMinutesPerDay)
		})
	}
	a.login("B1", "1234")
	for i := range 40 {
		if _, err := a.term.UseLibraryMinute("A1"); err != nil {
			t.Fatalf("minute %d on kiosk A: %v", i+1, err)
		}
	}
	a.waitSynced()
	testwait.UntilSaw(t, "kiosk A's 40 minutes counted on kiosk B", func() (bool, string) {
		left, err := b.term.LibraryMinutesLeft("A1")
		return left == 20, fmt.Sprint(left, err)
	})
	if err := a.term.Logout(); err != nil {
		t.Fatal(err)
	}
	b.login("B1", "1234")
	for i := range 20 {
		if left, err := b.term.UseLibraryMinute("A1"); err != nil || left != 19-i {
			t.Fatalf("minute %d on kiosk B: %d left, %v", 41+i, left, err)
		}
	}
	if _, err := b.term.UseLibraryMinute("A1"); kiosk.ReasonOf(err) != vocab.ReasonLibraryTimeUsed {
		t.Fatalf("minute 61 on kiosk B: %v, want %s", err, vocab.ReasonLibraryTimeUsed)
	}
	b.waitSynced()
	testwait.UntilSaw(t, "kiosk B's minutes back on kiosk A", func() (bool, string) {
		left, err := a.term.LibraryMinutesLeft("A1")
		return left == 0, fmt.Sprint(left, err)
	})
}

// Every quiz attempt gets the relay's result on the terminal that sent it: a fail with the
// score and the attempts left, a pass with its credit, a second pass with none and why.
func TestQuizResultOnTheSendingKiosk(t *testing.T) {
	rl, _, k, _ := syncedKiosk(t, nil)
	unbilledSessions(t, rl, func(p *kiosk.Policy) { p.QuizCreditMinutes = 10; p.QuizCreditCents = 0 })
	text, _, err := rl.r.PutCatalogMedia(strings.NewReader("Lesson 1."), "north", vocab.MediaText)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rl.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "les-1",
		Kind: vocab.CatalogLesson, Title: "Fractions", Pages: []vocab.MediaRef{text}}}); err != nil {
		t.Fatal(err)
	}
	qs := []vocab.QuizQuestion{{Text: "1+1?", Choices: []string{"1", "2"}}, {Text: "2+2?", Choices: []string{"4", "5"}},
		{Text: "3+3?", Choices: []string{"6", "7"}}}
	if _, err := rl.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "crs-1",
		Kind: vocab.CatalogCourse, Title: "Math", Lessons: []string{"les-1"},
		Quizzes: []vocab.Quiz{{ID: "q-1", Title: "Sums", PassScore: 3, Questions: qs}}},
		QuizKeys: map[string][]int{"q-1": {1, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	waitCatalog(t, k, "crs-1")
	k.login("B1", "1234")
	result := func(answers ...int) *vocab.QuizResult {
		t.Helper()
		a, err := k.term.SubmitQuiz("A1", "crs-1", "q-1", answers)
		if err != nil {
			t.Fatal(err)
		}
		var st kiosk.QuizStatus
		testwait.UntilSaw(t, "the quiz result on the kiosk", func() (bool, string) {
			var ok bool
			st, ok, err = k.term.LastQuizAttempt("A1", "crs-1", "q-1")
			return ok && st.AttemptID == a.ID && st.Result != nil, fmt.Sprintf("%+v %v", st, err)
		})
		return st.Result
	}
	if r := result(1, 0, 1); r.Outcome != vocab.QuizFailed || r.Right != 2 || r.Questions != 3 || r.PassScore != 3 ||
		r.AttemptsUsed != 1 || r.AttemptsLeft != 2 || r.CreditCents != 0 {
		t.Errorf("a failed attempt: %+v", r)
	}
	rate := k.term.Policy().RatePerMinute
	if r := result(1, 0, 0); r.Outcome != vocab.QuizPassed || r.Right != 3 || r.CreditCents != 10*rate || r.CreditMinutes != 10 || r.AttemptsLeft != 1 {
		t.Errorf("a pass: %+v", r)
	}
	if r := result(1, 0, 0); r.Outcome != vocab.QuizPassed || r.CreditCents != 0 || r.NoCredit != vocab.QuizAlreadyCredited || r.AttemptsLeft != 0 {
		t.Errorf("a second pass: %+v", r)
	}
	if r := result(1, 0, 0); r.Outcome != vocab.QuizNotGraded || r.CreditCents != 0 || r.AttemptsLeft != 0 {
		t.Errorf("an attempt over the limit: %+v", r)
	}
}

// A kiosk that comes back past the downlink cap gets a snapshot instead of the log, and the
// snapshot carries the library minutes the inmate began on the other kiosks that day: it goes
// on counting the person's allowance, not only its own minutes. A wiped kiosk (a new store
// enrolled again) gets them the same way.
func TestLibraryMinutesInTheSnapshotPastTheCap(t *testing.T) {
	const logCap = 30
	rl := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, downLogCap: logCap}
	if onJetStream() {
		rl.store, rl.flog = jetStore(t)
	}
	rl.open()
	t.Cleanup(rl.stop)
	rl.seed()
	unbilledSessions(t, rl, func(p *kiosk.Policy) { p.LibraryMinutesPerDay = 60 })
	px := startProxy(t, rl.addr())
	a, far := openTerminal(t, "", kiosk.StoreOptions{}), openTerminal(t, "", kiosk.StoreOptions{})
	for _, tm := range []*terminal{a, far} {
		tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
		tm.start()
		tm.waitRoster()
		testwait.UntilSaw(t, "the policy on the kiosk", func() (bool, string) {
			p := tm.term.Policy()
			return p.LibraryMinutesPerDay == 60, fmt.Sprint(p.LibraryMinutesPerDay)
		})
	}
	far.stopSync()

	// A1 spends 25 library minutes on kiosk a while far is away; the facility's downlink then
	// goes on past the cap (deposits for A2).
	a.login("B1", "1234")
	for i := range 25 {
		if _, err := a.term.UseLibraryMinute("A1"); err != nil {
			t.Fatalf("minute %d on kiosk a: %v", i+1, err)
		}
	}
	if err := a.term.Logout(); err != nil {
		t.Fatal(err)
	}
	a.waitSynced()
	for i := range logCap + 10 {
		if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprintf("cap-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	// far comes back past the cap: a snapshot, which counts a's 25 minutes.
	far.start()
	sameBalance(t, rl, far, "A2")
	testwait.UntilSaw(t, "a's library minutes counted on far after its snapshot", func() (bool, string) {
		left, err := far.term.LibraryMinutesLeft("A1")
		return left == 35, fmt.Sprint(left, " left, err ", err)
	})
	far.login("B1", "1234")
	for i := range 35 {
		if _, err := far.term.UseLibraryMinute("A1"); err != nil {
			t.Fatalf("minute %d on far: %v", 26+i, err)
		}
	}
	if _, err := far.term.UseLibraryMinute("A1"); kiosk.ReasonOf(err) != vocab.ReasonLibraryTimeUsed {
		t.Fatalf("minute 61 on far: %v, want %s", err, vocab.ReasonLibraryTimeUsed)
	}
}
