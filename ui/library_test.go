package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// publish applies catalog items as the relay sends them.
func (h *harness) publish(items ...kiosk.CatalogItem) {
	h.t.Helper()
	for _, it := range items {
		if it.PublishedAt.IsZero() {
			it.PublishedAt = start
		}
		b, err := json.Marshal(it)
		must(h.t, err)
		h.seq++
		refused, err := h.term.ApplyDownlink(h.seq, kiosk.DownCatalogItem, b)
		if err != nil || refused != "" {
			h.t.Fatalf("publish %s: %q %v", it.ID, refused, err)
		}
	}
	h.settle()
}

func (h *harness) downlink(kind string, body any) {
	h.t.Helper()
	b, err := json.Marshal(body)
	must(h.t, err)
	h.seq++
	if refused, err := h.term.ApplyDownlink(h.seq, kind, b); err != nil || refused != "" {
		h.t.Fatalf("%s: %q %v", kind, refused, err)
	}
	h.settle()
}

// fakeRef names an object no one holds (a catalog entry only listed, never opened).
func fakeRef(name, typ string) *vocab.MediaRef {
	d := sha256.Sum256([]byte(name))
	m := sha256.Sum256([]byte("manifest " + name))
	return &vocab.MediaRef{SHA256: hex.EncodeToString(d[:]), Manifest: hex.EncodeToString(m[:]), Size: 1000, Type: typ}
}

// mediaRef is the reference of bytes b as the relay would publish them (not stored).
func mediaRef(t *testing.T, b []byte, typ string) (vocab.MediaRef, *content.Manifest) {
	t.Helper()
	m, err := content.Build(bytes.NewReader(b), nil)
	must(t, err)
	r := m.Ref()
	return vocab.MediaRef{SHA256: r.Object.String(), Manifest: r.Manifest.String(), Size: r.Size, Type: typ}, m
}

func track(id, title string, cents kiosk.Cents) kiosk.CatalogItem {
	return kiosk.CatalogItem{ID: id, Kind: vocab.CatalogTrack, Title: title, Artist: "The Tether Project", Duration: 17,
		PriceCents: cents, Audio: fakeRef(id, vocab.MediaMP3)}
}

// The catalog by kind with prices, Buy showing the price and the balance before the person
// pays, the item marked theirs after, and every refusal the terminal gives in plain words.
func TestLibraryBuysWithPriceAndBalanceAndSaysEveryRefusal(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) {
			// Sessions unbilled (stamps), so only purchases count against the offline cap.
			p.Pricing, p.StampPrice, p.OfflineSpendCap = kiosk.PricingPerMessage, 25, 300
		}
	})
	h.publish(
		track("trk-yard", "Morning Yard", 129),
		track("trk-home", "Letter Home", 99),
		track("trk-days", "Count the Days", 200),
		track("trk-gone", "Withdrawn Soon", 50),
		kiosk.CatalogItem{ID: "bk-big", Kind: vocab.CatalogBook, Title: "The Big Atlas", PriceCents: 5000,
			Pages: []vocab.MediaRef{*fakeRef("atlas-1", vocab.MediaText)}},
		kiosk.CatalogItem{ID: "les-budget", Kind: vocab.CatalogLesson, Title: "Budgeting your account",
			Pages: []vocab.MediaRef{*fakeRef("budget-1", vocab.MediaText)}},
	)
	h.login()
	h.tap("Library")
	h.mustSee("Music", "Books and lessons", "Morning Yard", "The Tether Project · 0:17", "$1.29", "Buy $1.29",
		"Budgeting your account", "Lesson · 1 page", "Free", "The Big Atlas", "Buy $50.00")
	h.mustNotSee("Courses", "✓ Yours")

	h.tap("Buy $1.29")
	h.mustSee("Buy “Morning Yard”?", "Price: $1.29", "Your balance: $20.00", "Your balance after buying: $18.71")
	h.tap("Pay $1.29")
	h.mustSee("“Morning Yard” is yours now.", "✓ Yours")
	h.mustNotSee("Buy $1.29")
	h.tap("Back")
	h.mustSee("Balance: $18.71")
	h.tap("Library")

	// The balance is short.
	h.tap("Buy $50.00")
	h.tap("Pay $50.00")
	h.mustSee("Your balance ($18.71) is too low for this item ($50.00).")
	h.tap("Cancel")

	// $1.29 is not synced yet: $2.00 more passes the $3.00 offline cap.
	h.tap("Buy $2.00")
	h.tap("Pay $2.00")
	h.mustSee("this purchase would pass the offline spending limit")

	// Bought meanwhile (on this terminal, another way): already theirs.
	h.tap("Cancel")
	h.tap("Buy $0.99")
	_, err := h.term.Buy(mariaID, "trk-home")
	must(t, err)
	h.tap("Pay $0.99")
	h.mustSee("This item is yours already.")

	// Withdrawn by staff while the person looked at it.
	h.tap("Cancel")
	h.tap("Buy $0.50")
	h.downlink(kiosk.DownCatalogWithdrawn, vocab.CatalogWithdrawn{ID: "trk-gone", At: start})
	h.tap("Pay $0.50")
	h.mustSee("This item is no longer in the library.")
	h.tap("Cancel")
	h.mustNotSee("Withdrawn Soon")

	// The statement names the purchases.
	h.tap("Back")
	h.tap("Usage")
	h.mustSee("Library purchase")
}

// Every refusal the library can meet reads as words in every language, never as its code.
func TestLibraryRefusalsAreTranslated(t *testing.T) {
	cat := i18n.MustLoad()
	reasons := []kiosk.Reason{kiosk.ReasonInsufficientBalance, kiosk.ReasonOfflineLimit, vocab.ReasonAlreadyOwned,
		vocab.ReasonNotInCatalog, vocab.ReasonLibraryTimeUsed, kiosk.ReasonNeedsFunds}
	for _, lang := range cat.Languages() {
		w := words{Lang: cat.For(lang), loc: time.UTC, now: start}
		seen := map[string]kiosk.Reason{}
		for _, r := range reasons {
			err := &kiosk.Error{Kind: kiosk.KindRefused, Op: "buy", Reason: r, Until: start.Add(14 * time.Hour)}
			got := w.libraryRefusal(err, 129, 100)
			if got == "" || strings.Contains(got, string(r)) || strings.Contains(got, "library.err") || strings.Contains(got, "{") {
				t.Fatalf("%s: %s reads %q", lang, r, got)
			}
			if other, dup := seen[got]; dup {
				t.Fatalf("%s: %s and %s read the same: %q", lang, r, other, got)
			}
			seen[got] = r
		}
	}
	es := words{Lang: cat.For("es"), loc: time.UTC, now: start}
	err := &kiosk.Error{Kind: kiosk.KindRefused, Reason: kiosk.ReasonInsufficientBalance}
	if got, want := es.libraryRefusal(err, 129, 100), "Su saldo ($1.00) no alcanza para este artículo ($1.29)."; !strings.Contains(got, want) {
		t.Fatalf("es: %q, want %q", got, want)
	}
}

// In Spanish the catalog, the prices and a refusal read in Spanish.
func TestLibraryInSpanish(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.lang = "es" })
	h.publish(track("trk-yard", "Morning Yard", 129),
		kiosk.CatalogItem{ID: "bk-big", Kind: vocab.CatalogBook, Title: "The Big Atlas", PriceCents: 5000,
			Pages: []vocab.MediaRef{*fakeRef("atlas-1", vocab.MediaText)}},
		kiosk.CatalogItem{ID: "les-budget", Kind: vocab.CatalogLesson, Title: "Budgeting your account",
			Pages: []vocab.MediaRef{*fakeRef("budget-1", vocab.MediaText)}})
	h.badge(mariaBadge)
	h.typePIN(mariaPIN, "Aceptar")
	h.tap("Acepto")
	h.tap("Biblioteca")
	h.mustSee("Música", "Libros y lecciones", "Gratis", "Comprar $1.29")
	h.tap("Comprar $50.00")
	h.mustSee("¿Comprar «The Big Atlas»?", "Precio: $50.00")
	h.tap("Pagar $50.00")
	h.mustSee("no alcanza para este artículo ($50.00)")
}

// The minutes left today show while browsing and go down with the terminal's clock; once
// used, the library closes until the next day, and says when it opens again.
func TestLibraryMinutesLeftAndClosedWhenUsed(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) { p.LibraryMinutesPerDay = 3 }
	})
	h.publish(track("trk-yard", "Morning Yard", 129))
	h.login()
	h.tap("Library")
	h.mustSee("Library time left today: 2 minutes", "Morning Yard")
	h.advance(30 * time.Second)
	h.mustSee("Library time left today: 2 minutes")
	h.advance(30 * time.Second)
	h.mustSee("Library time left today: 1 minute")
	h.term.Touch()
	h.advance(time.Minute)
	h.mustSee("Library time left today: 0 minutes")
	h.term.Touch()
	h.advance(time.Minute)
	h.mustSee("You have used all of today's library time. The library opens again at Wednesday 00:00.")
	h.mustNotSee("Morning Yard")
	h.tap("Back")
	h.tap("Library")
	h.mustSee("You have used all of today's library time.")
	if left, err := h.term.LibraryMinutesLeft(mariaID); err != nil || left != 0 {
		t.Fatalf("minutes left %d %v, want 0", left, err)
	}
}

// demoTrack is one of the project's own tracks (assets/library).
func demoTrack(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "assets", "library", "morning-yard.mp3"))
	must(t, err)
	return b
}

// A bought track says it is still arriving until its bytes are whole, then opens in the player
// on the silent sink, which says there is no sound, and plays on the terminal's clock. On a
// kiosk the item is held while open and let go at logout.
func TestLibraryTrackArrivesThenPlays(t *testing.T) {
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	mp3 := demoTrack(t)
	ref, _ := mediaRef(t, mp3, vocab.MediaMP3)
	var viewed, closed []string
	h := newHarness(t, func(s *setup) {
		s.media = media
		s.library = func(h0 *harness) LibraryDeps {
			return LibraryDeps{
				NewPlayer: func() TrackPlayer { return audio.NewPlayer(audio.NewNull(h0.clk, audio.OutputRate), h0.clk) },
				View:      func(it kiosk.CatalogItem) error { viewed = append(viewed, it.ID); return nil },
				Close:     func(it kiosk.CatalogItem) error { closed = append(closed, it.ID); return nil },
			}
		}
	})
	it := track("trk-yard", "Morning Yard", 129)
	it.Audio = &ref
	h.publish(it)
	h.login()
	h.tap("Library")
	h.tap("Buy $1.29")
	h.tap("Pay $1.29")
	h.tap("Open")
	h.mustSee("Still arriving…")
	if len(viewed) != 1 || viewed[0] != "trk-yard" {
		t.Fatalf("viewed %v, want the track", viewed)
	}
	_, err = media.Put(bytes.NewReader(mp3))
	must(t, err)
	h.advance(time.Second)
	h.mustSee("Morning Yard", "The Tether Project", "Play", "0:00 / 0:17", "No sound on this terminal")
	h.tap("Play")
	h.mustSee("Pause")
	h.advance(5 * time.Second)
	h.mustSee("0:05 / 0:17")
	h.tap("Pause")
	h.mustSee("Play")

	h.tap("Back")
	h.tap("Back")
	h.tap("Log out")
	h.mustSee("Your session ended: you logged out.")
	if len(closed) != 1 || closed[0] != "trk-yard" {
		t.Fatalf("closed %v, want the track once", closed)
	}
}

// A lesson reads a page at a time; a course's quiz is answered a question at a time and sent
// for grading (offline, it says it waits), and the relay's credit shows in the statement.
func TestLessonPagesAndQuizSentThenCredited(t *testing.T) {
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	p1 := []byte("Write to one person at a time.\nKeep it short.")
	p2 := []byte("Staff read every letter before it leaves.")
	r1, _ := mediaRef(t, p1, vocab.MediaText)
	r2, _ := mediaRef(t, p2, vocab.MediaText)
	for _, b := range [][]byte{p1, p2} {
		_, err := media.Put(bytes.NewReader(b))
		must(t, err)
	}
	h := newHarness(t, func(s *setup) {
		s.media = media
		s.policy = func(p *kiosk.Policy) { p.QuizCreditCents = 50 }
	})
	h.publish(
		kiosk.CatalogItem{ID: "les-letter", Kind: vocab.CatalogLesson, Title: "Writing a letter", Pages: []vocab.MediaRef{r1, r2}},
		kiosk.CatalogItem{ID: "crs-letters", Kind: vocab.CatalogCourse, Title: "Letters that get through",
			Lessons: []string{"les-letter"}, Quizzes: []vocab.Quiz{{ID: "q1", Title: "Check yourself", PassScore: 2,
				Questions: []vocab.QuizQuestion{
					{Text: "Who reads a letter before it leaves?", Choices: []string{"No one", "Staff"}},
					{Text: "A letter should be", Choices: []string{"Short and clear", "As long as possible"}},
				}}}},
	)
	h.login()
	h.tap("Library")
	h.mustSee("Courses", "Letters that get through", "1 lesson · 1 quiz")
	h.k.SetLinkStatus(false)
	h.settle()
	// The course row comes after the lesson's: its Open is the second.
	h.openRow("Letters that get through")
	h.mustSee("Lessons", "1. Writing a letter", "Quizzes", "Check yourself")
	h.tap("Read")
	h.mustSee("Page 1 of 2", "Write to one person at a time.")
	h.tap("Next")
	h.mustSee("Page 2 of 2", "Staff read every letter before it leaves.")
	h.tap("Back")
	h.tap("Take the quiz")
	h.mustSee("Question 1 of 2", "Who reads a letter before it leaves?")
	h.tap("Staff")
	h.mustSee("Question 2 of 2")
	h.tap("Short and clear")
	h.mustSee("You answered all 2 questions.")
	h.tap("Send my answers")
	h.mustSee("Sent for grading.", "your answers will be sent when the connection is back",
		"If you pass, a credit of $0.50 will show in your usage statement.")

	// The relay graded it and sends the credit.
	h.downlink("remote_credit", kiosk.Credit{RecordID: vocab.QuizRecordID("crs-letters", "q1"), InmateID: mariaID, Cents: 50,
		Reason: vocab.CreditQuizPassed, CourseID: "crs-letters", QuizID: "q1", At: start})
	h.tap("Back to the course")
	h.tap("Back")
	h.tap("Back")
	h.tap("Usage")
	h.mustSee("Quiz passed: education credit", "$0.50")
}

// openRow taps the Open button on the library row titled title.
func (h *harness) openRow(title string) {
	h.t.Helper()
	var found *widget.Button
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		c, ok := o.(*fyne.Container)
		if !ok {
			return
		}
		var titled bool
		var open []*widget.Button
		walk(c, true, func(o fyne.CanvasObject) {
			switch x := o.(type) {
			case *canvas.Text:
				titled = titled || x.Text == title
			case *widget.Button:
				if x.Text == "Open" {
					open = append(open, x)
				}
			}
		})
		if titled && len(open) == 1 {
			found = open[0] // the walk goes down: the last match is the row itself
		}
	})
	if found == nil {
		h.t.Fatalf("no row %q with Open; screen shows:\n%s", title, h.screenText())
	}
	h.onUI = true
	test.Tap(found)
	h.onUI = false
	h.settle()
}

// On the person's own tablet, offline, a track they own plays from what the tablet keeps
// (sync pinned it under the purchase): no fetch, nothing asked of sync, the player over the
// silent sink.
func TestTabletPlaysAnOwnedTrackOffline(t *testing.T) {
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	mp3 := demoTrack(t)
	ref, _ := mediaRef(t, mp3, vocab.MediaMP3)
	viewed := 0
	h := newHarness(t, func(s *setup) {
		s.tablet, s.media = true, media
		s.library = func(h0 *harness) LibraryDeps {
			return LibraryDeps{NewPlayer: func() TrackPlayer { return audio.NewPlayer(audio.NewNull(h0.clk, audio.OutputRate), h0.clk) }}
		}
		s.fetch = func() { viewed++ }
	})
	it := track("trk-yard", "Morning Yard", 129)
	it.Audio = &ref
	h.publish(it)
	h.k.SetLinkStatus(false)
	h.typePIN(mariaPIN, "OK")
	h.tap("I accept")
	o, err := h.term.Buy(mariaID, "trk-yard") // bought offline: held against the offline cap
	must(t, err)
	m, err := media.Put(bytes.NewReader(mp3))
	must(t, err)
	must(t, media.Retain(m.Ref(), vocab.OwnedHolder(o.PurchaseID), true))
	h.tap("Library")
	h.mustSee("✓ Yours")
	h.tap("Open")
	h.mustSee("Morning Yard", "0:00 / 0:17", "No sound on this terminal")
	h.tap("Play")
	h.advance(3 * time.Second)
	h.mustSee("Pause", "0:03 / 0:17")
	if viewed != 0 {
		t.Fatalf("the tablet woke the fetcher %d times for a track it holds", viewed)
	}
}

// A free item withdrawn as the person taps Open: Open says so and the list loses it.
func TestOpeningAWithdrawnFreeItemSaysItIsGone(t *testing.T) {
	h := newHarness(t)
	h.publish(kiosk.CatalogItem{ID: "les-budget", Kind: vocab.CatalogLesson, Title: "Budgeting your account",
		Pages: []vocab.MediaRef{*fakeRef("budget-1", vocab.MediaText)}})
	h.login()
	h.tap("Library")
	h.mustSee("Budgeting your account", "Free")
	// Withdrawn just as the person taps Open: the list has not been read again yet.
	b, err := json.Marshal(vocab.CatalogWithdrawn{ID: "les-budget", At: start})
	must(t, err)
	h.seq++
	if refused, err := h.term.ApplyDownlink(h.seq, kiosk.DownCatalogWithdrawn, b); err != nil || refused != "" {
		t.Fatalf("withdraw: %q %v", refused, err)
	}
	h.tap("Open")
	h.mustSee("This item is no longer in the library.", "The library has nothing yet.")
	h.mustNotSee("Budgeting your account")
}

// An item the relay publishes while the list is on show appears in it; one withdrawn goes.
func TestLibraryListFollowsTheCatalog(t *testing.T) {
	h := newHarness(t)
	h.publish(track("trk-yard", "Morning Yard", 129))
	h.login()
	h.tap("Library")
	h.mustSee("Morning Yard")
	h.publish(track("trk-home", "Letter Home", 99))
	h.mustSee("Morning Yard", "Letter Home", "Buy $0.99")
	h.downlink(kiosk.DownCatalogWithdrawn, vocab.CatalogWithdrawn{ID: "trk-yard", At: start})
	h.mustSee("Letter Home")
	h.mustNotSee("Morning Yard")
}

// The quiz screen waits for the relay's word ("Sent for grading", offline too) and then says
// exactly what the relay said: a fail with the score, the pass mark and the attempts left;
// a pass with the minutes credited.
func TestQuizScreenShowsTheRelaysResult(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) { p.QuizCreditMinutes = 10 }
	})
	qs := []vocab.QuizQuestion{{Text: "1+1?", Choices: []string{"2", "3"}}, {Text: "2+2?", Choices: []string{"4", "5"}},
		{Text: "3+3?", Choices: []string{"6", "7"}}}
	h.publish(
		kiosk.CatalogItem{ID: "les-1", Kind: vocab.CatalogLesson, Title: "Sums", Pages: []vocab.MediaRef{*fakeRef("p1", vocab.MediaText)}},
		kiosk.CatalogItem{ID: "crs-1", Kind: vocab.CatalogCourse, Title: "Arithmetic", Lessons: []string{"les-1"},
			Quizzes: []vocab.Quiz{{ID: "q1", Title: "Sums quiz", PassScore: 3, Questions: qs}}},
	)
	h.login()
	h.tap("Library")
	h.k.SetLinkStatus(false)
	h.settle()
	take := func() string {
		h.t.Helper()
		h.openRow("Arithmetic")
		h.tap("Take the quiz")
		h.tap("2")
		h.tap("5")
		h.tap("6")
		h.tap("Send my answers")
		h.mustSee("Sent for grading.", "your answers will be sent when the connection is back")
		st, ok, err := h.term.LastQuizAttempt(mariaID, "crs-1", "q1")
		if err != nil || !ok || st.Result != nil {
			h.t.Fatalf("the attempt: %+v %v %v", st, ok, err)
		}
		return st.AttemptID
	}
	id := take()
	res := vocab.QuizResult{AttemptID: id, InmateID: mariaID, CourseID: "crs-1", QuizID: "q1", Outcome: vocab.QuizFailed,
		Right: 2, Questions: 3, PassScore: 3, AttemptsUsed: 2, AttemptsLeft: 1, At: start}
	h.downlink("quiz_result", res)
	h.mustSee("You got 2 of 3 right; 3 needed to pass. 1 attempt left.")
	h.tap("Back to the course")
	h.tap("Back")
	id = take()
	res.AttemptID, res.Outcome, res.Right, res.CreditCents, res.CreditMinutes, res.AttemptsUsed, res.AttemptsLeft =
		id, vocab.QuizPassed, 3, 10*h.term.Policy().RatePerMinute, 10, 3, 0
	h.downlink("quiz_result", res)
	h.mustSee("Passed — 10 minutes credited", "You got 3 of 3 right.")
}
