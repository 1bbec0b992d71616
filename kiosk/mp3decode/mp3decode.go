// Package mp3decode is the one MP3 decoder path of Tether: the terminal's player
// (hardware/audio) plays through it, and the relay decodes every track through it before it
// publishes one, so a file the relay accepts is a file the players can decode. It wraps the
// pure-Go decoder github.com/hajimehoshi/go-mp3 and nothing else (no cgo, no audio device), so
// the relay may link it; the layering test (kiosk/layering_test.go) keeps it so.
//
// Every refusal is a *FormatError, which matches ErrNotMP3 and names what was wrong. The
// library has panicked on crafted input before (index out of range in its frame tables): each
// call into it recovers, and a panic becomes a refusal, never a crash.
package mp3decode

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hajimehoshi/go-mp3"
)

// BytesPerFrame is one PCM frame as the decoder gives it: two channels of signed 16-bit
// little-endian samples, whatever the file's channels.
const BytesPerFrame = 4

// ErrNotMP3 is what every FormatError matches with errors.Is: the bytes are not a playable MP3.
var ErrNotMP3 = errors.New("not a playable MP3")

// ErrTooLong is Check's refusal of audio that plays longer than its limit (a playable MP3,
// perhaps, but not the one declared).
var ErrTooLong = errors.New("longer than the limit")

// FormatError says why bytes given as an MP3 cannot be played; the reason names what was wrong.
type FormatError struct {
	Reason string
	Err    error // the decoder library's own error, when it gave one
}

func (e *FormatError) Error() string {
	s := "mp3: not a playable MP3: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Is(target error) bool { return target == ErrNotMP3 }
func (e *FormatError) Unwrap() error        { return e.Err }

// Errorf makes a FormatError (for callers that refuse an MP3 for a reason of their own).
func Errorf(err error, format string, args ...any) error {
	return &FormatError{Reason: fmt.Sprintf(format, args...), Err: err}
}

// Decoder plays a whole MP3 held in a seekable file: its length is known before it plays, and
// it seeks by PCM frame. Not safe for concurrent use.
type Decoder struct {
	dec    *mp3.Decoder
	rate   int
	frames int64
}

// Open checks that r holds an MP3 of at most maxBytes that can be played and reads its length,
// scanning every frame header once (no audio is decoded yet). r is read again as the track
// plays, so it must stay open until the decoder is done with.
func Open(r io.ReadSeeker, maxBytes int64) (d *Decoder, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("mp3: size of the file: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("mp3: rewind the file: %w", err)
	}
	switch {
	case size == 0:
		return nil, Errorf(nil, "the file is empty")
	case size > maxBytes:
		return nil, Errorf(nil, "the file has %d bytes, more than the %d a track may have", size, maxBytes)
	}
	if err := checkID3(r, size); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, Errorf(nil, "the decoder failed on it (%v)", p)
		}
	}()
	dec, err := mp3.NewDecoder(r)
	if err != nil {
		return nil, libraryErr(err)
	}
	frames := dec.Length() / BytesPerFrame
	if frames <= 0 {
		return nil, Errorf(nil, "it holds no audio frames")
	}
	if dec.SampleRate() <= 0 {
		return nil, Errorf(nil, "its sample rate is %d", dec.SampleRate())
	}
	return &Decoder{dec: dec, rate: dec.SampleRate(), frames: frames}, nil
}

// SampleRate is the file's sample rate.
func (d *Decoder) SampleRate() int { return d.rate }

// Frames is how many PCM frames the file holds.
func (d *Decoder) Frames() int64 { return d.frames }

// Read decodes PCM into p (whole frames or not: the caller counts). io.EOF ends the track; any
// other error is the library's (a panic of it included), for the caller to say where the
// track broke.
func (d *Decoder) Read(p []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("the decoder failed (%v)", r)
		}
	}()
	return d.dec.Read(p)
}

// SeekFrame moves to PCM frame at (0 <= at < Frames).
func (d *Decoder) SeekFrame(at int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the decoder failed seeking (%v)", r)
		}
	}()
	if at < 0 || at >= d.frames {
		return fmt.Errorf("mp3: seek to frame %d of %d", at, d.frames)
	}
	_, err = d.dec.Seek(at*BytesPerFrame, io.SeekStart)
	return err
}

// checkID3 refuses an ID3v2 tag that claims more bytes than the file has: go-mp3 allocates what
// the tag claims (up to 256 MB) before it reads a byte of it.
func checkID3(r io.ReadSeeker, size int64) error {
	var h [10]byte
	n, err := io.ReadFull(r, h[:])
	if _, serr := r.Seek(0, io.SeekStart); serr != nil {
		return fmt.Errorf("mp3: rewind the file: %w", serr)
	}
	if string(h[:min(n, 3)]) != "ID3" {
		return nil
	}
	if err != nil {
		return Errorf(nil, "its ID3 tag is cut short (%d of 10 header bytes)", n)
	}
	tag, ok := id3Size(h)
	if !ok {
		return Errorf(nil, "its ID3 tag size is not a valid synchsafe number")
	}
	if 10+tag >= size {
		return Errorf(nil, "its ID3 tag claims %d bytes but only %d follow it", tag, size-10)
	}
	return nil
}

// id3Size reads an ID3v2 header's tag size (synchsafe: 7 bits a byte).
func id3Size(h [10]byte) (int64, bool) {
	var tag int64
	for _, b := range h[6:10] {
		if b >= 0x80 {
			return 0, false
		}
		tag = tag<<7 | int64(b)
	}
	return tag, true
}

// libraryErr turns go-mp3's errors into a reason a technician can act on.
func libraryErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
		return Errorf(nil, "no MPEG audio frame was found in it")
	}
	return Errorf(nil, "%s", strings.TrimPrefix(err.Error(), "mp3: "))
}

// Duration is the playing time of frames PCM frames at rate.
func Duration(frames int64, rate int) time.Duration {
	return time.Duration(frames * int64(time.Second) / int64(rate))
}

// Check decodes every frame of the MP3 read from r, as a player would, and returns its
// playing time: the relay's check of a track before it publishes one. It streams (r is read
// once, a frame at a time: memory stays small whatever the size) and stops with a refusal once
// more than limit of audio has been decoded, so its time is bounded by limit too. An ID3v2 tag
// is skipped here as it is read, never allocated whole.
func Check(r io.Reader, limit time.Duration) (played time.Duration, err error) {
	var h [10]byte
	n, err := io.ReadFull(r, h[:])
	switch {
	case n == 0:
		return 0, Errorf(nil, "the file is empty")
	case string(h[:min(n, 3)]) == "ID3":
		if n < len(h) {
			return 0, Errorf(nil, "its ID3 tag is cut short (%d of 10 header bytes)", n)
		}
		tag, ok := id3Size(h)
		if !ok {
			return 0, Errorf(nil, "its ID3 tag size is not a valid synchsafe number")
		}
		if h[5]&0x10 != 0 {
			tag += 10 // a footer
		}
		if k, err := io.CopyN(io.Discard, r, tag); err != nil {
			return 0, Errorf(nil, "its ID3 tag claims %d bytes but only %d follow it", tag, k)
		}
	default:
		r = io.MultiReader(strings.NewReader(string(h[:n])), r)
	}
	var frames int64
	rate := 0
	defer func() {
		if p := recover(); p != nil {
			played, err = 0, Errorf(nil, "the decoder failed at %s (%v)", at(frames, rate), p)
		}
	}()
	dec, err := mp3.NewDecoder(r) // reads and decodes the first frame
	if err != nil {
		if e := libraryErr(err); strings.Contains(e.Error(), "no MPEG audio frame") {
			return 0, e
		}
		return 0, Errorf(nil, "damaged at 0s: %s", strings.TrimPrefix(err.Error(), "mp3: "))
	}
	if rate = dec.SampleRate(); rate <= 0 {
		return 0, Errorf(nil, "its sample rate is %d", rate)
	}
	maxFrames := int64(limit) * int64(rate) / int64(time.Second)
	buf := make([]byte, 64<<10)
	var bytes int64
	for {
		k, err := dec.Read(buf)
		bytes += int64(k)
		frames = bytes / BytesPerFrame
		if frames > maxFrames {
			return 0, fmt.Errorf("mp3: it plays longer than %s: %w", limit, ErrTooLong)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, Errorf(nil, "damaged at %s: %s", at(frames, rate), strings.TrimPrefix(err.Error(), "mp3: "))
		}
	}
	if frames == 0 {
		return 0, Errorf(nil, "it holds no audio frames")
	}
	return Duration(frames, rate), nil
}

// at is a position in the audio as people read it (for a reason).
func at(frames int64, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return Duration(frames, rate).Round(time.Millisecond)
}
