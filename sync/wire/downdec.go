package wire

import "bytes"

// A kiosk reads a down frame for every charge billed on its facility's other kiosks: with
// charges fanning out to a facility's kiosks, reading them through encoding/json (two passes,
// each validating the text first) was two fifths of the load tool's CPU (docs/BENCHMARKS.md,
// tenth round). decodeDownFast reads the shape the relay writes (downFrame: the items' stored
// bytes joined) in one pass and leaves everything else to decodeFrameStd, which it is fuzzed
// against (FuzzDownDecoderSame).

// downPrefix is how every down frame the relay writes begins.
const downPrefix = `{"type":"down","body":`

var (
	downFields     = []string{"items"}
	downItemFields = []string{"seq", "kind", "body"}
)

// decodeDownFast reads a down frame that starts with downPrefix; ok is false for anything it
// leaves to decodeFrameStd (as decodeAckFast). b is valid UTF-8 (decodeFrame checked it).
func decodeDownFast(b []byte) (Frame, bool) {
	if !bytes.HasPrefix(b, []byte(downPrefix)) {
		return Frame{}, false
	}
	s := &scanner{b: b, i: len(downPrefix), special: strSpecial()}
	d, ok := s.down()
	if !ok || !s.envelopeEnd() {
		return Frame{}, false
	}
	if d.validate() != nil {
		return Frame{}, false // the reference decoder words the refusal
	}
	// The bodies get their own copy, as encoding/json gives a json.RawMessage: a caller may
	// reuse the frame's buffer. One allocation for all of them.
	total := 0
	for _, it := range d.Items {
		total += len(it.Body)
	}
	arena := make([]byte, 0, total)
	for i, it := range d.Items {
		n := len(arena)
		arena = append(arena, it.Body...)
		d.Items[i].Body = arena[n:len(arena):len(arena)]
	}
	return Frame{Type: TypeDown, Down: d}, true
}

// envelopeEnd reads what follows a frame's body: more members of the envelope (ignored, as
// encoding/json ignores unknown fields), its end, and nothing after it. false leaves the frame
// to decodeFrameStd (the type or the body again, a key in other case, text that is not JSON).
func (s *scanner) envelopeEnd() bool {
	for {
		switch s.next() {
		case '}':
			s.i++
			s.ws()
			return s.i == len(s.b)
		case ',':
			s.i++
		default:
			return false
		}
		k, plain, ok := s.key(envelopeFields...)
		if !ok || !plain || k == "type" || k == "body" || !s.value(0) {
			return false
		}
	}
}

// down reads a down frame's body.
func (s *scanner) down() (*Down, bool) {
	d := new(Down)
	var seen uint16
	ok := s.object(downFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "items":
			if !once(&seen, 1) {
				return false
			}
			d.Items = []DownItem{}
			return s.array(func() bool {
				it, ok := s.downItem()
				d.Items = append(d.Items, it)
				return ok
			})
		}
		return s.value(0)
	})
	return d, ok
}

// downItem reads one downlink item; its body (an object: anything else is left to
// decodeFrameStd) is the frame's own bytes until decodeDownFast copies them.
func (s *scanner) downItem() (DownItem, bool) {
	var it DownItem
	var seen uint16
	ok := s.object(downItemFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "seq":
			return s.seqField(&seen, 1, &it.Seq)
		case k == "kind":
			return s.textField(&seen, 2, &it.Kind)
		case k == "body":
			if !once(&seen, 4) || s.next() != '{' {
				return false
			}
			start := s.i
			if !s.value(0) {
				return false
			}
			it.Body = s.b[start:s.i]
			return true
		}
		return s.value(0)
	})
	return it, ok
}
