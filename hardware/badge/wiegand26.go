package badge

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// A wiegand26 frame is the 26 bits as 6 or 7 ASCII hex characters ended by CR.
const wiegandMaxChars = 7

type wiegandDecoder struct {
	cardOnly bool
	n        int
	buf      [wiegandMaxChars]byte
	skipping bool // an over-long line is being skipped up to its terminator
	noise    uint64
}

func (d *wiegandDecoder) Noise() uint64 { return d.noise }

func (d *wiegandDecoder) Reset() { d.n, d.skipping = 0, false }

func (d *wiegandDecoder) Flush(out []Result) []Result { return out }

func (d *wiegandDecoder) Feed(p []byte, out []Result) []Result {
	for _, c := range p {
		if c == cr || c == lf {
			if d.skipping {
				d.skipping = false
			} else if d.n > 0 {
				out = append(out, d.finish())
			}
			d.n = 0
			continue
		}
		if d.skipping {
			continue
		}
		if _, ok := hexVal(c); !ok {
			// Garbage: drop what came before it and start over after it.
			d.noise += uint64(d.n) + 1
			d.n = 0
			continue
		}
		if d.n == wiegandMaxChars {
			out = append(out, Result{Reason: ReasonTooLong})
			d.n, d.skipping = 0, true
			continue
		}
		d.buf[d.n] = c
		d.n++
	}
	return out
}

func (d *wiegandDecoder) finish() Result {
	if d.n < 6 {
		return Result{Reason: ReasonBadLength}
	}
	var v uint32
	for _, c := range d.buf[:d.n] {
		h, _ := hexVal(c)
		v = v<<4 | uint32(h)
	}
	if v>>26 != 0 {
		return Result{Reason: ReasonBadLength}
	}
	// Bit 25 (sent first) makes the first 13 bits even; bit 0 makes the last 13 odd.
	if bits.OnesCount32(v>>13)%2 != 0 || bits.OnesCount32(v&0x1FFF)%2 != 1 {
		return Result{Reason: ReasonBadParity}
	}
	fc, card := (v>>17)&0xFF, (v>>1)&0xFFFF
	var id [9]byte
	if d.cardOnly {
		return Result{ID: string(padDecimal(id[:0], uint64(card), 5))}
	}
	b := append(padDecimal(id[:0], uint64(fc), 3), '-')
	return Result{ID: string(padDecimal(b, uint64(card), 5))}
}

// Wiegand26Bits packs facility code and card number with correct parity.
func Wiegand26Bits(fc, card uint32) uint32 {
	v := (fc&0xFF)<<17 | (card&0xFFFF)<<1
	if bits.OnesCount32(v>>13)%2 != 0 {
		v |= 1 << 25
	}
	if bits.OnesCount32(v&0x1FFF)%2 == 0 {
		v |= 1
	}
	return v
}

// EncodeWiegand26 builds the converter's line for id ("FFF-CCCCC", or "CCCCC" with
// IDFormat "card", sent with facility 0).
func EncodeWiegand26(id string, o Options) ([]byte, error) {
	fcs, cards, found := strings.Cut(id, "-")
	if !found {
		if o.IDFormat != "card" {
			return nil, fmt.Errorf("wiegand26 id %q: want FFF-CCCCC", id)
		}
		fcs, cards = "0", id
	}
	fc, err1 := strconv.ParseUint(fcs, 10, 8)
	card, err2 := strconv.ParseUint(cards, 10, 16)
	if err1 != nil || err2 != nil || strings.HasPrefix(fcs, "+") || strings.HasPrefix(cards, "+") {
		return nil, fmt.Errorf("wiegand26 id %q: facility 0-255 and card 0-65535 wanted", id)
	}
	return WiegandLine(Wiegand26Bits(uint32(fc), uint32(card))), nil
}

// WiegandLine is the converter's output for a raw 26-bit value: at least 6 hex digits, CR.
func WiegandLine(v uint32) []byte { return []byte(fmt.Sprintf("%06X\r", v)) }
