package kiosk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The library allowance is the person's: minutes the relay says the inmate began on other
// terminals today count here, offline too (what was last heard plus this terminal's own),
// a replayed or older record lowers nothing, each minute begun here is queued for the relay
// with this terminal's count so far, and the next day starts afresh.
func TestLibraryMinutesCountOtherTerminalsOffline(t *testing.T) {
	r := newRig(t, func(p *Policy) { libraryPolicy(p); p.LibraryMinutesPerDay = 60 })
	r.addInmate("i1", 100)
	day, _ := libraryDay(r.term.Policy(), r.clk.Now())
	use := func(term string, n int) {
		t.Helper()
		if refused := r.applyDown(DownLibraryUse, vocab.LibraryUse{InmateID: "i1", Day: day, TerminalID: term, Minutes: n, At: r.clk.Now()}); refused != "" {
			t.Fatalf("library use of %s refused: %s", term, refused)
		}
	}
	use("T-A", 30)
	use("T-A", 40)
	use("T-A", 25) // older news, or a replay: the larger count stands
	use("T-B", 5)
	if left, err := r.term.LibraryMinutesLeft("i1"); err != nil || left != 15 {
		t.Fatalf("after 40 minutes on kiosk A and 5 on B: %d left, %v", left, err)
	}
	if refused := r.applyDown(DownLibraryUse, vocab.LibraryUse{InmateID: "i1", Day: day, Minutes: 3, At: r.clk.Now()}); refused == "" {
		t.Error("a library use naming no terminal applied")
	}
	// The link is down from here on: the terminal goes by what it heard and its own minutes.
	r.mustLogin("i1")
	for want := 14; want >= 0; want-- {
		r.clk.Advance(time.Minute)
		if left, err := r.term.UseLibraryMinute("i1"); err != nil || left != want {
			t.Fatalf("a minute here: %d left, %v; want %d", left, err, want)
		}
	}
	if _, err := r.term.UseLibraryMinute("i1"); ReasonOf(err) != vocab.ReasonLibraryTimeUsed {
		t.Fatalf("minute 61 of the day: %v", err)
	}
	items := r.queued(t, ItemLibraryUse)
	var last vocab.LibraryUse
	if len(items) != 15 || json.Unmarshal(items[14].Body, &last) != nil || last.Minutes != 15 || last.Day != day ||
		last.InmateID != "i1" || last.TerminalID != "" {
		t.Fatalf("%d library-use items queued, the last %+v", len(items), last)
	}
	r.restart()
	if left, err := r.term.LibraryMinutesLeft("i1"); err != nil || left != 0 {
		t.Fatalf("after a restart: %d left, %v", left, err)
	}
	r.clk.Advance(14 * time.Hour) // past midnight: yesterday's minutes, here and elsewhere, are gone
	r.mustLogin("i1")
	if left, err := r.term.UseLibraryMinute("i1"); err != nil || left != 59 {
		t.Fatalf("the next day: %d left, %v", left, err)
	}
	use("T-A", 50) // yesterday's count arriving late changes nothing today
	if left, err := r.term.LibraryMinutesLeft("i1"); err != nil || left != 59 {
		t.Fatalf("after yesterday's late record: %d left, %v", left, err)
	}
}

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
