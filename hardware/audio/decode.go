package audio

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hajimehoshi/go-mp3"
)

// MaxTrackBytes bounds the MP3 files the decoder takes: about 25 minutes at 128 kbit/s, far past
// any catalog track. A bigger file is refused before anything is read from it, so a hostile or
// damaged object cannot make the terminal scan gigabytes.
const MaxTrackBytes = 24 << 20

// bytesPerFrame is one PCM frame as go-mp3 gives it and as the outputs take it: two channels
// of signed 16-bit little-endian samples.
const bytesPerFrame = 4

// ErrNotMP3 is what every FormatError matches with errors.Is: the bytes are not a playable MP3.
var ErrNotMP3 = errors.New("not a playable MP3")

// FormatError says why bytes given as an MP3 cannot be played; the reason names what was wrong.
type FormatError struct {
	Reason string
	Err    error // the decoder library's own error, when it gave one
}

func (e *FormatError) Error() string {
	s := "audio: not a playable MP3: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Is(target error) bool { return target == ErrNotMP3 }
func (e *FormatError) Unwrap() error        { return e.Err }

func formatErr(err error, format string, args ...any) error {
	return &FormatError{Reason: fmt.Sprintf(format, args...), Err: err}
}

// Track is a decoded MP3 whose length is known before it plays. Its PCM is read through a
// Source; a Track is used by one Player at a time.
type Track struct {
	mu      sync.Mutex // go-mp3's decoder is not safe for concurrent use
	dec     *mp3.Decoder
	rate    int   // samples per second of the file
	frames  int64 // PCM frames in the file
	readErr error // the first error met while decoding frames, after which the track ends
}

// Decode checks that r holds an MP3 that can be played and reads its duration, scanning every
// frame header once (no audio is decoded yet). r is read again as the track plays, so it must
// stay open until the track is done with.
func Decode(r io.ReadSeeker) (t *Track, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("audio: size of the MP3: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("audio: rewind the MP3: %w", err)
	}
	switch {
	case size == 0:
		return nil, formatErr(nil, "the file is empty")
	case size > MaxTrackBytes:
		return nil, formatErr(nil, "the file has %d bytes, more than the %d a track may have", size, MaxTrackBytes)
	}
	if err := checkID3(r, size); err != nil {
		return nil, err
	}
	// The library has panicked on crafted input before (index out of range in its frame tables);
	// a terminal must refuse such a file, not die with it.
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, formatErr(nil, "the decoder failed on it (%v)", p)
		}
	}()
	dec, err := mp3.NewDecoder(r)
	if err != nil {
		return nil, libraryErr(err)
	}
	frames := dec.Length() / bytesPerFrame
	if frames <= 0 {
		return nil, formatErr(nil, "it holds no audio frames")
	}
	if dec.SampleRate() <= 0 {
		return nil, formatErr(nil, "its sample rate is %d", dec.SampleRate())
	}
	return &Track{dec: dec, rate: dec.SampleRate(), frames: frames}, nil
}

// checkID3 refuses an ID3v2 tag that claims more bytes than the file has: go-mp3 allocates what
// the tag claims (up to 256 MB) before it reads a byte of it.
func checkID3(r io.ReadSeeker, size int64) error {
	var h [10]byte
	n, err := io.ReadFull(r, h[:])
	if _, serr := r.Seek(0, io.SeekStart); serr != nil {
		return fmt.Errorf("audio: rewind the MP3: %w", serr)
	}
	if string(h[:min(n, 3)]) != "ID3" {
		return nil
	}
	if err != nil {
		return formatErr(nil, "its ID3 tag is cut short (%d of 10 header bytes)", n)
	}
	var tag int64
	for _, b := range h[6:10] {
		if b >= 0x80 {
			return formatErr(nil, "its ID3 tag size is not a valid synchsafe number")
		}
		tag = tag<<7 | int64(b)
	}
	if 10+tag >= size {
		return formatErr(nil, "its ID3 tag claims %d bytes but only %d follow it", tag, size-10)
	}
	return nil
}

// libraryErr turns go-mp3's errors into a reason a technician can act on.
func libraryErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
		return formatErr(nil, "no MPEG audio frame was found in it")
	}
	msg := strings.TrimPrefix(err.Error(), "mp3: ")
	return formatErr(nil, "%s", msg)
}

// Duration is how long the track plays.
func (t *Track) Duration() time.Duration { return framesToDuration(t.frames, t.rate) }

// SampleRate is the file's sample rate (the outputs resample it to theirs).
func (t *Track) SampleRate() int { return t.rate }

func framesToDuration(frames int64, rate int) time.Duration {
	return time.Duration(frames * int64(time.Second) / int64(rate))
}

func durationToFrames(d time.Duration, rate int) int64 {
	return int64(d) * int64(rate) / int64(time.Second)
}

// readFrames decodes up to len(dst)/4 source frames from source frame `at` on, seeking the
// decoder only when it is not already there. A decoding error or panic ends the track early:
// it is kept for Err and reported as io.EOF to the caller.
func (t *Track) readFrames(dst []byte, at int64, cur *int64) (n int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readErr != nil || at >= t.frames {
		return 0, io.EOF
	}
	defer func() {
		if p := recover(); p != nil {
			t.readErr = formatErr(nil, "the decoder failed at %s (%v)", framesToDuration(at, t.rate).Round(time.Millisecond), p)
			n, err = 0, io.EOF
		}
	}()
	if *cur != at {
		// Seeking to the very end would index past go-mp3's frame table; at < frames here.
		if _, err := t.dec.Seek(at*bytesPerFrame, io.SeekStart); err != nil {
			t.readErr = formatErr(err, "cannot seek to %s", framesToDuration(at, t.rate).Round(time.Millisecond))
			return 0, io.EOF
		}
		*cur = at
	}
	want := min(int64(len(dst))/bytesPerFrame, t.frames-at) * bytesPerFrame
	for n < int(want) {
		m, err := t.dec.Read(dst[n:want])
		n += m
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.readErr = formatErr(err, "damaged at %s", framesToDuration(at+int64(n/bytesPerFrame), t.rate).Round(time.Millisecond))
			}
			break
		}
	}
	n -= n % bytesPerFrame
	*cur += int64(n / bytesPerFrame)
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Err is the error that ended the track before its end, or nil.
func (t *Track) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readErr
}
