package wire

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// A relay reads a terminal's backlog as batch frames of up to a thousand letters. Through
// encoding/json a batch costs five passes over every body: the envelope is validated and
// decoded, then its body again, then each item body is parsed once more (DecodeUpBody) to check
// it. The batch decoder here reads a batch frame in one pass: the envelope, the batch and its
// items are walked once, each item body is validated where it lies, its compactness noted (so
// the relay stores it as it came, see UpBody.Compact), and a message or prea body decoded into
// its vocab.Message on the way.
//
// It takes only the frames terminals write (wire.Encode's): field names exactly as this package
// spells them, each once, values of the declared JSON type. Anything else, valid or not (a
// name in other case, which encoding/json would also match; a duplicate; a null; a seq written
// 1.0; a nesting deeper than fastMaxDepth; any syntax error), it leaves to decodeFrameStd, the
// encoding/json decoder, so what is accepted and refused, and every error text, stay exactly
// those of encoding/json (FuzzBatchDecoderSame holds the two to it).

// UpBody is what the batch decoder learned of one uplink item's body.
type UpBody struct {
	// Compact: the body is already what json.Marshal writes for it as a json.RawMessage (no
	// white space outside strings, none of < > & U+2028 U+2029): it is stored as it came.
	Compact bool
	// Value and Err are what DecodeUpBody returns for the item's kind and body.
	Value any
	Err   error
	// ASCIIBody: Value is a message whose body is printable ASCII only (U+0020-U+007E), as
	// the decoder saw when it read it (no escape in it, no other byte), so a relay that
	// checks the letter's text need not look at each byte again. False says nothing.
	ASCIIBody bool
}

// DecodeUplinkFrame is DecodeFrame that also returns, for a batch frame, one UpBody per item
// (nil for any other frame), so a relay neither scans nor decodes an item body again.
func DecodeUplinkFrame(b []byte) (Frame, []UpBody, error) {
	return decodeFrame(b, true)
}

// CheckedBodies is what DecodeUplinkFrame returns for a batch decoded otherwise (by
// DecodeFrame, or built in memory): each body checked with DecodeUpBody. Bodies must be valid
// JSON (as DecodeFrame leaves them).
func CheckedBodies(items []Item) []UpBody {
	out := make([]UpBody, len(items))
	for i, it := range items {
		v, err := DecodeUpBody(it.Kind, it.Body)
		out[i] = UpBody{Compact: IsCompactJSON(it.Body), Value: v, Err: err}
	}
	return out
}

// IsCompactJSON reports whether b, valid JSON, is already what json.Marshal writes for it as a
// json.RawMessage: no white space outside strings, and none of what it escapes (<, >, &,
// U+2028, U+2029).
func IsCompactJSON(b []byte) bool {
	in, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9):
			return false
		case in:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				in = false
			}
		case c == '"':
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// decodeFrame is DecodeFrame, with the item bodies' UpBody when bodies is set.
func decodeFrame(b []byte, bodies bool) (Frame, []UpBody, error) {
	if len(b) <= MaxFrameBytes {
		if f, ok := decodeChunkFast(b); ok { // chunkframe.go; all ASCII, so valid UTF-8
			return f, nil, nil
		}
	}
	if len(b) <= MaxFrameBytes && utf8.Valid(b) {
		if f, ok := decodeAckFast(b); ok { // ackdec.go
			return f, nil, nil
		}
		if f, ok := decodeDownFast(b); ok { // downdec.go
			return f, nil, nil
		}
		if f, ok := decodeDownAckFast(b); ok { // ackdec.go
			return f, nil, nil
		}
		if f, ups, ok := decodeBatchFast(b, bodies); ok {
			return f, ups, nil
		}
	}
	f, err := decodeFrameStd(b)
	if err != nil || !bodies || f.Batch == nil {
		return f, nil, err
	}
	return f, CheckedBodies(f.Batch.Items), nil
}

// fastMaxDepth bounds the nesting the batch decoder follows (encoding/json allows 10000): a
// deeper body goes to decodeFrameStd, and the recursion here stays shallow.
const fastMaxDepth = 200

// scanner walks a frame held in b (valid UTF-8: decodeFrame checked it).
type scanner struct {
	b []byte
	i int
	// compact is cleared by white space between tokens or one of < > & U+2028 U+2029 in a
	// string; it is set again at the start of each item body.
	compact bool
	// high: str met a byte over 0x7E (text clears it first).
	high bool
	// plain: the last string text read had no escape and no byte over 0x7E.
	plain   bool
	special [256]bool // strSpecial
}

func (s *scanner) ws() {
	j := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
			continue
		}
		break
	}
	if s.i > j {
		s.compact = false
	}
}

// next skips white space and reports the byte there (0 at the end).
func (s *scanner) next() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// str scans the string at s.i: the span of its contents and whether it holds escapes.
func (s *scanner) str() (start, end int, esc, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, false, false
	}
	b := s.b
	sp := &s.special
	i := s.i + 1
	start = i
	for i < len(b) {
		// Most of a letter is plain bytes: skip them with one table look-up each.
		for i < len(b) && !sp[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return start, i, esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		case c == '<' || c == '>' || c == '&':
			s.compact = false
			i++
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9):
			s.compact, s.high = false, true
			i += 3
		case c >= 0x7F:
			s.high = true
			i++
		default:
			i++
		}
	}
	return 0, 0, false, false
}

// strSpecial marks the bytes str must look at inside a string: the closing quote, an escape,
// control characters, the ones json.Marshal escapes (<, >, &), the first byte of U+2028 and
// U+2029 (which it escapes too), and DEL and every byte of a multi-byte character (so text
// tells printable ASCII from the rest). Each scanner has its own copy (a frame is far longer
// than the table).
func strSpecial() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for c := 0x7F; c < 0x100; c++ {
		t[c] = true
	}
	for _, c := range []byte{'"', '\\', '<', '>', '&', 0xE2} {
		t[c] = true
	}
	return t
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// text scans a string value and returns it unquoted as encoding/json would.
func (s *scanner) text() (string, bool) {
	s.high = false
	start, end, esc, ok := s.str()
	if !ok {
		return "", false
	}
	s.plain = !esc && !s.high
	if !esc {
		return string(s.b[start:end]), true
	}
	return unquote(s.b[start:end]), true
}

// unquote decodes the escapes of a string's contents (already checked by str) as encoding/json
// does: a lone or mismatched UTF-16 surrogate becomes U+FFFD.
func unquote(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[i+2:i+6])); dec != unicode.ReplacementChar {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // " \ /
			out = append(out, s[i+1])
		}
		i += 2
	}
	return string(out)
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// value validates and skips one JSON value of any type.
func (s *scanner) value(depth int) bool {
	switch s.next() {
	case '{':
		if depth >= fastMaxDepth {
			return false
		}
		s.i++
		if s.next() == '}' {
			s.i++
			return true
		}
		for {
			s.next()
			if _, _, _, ok := s.str(); !ok || s.next() != ':' {
				return false
			}
			s.i++
			if !s.value(depth + 1) {
				return false
			}
			switch s.next() {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case '[':
		if depth >= fastMaxDepth {
			return false
		}
		s.i++
		if s.next() == ']' {
			s.i++
			return true
		}
		for {
			if !s.value(depth + 1) {
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
	case '"':
		_, _, _, ok := s.str()
		return ok
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	case 0:
		return false
	}
	return s.number()
}

func (s *scanner) lit(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s.i = i
	return true
}

// seq reads a seq as encoding/json reads a uint64: digits only (no sign, fraction or exponent).
func (s *scanner) seq() (uint64, bool) {
	start := s.i
	if !s.number() {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.b[start:s.i]), 10, 64)
	return n, err == nil
}

// key reads an object key and the colon after it. plain is false for a key encoding/json might
// match to a field otherwise than byte for byte: one with escapes or beyond ASCII, or one that
// equals one of names but for case.
func (s *scanner) key(names ...string) (k string, plain, ok bool) {
	s.next()
	start, end, esc, ok := s.str()
	if !ok || s.next() != ':' {
		return "", false, false
	}
	s.i++
	raw := s.b[start:end]
	if esc {
		return "", false, true
	}
	for _, c := range raw {
		if c >= utf8.RuneSelf {
			return "", false, true
		}
	}
	// A known name is returned as the name itself: no string is made for each key of each item.
	for _, n := range names {
		if string(raw) == n {
			return n, true, true
		}
	}
	for _, n := range names {
		if bytes.EqualFold(raw, []byte(n)) {
			return "", false, true
		}
	}
	return string(raw), true, true
}

// object walks an object's members, calling member with each key (plain as key reports) and the
// scanner at its value, which member must consume. It stops at the first false.
func (s *scanner) object(names []string, member func(k string, plain bool) bool) bool {
	if s.next() != '{' {
		return false
	}
	s.i++
	if s.next() == '}' {
		s.i++
		return true
	}
	for {
		k, plain, ok := s.key(names...)
		if !ok || !member(k, plain) {
			return false
		}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// once marks a field seen; a second time is left to decodeFrameStd (last one wins there).
func once(seen *uint16, bit uint16) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// seqField reads a field's number into dst; a field seen before (its bit in seen) is left to
// decodeFrameStd, as once says.
func (s *scanner) seqField(seen *uint16, bit uint16, dst *uint64) bool {
	if !once(seen, bit) {
		return false
	}
	s.next()
	n, ok := s.seq()
	*dst = n
	return ok
}

// textField reads a field's string into dst, with seqField's rule for a field seen twice.
func (s *scanner) textField(seen *uint16, bit uint16, dst *string) bool {
	if !once(seen, bit) || s.next() != '"' {
		return false
	}
	v, ok := s.text()
	*dst = v
	return ok
}

var (
	envelopeFields = []string{"type", "body"}
	batchFields    = []string{"epoch", "items"}
	itemFields     = []string{"seq", "id", "kind", "created_at", "body"}
	messageFields  = []string{"id", "inmate_id", "box", "peer", "peer_name", "subject", "body", "state", "reason",
		"read", "created_at", "updated_at"}
)

// decodeBatchFast reads a batch frame in one pass; ok is false for anything it leaves to
// decodeFrameStd (any other frame type among them).
func decodeBatchFast(b []byte, bodies bool) (Frame, []UpBody, bool) {
	s := &scanner{b: b, special: strSpecial()}
	var batch *Batch
	var ups []UpBody
	var seen uint16
	typed := false
	ok := s.object(envelopeFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "type":
			if !once(&seen, 1) || s.next() != '"' {
				return false
			}
			t, ok := s.text()
			typed = ok && t == TypeBatch
			return typed
		case k == "body":
			if !once(&seen, 2) || !typed {
				return false // a body before its type: the reference decoder reads it
			}
			batch, ups = s.batch(bodies)
			return batch != nil
		}
		return s.value(0)
	})
	if s.ws(); !ok || batch == nil || s.i != len(b) {
		return Frame{}, nil, false
	}
	if batch.validate() != nil {
		return Frame{}, nil, false // the reference decoder words the refusal
	}
	// The bodies get their own copy, as encoding/json gives a json.RawMessage: a caller may
	// reuse the frame's buffer. One allocation for all of them.
	total := 0
	for _, it := range batch.Items {
		total += len(it.Body)
	}
	arena := make([]byte, 0, total)
	for i, it := range batch.Items {
		n := len(arena)
		arena = append(arena, it.Body...)
		batch.Items[i].Body = arena[n:len(arena):len(arena)]
	}
	for i := range ups {
		if ups[i].Value == nil && ups[i].Err == nil {
			// Not decoded on the way (not a message, or its kind came after its body): checked here.
			it := batch.Items[i]
			ups[i].Value, ups[i].Err = DecodeUpBody(it.Kind, it.Body)
		}
	}
	return Frame{Type: TypeBatch, Batch: batch}, ups, true
}

// batch reads a batch's body; nil if it is left to decodeFrameStd.
func (s *scanner) batch(bodies bool) (*Batch, []UpBody) {
	var bt Batch
	var ups []UpBody
	var seen uint16
	ok := s.object(batchFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "epoch":
			return s.textField(&seen, 1, &bt.Epoch)
		case k == "items":
			if !once(&seen, 2) || s.next() != '[' {
				return false
			}
			s.i++
			bt.Items = []Item{}
			if s.next() == ']' {
				s.i++
				return true
			}
			for {
				it, up, ok := s.item(bodies)
				if !ok {
					return false
				}
				bt.Items = append(bt.Items, it)
				if bodies {
					ups = append(ups, up)
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
		return s.value(0)
	})
	if !ok || seen&2 == 0 {
		return nil, nil
	}
	return &bt, ups
}

// item reads one batch item. A message or prea body whose kind came first is decoded as it is
// read; any other body is validated and left to DecodeUpBody (up.Value and up.Err unset).
func (s *scanner) item(bodies bool) (Item, UpBody, bool) {
	var it Item
	var up UpBody
	var seen uint16
	ok := s.object(itemFields, func(k string, plain bool) bool {
		switch {
		case !plain:
			return false
		case k == "seq":
			return s.seqField(&seen, 1, &it.Seq)
		case k == "id", k == "kind":
			bit := uint16(2)
			if k == "kind" {
				bit = 4
			}
			if !once(&seen, bit) || s.next() != '"' {
				return false
			}
			v, ok := s.text()
			if k == "id" {
				it.ID = v
			} else {
				it.Kind = v
			}
			return ok
		case k == "created_at":
			if !once(&seen, 8) || s.next() != '"' {
				return false
			}
			start := s.i
			if _, _, _, ok := s.str(); !ok {
				return false
			}
			// What encoding/json does with a time.Time: hand it the raw token.
			return it.CreatedAt.UnmarshalJSON(s.b[start:s.i]) == nil
		case k == "body":
			if !once(&seen, 16) || s.next() != '{' {
				return false // a body that is not an object: the reference decoder reads it
			}
			start := s.i
			s.compact = true
			if bodies && (it.Kind == UpMessage || it.Kind == UpPREA) {
				m, regular, ascii, ok := s.message()
				switch {
				case !ok:
					return false
				case regular:
					err := checkMessage(it.Kind, m)
					up.Value, up.Err, up.ASCIIBody = any(m), nil, ascii
					if err != nil {
						up.Value, up.Err, up.ASCIIBody = nil, fmt.Errorf("%s body: %w", cut(it.Kind), err), false
					}
				default:
					// Valid or not, it is read again the plain way (DecodeUpBody, later).
					s.i, s.compact = start, true
					if !s.value(0) {
						return false
					}
				}
			} else if !s.value(0) {
				return false
			}
			it.Body = s.b[start:s.i]
			up.Compact = s.compact
			return true
		}
		return s.value(0)
	})
	// A missing field stays at its zero value, as with encoding/json (validate refuses those
	// that matter); a missing body is left to the reference decoder's wording.
	return it, up, ok && seen&16 != 0
}

// message decodes a message body as encoding/json decodes a vocab.Message. ok is false for
// invalid JSON; regular is false for valid JSON it leaves to encoding/json (a value of another
// JSON type than its field's, a null, a key that differs from a field's name only in case).
// ascii says the body read is printable ASCII only (UpBody.ASCIIBody).
func (s *scanner) message() (m *vocab.Message, regular, ascii, ok bool) {
	m = new(vocab.Message)
	regular = true
	ok = s.object(messageFields, func(k string, plain bool) bool {
		if !plain {
			regular = false
			return false
		}
		var field *string
		switch k {
		case "id":
			field = &m.ID
		case "inmate_id":
			field = &m.InmateID
		case "box":
			field = &m.Box
		case "peer":
			field = &m.Peer
		case "peer_name":
			field = &m.PeerName
		case "subject":
			field = &m.Subject
		case "body":
			field = &m.Body
		case "state":
			field = &m.State
		case "reason":
			field = &m.Reason
		case "read":
			switch s.next() {
			case 't':
				m.Read = true
				return s.lit("true")
			case 'f':
				m.Read = false
				return s.lit("false")
			}
			regular = false
			return false
		case "created_at", "updated_at":
			t := &m.CreatedAt
			if k == "updated_at" {
				t = &m.UpdatedAt
			}
			if s.next() != '"' {
				regular = false
				return false
			}
			start := s.i
			if _, _, _, ok := s.str(); !ok {
				return false
			}
			if t.UnmarshalJSON(s.b[start:s.i]) != nil {
				regular = false
				return false
			}
			return true
		default:
			return s.value(1)
		}
		if s.next() != '"' {
			regular = false
			return false
		}
		v, ok := s.text()
		*field = v
		if k == "body" { // the last "body" is the one kept, as with encoding/json
			ascii = s.plain
		}
		return ok
	})
	return m, regular, ascii, ok || !regular
}
