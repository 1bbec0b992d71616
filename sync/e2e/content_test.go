package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// noisePhoto is a real JPEG of about a megabyte: noise does not compress, so its chunks do not
// shrink on the wire either (the link's permessage-deflate gets back only base64's overhead).
func noisePhoto(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 700, 700))
	rand.NewChaCha8([32]byte{14}).Read(img.Pix)
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n <= 3*content.ChunkSize || n > photo.DefaultMaxBytes {
		t.Fatalf("photo is %d bytes; the test wants four chunks and at most 1 MB", n)
	}
	return b.Bytes()
}

// budgets makes the proxy cut every new connection after the next byte count of the pattern,
// round and round: three connections too short for a chunk frame, then one with room for
// about one. No connection can carry the photo whole, so it arrives only if each connection
// goes on from what the ones before stored.
func (p *proxy) budgets(pattern ...int64) {
	var mu sync.Mutex
	n := 0
	p.mu.Lock()
	p.budget = func() int64 {
		mu.Lock()
		defer mu.Unlock()
		n++
		return pattern[(n-1)%len(pattern)]
	}
	p.mu.Unlock()
}

// A family's 1 MB photo reaches a kiosk across at least ten link cuts, each connection going
// on from the chunks the ones before stored, and is checked, decoded and thumbnailed there:
// in binary chunk messages between a relay and a terminal that both know them, and in JSON
// chunk frames when either is older (a terminal that does not offer binary_chunks, a relay
// that ignores the offer).
func TestPhotoAcrossTenLinkCuts(t *testing.T) {
	jpg := noisePhoto(t) // encoded once: a 700 x 700 JPEG costs seconds under -race
	for _, c := range []struct {
		name                  string
		oldRelay, oldTerminal bool
		form                  string
	}{
		{"binary", false, false, "binary"},
		{"old terminal", false, true, "json"},
		{"old relay", true, false, "json"},
	} {
		t.Run(c.name, func(t *testing.T) { photoAcrossTenLinkCuts(t, jpg, c.oldRelay, c.oldTerminal, c.form) })
	}
}

func photoAcrossTenLinkCuts(t *testing.T, jpg []byte, oldRelay, oldTerminal bool, form string) {
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{Cap: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rl := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, jsonChunks: oldRelay}
	rl.open()
	t.Cleanup(rl.stop)
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.Content, c.NoBinaryChunks = store, oldTerminal }
	tm.start()
	tm.waitRoster()

	// The relay's check, before the photo is accepted: the same validator the kiosk runs.
	if _, err := photo.DefaultPolicy().Check(photo.TypeJPEG, jpg); err != nil {
		t.Fatalf("relay refused the photo: %v", err)
	}
	ref, err := rl.r.PutContent(bytes.NewReader(jpg), "north")
	if err != nil {
		t.Fatal(err)
	}

	const short, long = 100 << 10, 420 << 10
	px.budgets(short, short, short, long)
	px.cutAll()
	cutsBefore := px.cuts.Load()
	// What applying a letter with this photo does on the kiosk.
	if err := store.Retain(ref, "msg:photo-letter", false); err != nil {
		t.Fatal(err)
	}
	tm.eng.FetchContent()
	testwait.UntilSaw(t, "the photo to arrive whole", func() (bool, string) {
		st, err := store.State(ref.Object)
		missing, _ := store.Missing(ref.Object, 8)
		return st == content.Whole, fmt.Sprintf("state %v, missing %v, %d cuts, err %v", st, missing, px.cuts.Load()-cutsBefore, err)
	})
	if cuts := px.cuts.Load() - cutsBefore; cuts < 10 {
		t.Fatalf("the photo arrived across %d cuts; the test wants at least 10", cuts)
	} else {
		t.Logf("a %d-byte photo arrived across %d link cuts, no connection carrying more than %d bytes", len(jpg), cuts, long)
	}

	r, err := store.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, jpg) {
		t.Fatal("the photo on the kiosk differs from the one sent")
	}
	img, info, err := photo.DefaultPolicy().Read(photo.TypeJPEG, bytes.NewReader(got))
	if err != nil {
		t.Fatalf("kiosk refused the photo: %v", err)
	}
	if th := photo.Thumbnail(img, photo.ThumbSide); th.Bounds().Dx() != photo.ThumbSide || info.Width != 700 {
		t.Fatalf("thumbnail %v of a %d x %d photo", th.Bounds(), info.Width, info.Height)
	}
	// Every chunk went in the form both sides agree on, and none in the other.
	sent := chunksSent(t, rl)
	other := map[string]string{"binary": "json", "json": "binary"}[form]
	if sent[form] < 4 || sent[other] != 0 {
		t.Fatalf("chunks sent by form: %v; want at least the photo's 4 as %s, none as %s", sent, form, other)
	}
}

// chunksSent reads the relay's count of content chunks sent, by form (tether_content_chunks_sent_total).
func chunksSent(t *testing.T, rl *relayEnv) map[string]float64 {
	t.Helper()
	mfs, err := rl.r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tether_content_chunks_sent_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "form" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// A terminal cannot fetch what was not named to it: a photo held for another facility is
// answered not_yours, and the kiosk stops asking for it on that connection.
func TestContentOfAnotherFacilityRefused(t *testing.T) {
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs logSink
	rl, _, tm, _ := syncedKiosk(t, func(c *client.Config) { c.Content = store; c.Logf = logs.logf })
	ref, err := rl.r.PutContent(bytes.NewReader([]byte("a photo for the south facility")), "south")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Retain(ref, "msg:guessed", false); err != nil {
		t.Fatal(err)
	}
	tm.eng.FetchContent()
	testwait.UntilSaw(t, "the relay's refusal", func() (bool, string) {
		return logs.has("sync: relay will not send content " + ref.Object.String() + ": " + wire.ContentNotYours), logs.String()
	})
	if st, _ := store.State(ref.Object); st != content.Absent {
		t.Fatalf("state of another facility's photo on the kiosk: %v", st)
	}
}

// logSink collects an engine's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logSink) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if line == s {
			return true
		}
	}
	return false
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.lines)
}
