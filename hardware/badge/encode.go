package badge

import (
	"fmt"
	"strings"
)

// Encode builds the frame a reader of framing sends for id; decoding it with the same
// options gives id back.
func Encode(framing, id string, o Options) ([]byte, error) {
	switch framing {
	case EM4100:
		return EncodeEM4100(id, o)
	case Wiegand26:
		return EncodeWiegand26(id, o)
	case Magstripe:
		return EncodeMagstripe(id, o)
	case Line:
		return EncodeLine(id, o)
	}
	return nil, fmt.Errorf("framing %q unknown (want %s)", framing, strings.Join(Framings(), ", "))
}

// Invalid names a kind of bad frame the simulators can send.
type Invalid string

// Kinds of invalid frame.
const (
	InvalidChecksum  Invalid = "checksum" // em4100 checksum, magstripe LRC
	InvalidParity    Invalid = "parity"   // wiegand26
	InvalidLength    Invalid = "length"   // one character short
	InvalidNotHex    Invalid = "not-hex"  // em4100
	InvalidTooLong   Invalid = "too-long" // never ends within the longest frame
	InvalidReaderErr Invalid = "reader-error"
	InvalidPrefix    Invalid = "prefix" // line with a prefix configured, sent without it
)

// InvalidKinds lists the invalid frames framing can produce.
func InvalidKinds(framing string) []Invalid {
	switch framing {
	case EM4100:
		return []Invalid{InvalidChecksum, InvalidLength, InvalidNotHex, InvalidTooLong}
	case Wiegand26:
		return []Invalid{InvalidParity, InvalidLength, InvalidTooLong}
	case Magstripe:
		return []Invalid{InvalidChecksum, InvalidReaderErr, InvalidTooLong}
	case Line:
		return []Invalid{InvalidTooLong, InvalidPrefix}
	}
	return nil
}

// EncodeInvalid builds a bad frame of the given kind and says how the decoder rejects it.
func EncodeInvalid(framing string, kind Invalid, o Options) ([]byte, Reason, error) {
	switch framing + "/" + string(kind) {
	case EM4100 + "/checksum":
		return em4100Frame([5]byte{0x62, 0xE3, 0x08, 0x6C, 0xED}, 0x09), ReasonBadChecksum, nil
	case EM4100 + "/length":
		return []byte("\x0262E3086CED0\x03"), ReasonBadLength, nil
	case EM4100 + "/not-hex":
		return []byte("\x0262E3086CEG08\x03"), ReasonNotHex, nil
	case EM4100 + "/too-long":
		return []byte("\x0262E3086CED08080808"), ReasonTooLong, nil
	case Wiegand26 + "/parity":
		return WiegandLine(Wiegand26Bits(101, 4095) ^ 1<<25), ReasonBadParity, nil
	case Wiegand26 + "/length":
		return []byte("CA1FF\r"), ReasonBadLength, nil
	case Wiegand26 + "/too-long":
		return []byte("0CA1FFF0\r"), ReasonTooLong, nil
	case Magstripe + "/checksum":
		f := MagstripeFrame(2, "4111111111111111=2912101", true, false)
		f[len(f)-2] ^= 0x01 // wrong LRC, still a track 2 character
		return f, ReasonBadLRC, nil
	case Magstripe + "/reader-error":
		return []byte(";E?\r"), ReasonReaderError, nil
	case Magstripe + "/too-long":
		return []byte(";" + strings.Repeat("1", track2Max+1) + "?\r"), ReasonTooLong, nil
	case Line + "/too-long":
		max := o.MaxLen
		if max == 0 {
			max = DefaultLineMaxLen
		}
		return []byte(o.Prefix + strings.Repeat("X", max+1) + o.Suffix + "\r"), ReasonTooLong, nil
	case Line + "/prefix":
		if o.Prefix == "" {
			return nil, "", fmt.Errorf("line: invalid kind %q needs a prefix configured", kind)
		}
		return []byte("NOPREFIX" + o.Suffix + "\r"), ReasonMissingPrefix, nil
	}
	return nil, "", fmt.Errorf("framing %q: invalid kind %q unknown", framing, kind)
}
