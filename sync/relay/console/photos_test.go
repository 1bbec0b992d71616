package console_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

// photoJPEG is a real w x h JPEG made here.
func photoJPEG(t *testing.T, w, h int, tint uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), tint, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// photoEnv is the console over a relay whose facility north holds families' letters with
// photos for review, a kiosk of north, and Mom, a contact of A1 who may write.
type photoEnv struct {
	*env
	tm  *terminal
	mom string
}

func newPhotoEnv(t *testing.T) *photoEnv {
	t.Helper()
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnvWith(t, false, func(c *relay.Config) { c.Notifier = relay.SpoolNotifier{Dir: spool} })
	if err := e.r.SetMonitoring("north", relay.Monitoring{HoldOutbound: true, PhotoReview: relay.PhotoReviewHold}); err != nil {
		t.Fatal(err)
	}
	tm := e.kiosk("")
	tm.login()
	c, err := tm.term.AddContact("A1", "Mom", "mom@example.org")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the contact on the relay", func() bool { cs, _ := e.r.Contacts(kiosk.ContactPending, "A1"); return len(cs) == 1 })
	if _, err := e.r.ApproveContact(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.AnswerInvitation(spoolCodes(t, spool, c.ID)[0], relay.AnswerAccept); err != nil {
		t.Fatal(err)
	}
	e.addStaff("sam", []string{console.RoleMailroom}, []string{"south"})
	return &photoEnv{env: e, tm: tm, mom: c.ID}
}

// letter has Mom send A1 a letter with photos; the relay holds it for review.
func (pe *photoEnv) letter(t *testing.T, body string, photos ...[]byte) kiosk.Message {
	t.Helper()
	var ups []relay.InboundPhoto
	for _, p := range photos {
		ups = append(ups, relay.InboundPhoto{Data: p})
	}
	m, err := pe.r.Inbound(relay.InboundRequest{InmateID: "A1", From: pe.mom, Body: body, Photos: ups})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The review queue shows a held family letter with its photos' thumbnails and what the relay
// found of each; the photo is served to north's mailroom only (another facility's mailroom
// and signed-out callers get 404, north's business office 403, each audited); approving sends
// the letter with its photo to the kiosk, rejecting deletes the photo.
func TestPhotoReviewInConsole(t *testing.T) {
	pe := newPhotoEnv(t)
	jp := photoJPEG(t, 64, 48, 10)
	m := pe.letter(t, "The new puppy", jp)
	photo := "/console/review/photos/" + m.ID + "/0"

	mia := pe.browser().mustLogin("mia")
	mia.get("/console/review")
	for _, want := range []string{"The new puppy", "with 1 photo", "JPEG, 64 × 48, " + fmt.Sprintf("%d bytes", len(jp)), `src="` + photo + `"`} {
		if !strings.Contains(mia.last, want) && !strings.Contains(mia.last, strings.ReplaceAll(want, "×", "&#215;")) {
			t.Errorf("the review queue lacks %q: %.2000s", want, mia.last)
		}
	}
	resp := mia.get(photo)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" || mia.last != string(jp) {
		t.Fatalf("the mailroom's GET of the photo: %d %s, %d bytes; want the JPEG", resp.StatusCode, resp.Header.Get("Content-Type"), len(mia.last))
	}

	sam := pe.browser().mustLogin("sam") // south's mailroom
	bob := pe.browser().mustLogin("bob") // north's business office
	for _, c := range []struct {
		who  string
		b    *browser
		want int
	}{{"south's mailroom", sam, http.StatusNotFound}, {"north's business office", bob, http.StatusForbidden}, {"no one signed in", pe.browser(), http.StatusNotFound}} {
		if resp := c.b.get(photo); resp.StatusCode != c.want || strings.Contains(c.b.last, string(jp[:64])) {
			t.Errorf("%s GET the photo: %d (%d bytes); want %d and no byte of it", c.who, resp.StatusCode, len(c.b.last), c.want)
		}
	}
	if resp := sam.postForm("/console/review", "/console/review/photos/"+m.ID+"/approve", nil); !strings.Contains(location(resp), "not one of your facilities") {
		t.Errorf("south's mailroom approves north's letter: %s", location(resp))
	}
	ada := pe.browser().mustLogin("ada")
	ada.get("/console/audit")
	if n := strings.Count(ada.last, "photo.denied"); n != 3 {
		t.Errorf("the audit log holds %d photo.denied entries, want 3: %.3000s", n, ada.last)
	}

	resp = mia.postForm("/console/review", "/console/review/photos/"+m.ID+"/approve", nil)
	if !strings.Contains(location(resp), "Approved the letter to A1 with its photos") {
		t.Fatalf("approve: %s", location(resp))
	}
	testwait.UntilSaw(t, "the letter with its photo on the kiosk", func() (bool, string) {
		in, err := pe.tm.term.Inbox("A1")
		for _, x := range in {
			if x.ID == m.ID {
				return len(x.Photos) == 1 && x.Photos[0].SHA256 == m.Photos[0].SHA256, fmt.Sprint(x.Photos)
			}
		}
		return false, fmt.Sprint(len(in), err)
	})

	bad := pe.letter(t, "Another one", photoJPEG(t, 30, 30, 200))
	resp = mia.postForm("/console/review", "/console/review/photos/"+bad.ID+"/reject", url.Values{"reason": {"content_policy"}, "note": {"gang sign"}})
	if !strings.Contains(location(resp), "its photos are deleted") {
		t.Fatalf("reject: %s", location(resp))
	}
	if resp := mia.get("/console/review/photos/" + bad.ID + "/0"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the rejected letter's photo: %d, want 404 (deleted)", resp.StatusCode)
	}
	if h, err := pe.r.HeldInboundOf(bad.ID); err != nil || h.Status != kiosk.MsgRejected || h.Reason != "content_policy: gang sign" {
		t.Errorf("the rejected letter on the relay: %+v, %v", h, err)
	}
	mia.get("/console/review")
	if !strings.Contains(mia.last, "Nothing is waiting for review") {
		t.Errorf("the queue is not empty after both decisions: %.1500s", mia.last)
	}
}

// In Chromium: north's mailroom opens the review queue and the held letter's photo really
// loads as an image; south's mailroom, signed in, cannot fetch it.
func TestBrowserPhotoReview(t *testing.T) {
	browser := newBrowser(t)
	pe := newPhotoEnv(t)
	m := pe.letter(t, "Graduation day", photoJPEG(t, 320, 240, 90))
	b := pe.open(t, browser)
	b.login("mia", password)
	b.waitText("Graduation day")
	sel := fmt.Sprintf(`document.querySelector('#photo-%s-0')`, m.ID)
	testwait.UntilSaw(t, "the photo to load in the review queue", func() (bool, string) {
		w, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](sel+`.complete ? `+sel+`.naturalWidth : -1`))
		return err == nil && w == 320, fmt.Sprint(w, err)
	})
	if txt := b.text(); !strings.Contains(txt, "JPEG, 320 × 240") {
		t.Errorf("the queue does not say what the photo is: %.600s", txt)
	}
	b.shot("console-photo-review.png")

	other := pe.open(t, browser)
	other.login("sam", password)
	other.waitText("Sign out")
	other.do("open the north photo as south's mailroom", chromedp.Navigate(pe.url("/console/review/photos/"+m.ID+"/0")))
	if txt := other.text(); !strings.Contains(txt, "not found") {
		t.Errorf("south's mailroom opening the photo sees %.200q, want not found", txt)
	}
	w, err := chromedp.Run(other.ctx, chromedp.Evaluate[int](`document.images.length ? document.images[0].naturalWidth : 0`))
	if err != nil || w != 0 {
		t.Errorf("south's mailroom got an image %d wide (%v)", w, err)
	}

	b.do("approve the letter with its photo", chromedp.Click(chromedp.CSS("#photos-"+m.ID+" button.approve")))
	b.waitText("Approved the letter to A1 with its photos")
}

// The policy screen sets photo review and how long a tablet keeps photos, refuses a bad
// number of days naming the field, and says plainly that the stamps a photo adds count nothing.
func TestPolicyFormPhotoSettings(t *testing.T) {
	e := newEnv(t, false)
	ada := e.browser().mustLogin("ada")
	ada.get("/console/policy?facility=north")
	if !strings.Contains(ada.last, "This counts nothing today: inmates cannot send photos") {
		t.Errorf("the policy screen does not say the stamps a photo adds count nothing: %.4000s", ada.last)
	}
	resp := ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"photo_keep_days": {"-3"}}))
	if loc := location(resp); !strings.Contains(loc, "photo_keep_days") {
		t.Errorf("a keep of -3 days: %s", loc)
	}
	resp = ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"photo_review": {"later"}}))
	if loc := location(resp); !strings.Contains(loc, "photo_review") {
		t.Errorf("photo review later: %s", loc)
	}
	if m, _ := e.r.MonitoringOf("north"); m.PhotoReview != relay.PhotoReviewHold {
		t.Fatalf("refused forms changed north's photo review from the default hold: %+v", m)
	}
	resp = ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"photo_keep_days": {"90"}, "photo_review": {"none"}}))
	if loc := location(resp); strings.Contains(loc, "err=") {
		t.Fatalf("save: %s", loc)
	}
	if p, _ := e.r.Policy("north"); p.PhotoKeepDays != 90 {
		t.Errorf("north keeps photos %d days, want 90", p.PhotoKeepDays)
	}
	if m, _ := e.r.MonitoringOf("north"); m.PhotoReview != relay.PhotoReviewNone {
		t.Errorf("north's photo review after the form: %+v", m)
	}
	ada.get("/console/policy?facility=north")
	if !strings.Contains(ada.last, `<option value="none" selected>Deliver once the photos pass the automatic checks`) || !strings.Contains(ada.last, `name="photo_keep_days" value="90"`) {
		t.Errorf("the policy screen does not show the saved photo settings")
	}
}
