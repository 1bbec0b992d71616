package idrecs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// An entry, as Append adds it to a record. Two layouts; a record may hold both, and readers
// take both:
//
//	version 1 (schema 27 and before): 1, then id, terminal and epoch as (uvarint length,
//	bytes), the seq as a uvarint, then hash and refused as (uvarint length, bytes).
//	version 2 (schema 28): 2, then the same fields in the same order, each string as a field
//	of its own shape:
//	  0, uvarint length, bytes                 any text
//	  1, uvarint length, prefix, 16 bytes      prefix + a UUID in its canonical text
//	  2, uvarint length, bytes                 lowercase hex of the bytes
//
// Version 2 keeps what the relay's ids are (an item id is a UUIDv7, a terminal "t-" and a
// UUID, an epoch a UUID, a hash 32 bytes of SHA-256 in hex) in half the bytes: an entry of
// some 180 bytes took about 94, in the facility log's entry and again in the kv state's
// record (docs/SCALE.md, "Denser id records"). A string is read back exactly as it was
// given: a field is written in shape 1 or 2 only where the text is exactly what that shape
// gives back.
const (
	entryV1 = 1
	entryV2 = 2
)

const (
	fieldText = 0
	fieldUUID = 1
	fieldHex  = 2
)

// Append adds r to the end of rec (a record's value so far, or nil) and returns it; only the
// bytes added need writing (kv.Append).
func Append(rec []byte, r Ref) []byte {
	rec = append(rec, entryV2)
	for _, s := range []string{r.ID, r.Terminal, r.Epoch} {
		rec = appendField(rec, s)
	}
	rec = binary.AppendUvarint(rec, r.Seq)
	for _, s := range []string{r.Hash, r.Refused} {
		rec = appendField(rec, s)
	}
	return rec
}

// Entry is r as Append adds it to a record.
func Entry(r Ref) []byte { return Append(nil, r) }

// appendField adds s in the shortest shape that gives it back exactly.
func appendField(b []byte, s string) []byte {
	if prefix, u, ok := canonUUID(s); ok {
		b = append(b, fieldUUID)
		b = binary.AppendUvarint(b, uint64(len(prefix)))
		b = append(b, prefix...)
		return append(b, u[:]...)
	}
	if len(s) >= 2 && len(s)%2 == 0 && lowerHex(s) {
		b = append(b, fieldHex)
		b = binary.AppendUvarint(b, uint64(len(s)/2))
		out, _ := hex.AppendDecode(b, []byte(s)) // lowercase hex, checked
		return out
	}
	b = append(b, fieldText)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// canonUUID splits s into a prefix and the UUID its last 36 characters are, where they are
// one in canonical text (lowercase, hyphens at 8, 13, 18 and 23).
func canonUUID(s string) (prefix string, u [16]byte, ok bool) {
	if len(s) < 36 {
		return "", u, false
	}
	t := s[len(s)-36:]
	n := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if t[i] != '-' {
				return "", u, false
			}
			i++
			continue
		}
		hi, lo := hexVal(t[i]), hexVal(t[i+1])
		if hi < 0 || lo < 0 {
			return "", u, false
		}
		u[n] = byte(hi<<4 | lo)
		n++
		i += 2
	}
	return s[:len(s)-36], u, true
}

// hexVal is c's value as a lowercase hex digit, -1 if it is not one.
func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

// uuidText appends u's canonical text to b.
func uuidText(b []byte, u []byte) []byte {
	var t [36]byte
	hex.Encode(t[0:8], u[0:4])
	t[8] = '-'
	hex.Encode(t[9:13], u[4:6])
	t[13] = '-'
	hex.Encode(t[14:18], u[6:8])
	t[18] = '-'
	hex.Encode(t[19:23], u[8:10])
	t[23] = '-'
	hex.Encode(t[24:36], u[10:16])
	return append(b, t[:]...)
}

var errShort = errors.New("ends too soon")

// Each calls fn with each entry of rec in order, until fn returns false. An error names the
// entry that does not decode; the entries before it were given to fn.
func Each(rec []byte, fn func(Ref) bool) error {
	for n := 0; len(rec) > 0; n++ {
		var r Ref
		var err error
		if r, rec, err = next(rec); err != nil {
			return fmt.Errorf("idrecs: entry %d %w", n, err)
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// field is one string field as it lies in an entry: its shape and its bytes (for shape 1,
// the prefix and the UUID's 16 bytes).
type field struct {
	shape        byte
	prefix, body []byte
}

// text is the string the field holds.
func (f field) text() string {
	switch f.shape {
	case fieldUUID:
		return string(uuidText(append(make([]byte, 0, len(f.prefix)+36), f.prefix...), f.body))
	case fieldHex:
		return hex.EncodeToString(f.body)
	}
	return string(f.body)
}

// key is the field's text as the index and Find compare ids: one byte string for one text,
// whatever shape it was written in, and another for every other text (keyOf).
func (f field) key(dst []byte) []byte {
	switch f.shape {
	case fieldUUID:
		return append(append(append(dst, 1), f.prefix...), f.body...)
	case fieldHex:
		dst = append(dst, 0)
		return hex.AppendEncode(dst, f.body)
	}
	return keyOf(dst, f.body)
}

// keyOf is text's key (field.key): a text that ends in a canonical UUID is keyed by its prefix
// and the UUID's bytes, any other by itself.
func keyOf(dst, text []byte) []byte {
	if prefix, u, ok := canonUUID(string(text)); ok {
		return append(append(append(dst, 1), prefix...), u[:]...)
	}
	return append(append(dst, 0), text...)
}

// reader reads an entry's parts from rec[at:].
type reader struct {
	rec []byte
	at  int
}

func (r *reader) uvarint() (uint64, error) {
	v, k := binary.Uvarint(r.rec[r.at:])
	if k <= 0 {
		return 0, errShort
	}
	r.at += k
	return v, nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.rec)-r.at) {
		return nil, errShort
	}
	b := r.rec[r.at : r.at+int(n)]
	r.at += int(n)
	return b, nil
}

// field reads one string field of an entry of version v.
func (r *reader) field(v byte) (field, error) {
	shape := byte(fieldText)
	if v == entryV2 {
		if r.at >= len(r.rec) {
			return field{}, errShort
		}
		shape = r.rec[r.at]
		r.at++
		if shape > fieldHex {
			return field{}, fmt.Errorf("has a field of shape %d", shape)
		}
	}
	n, err := r.uvarint()
	if err != nil {
		return field{}, err
	}
	b, err := r.bytes(n)
	if err != nil {
		return field{}, err
	}
	f := field{shape: shape, body: b}
	if shape == fieldUUID {
		f.prefix = b
		if f.body, err = r.bytes(16); err != nil {
			return field{}, err
		}
	}
	return f, nil
}

// entryFields reads the entry at rec[at:]: where it ends, and its fields in order (id,
// terminal, epoch, hash, refused) with its seq.
func entryFields(rec []byte, at int) (end int, fs [5]field, seq uint64, err error) {
	v := rec[at]
	if v != entryV1 && v != entryV2 {
		return 0, fs, 0, fmt.Errorf("has version %d, want %d or %d", v, entryV1, entryV2)
	}
	r := &reader{rec: rec, at: at + 1}
	for i := range 3 {
		if fs[i], err = r.field(v); err != nil {
			return 0, fs, 0, err
		}
	}
	if seq, err = r.uvarint(); err != nil {
		return 0, fs, 0, err
	}
	for i := 3; i < 5; i++ {
		if fs[i], err = r.field(v); err != nil {
			return 0, fs, 0, err
		}
	}
	if fs[0].shape != fieldUUID && len(fs[0].body) == 0 { // text or hex of nothing: ""
		return 0, fs, 0, errors.New("has no id")
	}
	return r.at, fs, seq, nil
}

func next(rec []byte) (Ref, []byte, error) {
	end, fs, seq, err := entryFields(rec, 0)
	if err != nil {
		return Ref{}, nil, err
	}
	return Ref{ID: fs[0].text(), Terminal: fs[1].text(), Epoch: fs[2].text(), Seq: seq, Hash: fs[3].text(), Refused: fs[4].text()}, rec[end:], nil
}

// Find is the entry of id in rec: the first, if a record held it twice. It compares each
// entry's id where it lies and decodes only the one it finds.
func Find(rec []byte, id string) (Ref, bool, error) {
	want := keyOf(nil, []byte(id))
	var k []byte
	for n, at := 0, 0; at < len(rec); n++ {
		end, fs, _, err := entryFields(rec, at)
		if err != nil {
			return Ref{}, false, fmt.Errorf("idrecs: entry %d %w", n, err)
		}
		if k = fs[0].key(k[:0]); bytes.Equal(k, want) {
			r, _, err := next(rec[at:end])
			if err != nil {
				return Ref{}, false, fmt.Errorf("idrecs: entry %d %w", n, err)
			}
			return r, true, nil
		}
		at = end
	}
	return Ref{}, false, nil
}

// entryAt is where the entry at rec[at:] ends and its id's key (field.key, appended to dst),
// found without decoding the rest.
func entryAt(rec []byte, at int, dst []byte) (end int, key []byte, err error) {
	end, fs, _, err := entryFields(rec, at)
	if err != nil {
		return 0, nil, err
	}
	return end, fs[0].key(dst), nil
}
