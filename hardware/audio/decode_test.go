package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demo is a track of the project's demo library (assets/library, made by internal/gen).
type demo struct {
	file string
	rate int
	// length is what the generator synthesized; the MP3 adds the encoder's delay and padding.
	length time.Duration
}

var demos = []demo{
	{"morning-yard.mp3", 22050, 17400 * time.Millisecond},
	{"letter-home.mp3", 22050, 18900 * time.Millisecond},
	{"count-the-days.mp3", 44100, 12600 * time.Millisecond},
}

func demoBytes(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "assets", "library", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll drains a source and returns its frames as int16 pairs.
func readAll(t testing.TB, s io.Reader) []int16 {
	t.Helper()
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(b)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

func TestDemoTracksDecodeWithTheirLength(t *testing.T) {
	for _, d := range demos {
		t.Run(d.file, func(t *testing.T) {
			b := demoBytes(t, d.file)
			if len(b) > 150<<10 {
				t.Errorf("%s has %d bytes; demo tracks stay under 150 KB", d.file, len(b))
			}
			tr, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if tr.SampleRate() != d.rate {
				t.Errorf("sample rate %d, want %d", tr.SampleRate(), d.rate)
			}
			// The encoder adds at most a few frames of delay and padding (about 0.2 s at 22 kHz).
			if got := tr.Duration(); got < d.length || got > d.length+250*time.Millisecond {
				t.Errorf("duration %s, want %s plus the encoder's padding", got, d.length)
			}
			pcm := readAll(t, newSource(tr, OutputRate))
			wantFrames := (tr.frames*OutputRate + int64(d.rate) - 1) / int64(d.rate)
			if int64(len(pcm)/2) != wantFrames {
				t.Errorf("decoded %d frames at %d Hz, want %d", len(pcm)/2, OutputRate, wantFrames)
			}
			var peak int16
			for _, v := range pcm {
				peak = max(peak, v, -v)
			}
			if peak < 8000 {
				t.Errorf("peak %d: the tune is (nearly) silent", peak)
			}
			if err := tr.Err(); err != nil {
				t.Errorf("decoding ended with %v", err)
			}
		})
	}
}

// The 22.05 kHz tracks play on a 44.1 kHz output: every other output frame is a source frame and
// the ones between are halfway, so the music keeps its pitch and tempo.
func TestResamplingDoublesAHalfRateTrack(t *testing.T) {
	b := demoBytes(t, "morning-yard.mp3")
	src, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	same := readAll(t, newSource(src, src.SampleRate()))
	src2, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	up := readAll(t, newSource(src2, 2*src.SampleRate()))
	if len(up) != 2*len(same) {
		t.Fatalf("%d samples at twice the rate, want %d", len(up), 2*len(same))
	}
	for f := 0; f+1 < len(same)/2; f++ {
		for c := range 2 {
			a, b := int(same[2*f+c]), int(same[2*(f+1)+c])
			if got := int(up[4*f+c]); got != a {
				t.Fatalf("frame %d ch %d = %d, want the source's %d", 2*f, c, got, a)
			}
			if got, want := int(up[4*f+2+c]), a+(b-a)/2; got-want > 1 || want-got > 1 {
				t.Fatalf("frame %d ch %d = %d, want about %d (halfway)", 2*f+1, c, got, want)
			}
		}
	}
}

func TestSeekingTheSourceLandsOnTheSameSamples(t *testing.T) {
	b := demoBytes(t, "count-the-days.mp3")
	tr, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	whole := readAll(t, newSource(tr, OutputRate))
	s := newSource(tr, OutputRate)
	at := int64(5 * OutputRate) // 5 s in
	if got, err := s.Seek(at*bytesPerFrame+3, io.SeekStart); err != nil || got != at*bytesPerFrame {
		t.Fatalf("seek = %d, %v; want %d (a whole frame)", got, err, at*bytesPerFrame)
	}
	buf := make([]byte, 4000*bytesPerFrame)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	// The first MP3 frames after a seek may differ a little: go-mp3 primes its decoder with one
	// frame before the target, while the bit reservoir and the filter bank reach further back.
	// Three frames (1152 samples each) on, the samples are the same ones.
	for i := 3 * 1152 * 2; i < 4000*2; i++ {
		if got := int16(binary.LittleEndian.Uint16(buf[2*i:])); got != whole[int(at)*2+i] {
			t.Fatalf("sample %d after the seek = %d, want %d as read straight through", i, got, whole[int(at)*2+i])
		}
	}
	if n, err := s.Seek(1<<40, io.SeekStart); err != nil || n != s.total*bytesPerFrame {
		t.Fatalf("seek past the end = %d, %v; want the end %d", n, err, s.total*bytesPerFrame)
	}
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read at the end = %d, %v; want 0, EOF", n, err)
	}
}

// hugeReader claims a size without holding the bytes.
type hugeReader struct{ size int64 }

func (h *hugeReader) Read(p []byte) (int, error) { return 0, io.EOF }
func (h *hugeReader) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekEnd {
		return h.size + off, nil
	}
	return off, nil
}

func id3(size []byte, body []byte) []byte {
	return append(append([]byte("ID3\x04\x00\x00"), size...), body...)
}

func TestBadMP3sAreRefusedSayingWhy(t *testing.T) {
	good := demoBytes(t, "letter-home.mp3")
	cases := []struct {
		name string
		r    io.ReadSeeker
		want string
	}{
		{"empty", bytes.NewReader(nil), "the file is empty"},
		{"text", strings.NewReader("Dear Maria, this is a letter and not a song."), "no MPEG audio frame was found"},
		{"a JPEG", bytes.NewReader(append([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), make([]byte, 600)...)), "not a playable MP3"},
		{"too big", &hugeReader{MaxTrackBytes + 1}, "more than the"},
		{"ID3 tag larger than the file", bytes.NewReader(id3([]byte{0x7f, 0x7f, 0x7f, 0x7f}, good[10:2000])), "ID3 tag claims 268435455 bytes but only"},
		{"ID3 size not synchsafe", bytes.NewReader(id3([]byte{0, 0, 0x80, 0}, good[10:])), "not a valid synchsafe"},
		{"ID3 header cut", strings.NewReader("ID3\x04\x00"), "ID3 tag is cut short"},
		{"only the tag", bytes.NewReader(tagOnly(good)), "no MPEG audio frame was found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := Decode(c.r)
			if err == nil {
				t.Fatalf("decoded (%s long)", tr.Duration())
			}
			t.Log(err)
			if !errors.Is(err, ErrNotMP3) {
				t.Errorf("error %q does not match ErrNotMP3", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// tagOnly is the ID3 tag of an MP3 followed by a few bytes of nothing.
func tagOnly(mp3 []byte) []byte {
	size := int(mp3[6])<<21 | int(mp3[7])<<14 | int(mp3[8])<<7 | int(mp3[9])
	return append(append([]byte(nil), mp3[:10+size]...), make([]byte, 64)...)
}
