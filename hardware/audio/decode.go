package audio

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/mp3decode"
)

// MaxTrackBytes bounds the MP3 files the decoder takes: about 25 minutes at 128 kbit/s, far past
// any catalog track. A bigger file is refused before anything is read from it, so a hostile or
// damaged object cannot make the terminal scan gigabytes.
const MaxTrackBytes = 24 << 20

// bytesPerFrame is one PCM frame as the decoder gives it and as the outputs take it: two
// channels of signed 16-bit little-endian samples.
const bytesPerFrame = mp3decode.BytesPerFrame

// ErrNotMP3 is what every FormatError matches with errors.Is: the bytes are not a playable MP3.
var ErrNotMP3 = mp3decode.ErrNotMP3

// FormatError says why bytes given as an MP3 cannot be played; the reason names what was wrong.
// It is the shared decoder's (kiosk/mp3decode): the relay refuses a track with the same
// reasons before it publishes one.
type FormatError = mp3decode.FormatError

func formatErr(err error, format string, args ...any) error {
	return mp3decode.Errorf(err, format, args...)
}

// Track is a decoded MP3 whose length is known before it plays. Its PCM is read through a
// Source; a Track is used by one Player at a time.
type Track struct {
	mu      sync.Mutex // the decoder is not safe for concurrent use
	dec     *mp3decode.Decoder
	rate    int   // samples per second of the file
	frames  int64 // PCM frames in the file
	readErr error // the first error met while decoding frames, after which the track ends
}

// Decode checks that r holds an MP3 that can be played and reads its duration, scanning every
// frame header once (no audio is decoded yet). r is read again as the track plays, so it must
// stay open until the track is done with. The decoding is kiosk/mp3decode's, the relay's too.
func Decode(r io.ReadSeeker) (*Track, error) {
	dec, err := mp3decode.Open(r, MaxTrackBytes)
	if err != nil {
		return nil, err
	}
	return &Track{dec: dec, rate: dec.SampleRate(), frames: dec.Frames()}, nil
}

// Duration is how long the track plays.
func (t *Track) Duration() time.Duration { return framesToDuration(t.frames, t.rate) }

// SampleRate is the file's sample rate (the outputs resample it to theirs).
func (t *Track) SampleRate() int { return t.rate }

func framesToDuration(frames int64, rate int) time.Duration {
	return mp3decode.Duration(frames, rate)
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
	if *cur != at {
		// Seeking to the very end would index past go-mp3's frame table; at < frames here.
		if err := t.dec.SeekFrame(at); err != nil {
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
