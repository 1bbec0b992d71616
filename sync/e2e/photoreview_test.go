package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Through real sync: north holds a family's letter with a photo for review, and the tablet
// gets neither until staff approve; then the photo arrives whole on the tablet. Its person
// deletes it there: the letter stays, says the photo was deleted, and the tablet holds no byte
// of it, after a restart too, without asking the relay for it again.
func TestPhotoReviewedThenDeletedOnTablet(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	url := "http://" + rl.addr()
	if err := rl.r.SetMonitoring("north", relay.Monitoring{HoldOutbound: true, PhotoReview: relay.PhotoReviewHold}); err != nil {
		t.Fatal(err)
	}
	k := openTerminal(t, "", kiosk.StoreOptions{})
	k.enroll(url, rl.code(wire.ModeKiosk, ""))
	k.start()
	k.waitRoster()
	k.login("B1", "1234")
	mom := approvedContact(t, rl, k, "A1", "Mom", "mom@example.org")

	mediaPath := filepath.Join(t.TempDir(), content.File)
	media, err := content.Open(mediaPath, content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := media
	t.Cleanup(func() { first.Close() }) // closing twice is harmless
	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(url, rl.code(wire.ModeTablet, "A1"))
	tab.cfg = func(c *client.Config) { c.Content = media }
	tab.start()

	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	letter, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: mom, Body: "held first",
		Photos: []relay.InboundPhoto{{Type: "image/png", Data: b.Bytes()}}})
	if err != nil {
		t.Fatal(err)
	}
	// A letter sent after it, without photos, arrives: the held one did not.
	if _, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: mom, Body: "no photo"}); err != nil {
		t.Fatal(err)
	}
	inbox := func() []kiosk.Message { in, _ := tab.term.Inbox("A1"); return in }
	testwait.UntilSaw(t, "the letter without photos on the tablet", func() (bool, string) {
		in := inbox()
		return len(in) == 1 && in[0].Body == "no photo", fmt.Sprint(len(in))
	})
	if w, _ := media.Wanted(5); len(w) != 0 {
		t.Fatalf("the tablet wants %v before the review", w)
	}

	if _, err := rl.r.ApproveInbound(letter.ID); err != nil {
		t.Fatal(err)
	}
	obj, _ := content.ParseHash(letter.Photos[0].SHA256)
	testwait.UntilSaw(t, "the approved photo whole on the tablet", func() (bool, string) {
		st, err := media.State(obj)
		return st == content.Whole && len(inbox()) == 2, fmt.Sprint(st, err, len(inbox()))
	})

	p, err := tab.term.EnterBoundPIN("1234")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	if err := tab.term.DeletePhoto("A1", letter.ID, letter.Photos[0].SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.term.ReleaseGonePhotos(media); err != nil {
		t.Fatal(err)
	}
	if st, _ := media.State(obj); st != content.Absent {
		t.Fatalf("the deleted photo is %s on the tablet", st)
	}

	// A restart: the letter is there, its photo still deleted, and nothing is asked for.
	tab.stopSync()
	if err := media.Close(); err != nil {
		t.Fatal(err)
	}
	tab.reopen(kiosk.StoreOptions{})
	if media, err = content.Open(mediaPath, content.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { media.Close() })
	tab.cfg = func(c *client.Config) { c.Content = media }
	tab.start()
	tab.waitSynced()
	if gone, err := tab.term.PhotosGone(letter.ID); err != nil || gone[letter.Photos[0].SHA256] != kiosk.PhotoDeleted {
		t.Fatalf("after a restart the photo is gone %v (%v); want deleted", gone, err)
	}
	if len(inbox()) != 2 {
		t.Fatalf("after a restart the inbox has %d letters, want 2", len(inbox()))
	}
	if w, _ := media.Wanted(5); len(w) != 0 {
		t.Fatalf("after a restart the tablet wants %v", w)
	}
	if st, _ := media.State(obj); st != content.Absent {
		t.Fatalf("after a restart the deleted photo is %s on the tablet", st)
	}
}
