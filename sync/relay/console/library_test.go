package console_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// demoTrack is one of the demo's MP3 files (assets/library).
func demoTrack(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "assets", "library", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// field is one part of a multipart form: a text field, or a file when File is set.
type field struct{ Name, Value, File string }

// upload posts a multipart form, its parts in the order given, as a browser sends a form
// with enctype multipart/form-data. The CSRF token comes first when csrf is not "".
func (b *browser) upload(action, csrf string, parts []field, files map[string][]byte) *http.Response {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	for _, p := range parts {
		if p.File == "" {
			mw.WriteField(p.Name, p.Value)
			continue
		}
		w, err := mw.CreateFormFile(p.Name, p.File)
		if err != nil {
			b.t.Fatal(err)
		}
		w.Write(files[p.File])
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.e.url(action), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// result follows a form's redirect and returns the page's message (notice or error).
func (b *browser) result(resp *http.Response) (ok, fail string) {
	b.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("form answered %d, want a redirect: %.400s", resp.StatusCode, b.last)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Query().Get("ok"), u.Query().Get("err")
}

func catalogOf(t testing.TB, r *relay.Relay, fac string) []relay.CatalogEntry {
	t.Helper()
	list, err := r.Catalog(fac)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func trackForm(title, artist, price string) []field {
	return []field{{Name: "facility", Value: "north"}, {Name: "title", Value: title}, {Name: "artist", Value: artist},
		{Name: "price", Value: price}, {Name: "description", Value: ""}, {Name: "audio", File: "song.mp3"}}
}

// A library staff member publishes a track, a lesson and a course with a quiz, sees them
// listed with their prices and details, and withdraws the track; the kiosk of the facility
// gets each item and the withdrawal.
func TestLibraryPublishAndWithdraw(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	b := e.browser().mustLogin("lin")
	tok := b.csrf("/console/library")

	ok, fail := b.result(b.upload("/console/library/track", tok, trackForm("Morning Yard", "Tether House Band", "1.29"),
		map[string][]byte{"song.mp3": demoTrack(t, "morning-yard.mp3")}))
	if fail != "" || !strings.Contains(ok, `Published the track "Morning Yard" ($1.29)`) {
		t.Fatalf("publish a track: ok %q, err %q", ok, fail)
	}
	ok, fail = b.result(b.upload("/console/library/pages", tok, []field{{Name: "facility", Value: "north"}, {Name: "kind", Value: "lesson"},
		{Name: "title", Value: "Fractions"}, {Name: "price", Value: ""}, {Name: "pages", Value: "A half is one of two.\n---\nTwo halves make one."}}, nil))
	if fail != "" || !strings.Contains(ok, `Published the lesson "Fractions" (free)`) {
		t.Fatalf("publish a lesson: ok %q, err %q", ok, fail)
	}
	var lesson, trackID string
	for _, it := range catalogOf(t, e.r, "north") {
		switch it.Item.Kind {
		case vocab.CatalogLesson:
			lesson = it.Item.ID
			if len(it.Item.Pages) != 2 {
				t.Errorf("the lesson has %d pages, want 2", len(it.Item.Pages))
			}
		case vocab.CatalogTrack:
			trackID = it.Item.ID
			if it.Item.Duration < 1 || it.Item.PriceCents != 129 || it.Item.Artist != "Tether House Band" {
				t.Errorf("the track is %+v", it.Item)
			}
		}
	}
	resp := b.postForm("/console/library", "/console/library/course", url.Values{"facility": {"north"}, "title": {"GED math"},
		"lessons": {lesson}, "quiz_title": {"Fractions"}, "pass_score": {"1"},
		"questions": {"Half of 8?\n* 4\n- 2\n\n1/2 + 1/2 = ?\n- 1/4\n* 1\n- 2"}})
	if ok, fail = b.result(resp); fail != "" || !strings.Contains(ok, `Published the course "GED math" (free)`) {
		t.Fatalf("publish a course: ok %q, err %q", ok, fail)
	}

	b.get("/console/library?facility=north")
	for _, want := range []string{"Morning Yard", "Tether House Band · 0:", "$1.29", "Fractions", "2 pages", "GED math", "1 lesson, 1 quiz", "Free", "Published"} {
		if !strings.Contains(b.last, want) {
			t.Errorf("the Library page does not show %q", want)
		}
	}
	testwait.UntilSaw(t, "the three items on the kiosk", func() (bool, string) {
		items, err := tm.term.Catalog()
		return err == nil && len(items) == 3, fmt.Sprint(len(items), err)
	})
	for _, it := range catalogOf(t, e.r, "north") {
		if it.Item.Kind == vocab.CatalogCourse {
			if len(it.Item.Quizzes) != 1 || len(it.Item.Quizzes[0].Questions) != 2 || it.Item.Quizzes[0].Questions[1].Choices[1] != "1" {
				t.Errorf("the course's quiz is %+v", it.Item.Quizzes)
			}
		}
	}

	// A1 buys the track on the kiosk; the list counts the purchase once the relay records it.
	tm.login()
	if _, err := tm.term.Buy("A1", trackID); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the purchase counted on the Library page", func() (bool, string) {
		b.get("/console/library?facility=north")
		row := b.last[strings.Index(b.last, `id="item-`+trackID+`"`):]
		row = row[:strings.Index(row, "</tr>")]
		return strings.Contains(row, `<td class="owners">1</td>`), row
	})
	ok, fail = b.result(b.postForm("/console/library", "/console/library/north/"+trackID+"/withdraw", nil))
	if fail != "" || !strings.Contains(ok, `Withdrew "Morning Yard"`) {
		t.Fatalf("withdraw: ok %q, err %q", ok, fail)
	}
	testwait.UntilSaw(t, "the track gone from the kiosk", func() (bool, string) {
		items, err := tm.term.Catalog()
		for _, it := range items {
			if it.ID == trackID {
				return false, "still there"
			}
		}
		return err == nil && len(items) == 2, fmt.Sprint(len(items), err)
	})
	b.get("/console/library?facility=north")
	if !strings.Contains(b.last, "Withdrawn") {
		t.Errorf("the Library page does not show the withdrawal")
	}
	audit := e.browser().mustLogin("ada")
	audit.get("/console/audit")
	for _, want := range []string{"catalog.publish", "catalog.withdraw", trackID} {
		if !strings.Contains(audit.last, want) {
			t.Errorf("the audit log does not show %q", want)
		}
	}
}

// A form the relay refuses says what was wrong and publishes nothing; the file it carried is
// not kept.
func TestLibraryRefusalsStoreNothing(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser().mustLogin("lin")
	tok := b.csrf("/console/library")
	song := demoTrack(t, "letter-home.mp3")
	cases := []struct {
		name   string
		action string
		parts  []field
		file   []byte
		want   string
	}{
		{"not an MP3", "/console/library/track", trackForm("Noise", "Band", "1"), []byte("ID3 but not really an mp3 at all, just text"), "is not an MP3 file"},
		{"no title", "/console/library/track", trackForm("", "Band", "1"), song, "title"},
		{"price too high", "/console/library/track", trackForm("Dear", "Band", "99.00"), song, "more than the most an item may cost"},
		{"price not money", "/console/library/track", trackForm("Dear", "Band", "1,29"), song, "write dollars and cents"},
		{"no file", "/console/library/track", trackForm("Dear", "Band", "1")[:5], nil, "choose the track's MP3 file"},
		{"other facility", "/console/library/track", append([]field{{Name: "facility", Value: "south"}}, trackForm("Dear", "Band", "1")[1:]...), song, "not one of your facilities"},
		{"no pages", "/console/library/pages", []field{{Name: "facility", Value: "north"}, {Name: "kind", Value: "book"}, {Name: "title", Value: "Empty"}, {Name: "pages", Value: "\n---\n"}}, nil, "at least one page"},
		{"a text file as an image", "/console/library/pages", []field{{Name: "facility", Value: "north"}, {Name: "kind", Value: "book"}, {Name: "title", Value: "Pics"},
			{Name: "pages", Value: "Page one"}, {Name: "images", File: "song.mp3"}}, []byte("plain words"), "is not a JPEG or PNG picture"},
	}
	for _, c := range cases {
		_, fail := b.result(b.upload(c.action, tok, c.parts, map[string][]byte{"song.mp3": c.file}))
		if !strings.Contains(fail, c.want) || !strings.Contains(fail, "nothing was published") {
			t.Errorf("%s: the page says %q, want %q", c.name, fail, c.want)
		}
	}
	// A quiz without its right answer, or a pass score beyond the questions.
	for _, c := range []struct{ questions, pass, want string }{
		{"Half of 8?\n- 4\n- 2", "1", "mark the right choice with *"},
		{"Half of 8?\n* 4\n- 2", "3", "pass"},
		{"Half of 8?\n* 4", "1", "at least two choices"},
	} {
		_, fail := b.result(b.postForm("/console/library", "/console/library/course", url.Values{"facility": {"north"}, "title": {"Course"},
			"lessons": {"les-none"}, "questions": {c.questions}, "pass_score": {c.pass}}))
		if !strings.Contains(fail, c.want) {
			t.Errorf("quiz %q pass %s: the page says %q, want %q", c.questions, c.pass, fail, c.want)
		}
	}
	if list := catalogOf(t, e.r, "north"); len(list) != 0 {
		t.Errorf("refused forms published %d items", len(list))
	}
	// The text page the refused book stored before its image failed was discarded: an item
	// naming it cannot be published, the relay no longer holds it for the facility.
	page := refOf(t, "Page one\n", vocab.MediaText)
	_, err := e.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "book-x", Kind: vocab.CatalogBook,
		Title: "Pics", Pages: []vocab.MediaRef{page}}})
	if err == nil || !strings.Contains(err.Error(), "was not uploaded") {
		t.Errorf("the refused book's text page is still held: publishing it says %v", err)
	}
	// Without its token, an upload is refused before the file is read.
	resp := b.upload("/console/library/track", "", trackForm("Dear", "Band", "1"), map[string][]byte{"song.mp3": song})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b.last, "security token") {
		t.Errorf("an upload without its token: %d %.200s", resp.StatusCode, b.last)
	}
	// Another role cannot publish.
	m := e.browser().mustLogin("mia")
	resp = m.upload("/console/library/track", m.csrf("/console/review"), trackForm("Dear", "Band", "1"), map[string][]byte{"song.mp3": song})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the mailroom published a track: %d", resp.StatusCode)
	}
	if list := catalogOf(t, e.r, "north"); len(list) != 0 {
		t.Errorf("refused forms published %d items", len(list))
	}
}

// refOf is the media reference the relay gives data (the content store's chunking is the
// same everywhere), computed in a store of the test's own.
func refOf(t testing.TB, data, typ string) vocab.MediaRef {
	t.Helper()
	s, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Put(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Ref()
	return vocab.MediaRef{SHA256: r.Object.String(), Manifest: r.Manifest.String(), Size: r.Size, Type: typ}
}

// In Chromium: a library staff member publishes a track (choosing the MP3 file) and a course
// with a quiz, sees them listed, withdraws the track after the confirmation (cancelling it
// once first), and the facility's kiosk reflects each step.
func TestBrowserLibraryPublishesAndWithdraws(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	tm := e.kiosk("")
	mp3, err := filepath.Abs(filepath.Join("..", "..", "..", "assets", "library", "count-the-days.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	b := e.open(t, browser)
	// Each confirmation is answered with the next value sent on answers.
	answers := make(chan bool, 1)
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			accept := <-answers
			if !strings.Contains(ev.Message, "Withdraw Count the Days?") {
				t.Errorf("the confirmation says %q", ev.Message)
			}
			if _, err := chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept}); err != nil && b.ctx.Err() == nil {
				t.Error(err)
			}
		}
	}()
	b.login("lin", password)
	b.waitText("Publish a track")
	b.do("publish a track",
		chromedp.SendKeys(chromedp.CSS(`#track-form input[name=title]`), "Count the Days"),
		chromedp.SendKeys(chromedp.CSS(`#track-form input[name=artist]`), "Tether House Band"),
		chromedp.SendKeys(chromedp.CSS(`#track-form input[name=price]`), "0.99"),
		chromedp.SetUploadFiles(chromedp.CSS(`#track-form input[name=audio]`), []string{mp3}),
		chromedp.Click(chromedp.CSS(`#track-form button`)),
	)
	b.waitText(`Published the track "Count the Days" ($0.99)`)
	b.do("publish a lesson",
		chromedp.SendKeys(chromedp.CSS(`#pages-form input[name=title]`), "Fractions"),
		chromedp.SendKeys(chromedp.CSS(`#pages-form textarea[name=pages]`), "A half is one of two.\n---\nTwo halves make one."),
		chromedp.Click(chromedp.CSS(`#pages-form button`)),
	)
	b.waitText(`Published the lesson "Fractions" (free)`)
	var lesson, trackID string
	for _, it := range catalogOf(t, e.r, "north") {
		switch it.Item.Kind {
		case vocab.CatalogLesson:
			lesson = it.Item.ID
		case vocab.CatalogTrack:
			trackID = it.Item.ID
		}
	}
	b.do("publish a course with a quiz",
		chromedp.SendKeys(chromedp.CSS(`#course-form input[name=title]`), "GED math"),
		chromedp.SetValue(chromedp.CSS(`#course-form select[name=lessons]`), lesson),
		chromedp.SendKeys(chromedp.CSS(`#course-form input[name=quiz_title]`), "Halves"),
		chromedp.SendKeys(chromedp.CSS(`#course-form textarea[name=questions]`), "Half of 8?\n* 4\n- 2\n\nHalf of 2?\n- 4\n* 1"),
		chromedp.SendKeys(chromedp.CSS(`#course-form input[name=pass_score]`), "2"),
		chromedp.Click(chromedp.CSS(`#course-form button`)),
	)
	b.waitText(`Published the course "GED math" (free)`)
	txt := b.text()
	for _, want := range []string{"Count the Days", "$0.99", "Tether House Band · 0:", "GED math", "1 lesson, 1 quiz"} {
		if !strings.Contains(txt, want) {
			t.Errorf("the list does not show %q", want)
		}
	}
	testwait.UntilSaw(t, "the three items on the kiosk", func() (bool, string) {
		items, err := tm.term.Catalog()
		return err == nil && len(items) == 3, fmt.Sprint(len(items), err)
	})

	answers <- false
	b.do("cancel the withdrawal", chromedp.Click(chromedp.CSS(`#item-`+trackID+` button.withdraw`)))
	for _, it := range catalogOf(t, e.r, "north") {
		if it.Withdrawn {
			t.Fatalf("a cancelled confirmation withdrew %s", it.Item.ID)
		}
	}
	answers <- true
	b.do("withdraw the track", chromedp.Click(chromedp.CSS(`#item-`+trackID+` button.withdraw`)))
	b.waitText(`Withdrew "Count the Days"`)
	if !strings.Contains(b.text(), "Withdrawn") {
		t.Errorf("the list does not show the track withdrawn")
	}
	testwait.UntilSaw(t, "the track gone from the kiosk", func() (bool, string) {
		items, err := tm.term.Catalog()
		for _, it := range items {
			if it.ID == trackID {
				return false, "still offered"
			}
		}
		return err == nil && len(items) == 2, fmt.Sprint(len(items), err)
	})
	b.shot("console-library.png")
}
