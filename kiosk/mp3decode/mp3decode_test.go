package mp3decode

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// demoTracks are the demo's MP3 files (assets/library), real encoder output.
func demoTracks(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("..", "..", "assets", "library", "*.mp3"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no demo tracks: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// garbledMP3 is n frames whose headers are sound (MPEG-1 Layer III, 128 kbit/s, 44.1 kHz) and
// whose bodies are noise: the header check passes it, a decoder cannot.
func garbledMP3(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	var b []byte
	for range n {
		f := make([]byte, 417)
		r.Read(f)
		copy(f, []byte{0xff, 0xfb, 0x90, 0x00})
		f[4] = 0 // main_data_begin 0: the body is the frame's own
		b = append(b, f...)
	}
	return b
}

// The demo tracks decode whole, to the playing time their frame headers give (the relay
// reports the headers' on upload and checks the decoded one on publish).
func TestCheckDecodesTheDemoTracks(t *testing.T) {
	for name, b := range demoTracks(t) {
		secs, err := vocab.CheckMP3(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		played, err := Check(bytes.NewReader(b), time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := time.Duration(secs)*time.Second - played; d < 0 || d >= time.Second {
			t.Errorf("%s decodes to %s, its headers say %ds", name, played, secs)
		}
		// The player's path (Open, then Read to the end) decodes as many frames.
		dec, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if got := Duration(dec.Frames(), dec.SampleRate()); got != played {
			t.Errorf("%s: Open says %s, Check %s", name, got, played)
		}
	}
}

func TestCheckRefusesSayingWhy(t *testing.T) {
	good := demoTracks(t)["letter-home.mp3"]
	garbled := garbledMP3(40, 1)
	if _, err := vocab.CheckMP3(bytes.NewReader(garbled)); err != nil {
		t.Fatalf("the header check refuses the garbled file, so it proves nothing: %v", err)
	}
	cases := []struct {
		name  string
		b     []byte
		limit time.Duration
		want  string
	}{
		{"empty", nil, time.Hour, "the file is empty"},
		{"text", []byte("Dear Maria, this is a letter and not a song."), time.Hour, "no MPEG audio frame was found"},
		{"garbled frames", garbled, time.Hour, "damaged at"},
		{"garbled after good audio", append(bytes.Clone(good[:len(good)/2]), garbled...), time.Hour, "damaged at"},
		{"ID3 tag larger than the file", append([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), good[10:2000]...), time.Hour, "ID3 tag claims 268435455 bytes but only"},
		{"ID3 size not synchsafe", append([]byte("ID3\x04\x00\x00\x00\x00\x80\x00"), good[10:]...), time.Hour, "not a valid synchsafe"},
		{"ID3 header cut", []byte("ID3\x04\x00"), time.Hour, "ID3 tag is cut short"},
		{"longer than declared", good, 3 * time.Second, "plays longer than 3s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			played, err := Check(bytes.NewReader(c.b), c.limit)
			if err == nil {
				t.Fatalf("decoded (%s)", played)
			}
			if !errors.Is(err, ErrNotMP3) && !errors.Is(err, ErrTooLong) {
				t.Errorf("error %q matches neither ErrNotMP3 nor ErrTooLong", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// FuzzCheck feeds the relay's decode check anything: it refuses with ErrNotMP3 or ErrTooLong,
// or returns a playing time within its limit, and never panics.
func FuzzCheck(f *testing.F) {
	for _, b := range demoTracks(f) {
		f.Add(b[:24<<10]) // a start of each: a whole track decodes too slowly to search well
	}
	f.Add(garbledMP3(8, 2))
	f.Add([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"))
	f.Add([]byte("ID3\x04\x00\x10\x00\x00\x00\x00\xff\xfb\x90\x00"))
	f.Add([]byte("\xff\xfb\x90\x00"))
	f.Add([]byte("TAG"))
	f.Add([]byte{})
	const limit = 5 * time.Second
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return // big inputs only slow the search; the limit is tested on its own
		}
		played, err := Check(bytes.NewReader(b), limit)
		if err != nil {
			if !errors.Is(err, ErrNotMP3) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("error %v is neither a FormatError nor ErrTooLong", err)
			}
			return
		}
		if played <= 0 || played > limit {
			t.Fatalf("decoded %s with a limit of %s", played, limit)
		}
	})
}
