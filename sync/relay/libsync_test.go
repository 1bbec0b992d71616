package relay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Every quiz attempt gets a quiz_result on the sending kiosk and the inmate's tablet, a fail
// and an attempt over the limit included; the answer key never travels; an attempt resent
// under another item id gets the same result and is counted and credited once.
func TestQuizResultForEveryAttempt(t *testing.T) {
	e := newEnv(t)
	e.seed()
	p, _ := e.r.Policy("north")
	p.QuizCreditCents = 50
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	var text vocab.MediaRef
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=text/plain", "Lesson one.", &text)
	e.publish(CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "l1", Kind: vocab.CatalogLesson, Title: "L", Pages: []vocab.MediaRef{text}}})
	qs := []vocab.QuizQuestion{{Text: "a?", Choices: []string{"x", "y"}}, {Text: "b?", Choices: []string{"x", "y", "z"}}}
	e.publish(CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "c1", Kind: vocab.CatalogCourse, Title: "C", Lessons: []string{"l1"},
		Quizzes: []vocab.Quiz{{ID: "q1", PassScore: 2, Questions: qs}}}, QuizKeys: map[string][]int{"q1": {1, 2}}})
	k := e.enroll(wire.ModeKiosk, "")
	other := e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A1")
	kc, tc, oc := k.connect(t, 0), tab.connect(t, 0), other.connect(t, 0)
	attempt := func(id string, answers ...int) wire.Item {
		return k.item(wire.UpQuizAttempt, vocab.QuizAttempt{ID: id, InmateID: "A1", CourseID: "c1", QuizID: "q1", Answers: answers, At: t0})
	}
	result := func(c *tconn, id string) vocab.QuizResult {
		t.Helper()
		var r vocab.QuizResult
		it := c.waitDown(wire.DownQuizResult, func(b json.RawMessage) bool { return json.Unmarshal(b, &r) == nil && r.AttemptID == id })
		var fields map[string]any
		if err := json.Unmarshal(it.Body, &fields); err != nil || fields["key"] != nil || fields["answers"] != nil {
			t.Errorf("the result carries more than the score: %s", it.Body)
		}
		return r
	}
	kc.batch(attempt("a1", 1, 0))
	want := vocab.QuizResult{AttemptID: "a1", InmateID: "A1", CourseID: "c1", QuizID: "q1", Outcome: vocab.QuizFailed, Right: 1,
		Questions: 2, PassScore: 2, AttemptsUsed: 1, AttemptsLeft: 2}
	for _, c := range []*tconn{kc, tc} {
		if r := result(c, "a1"); r.At.IsZero() || func() bool { r.At = want.At; return r != want }() {
			t.Errorf("the fail: %+v", r)
		}
	}
	// The same attempt again under another item id: the same answer, no second count.
	kc.down = nil
	kc.batch(attempt("a1", 1, 0)) // a new item (id and seq) carrying the same attempt
	if r := result(kc, "a1"); r.Outcome != vocab.QuizFailed || r.AttemptsUsed != 1 {
		t.Errorf("the resent attempt: %+v", r)
	}
	kc.batch(attempt("a2", 1, 2), attempt("a3", 1, 2), attempt("a4", 1, 2))
	if r := result(kc, "a2"); r.Outcome != vocab.QuizPassed || r.Right != 2 || r.CreditCents != 50 || r.AttemptsLeft != 1 {
		t.Errorf("the pass: %+v", r)
	}
	if r := result(tc, "a3"); r.Outcome != vocab.QuizPassed || r.CreditCents != 0 || r.NoCredit != vocab.QuizAlreadyCredited || r.AttemptsLeft != 0 {
		t.Errorf("the second pass: %+v", r)
	}
	if r := result(kc, "a4"); r.Outcome != vocab.QuizNotGraded || r.CreditCents != 0 || r.Right != 0 {
		t.Errorf("over the limit: %+v", r)
	}
	if b := e.balanceOf("A1"); b != 50 {
		t.Errorf("balance %d, want one credit of 50", b)
	}
	// The other kiosk hears of the credit, not of the attempts.
	oc.waitDown(wire.DownRemoteCredit, nil)
	for _, it := range oc.down {
		if it.Kind == wire.DownQuizResult {
			t.Errorf("a kiosk the inmate is not at got %s", it.Body)
		}
	}
}

// A terminal's library minutes reach the inmate's other terminals, named by the connection,
// only when the count grew; another inmate's tablet hears nothing and may not report.
func TestLibraryUsePassedOnOnce(t *testing.T) {
	e := newEnv(t)
	e.seed()
	a, b := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A2")
	ac, bc, tc := a.connect(t, 0), b.connect(t, 0), tab.connect(t, 0)
	use := func(n int) wire.Item {
		return a.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-01", Minutes: n, At: t0})
	}
	if ack := ac.batch(use(40), use(12), use(40)); len(ack.Rejected) != 0 {
		t.Fatalf("ack %+v", ack)
	}
	var u vocab.LibraryUse
	bc.waitDown(wire.DownLibraryUse, func(raw json.RawMessage) bool { return json.Unmarshal(raw, &u) == nil })
	if u.TerminalID != a.id || u.Minutes != 40 || u.InmateID != "A1" {
		t.Errorf("on kiosk B: %+v", u)
	}
	ac.batch(use(41))
	bc.waitDown(wire.DownLibraryUse, func(raw json.RawMessage) bool { return json.Unmarshal(raw, &u) == nil && u.Minutes == 41 })
	n := 0
	for _, it := range bc.down {
		if it.Kind == wire.DownLibraryUse {
			n++
		}
	}
	if n != 2 {
		t.Errorf("kiosk B got %d library_use items for counts 40, 12, 40, 41; want 2", n)
	}
	// The next day starts again from a small count, and a late count for the day before,
	// however large, is passed on to no one.
	day2 := a.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 3, At: t0.Add(24 * time.Hour)})
	late := a.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-01", Minutes: 55, At: t0})
	if ack := ac.batch(day2, late); len(ack.Rejected) != 0 {
		t.Fatalf("ack %+v", ack)
	}
	bc.waitDown(wire.DownLibraryUse, func(raw json.RawMessage) bool {
		return json.Unmarshal(raw, &u) == nil && u.Day == "2026-03-02"
	})
	if u.Minutes != 3 {
		t.Errorf("next day on kiosk B: %+v", u)
	}
	ac.batch(a.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 4, At: t0.Add(24 * time.Hour)}))
	bc.waitDown(wire.DownLibraryUse, func(raw json.RawMessage) bool {
		return json.Unmarshal(raw, &u) == nil && u.Day == "2026-03-02" && u.Minutes == 4
	})
	for _, it := range bc.down {
		if it.Kind == wire.DownLibraryUse && json.Unmarshal(it.Body, &u) == nil && u.Minutes == 55 {
			t.Errorf("kiosk B got a late count for the day before: %s", it.Body)
		}
	}
	if ack := tc.batch(tab.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-01", Minutes: 60, At: t0})); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseNotYours {
		t.Errorf("another inmate's tablet reporting: %+v", ack)
	}
	for _, it := range tc.down {
		if it.Kind == wire.DownLibraryUse {
			t.Errorf("another inmate's tablet got %s", it.Body)
		}
	}
}

// libraryUses is the library_use items queued for terminal id after seq `after`.
func libraryUses(t *testing.T, e *env, id string, after uint64) []vocab.LibraryUse {
	t.Helper()
	items, err := e.r.pendingDown(id, after, 10_000, wire.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	var out []vocab.LibraryUse
	for _, it := range items {
		if it.Kind == wire.DownLibraryUse {
			out = append(out, decodeAs[vocab.LibraryUse](t, it.Body))
		}
	}
	return out
}

// A snapshot carries the library minutes each inmate began on the other terminals of the day,
// as library_use names them on the downlink: a kiosk enrolled later gets kiosk 1's count; a
// count of an earlier day does not come; and kiosk 1, wiped and given a snapshot, does not get
// its own count back as another terminal's (it would count those minutes twice).
func TestSnapshotCarriesLibraryMinutesOfTheDay(t *testing.T) {
	e := newEnv(t)
	e.seed()
	p, _ := e.r.Policy("north")
	p.Timezone = "UTC"
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	k1 := e.enroll(wire.ModeKiosk, "")
	c1 := k1.connect(t, 0)
	c1.batch(k1.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 5, At: t0}),
		k1.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A2", Day: "2026-02-20", Minutes: 7, At: t0.AddDate(0, 0, -10)}))

	k2 := e.enroll(wire.ModeKiosk, "")
	got := libraryUses(t, e, k2.id, 0)
	want := vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", TerminalID: k1.id, Minutes: 5, At: t0}
	if len(got) != 1 || !got[0].At.Equal(want.At) || func() bool { got[0].At = want.At; return got[0] != want }() {
		t.Fatalf("kiosk 2's enrollment snapshot carries library use %+v, want only %+v", got, want)
	}

	// Kiosk 1's store is wiped: its snapshot does not name kiosk 1's own minutes.
	last := downSeqs(t, e.r, k1, 0)
	var seq uint64
	if len(last) > 0 {
		if _, err := fmt.Sscanf(last[len(last)-1], "%d:", &seq); err != nil {
			t.Fatal(err)
		}
	}
	c1.readUpTo(seq)
	closeAcked(t, e, c1, seq)
	e.waitDownAcked(k1.id, seq)
	c1 = k1.connect(t, 0)
	c1.waitDown(wire.DownInmate, nil)
	if got := libraryUses(t, e, k1.id, 0); len(got) != 0 {
		t.Fatalf("kiosk 1's snapshot names its own library minutes as another terminal's: %+v", got)
	}
}

// A count an older relay kept in the owned bucket still stands: a lower one sent again is not
// passed on; a higher one is, and is kept in the inmate's index from then on.
func TestLibraryCountKeptByAnOlderRelayStillStands(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	if err := e.r.update("write an old library count", func(tx kv.Tx, _ *fanout) error {
		return tx.Bucket([]byte(bOwned)).Put([]byte("l/A1/"+k1.id), append(u64(9), "2026-03-02"...))
	}); err != nil {
		t.Fatal(err)
	}
	before := libraryUses(t, e, k2.id, 0)
	c1 := k1.connect(t, 0)
	c1.batch(k1.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 8, At: t0}))
	if got := libraryUses(t, e, k2.id, 0); len(got) != len(before) {
		t.Fatalf("a count below the one an older relay kept was passed on: %+v", got)
	}
	c1.batch(k1.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 10, At: t0}))
	got := libraryUses(t, e, k2.id, 0)
	if len(got) != len(before)+1 || got[len(got)-1].Minutes != 10 {
		t.Fatalf("kiosk 2 was told %+v, want the count of 10 passed on", got)
	}
	c1.batch(k1.item(wire.UpLibraryUse, vocab.LibraryUse{InmateID: "A1", Day: "2026-03-02", Minutes: 10, At: t0}))
	if again := libraryUses(t, e, k2.id, 0); len(again) != len(got) {
		t.Fatalf("the same count again was passed on: %+v", again)
	}
}
