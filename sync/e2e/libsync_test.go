package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

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
