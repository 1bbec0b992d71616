package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/photo"
)

// TestDemoSeedsNoticesAndAnswer: the demo kiosk starts with the facility's notices and James's
// request to Medical answered, the answer linked to the request, so logging in as James
// shows the answer under his request and his notice (README, demo table).
func TestDemoSeedsNoticesAndAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a whole demo: skipped with -short")
	}
	dir := t.TempDir()
	d, _, err := newDemo(dir, t.Logf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d.close()
	st, err := kiosk.OpenStore(filepath.Join(dir, "terminal"), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := term.Sent(demoRequest.inmate)
	if err != nil {
		t.Fatal(err)
	}
	var req kiosk.Message
	for _, m := range sent {
		if m.Body == demoRequest.body {
			req = m
		}
	}
	if req.ID == "" || req.State != kiosk.MsgDelivered {
		t.Fatalf("James's request on the kiosk: %+v (sent %+v)", req, sent)
	}
	in, err := term.Inbox(demoRequest.inmate)
	if err != nil {
		t.Fatal(err)
	}
	answered := false
	for _, m := range in {
		answered = answered || (m.ReplyTo == req.ID && m.Body == demoRequest.answer && m.PeerName == "Medical")
	}
	if !answered {
		t.Fatalf("no answer to the request in James's inbox: %+v", in)
	}
	ns, err := term.Notices(demoRequest.inmate)
	if err != nil {
		t.Fatal(err)
	}
	personal := 0
	for _, n := range ns {
		if n.InmateID == demoRequest.inmate {
			personal++
		}
	}
	if len(ns) != len(demoNotices) || personal != 1 {
		t.Fatalf("notices on the kiosk for James: %+v", ns)
	}
	if others, _ := term.Notices("A100001"); len(others) != len(demoNotices)-1 {
		t.Fatalf("Maria sees %d notices, want the facility's %d", len(others), len(demoNotices)-1)
	}
}

// TestDemoSeedsMariasPhotoLetter: the demo kiosk starts with Maria's mother's letter naming
// the photo the demo drew, and the relay holds that photo, a real PNG the screens' check
// accepts (the kiosk fetches it when Maria opens the letter).
func TestDemoSeedsMariasPhotoLetter(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a whole demo: skipped with -short")
	}
	dir := t.TempDir()
	d, _, err := newDemo(dir, t.Logf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	st, err := kiosk.OpenStore(filepath.Join(dir, "terminal"), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	in, err := term.Inbox("A100001")
	if err != nil {
		t.Fatal(err)
	}
	var letter kiosk.Message
	for _, m := range in {
		if len(m.Photos) > 0 {
			letter = m
		}
	}
	if letter.PeerName != "Rosa Lopez" || len(letter.Photos) != 1 || letter.Photos[0].Type != "image/png" {
		t.Fatalf("Maria's photo letter: %+v (inbox %d letters)", letter, len(in))
	}
	p, r, err := d.relay.InboundPhoto(letter.ID, 0)
	if err != nil {
		t.Fatalf("the relay does not hold the photo: %v", err)
	}
	defer r.Close()
	if _, info, err := photo.DefaultPolicy().Read(p.Type, r); err != nil || info.Width != 480 {
		t.Fatalf("the demo photo: %+v %v", info, err)
	}
}

// TestDemoSeedsTheLibrary: the demo kiosk starts with the library the README lists: the
// project's three tracks (one free), the two lessons and the course with its three-question
// quiz, as the relay lists them (the kiosk fetches the media when a person opens an item).
func TestDemoSeedsTheLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a whole demo: skipped with -short")
	}
	dir := t.TempDir()
	d, _, err := newDemo(dir, t.Logf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	st, err := kiosk.OpenStore(filepath.Join(dir, "terminal"), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := term.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kiosk.CatalogItem{}
	for _, it := range cat {
		got[it.Title] = it
	}
	for title, price := range map[string]kiosk.Cents{"Morning Yard": 99, "Letter Home": 129, "Count the Days": 0,
		"Writing a letter that gets through review": 0, "Budgeting your account": 0, "Staying in touch": 0} {
		it, ok := got[title]
		if !ok || it.PriceCents != price {
			t.Fatalf("%q on the kiosk: %+v (catalog %d items)", title, it, len(cat))
		}
	}
	if yard := got["Morning Yard"]; yard.Duration != 18 || yard.Artist != "The Tether Project" {
		t.Fatalf("Morning Yard: %+v", yard)
	}
	course := got["Staying in touch"]
	if len(course.Lessons) != 2 || len(course.Quizzes) != 1 || len(course.Quizzes[0].Questions) != 3 {
		t.Fatalf("the course: %+v", course)
	}
	entries, err := d.relay.Catalog(d.fac.ID)
	if err != nil || len(entries) != len(cat) {
		t.Fatalf("the relay lists %d items (%v), the kiosk %d", len(entries), err, len(cat))
	}
}
