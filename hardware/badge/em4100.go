package badge

import (
	"fmt"
	"strconv"
	"strings"
)

// em4100 frame: STX, 10 hex characters (version byte, 4-byte tag), 2 hex checksum, ETX.
const em4100Body = 12

type em4100Decoder struct {
	hexID   bool
	inFrame bool
	n       int
	buf     [em4100Body]byte
	noise   uint64
}

func (d *em4100Decoder) Noise() uint64 { return d.noise }

func (d *em4100Decoder) Reset() { d.inFrame, d.n = false, 0 }

func (d *em4100Decoder) Flush(out []Result) []Result { return out }

func (d *em4100Decoder) Feed(p []byte, out []Result) []Result {
	for _, c := range p {
		if !d.inFrame {
			if c == stx {
				d.inFrame, d.n = true, 0
			} else {
				d.noise++
			}
			continue
		}
		switch {
		case c == etx:
			out = append(out, d.finish())
			d.inFrame = false
		case c == stx:
			out = append(out, Result{Reason: ReasonTruncated})
			d.n = 0
		case d.n == em4100Body:
			// Past the longest valid body: reject now rather than buffer without end.
			out = append(out, Result{Reason: ReasonTooLong})
			d.inFrame = false
		default:
			d.buf[d.n] = c
			d.n++
		}
	}
	return out
}

func (d *em4100Decoder) finish() Result {
	if d.n != em4100Body {
		return Result{Reason: ReasonBadLength}
	}
	var b [6]byte
	for i := 0; i < 6; i++ {
		hi, ok1 := hexVal(d.buf[2*i])
		lo, ok2 := hexVal(d.buf[2*i+1])
		if !ok1 || !ok2 {
			return Result{Reason: ReasonNotHex}
		}
		b[i] = hi<<4 | lo
	}
	if b[0]^b[1]^b[2]^b[3]^b[4] != b[5] {
		return Result{Reason: ReasonBadChecksum}
	}
	if d.hexID {
		return Result{ID: strings.ToUpper(string(d.buf[:10]))}
	}
	tag := uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])
	var id [10]byte
	return Result{ID: string(padDecimal(id[:0], uint64(tag), 10))}
}

// EncodeEM4100 builds the frame a reader sends for id: decimal ids (up to 4294967295) get
// version byte 0; hex ids are the 10 characters sent.
func EncodeEM4100(id string, o Options) ([]byte, error) {
	var data [5]byte
	if o.IDFormat == "hex" {
		if len(id) != 10 {
			return nil, fmt.Errorf("em4100 hex id %q: want 10 hex characters", id)
		}
		for i := 0; i < 5; i++ {
			hi, ok1 := hexVal(id[2*i])
			lo, ok2 := hexVal(id[2*i+1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("em4100 hex id %q: not hex", id)
			}
			data[i] = hi<<4 | lo
		}
	} else {
		if id == "" || strings.TrimLeft(id, "0123456789") != "" {
			return nil, fmt.Errorf("em4100 decimal id %q: want digits", id)
		}
		v, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("em4100 decimal id %q: %w", id, err)
		}
		data[1], data[2], data[3], data[4] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	return em4100Frame(data, data[0]^data[1]^data[2]^data[3]^data[4]), nil
}

func em4100Frame(data [5]byte, sum byte) []byte {
	return []byte(fmt.Sprintf("\x02%02X%02X%02X%02X%02X%02X\x03", data[0], data[1], data[2], data[3], data[4], sum))
}
