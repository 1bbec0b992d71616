package badge

import (
	"fmt"
	"strings"
)

// lineDecoder handles barcode scanners and generic readers: printable ASCII ended by CR,
// LF or CRLF, with an optional prefix and suffix around the id.
type lineDecoder struct {
	prefix, suffix string
	maxLen         int
	buf            []byte // capacity fixed at construction: prefix + MaxLen + suffix
	skipping       bool
	noise          uint64
}

func newLineDecoder(o Options) *lineDecoder {
	if o.MaxLen == 0 {
		o.MaxLen = DefaultLineMaxLen
	}
	return &lineDecoder{
		prefix: o.Prefix, suffix: o.Suffix, maxLen: o.MaxLen,
		buf: make([]byte, 0, len(o.Prefix)+o.MaxLen+len(o.Suffix)),
	}
}

func (d *lineDecoder) Noise() uint64 { return d.noise }

func (d *lineDecoder) Reset() { d.buf, d.skipping = d.buf[:0], false }

func (d *lineDecoder) Flush(out []Result) []Result { return out }

func (d *lineDecoder) Feed(p []byte, out []Result) []Result {
	for _, c := range p {
		if c == cr || c == lf {
			if d.skipping {
				d.skipping = false
			} else if len(d.buf) > 0 {
				out = append(out, d.finish())
			}
			d.buf = d.buf[:0]
			continue
		}
		if d.skipping {
			continue
		}
		if len(d.buf) == 0 && !printable(c) && (d.prefix == "" || c != d.prefix[0]) {
			// Line noise before a line starts; a scanner never begins with it.
			d.noise++
			continue
		}
		if len(d.buf) == cap(d.buf) {
			out = append(out, Result{Reason: ReasonTooLong})
			d.buf, d.skipping = d.buf[:0], true
			continue
		}
		d.buf = append(d.buf, c)
	}
	return out
}

func printable(c byte) bool { return c >= 0x20 && c <= 0x7E }

func (d *lineDecoder) finish() Result {
	s := string(d.buf)
	if !strings.HasPrefix(s, d.prefix) {
		return Result{Reason: ReasonMissingPrefix}
	}
	s = s[len(d.prefix):]
	if !strings.HasSuffix(s, d.suffix) {
		return Result{Reason: ReasonMissingSuffix}
	}
	s = s[:len(s)-len(d.suffix)]
	if s == "" {
		return Result{Reason: ReasonNoID}
	}
	if len(s) > d.maxLen {
		return Result{Reason: ReasonTooLong}
	}
	for i := 0; i < len(s); i++ {
		if !printable(s[i]) {
			return Result{Reason: ReasonNotPrintable}
		}
	}
	return Result{ID: s}
}

// EncodeLine builds a scanner line for id: prefix, id, suffix, CR.
func EncodeLine(id string, o Options) ([]byte, error) {
	max := o.MaxLen
	if max == 0 {
		max = DefaultLineMaxLen
	}
	if id == "" || len(id) > max {
		return nil, fmt.Errorf("line id %q: want 1 to %d characters", id, max)
	}
	for i := 0; i < len(id); i++ {
		if !printable(id[i]) {
			return nil, fmt.Errorf("line id %q: not printable ASCII", id)
		}
	}
	return []byte(o.Prefix + id + o.Suffix + "\r"), nil
}
