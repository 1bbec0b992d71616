package kiosk

import (
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The quiz screen's truth is the relay's: an attempt waits for its result (offline too),
// the result is kept as the relay said it, and a second, contradictory one for the same
// attempt changes nothing; a result crediting a fail is refused.
func TestQuizResultKeptAsTheRelaySaid(t *testing.T) {
	r := newRig(t, libraryPolicy)
	r.addInmate("i1", 0)
	d := strings.Repeat("cd", 32)
	r.publish(CatalogItem{ID: "l1", Kind: vocab.CatalogLesson, Title: "L", Pages: []vocab.MediaRef{{SHA256: d, Manifest: d, Size: 5, Type: vocab.MediaText}}})
	qs := []vocab.QuizQuestion{{Text: "?", Choices: []string{"a", "b"}}, {Text: "?", Choices: []string{"a", "b"}}, {Text: "?", Choices: []string{"a", "b"}}}
	r.publish(CatalogItem{ID: "c1", Kind: vocab.CatalogCourse, Title: "C", Lessons: []string{"l1"},
		Quizzes: []vocab.Quiz{{ID: "q1", PassScore: 3, Questions: qs}}})
	r.mustLogin("i1")
	if _, ok, err := r.term.LastQuizAttempt("i1", "c1", "q1"); ok || err != nil {
		t.Fatalf("an attempt before any: %v %v", ok, err)
	}
	a, err := r.term.SubmitQuiz("i1", "c1", "q1", []int{1, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	st, ok, err := r.term.LastQuizAttempt("i1", "c1", "q1")
	if err != nil || !ok || st.AttemptID != a.ID || st.Result != nil || st.SentAt.IsZero() {
		t.Fatalf("waiting for grading: %+v %v %v", st, ok, err)
	}
	failed := vocab.QuizResult{AttemptID: a.ID, InmateID: "i1", CourseID: "c1", QuizID: "q1", Outcome: vocab.QuizFailed,
		Right: 2, Questions: 3, PassScore: 3, AttemptsUsed: 1, AttemptsLeft: 2, At: r.clk.Now()}
	if refused := r.applyDown(DownQuizResult, failed); refused != "" {
		t.Fatalf("the result refused: %s", refused)
	}
	passed := failed
	passed.Outcome, passed.Right, passed.CreditCents = vocab.QuizPassed, 3, 50
	if refused := r.applyDown(DownQuizResult, passed); refused != "" {
		t.Fatalf("a second result refused: %s", refused)
	}
	r.restart()
	st, ok, err = r.term.LastQuizAttempt("i1", "c1", "q1")
	if err != nil || !ok || st.Result == nil || *st.Result != failed {
		t.Fatalf("after the results: %+v %v %v", st, ok, err)
	}
	bad := failed
	bad.AttemptID, bad.CreditCents = "other", 50
	if refused := r.applyDown(DownQuizResult, bad); !strings.Contains(refused, "credit") {
		t.Errorf("a fail with a credit: %q", refused)
	}
}
