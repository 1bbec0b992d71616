package wire

import "bytes"

// A terminal reads an ack for every batch it sends. encoding/json reads one in two passes (the
// envelope, then its body), each validating the text before decoding it: under a thousand
// terminals, an eighth of the load tool's CPU (docs/BENCHMARKS.md, tenth round).
// decodeAckFast reads the regular shape the relay writes (appendAckFrame) in one pass and
// leaves everything else to decodeFrameStd, which it is fuzzed against (FuzzBatchDecoderSame
// and FuzzAckDecoderSame run every frame through both).

// ackPrefix is how every ack frame the relay writes begins.
const ackPrefix = `{"type":"ack","body":`

var (
	ackFields       = []string{"epoch", "seq", "rejected", "letters"}
	rejectionFields = []string{"seq", "reason"}
	lettersFields   = []string{"delivered", "held"}
)

// decodeAckFast reads an ack frame that starts with ackPrefix; ok is false for anything it
// leaves to decodeFrameStd: another frame, a key in other case or escaped, a field given twice,
// a null, a value of another type, a body that validate refuses (for its wording), or text
// that is not JSON. b is valid UTF-8 (decodeFrame checked it).
func decodeAckFast(b []byte) (Frame, bool) {
	if !bytes.HasPrefix(b, []byte(ackPrefix)) {
		return Frame{}, false
	}
	s := &scanner{b: b, i: len(ackPrefix), special: strSpecial()}
	a, ok := s.ack()
	if !ok {
		return Frame{}, false
	}
	if !s.envelopeEnd() || a.validate() != nil {
		return Frame{}, false
	}
	return Frame{Type: TypeAck, Ack: a}, true
}

// ack reads an ack's body.
func (s *scanner) ack() (*Ack, bool) {
	a := new(Ack)
	var seen uint16
	ok := s.object(ackFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "epoch":
			return s.textField(&seen, 1, &a.Epoch)
		case k == "seq":
			return s.seqField(&seen, 2, &a.Seq)
		case k == "rejected":
			if !once(&seen, 4) {
				return false
			}
			a.Rejected = []Rejection{}
			return s.array(func() bool {
				r, ok := s.rejection()
				a.Rejected = append(a.Rejected, r)
				return ok
			})
		case k == "letters":
			if !once(&seen, 8) {
				return false
			}
			a.Letters = new(Letters)
			return s.letters(a.Letters)
		}
		return s.value(0)
	})
	return a, ok
}

// array walks a JSON array (not null), calling elem at each element, which must consume it.
func (s *scanner) array(elem func() bool) bool {
	if s.next() != '[' {
		return false
	}
	s.i++
	if s.next() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// rejection reads one of an ack's refusals.
func (s *scanner) rejection() (Rejection, bool) {
	var r Rejection
	var seen uint16
	ok := s.object(rejectionFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "seq":
			return s.seqField(&seen, 1, &r.Seq)
		case k == "reason":
			return s.textField(&seen, 2, &r.Reason)
		}
		return s.value(0)
	})
	return r, ok
}

// letters reads an ack's letters into l.
func (s *scanner) letters(l *Letters) bool {
	var seen uint16
	return s.object(lettersFields, func(k string, plain bool) bool {
		if !plain {
			return false
		}
		var list *[]uint64
		switch k {
		case "delivered":
			if !once(&seen, 1) {
				return false
			}
			list = &l.Delivered
		case "held":
			if !once(&seen, 2) {
				return false
			}
			list = &l.Held
		default:
			return s.value(0)
		}
		*list = []uint64{}
		return s.array(func() bool {
			s.next()
			n, ok := s.seq()
			*list = append(*list, n)
			return ok
		})
	})
}

// downAckPrefix is how every down_ack frame a terminal writes begins (appendDownAckFrame).
const downAckPrefix = `{"type":"down_ack","body":`

var downAckFields = []string{"seq", "refused"}

// decodeDownAckFast reads a down_ack frame that starts with downAckPrefix in one pass, as
// decodeAckFast reads an ack: with charges fanning out, the relay reads one per charge per
// kiosk of the facility. ok is false for anything it leaves to decodeFrameStd.
func decodeDownAckFast(b []byte) (Frame, bool) {
	if !bytes.HasPrefix(b, []byte(downAckPrefix)) {
		return Frame{}, false
	}
	s := &scanner{b: b, i: len(downAckPrefix), special: strSpecial()}
	d := new(DownAck)
	var seen uint16
	ok := s.object(downAckFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "seq":
			return s.seqField(&seen, 1, &d.Seq)
		case k == "refused":
			if !once(&seen, 2) {
				return false
			}
			d.Refused = []Rejection{}
			return s.array(func() bool {
				r, ok := s.rejection()
				d.Refused = append(d.Refused, r)
				return ok
			})
		}
		return s.value(0)
	})
	if !ok || !s.envelopeEnd() || d.validate() != nil {
		return Frame{}, false
	}
	return Frame{Type: TypeDownAck, DownAck: d}, true
}
