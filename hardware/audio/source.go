package audio

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// source is a Track's PCM at an output's rate, as an io.ReadSeeker over bytes of output frames.
// An output has one rate (oto opens the card once) while tracks come at 22.05, 44.1 or 48 kHz,
// so source frames are resampled by linear interpolation: plain, cheap, and good enough for
// music on kiosk speakers.
type source struct {
	t       *Track
	outRate int
	total   int64 // output frames

	mu   sync.Mutex
	pos  int64  // next output frame
	eof  bool   // Read has returned io.EOF since the last Seek
	buf  []byte // decoded source frames from bufAt on
	at   int64  // source frame of buf[0]
	cur  int64  // the decoder's position, in source frames
	dead int64  // source frames after this one cannot be decoded (-1: none known)
}

func newSource(t *Track, outRate int) *source {
	total := (t.frames*int64(outRate) + int64(t.rate) - 1) / int64(t.rate)
	return &source{t: t, outRate: outRate, total: total, dead: -1}
}

// chunkFrames is how many source frames one refill decodes (about 90 ms at 44.1 kHz).
const chunkFrames = 4096

// frameAt returns the bytes of source frame i, decoding forward as needed; ok is false past the
// end of what can be decoded.
func (s *source) frameAt(i int64) (f []byte, ok bool) {
	for {
		if s.dead >= 0 && i >= s.dead || i >= s.t.frames {
			return nil, false
		}
		if i >= s.at && i < s.at+int64(len(s.buf)/bytesPerFrame) {
			off := (i - s.at) * bytesPerFrame
			return s.buf[off : off+bytesPerFrame], true
		}
		// Keep the frame just before i (interpolation reads i and i+1 in turn), drop the rest.
		end := s.at + int64(len(s.buf)/bytesPerFrame)
		if i < s.at || i > end {
			s.buf, s.at = s.buf[:0], i
			end = i
		} else if i-1 > s.at {
			keep := (i - 1 - s.at) * bytesPerFrame
			s.buf = append(s.buf[:0], s.buf[keep:]...)
			s.at = i - 1
		}
		chunk := make([]byte, chunkFrames*bytesPerFrame)
		n, err := s.t.readFrames(chunk, end, &s.cur)
		s.buf = append(s.buf, chunk[:n]...)
		if err != nil || n == 0 {
			s.dead = end + int64(n/bytesPerFrame)
		}
	}
}

func (s *source) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n+bytesPerFrame <= len(p) && s.pos < s.total {
		num := s.pos * int64(s.t.rate)
		i, frac := num/int64(s.outRate), num%int64(s.outRate)
		a, ok := s.frameAt(i)
		if !ok {
			s.total = s.pos // a damaged track ends where decoding failed
			break
		}
		out := p[n : n+bytesPerFrame]
		copy(out, a)
		if frac != 0 {
			b, ok := s.frameAt(i + 1)
			if ok {
				a, _ = s.frameAt(i) // frameAt(i+1) may have refilled the buffer
				for c := 0; c < bytesPerFrame; c += 2 {
					x := int64(int16(uint16(a[c]) | uint16(a[c+1])<<8))
					y := int64(int16(uint16(b[c]) | uint16(b[c+1])<<8))
					v := uint16(int16(x + (y-x)*frac/int64(s.outRate)))
					out[c], out[c+1] = byte(v), byte(v>>8)
				}
			}
		}
		n += bytesPerFrame
		s.pos++
	}
	if n == 0 && len(p) >= bytesPerFrame {
		s.eof = true
		return 0, io.EOF
	}
	return n, nil
}

// Seek moves to a byte offset of the output PCM; it is clamped to the track and rounded down to
// a whole frame, so a seek can never leave the stream between the channels of a frame.
func (s *source) Seek(offset int64, whence int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var to int64
	switch whence {
	case io.SeekStart:
		to = offset
	case io.SeekCurrent:
		to = s.pos*bytesPerFrame + offset
	case io.SeekEnd:
		to = s.total*bytesPerFrame + offset
	default:
		return 0, fmt.Errorf("audio: seek: %w", errors.ErrUnsupported)
	}
	s.pos = min(max(to/bytesPerFrame, 0), s.total)
	s.eof = false
	return s.pos * bytesPerFrame, nil
}

// state is the next output frame, whether the end was reached, and how many frames there are.
func (s *source) state() (pos int64, eof bool, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos, s.eof || s.pos >= s.total, s.total
}
