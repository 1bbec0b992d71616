package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// pngBombE2E is a real 8 x 8 PNG whose header is rewritten to declare 100,000 x 100,000 pixels
// (40 GB decoded), its header checksum made right again: a decompression bomb.
func pngBombE2E(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	p := b.Bytes()
	binary.BigEndian.PutUint32(p[16:], 100_000)
	binary.BigEndian.PutUint32(p[20:], 100_000)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}

// postInbound posts a letter to the relay's admin API and returns the status and the answer.
func postInbound(t *testing.T, rl *relayEnv, letter any) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(letter)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", "http://"+rl.addr()+"/admin/v1/inbound", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A family's letter with a 1 MB photo, posted to the admin API, reaches the inmate's kiosk
// across at least ten link cuts: the letter in the inbox naming the photo, then, opened, the
// photo whole in the kiosk's content store, cache-held by the open letter only, and shown
// (checked, decoded and thumbnailed as the screen does). A letter with a decompression bomb
// posted before it is refused at the admin API naming the photo, and nothing of it arrives.
func TestPhotoLetterAcrossLinkCutsAndBombRefused(t *testing.T) {
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{Cap: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rl, px, tm, _ := syncedKiosk(t, func(c *client.Config) { c.Content = store })
	photosUnreviewed(t, rl)
	tm.login("B1", "1234")
	mom := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
	jpg := noisePhoto(t)

	type up = map[string]any
	status, body := postInbound(t, rl, up{"inmate_id": "A1", "from": mom, "body": "the bomb",
		"photos": []up{{"type": "image/jpeg", "data": jpg}, {"type": "image/png", "data": pngBombE2E(t)}}})
	var refusal struct{ Error, Field, Reason string }
	_ = json.Unmarshal(body, &refusal)
	if status != http.StatusBadRequest || refusal.Field != "photos[1]" || refusal.Reason != "photo_too_many_pixels" {
		t.Fatalf("the bomb letter: %d %s; want 400 naming photos[1], photo_too_many_pixels", status, body)
	}

	const short, long = 100 << 10, 420 << 10
	px.budgets(short, short, short, long)
	px.cutAll()
	cutsBefore := px.cuts.Load()
	status, body = postInbound(t, rl, up{"inmate_id": "A1", "from": mom, "body": "the baby, one month old",
		"photos": []up{{"type": "image/jpeg", "data": jpg}}})
	if status != http.StatusCreated {
		t.Fatalf("the photo letter: %d %s", status, body)
	}
	var sent kiosk.Message
	if err := json.Unmarshal(body, &sent); err != nil || len(sent.Photos) != 1 {
		t.Fatalf("the photo letter as stored: %s (%v)", body, err)
	}
	ref, err := content.ParseRef(sent.Photos[0].SHA256, sent.Photos[0].Manifest, sent.Photos[0].Size)
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the letter on the kiosk", func() (bool, string) {
		in, _ := tm.term.Inbox("A1")
		return len(in) == 1, fmt.Sprintf("inbox %d", len(in))
	})
	// What opening the letter on the kiosk's screen does (ui: the open letter's hold).
	if err := store.Retain(ref, "view:"+sent.ID, false); err != nil {
		t.Fatal(err)
	}
	tm.eng.FetchContent()
	testwait.UntilSaw(t, "the letter's photo whole on the kiosk", func() (bool, string) {
		in, _ := tm.term.Inbox("A1")
		st, err := store.State(ref.Object)
		missing, _ := store.Missing(ref.Object, 8)
		return len(in) == 1 && st == content.Whole, fmt.Sprintf("inbox %d, photo %v, missing %v, %d cuts, err %v",
			len(in), st, missing, px.cuts.Load()-cutsBefore, err)
	})
	if cuts := px.cuts.Load() - cutsBefore; cuts < 10 {
		t.Fatalf("the photo arrived across %d cuts; the test wants at least 10", cuts)
	}
	in, _ := tm.term.Inbox("A1")
	if in[0].ID != sent.ID || in[0].Body != "the baby, one month old" || len(in[0].Photos) != 1 || in[0].Photos[0] != sent.Photos[0] {
		t.Fatalf("inbox = %+v; want only the photo letter, naming its photo (the bomb letter never delivered)", in)
	}
	holders, pinned, err := store.Holders(ref.Object)
	if err != nil || len(holders) != 1 || holders[0] != "view:"+sent.ID || pinned {
		t.Fatalf("holders of the photo on the kiosk: %v pinned %v (%v); want the open letter only, cache-held (sync pins nothing on a kiosk)", holders, pinned, err)
	}
	r, err := store.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	img, info, err := photo.DefaultPolicy().Read(in[0].Photos[0].Type, r)
	if err != nil {
		t.Fatalf("the kiosk refused the photo: %v", err)
	}
	if th := photo.Thumbnail(img, photo.ThumbSide); th.Bounds().Dx() != photo.ThumbSide || info.Width != 700 || info.Bytes != int64(len(jpg)) {
		t.Fatalf("thumbnail %v of a %d x %d photo of %d bytes", th.Bounds(), info.Width, info.Height, info.Bytes)
	}
}

// The same photo letter on a shared kiosk and on the inmate's tablet: the tablet fetches the
// photo at once and keeps it as the person's own (pinned: never evicted); the kiosk fetches
// nothing until the letter is opened there (its screens retain and release photos per
// session), so its cache never wants more than one person's open letters.
func TestPhotoLetterPinnedOnTabletCachedOnKiosk(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	photosUnreviewed(t, rl)
	url := "http://" + rl.addr()
	mediaOf := func() *content.Store {
		s, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{Cap: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	kMedia, tMedia := mediaOf(), mediaOf()
	k := openTerminal(t, "", kiosk.StoreOptions{})
	k.enroll(url, rl.code(wire.ModeKiosk, ""))
	k.cfg = func(c *client.Config) { c.Content = kMedia }
	k.start()
	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(url, rl.code(wire.ModeTablet, "A1"))
	tab.cfg = func(c *client.Config) { c.Content = tMedia }
	tab.start()
	k.waitRoster()
	k.login("B1", "1234")
	mom := approvedContact(t, rl, k, "A1", "Mom", "mom@example.org")

	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	letter, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: mom, Body: "a small one",
		Photos: []relay.InboundPhoto{{Type: "image/png", Data: b.Bytes()}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := content.ParseRef(letter.Photos[0].SHA256, letter.Photos[0].Manifest, letter.Photos[0].Size)
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the photo whole on the tablet", func() (bool, string) {
		st, err := tMedia.State(ref.Object)
		return st == content.Whole, fmt.Sprintf("%v %v", st, err)
	})
	holders, pinned, err := tMedia.Holders(ref.Object)
	if err != nil || len(holders) != 1 || holders[0] != "msg:"+letter.ID || !pinned {
		t.Fatalf("tablet: holders %v pinned %v (%v); want the letter, pinned", holders, pinned, err)
	}
	testwait.UntilSaw(t, "the letter on the kiosk", func() (bool, string) {
		in, _ := k.term.Inbox("A1")
		return len(in) == 1 && len(in[0].Photos) == 1, fmt.Sprint(len(in))
	})
	if st, _ := kMedia.State(ref.Object); st != content.Absent {
		t.Fatalf("the kiosk fetched the photo (%v) before anyone opened the letter", st)
	}
	if holders, _, _ := kMedia.Holders(ref.Object); len(holders) != 0 {
		t.Fatalf("the kiosk holds the photo for %v; sync retains nothing on a kiosk", holders)
	}
}

// photosUnreviewed turns north's photo review off (it holds every photo letter for staff by
// default), for tests of delivery rather than of review (photoreview_test.go has those).
func photosUnreviewed(t testing.TB, rl *relayEnv) {
	t.Helper()
	m, err := rl.r.MonitoringOf("north")
	if err != nil {
		t.Fatal(err)
	}
	m.PhotoReview = relay.PhotoReviewNone
	if err := rl.r.SetMonitoring("north", m); err != nil {
		t.Fatal(err)
	}
}
