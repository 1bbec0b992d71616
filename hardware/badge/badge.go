// Package badge turns the byte stream of a badge reader into badge ids or rejections.
//
// One streaming Decoder per framing (em4100, wiegand26, magstripe, line) accepts bytes in
// any chunking, keeps a bounded buffer whatever arrives, and says why it rejects a frame.
// The matching encoders (id to frame bytes) drive the simulators and the fuzz round-trips.
package badge

import (
	"fmt"
	"strings"
)

// Framing names, as written in device config.
const (
	EM4100    = "em4100"
	Wiegand26 = "wiegand26"
	Magstripe = "magstripe"
	Line      = "line"
)

// Framings lists every framing in the order we document them.
func Framings() []string { return []string{EM4100, Wiegand26, Magstripe, Line} }

// Reason says why a frame was rejected; it is what device state counts and kioskctl prints.
type Reason string

// Rejection reasons.
const (
	ReasonBadLength     Reason = "bad length"     // ended too early, or wrong number of characters
	ReasonTooLong       Reason = "too long"       // ran past the largest valid frame without ending
	ReasonTruncated     Reason = "truncated"      // a new frame started before this one ended
	ReasonNotHex        Reason = "not hex"        // a character that should be hex was not
	ReasonBadChecksum   Reason = "bad checksum"   // em4100 XOR checksum mismatch
	ReasonBadParity     Reason = "bad parity"     // wiegand26 parity bits wrong
	ReasonBadLRC        Reason = "bad lrc"        // magstripe LRC present and wrong
	ReasonBadCharacter  Reason = "bad character"  // a character outside the track's set
	ReasonBadFormat     Reason = "bad format"     // magstripe track 1 without format code B
	ReasonReaderError   Reason = "reader error"   // the reader itself reported a bad swipe
	ReasonNoID          Reason = "no id"          // the frame was valid but its id field empty
	ReasonMissingPrefix Reason = "missing prefix" // line: configured prefix absent
	ReasonMissingSuffix Reason = "missing suffix" // line: configured suffix absent
	ReasonNotPrintable  Reason = "not printable"  // line: control or non-ASCII byte in the id
)

// Result is one decoded frame: an id, or a rejection reason.
type Result struct {
	ID     string
	Reason Reason
}

// OK reports whether the frame gave an id.
func (r Result) OK() bool { return r.Reason == "" }

// Decoder decodes one reader's byte stream. Not safe for concurrent use: one per port.
type Decoder interface {
	// Feed consumes p and appends what it completed to out.
	Feed(p []byte, out []Result) []Result
	// Flush is called when the line has been quiet for a read timeout; it completes a frame
	// that was only waiting to see whether an optional trailer (magstripe LRC) follows.
	Flush(out []Result) []Result
	// Reset drops any partial frame, e.g. after the device reconnects.
	Reset()
	// Noise is the number of bytes skipped outside any frame since the decoder was made.
	Noise() uint64
}

// Options tune a framing; zero values give the documented defaults.
type Options struct {
	// IDFormat: em4100 "decimal" (default, the 10 digits printed on the fob) or "hex"
	// (the 10 hex characters sent, version byte first); wiegand26 "fc-card" (default,
	// FFF-CCCCC) or "card" (CCCCC).
	IDFormat string
	Prefix   string // line: stripped from the front of every line
	Suffix   string // line: stripped from the end of every line
	MaxLen   int    // line: longest id accepted, default 64, at most 1024
}

// Limits for the line framing.
const (
	DefaultLineMaxLen = 64
	MaxLineMaxLen     = 1024
)

// CheckOptions reports the first option that does not fit framing, naming it.
func CheckOptions(framing string, o Options) error {
	switch framing {
	case EM4100:
		if o.IDFormat != "" && o.IDFormat != "decimal" && o.IDFormat != "hex" {
			return fmt.Errorf("id format %q unknown for em4100 (want decimal, hex)", o.IDFormat)
		}
	case Wiegand26:
		if o.IDFormat != "" && o.IDFormat != "fc-card" && o.IDFormat != "card" {
			return fmt.Errorf("id format %q unknown for wiegand26 (want fc-card, card)", o.IDFormat)
		}
	case Magstripe:
		if o.IDFormat != "" {
			return fmt.Errorf("id format %q not used by magstripe (leave empty)", o.IDFormat)
		}
	case Line:
		if o.MaxLen < 0 || o.MaxLen > MaxLineMaxLen {
			return fmt.Errorf("max length %d out of range (want 1 to %d, 0 for %d)", o.MaxLen, MaxLineMaxLen, DefaultLineMaxLen)
		}
		if strings.ContainsAny(o.Prefix+o.Suffix, "\r\n") {
			return fmt.Errorf("prefix and suffix cannot contain CR or LF (they end a line)")
		}
		if o.IDFormat != "" {
			return fmt.Errorf("id format %q not used by line (leave empty)", o.IDFormat)
		}
	default:
		return fmt.Errorf("framing %q unknown (want %s)", framing, strings.Join(Framings(), ", "))
	}
	if framing != Line && (o.Prefix != "" || o.Suffix != "" || o.MaxLen != 0) {
		return fmt.Errorf("prefix, suffix and max length apply to the line framing only")
	}
	return nil
}

// NewDecoder returns a fresh decoder for framing.
func NewDecoder(framing string, o Options) (Decoder, error) {
	if err := CheckOptions(framing, o); err != nil {
		return nil, err
	}
	switch framing {
	case EM4100:
		return &em4100Decoder{hexID: o.IDFormat == "hex"}, nil
	case Wiegand26:
		return &wiegandDecoder{cardOnly: o.IDFormat == "card"}, nil
	case Magstripe:
		return &magDecoder{}, nil
	default:
		return newLineDecoder(o), nil
	}
}

// Control bytes readers wrap frames in.
const (
	stx = 0x02
	etx = 0x03
	cr  = '\r'
	lf  = '\n'
)

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// padDecimal appends v in decimal, zero-padded to width; fmt would cost an allocation per id.
func padDecimal(dst []byte, v uint64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || i == len(tmp) {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	for n := len(tmp) - i; n < width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, tmp[i:]...)
}
