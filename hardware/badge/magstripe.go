package badge

import (
	"fmt"
	"strings"
)

// ISO 7811 data lengths (between sentinels) bound the buffer.
const (
	track1Max = 79
	track2Max = 37
)

type magState int

const (
	magHunt  magState = iota // between frames
	magTrack                 // inside ;...? or %...?
	magEnded                 // saw the end sentinel; an LRC character may follow
)

type magDecoder struct {
	state magState
	track int // 1 or 2
	n     int
	buf   [track1Max]byte
	noise uint64
}

func (d *magDecoder) Noise() uint64 { return d.noise }

func (d *magDecoder) Reset() { d.state, d.n = magHunt, 0 }

func (d *magDecoder) Flush(out []Result) []Result {
	if d.state == magEnded {
		out = append(out, d.finish())
		d.state = magHunt
	}
	return out
}

func (d *magDecoder) start(track int) {
	d.state, d.track, d.n = magTrack, track, 0
}

func isTerminator(c byte) bool { return c == cr || c == lf || c == etx }

func (d *magDecoder) Feed(p []byte, out []Result) []Result {
	for _, c := range p {
		out = d.feedByte(c, out)
	}
	return out
}

func (d *magDecoder) feedByte(c byte, out []Result) []Result {
	switch d.state {
	case magHunt:
		switch c {
		case '%':
			d.start(1)
		case ';':
			d.start(2)
		case stx, cr, lf, etx:
			// Optional wrapping between frames.
		default:
			d.noise++
		}
	case magTrack:
		switch {
		case c == '?':
			d.state = magEnded
		case c == '%' || (c == ';' && d.track == 2):
			out = append(out, Result{Reason: ReasonTruncated})
			if c == '%' {
				d.start(1)
			} else {
				d.start(2)
			}
		case isTerminator(c) || c == stx:
			out = append(out, Result{Reason: ReasonTruncated})
			d.state = magHunt
		case (d.track == 1 && d.n == track1Max) || (d.track == 2 && d.n == track2Max):
			out = append(out, Result{Reason: ReasonTooLong})
			d.state = magHunt
		default:
			d.buf[d.n] = c
			d.n++
		}
	case magEnded:
		switch {
		case isTerminator(c):
			out = append(out, d.finish())
			d.state = magHunt
		case c == d.lrc():
			out = append(out, d.finish())
			d.state = magHunt
		case c == '%' || c == ';' || c == stx:
			// No LRC: this byte starts the next frame.
			out = append(out, d.finish())
			d.state = magHunt
			out = d.feedByte(c, out)
		default:
			out = append(out, Result{Reason: ReasonBadLRC})
			d.state = magHunt
		}
	}
	return out
}

// lrc is the LRC character for the buffered track, start through end sentinel.
func (d *magDecoder) lrc() byte {
	return trackLRC(d.track, d.buf[:d.n])
}

func trackLRC(track int, data []byte) byte {
	base, start := byte(0x30), byte(';')
	mask := byte(0x0F)
	if track == 1 {
		base, start, mask = 0x20, '%', 0x3F
	}
	v := (start - base) ^ ('?' - base)
	for _, c := range data {
		v ^= c - base
	}
	return v&mask + base
}

func (d *magDecoder) finish() Result {
	data := d.buf[:d.n]
	if string(data) == "E" {
		return Result{Reason: ReasonReaderError}
	}
	if d.track == 2 {
		for _, c := range data {
			if c < 0x30 || c > 0x3F {
				return Result{Reason: ReasonBadCharacter}
			}
		}
		id, _, _ := strings.Cut(string(data), "=")
		if id == "" {
			return Result{Reason: ReasonNoID}
		}
		return Result{ID: id}
	}
	for _, c := range data {
		if c < 0x20 || c > 0x5F {
			return Result{Reason: ReasonBadCharacter}
		}
	}
	if len(data) == 0 || data[0] != 'B' {
		return Result{Reason: ReasonBadFormat}
	}
	id, _, _ := strings.Cut(string(data[1:]), "^")
	if id == "" {
		return Result{Reason: ReasonNoID}
	}
	return Result{ID: id}
}

// Fields the encoder puts on a test card after the id, as far as the track has room.
const (
	testTrack2Rest = "=2912101"
	testTrack1Rest = "^TEST/CARD^2912101"
)

// EncodeMagstripe builds a swipe for id: track 2 (";id=2912101?" + LRC + CR) when id fits
// the track 2 character set, else track 1 ("%Bid^TEST/CARD^2912101?" + LRC + CR); the
// fields after the id are cut to the track's length.
func EncodeMagstripe(id string, _ Options) ([]byte, error) {
	if fitsTrack(id, track2Max, 0x30, 0x3F, ";=?") {
		return MagstripeFrame(2, id+cut(testTrack2Rest, track2Max-len(id)), true, false), nil
	}
	if fitsTrack(id, track1Max-1, 0x20, 0x5F, "^?%") {
		return MagstripeFrame(1, "B"+id+cut(testTrack1Rest, track1Max-1-len(id)), true, false), nil
	}
	return nil, fmt.Errorf("magstripe id %q: not encodable on track 1 or 2", id)
}

func cut(s string, n int) string { return s[:min(len(s), n)] }

// fitsTrack reports whether id can be a track's id field: in [lo, hi], no reserved byte.
func fitsTrack(id string, max int, lo, hi byte, reserved string) bool {
	if id == "" || len(id) > max {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < lo || id[i] > hi || strings.IndexByte(reserved, id[i]) >= 0 {
			return false
		}
	}
	return true
}

// MagstripeFrame wraps track data (between the sentinels) as a reader sends it: with an
// LRC character if lrc, inside STX ... ETX if stxEtx, else ended by CR.
func MagstripeFrame(track int, data string, lrc, stxEtx bool) []byte {
	start := byte(';')
	if track == 1 {
		start = '%'
	}
	b := make([]byte, 0, len(data)+6)
	if stxEtx {
		b = append(b, stx)
	}
	b = append(b, start)
	b = append(b, data...)
	b = append(b, '?')
	if lrc {
		b = append(b, trackLRC(track, []byte(data)))
	}
	if stxEtx {
		return append(b, etx)
	}
	return append(b, cr)
}
