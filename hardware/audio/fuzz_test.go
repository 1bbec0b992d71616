package audio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds the decoder entry point anything: it must refuse with a FormatError or give a
// track that decodes to its announced length at most, and never panic or read without end.
func FuzzDecode(f *testing.F) {
	good := demoBytes(f, "count-the-days.mp3")
	half := demoBytes(f, "letter-home.mp3")
	f.Add(good[:6000])
	f.Add(half[:4000])
	f.Add(tagOnly(half))
	f.Add([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"))
	f.Add([]byte("\xff\xfb\x90\x00"))
	f.Add([]byte("TAG"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return // big inputs only slow the search; MaxTrackBytes is checked on its own
		}
		tr, err := Decode(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotMP3) {
				t.Fatalf("error %v is not a FormatError", err)
			}
			return
		}
		if tr.Duration() <= 0 {
			t.Fatalf("decoded a track of %s", tr.Duration())
		}
		s := newSource(tr, OutputRate)
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			t.Fatal(err)
		}
		if n%bytesPerFrame != 0 || n/bytesPerFrame > s.total {
			t.Fatalf("read %d bytes from a source of %d frames", n, s.total)
		}
		if _, err := s.Seek(n/2/bytesPerFrame*bytesPerFrame, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, s); err != nil {
			t.Fatal(err)
		}
	})
}
