package relay

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// noisy is a w x h picture of noise: it compresses badly, so a JPEG of it is large.
func noisy(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}

func testJPEG(t testing.TB, w, h int, seed uint64) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, noisy(w, h, seed), &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testPNGBomb is a real 8 x 8 PNG whose header is rewritten to declare 100,000 x 100,000
// pixels (40 GB decoded), its header checksum made right again.
func testPNGBomb(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.White)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	p := b.Bytes()
	binary.BigEndian.PutUint32(p[16:], 100_000)
	binary.BigEndian.PutUint32(p[20:], 100_000)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}

// A letter with photos: staff post it with its photos, the letter the inmate's kiosk receives
// names them, and the kiosk can fetch each (its manifest matches the reference). A bomb, a
// mismatched type or too many photos are refused naming the photo and the reason, and then
// neither the letter nor any photo of it is delivered or stored.
func TestInboundWithPhotos(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// Delivery, not review (photoreview_test.go): north delivers photo letters once checked.
	if err := e.r.SetMonitoring("north", Monitoring{HoldOutbound: true, PhotoReview: PhotoReviewNone}); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana")

	jp := testJPEG(t, 64, 48, 1)
	type up = map[string]any
	letter := func(photos ...up) up {
		return up{"inmate_id": "A1", "from": "c-ana", "body": "Look at the baby", "photos": photos}
	}
	refusals := []struct {
		name   string
		body   up
		field  string
		reason string
		status int
	}{
		{"not a contact", up{"inmate_id": "A1", "from": "stranger@example.org", "body": "hi", "photos": []up{{"data": jp}}}, "from", "", 404},
		{"no body", up{"inmate_id": "A1", "from": "c-ana", "body": " ", "photos": []up{{"data": jp}}}, "body", "", 400},
		{"bomb", letter(up{"type": "image/jpeg", "data": jp}, up{"type": "image/png", "data": testPNGBomb(t)}), "photos[1]", "photo_too_many_pixels", 400},
		{"mismatch", letter(up{"type": "image/png", "data": jp}), "photos[0]", "photo_type_mismatch", 400},
		{"not an image", letter(up{"data": []byte("hello, this is text")}), "photos[0]", "photo_not_image", 400},
		{"six", letter(up{"data": jp}, up{"data": jp}, up{"data": jp}, up{"data": jp}, up{"data": jp}, up{"data": jp}), "photos", "photo_too_many", 400},
	}
	for _, r := range refusals {
		status, b := e.call("POST", "/admin/v1/inbound", r.body)
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		if status != r.status || eb.Field != r.field || eb.Reason != r.reason {
			t.Errorf("%s: %d %s; want %d naming %s with reason %q", r.name, status, b, r.status, r.field, r.reason)
		}
	}
	st, err := e.r.contentStore()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Stats(); s.Objects != 0 {
		t.Fatalf("after the refusals the relay holds %d objects, want none (the good photo beside the bomb, and those of letters refused for their sender or body, too)", s.Objects)
	}

	png1 := func() []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, noisy(20, 10, 7)); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	var m kiosk.Message
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", letter(up{"type": "image/jpeg", "data": jp}, up{"data": png1}), &m)
	if len(m.Photos) != 2 || m.Photos[0].Type != vocab.PhotoJPEG || m.Photos[0].Width != 64 || m.Photos[1].Type != vocab.PhotoPNG ||
		m.Photos[0].SHA256 != content.Sum(jp).String() || m.Photos[1].Size != int64(len(png1)) {
		t.Fatalf("letter photos = %+v", m.Photos)
	}
	got := decodeAs[kiosk.Message](t, c.waitDown(wire.DownInboundMessage, nil).Body)
	if got.ID != m.ID || len(got.Photos) != 2 || got.Photos[1] != m.Photos[1] {
		t.Fatalf("the kiosk got %+v, want the letter with its two photos", got)
	}
	for _, p := range got.Photos {
		obj, _ := content.ParseHash(p.SHA256)
		send(t, c.c, wire.ContentWant{Object: obj, Manifest: true, Chunks: []uint32{0}})
		f := c.readContent()
		if f.ContentManifest == nil || content.Sum(f.ContentManifest.Manifest).String() != p.Manifest {
			t.Fatalf("photo %s: first answer %s, want its manifest", p.SHA256, f.Type)
		}
		if f := c.readContent(); f.Chunk == nil || content.Sum(f.Chunk.Data).String() != p.SHA256 {
			t.Fatalf("photo %s: chunk 0 is not the photo", p.SHA256)
		}
	}
	// Staff see the photos with the letter: each one's bytes, as sent.
	for i, want := range [][]byte{jp, png1} {
		status, b := e.call("GET", fmt.Sprintf("/admin/v1/inbound/%s/photos/%d", m.ID, i), nil)
		if status != http.StatusOK || !bytes.Equal(b, want) {
			t.Fatalf("GET photo %d of the letter: %d, %d bytes; want 200 and the %d bytes sent", i, status, len(b), len(want))
		}
	}
	for _, path := range []string{"/admin/v1/inbound/" + m.ID + "/photos/2", "/admin/v1/inbound/nope/photos/0"} {
		if status, b := e.call("GET", path, nil); status != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", path, status, b)
		}
	}

	// The same photo again is stored once.
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", letter(up{"data": jp}), &m)
	if s, _ := st.Stats(); s.Objects != 2 {
		t.Fatalf("the relay holds %d objects, want 2: the same photo is stored once", s.Objects)
	}
}
