package ui

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// gradientJPEG is a real JPEG of w x h pixels, made here.
func gradientJPEG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// photoOf is the letter's name for an object of the store.
func photoOf(m *content.Manifest, w, h int) kiosk.Photo {
	ref := m.Ref()
	return kiosk.Photo{SHA256: ref.Object.String(), Manifest: ref.Manifest.String(), Size: ref.Size, Type: "image/jpeg", Width: w, Height: h}
}

// images lists the visible images on screen, with the tappable each is in (nil if none).
func (h *harness) images() (imgs []*canvas.Image, taps []*tappable) {
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		if tp, ok := o.(*tappable); ok {
			if ci, ok := tp.content.(*canvas.Image); ok {
				imgs, taps = append(imgs, ci), append(taps, tp)
			}
		}
	})
	return imgs, taps
}

// A letter with two photos: the one whole in the content store is a thumbnail in the open
// letter and full screen on tap (the real image, its own size); the one still in transit
// says so, is asked of sync, and becomes a thumbnail in the open letter once it has arrived.
// After logout nothing of the photos is left on the kiosk.
func TestLetterPhotosThumbnailFullScreenAndArriving(t *testing.T) {
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { media.Close() })
	var fetches atomic.Int32
	h := newHarness(t, func(s *setup) { s.media = media; s.fetch = func() { fetches.Add(1) } })
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)

	here := gradientJPEG(t, 320, 240)
	m1, err := media.Put(bytes.NewReader(here))
	must(t, err)
	later := gradientJPEG(t, 200, 300)
	m2, err := content.Build(bytes.NewReader(later), nil)
	must(t, err)
	p1, p2 := photoOf(m1, 320, 240), photoOf(m2, 200, 300)
	_, err = h.term.DeliverInbound(kiosk.Message{ID: "in-1", InmateID: mariaID, Peer: ana.ID, PeerName: "Ana Ruiz",
		Body: "The baby at one month", Photos: []kiosk.Photo{p1, p2}, CreatedAt: h.clk.Now()})
	must(t, err)
	h.settle()

	h.tap("Inbox (1)")
	h.mustSee("From: Ana Ruiz", "Photos: 2")
	h.tapText("From: Ana Ruiz")
	h.mustSee("The baby at one month", "Photos: 2", "Photo still arriving")
	// Opening the letter on a kiosk asks sync for the photo still missing.
	if holders, pinned, _ := media.Holders(m2.Object); len(holders) != 1 || holders[0] != "view:in-1" || pinned || fetches.Load() == 0 {
		t.Fatalf("after opening the letter: holders %v pinned %v, %d fetches; want the open letter's hold and a fetch", holders, pinned, fetches.Load())
	}
	if w, _ := media.Wanted(5); len(w) != 1 || w[0] != m2.Ref() {
		t.Fatalf("wanted %v, want the photo in transit", w)
	}
	imgs, taps := h.images()
	if len(imgs) != 1 {
		t.Fatalf("%d thumbnails in the open letter, want 1 (the other still arriving)", len(imgs))
	}
	if b := imgs[0].Image.Bounds(); b.Dx() != 256 || b.Dy() != 192 {
		t.Fatalf("thumbnail of a 320 x 240 photo is %v", b)
	}

	test.Tap(taps[0])
	h.settle()
	if h.k.v.name != "photo" {
		t.Fatalf("a tap on the thumbnail shows %q, want the photo full screen", h.k.v.name)
	}
	h.mustSee("Photo 1 of 2")
	imgs, taps = h.images()
	if len(imgs) != 1 || imgs[0].Image.Bounds().Dx() != 320 || imgs[0].Image.Bounds().Dy() != 240 || imgs[0].FillMode != canvas.ImageFillContain {
		t.Fatalf("full screen shows %d images, want the photo itself at 320 x 240", len(imgs))
	}
	test.Tap(taps[0]) // a tap anywhere goes back to the letter
	h.settle()
	h.mustSee("The baby at one month", "Photo still arriving")

	// The second photo arrives (as sync stores it: manifest, then its chunks).
	must(t, media.Begin(m2.Ref(), m2.Encode()))
	for i := range content.ChunkCount(m2.Size) {
		lo := i * content.ChunkSize
		_, err := media.PutChunk(m2.Object, i, later[lo:min(lo+content.ChunkSize, len(later))])
		must(t, err)
	}
	h.advance(time.Second) // the open letter shows it on the next tick
	h.mustSee("The baby at one month")
	h.mustNotSee("Photo still arriving")
	if imgs, _ := h.images(); len(imgs) != 2 || imgs[1].Image.Bounds().Dy() != 256 {
		t.Fatalf("after the second photo arrived: %d thumbnails", len(imgs))
	}

	// On a shared kiosk nothing of Maria's photos stays after she logs out.
	h.tap("Back") // to the inbox
	h.tap("Back") // home
	h.tap("Log out")
	for i, obj := range []content.Hash{m1.Object, m2.Object} {
		if st, _ := media.State(obj); st != content.Absent {
			t.Fatalf("after logout photo %d is %v on the kiosk, want absent", i+1, st)
		}
	}
}

// tabletPhotos is a tablet bound to Maria with a content store, and a letter from Ana with two
// photos held whole, retained as sync retains them on a tablet (pinned, under the letter).
func tabletPhotos(t *testing.T, policy func(*kiosk.Policy)) (*harness, *content.Store, []kiosk.Photo) {
	t.Helper()
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	h := newHarness(t, func(s *setup) { s.tablet = true; s.media = media; s.policy = policy })
	var photos []kiosk.Photo
	for _, size := range [][2]int{{320, 240}, {200, 300}} {
		m, err := media.Put(bytes.NewReader(gradientJPEG(t, size[0], size[1])))
		must(t, err)
		must(t, media.Retain(m.Ref(), vocab.PhotoHolder("in-1"), true))
		photos = append(photos, photoOf(m, size[0], size[1]))
	}
	_, err = h.term.DeliverInbound(kiosk.Message{ID: "in-1", InmateID: mariaID, Peer: "c-ana", PeerName: "Ana Ruiz",
		Body: "The baby at one month", Photos: photos, CreatedAt: h.clk.Now()})
	must(t, err)
	h.typePIN(mariaPIN, "OK")
	h.tap("I accept")
	h.tap("Inbox (1)")
	h.tapText("From: Ana Ruiz")
	h.mustSee("The baby at one month", "Photos: 2")
	return h, media, photos
}

// On her tablet Maria deletes a photo from the full-screen view (a second tap confirms): the
// letter then says "Photo deleted" where it was, never a broken image or one still arriving,
// and its bytes are gone from the tablet. Then she deletes the letter with its other photo.
func TestTabletDeletesPhotoThenLetter(t *testing.T) {
	h, media, photos := tabletPhotos(t, nil)
	if imgs, _ := h.images(); len(imgs) != 2 {
		t.Fatalf("%d thumbnails, want 2", len(imgs))
	}
	_, taps := h.images()
	test.Tap(taps[0])
	h.settle()
	h.mustSee("Photo 1 of 2")
	h.tap("Delete photo")
	h.mustSee("Photo 1 of 2", "Yes, delete this photo") // nothing deleted on the first tap
	if st, _ := media.State(mustHash(t, photos[0].SHA256)); st != content.Whole {
		t.Fatalf("the first tap deleted the photo (%v)", st)
	}
	h.tap("Yes, delete this photo")
	h.mustSee("The baby at one month", "Photo deleted")
	h.mustNotSee("Photo still arriving", "This photo cannot be shown")
	if imgs, _ := h.images(); len(imgs) != 1 || imgs[0].Image.Bounds().Dy() != 256 {
		t.Fatalf("after deleting the first photo: %d thumbnails, want the second one", len(imgs))
	}
	if st, _ := media.State(mustHash(t, photos[0].SHA256)); st != content.Absent {
		t.Fatalf("the deleted photo is %v on the tablet, want absent", st)
	}

	// Still deleted after she leaves the letter and opens it again.
	h.tap("Back")
	h.tapText("From: Ana Ruiz")
	h.mustSee("Photo deleted")

	h.tap("Delete letter")
	h.mustSee("The baby at one month", "Yes, delete the letter and its photos")
	h.tap("Yes, delete the letter and its photos")
	h.mustSee("Inbox", "No messages yet.")
	h.mustNotSee("Ana Ruiz")
	if st, _ := media.State(mustHash(t, photos[1].SHA256)); st != content.Absent {
		t.Fatalf("the deleted letter's photo is %v on the tablet, want absent", st)
	}
}

// A photo the policy expired shows as removed, in Spanish too, and offers nothing to tap.
func TestTabletExpiredPhotoShowsRemoved(t *testing.T) {
	h, media, photos := tabletPhotos(t, func(p *kiosk.Policy) { p.PhotoKeepDays = 30 })
	h.tap("Back")
	h.clk.Advance(31 * 24 * time.Hour)
	n, err := h.term.ExpirePhotos()
	if err != nil || n != 2 {
		t.Fatalf("expire = %d, %v; want 2", n, err)
	}
	_, err = h.term.ReleaseGonePhotos(media)
	must(t, err)
	h.settle()
	h.tapText("From: Ana Ruiz")
	h.mustSee("The baby at one month", "Photo removed: photos are kept 30 days")
	h.mustNotSee("Photo still arriving")
	if imgs, _ := h.images(); len(imgs) != 0 {
		t.Fatalf("%d thumbnails of expired photos", len(imgs))
	}
	for _, p := range photos {
		if st, _ := media.State(mustHash(t, p.SHA256)); st != content.Absent {
			t.Fatalf("an expired photo is %v on the tablet", st)
		}
	}
	h.tap("Back")
	h.tap("Back")
	h.tap("Español")
	h.tapPrefix("Recibidos")
	h.tapText("De: Ana Ruiz")
	h.mustSee("Foto quitada: las fotos se guardan 30 días")
}

// A shared kiosk offers no Delete: its copies of a person's photos go at logout anyway.
func TestKioskPhotoHasNoDelete(t *testing.T) {
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	h := newHarness(t, func(s *setup) { s.media = media })
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	m, err := media.Put(bytes.NewReader(gradientJPEG(t, 64, 64)))
	must(t, err)
	_, err = h.term.DeliverInbound(kiosk.Message{ID: "in-1", InmateID: mariaID, Peer: ana.ID, PeerName: "Ana Ruiz",
		Body: "Hello", Photos: []kiosk.Photo{photoOf(m, 64, 64)}, CreatedAt: h.clk.Now()})
	must(t, err)
	h.settle()
	h.tap("Inbox (1)")
	h.tapText("From: Ana Ruiz")
	h.mustNotSee("Delete letter")
	_, taps := h.images()
	test.Tap(taps[0])
	h.settle()
	h.mustSee("Photo 1 of 1")
	h.mustNotSee("Delete photo")
}

func mustHash(t *testing.T, s string) content.Hash {
	t.Helper()
	h, err := content.ParseHash(s)
	must(t, err)
	return h
}
