package idrecs

import (
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
// 183 bytes takes 96 (TestEntriesOfTheRelaysIDsAreDense), in the facility log's entry and
// again in the kv state's record (docs/SCALE.md, "Denser id records"). A string is read back exactly as it was
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
	if at, u, ok := canonUUID(s); ok {
		b = append(b, fieldUUID)
		b = binary.AppendUvarint(b, uint64(at))
		b = append(b, s[:at]...)
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

// canonUUID is where the UUID in canonical text (lowercase, hyphens at 8, 13, 18 and 23) that
// s ends with begins, and its bytes; ok is false where s does not end with one. s[:at] is
// its prefix.
func canonUUID(s string) (at int, u [16]byte, ok bool) {
	if len(s) < 36 {
		return 0, u, false
	}
	at = len(s) - 36
	n := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[at+i] != '-' {
				return 0, u, false
			}
			i++
			continue
		}
		hi, lo := hexVal(s[at+i]), hexVal(s[at+i+1])
		if hi < 0 || lo < 0 {
			return 0, u, false
		}
		u[n] = byte(hi<<4 | lo)
		n++
		i += 2
	}
	return at, u, true
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
	if f.shape == fieldText {
		return string(f.body)
	}
	return string(f.appendText(make([]byte, 0, len(f.prefix)+2*len(f.body)+4)))
}

// appendText appends the string the field holds to dst: how Find and the index compare ids,
// whatever shape an entry gave them (an id is its text, and the index hashes the text a look-up
// is given as it is, with nothing to parse on the path every item takes).
func (f field) appendText(dst []byte) []byte {
	switch f.shape {
	case fieldUUID:
		return uuidText(append(dst, f.prefix...), f.body)
	case fieldHex:
		return hex.AppendEncode(dst, f.body)
	}
	return append(dst, f.body...)
}

// partAt finds the string field of an entry of version v at rec[p:]: its shape, where its
// bytes lie (rec[start:end]; for shape 1 the prefix, the UUID's 16 bytes after it) and where
// the next part begins. Positions, not a field: an entry's look-up reads its id and steps over
// the rest, dozens of entries a record.
func partAt(rec []byte, p int, v byte) (shape byte, start, end, next int, err error) {
	if v == entryV2 {
		if p >= len(rec) {
			return 0, 0, 0, 0, errShort
		}
		shape = rec[p]
		p++
		if shape > fieldHex {
			return 0, 0, 0, 0, fmt.Errorf("has a field of shape %d", shape)
		}
	}
	n, k := binary.Uvarint(rec[p:])
	if k <= 0 || n > uint64(len(rec)-p-k) {
		return 0, 0, 0, 0, errShort
	}
	start = p + k
	end = start + int(n)
	next = end
	if shape == fieldUUID {
		if len(rec)-end < 16 {
			return 0, 0, 0, 0, errShort
		}
		next = end + 16
	}
	return shape, start, end, next, nil
}

// fieldOf is the field partAt found.
func fieldOf(rec []byte, shape byte, start, end int) field {
	if shape == fieldUUID {
		return field{shape: shape, prefix: rec[start:end], body: rec[end : end+16]}
	}
	return field{shape: shape, body: rec[start:end]}
}

// seqAt reads the seq at rec[p:] and where the next part begins.
func seqAt(rec []byte, p int) (uint64, int, error) {
	seq, k := binary.Uvarint(rec[p:])
	if k <= 0 {
		return 0, 0, errShort
	}
	return seq, p + k, nil
}

// entryFields reads the entry at rec[at:]: where it ends, and its fields in order (id,
// terminal, epoch, hash, refused) with its seq.
func entryFields(rec []byte, at int) (end int, fs [5]field, seq uint64, err error) {
	v, p, err := version(rec, at)
	if err != nil {
		return 0, fs, 0, err
	}
	for i := range 5 {
		if i == 3 {
			if seq, p, err = seqAt(rec, p); err != nil {
				return 0, fs, 0, err
			}
		}
		shape, start, end, next, err := partAt(rec, p, v)
		if err != nil {
			return 0, fs, 0, err
		}
		fs[i], p = fieldOf(rec, shape, start, end), next
	}
	if fs[0].shape != fieldUUID && len(fs[0].body) == 0 { // text or hex of nothing: ""
		return 0, fs, 0, errNoID
	}
	return p, fs, seq, nil
}

var errNoID = errors.New("has no id")

// version is the version of the entry at rec[at:] and where its fields begin.
func version(rec []byte, at int) (byte, int, error) {
	v := rec[at]
	if v != entryV1 && v != entryV2 {
		return 0, 0, fmt.Errorf("has version %d, want %d or %d", v, entryV1, entryV2)
	}
	return v, at + 1, nil
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
	var kb [64]byte // the relay's ids fit: no allocation a look-up
	k := kb[:0]
	for n, at := 0, 0; at < len(rec); n++ {
		end, text, err := entryAt(rec, at, k[:0])
		if err != nil {
			return Ref{}, false, fmt.Errorf("idrecs: entry %d %w", n, err)
		}
		if k = text; string(k) == id {
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

// entryAt is where the entry at rec[at:] ends and its id's text (appended to dst), found
// without decoding the rest.
func entryAt(rec []byte, at int, dst []byte) (end int, key []byte, err error) {
	v, p, err := version(rec, at)
	if err != nil {
		return 0, nil, err
	}
	shape, start, idEnd, p, err := partAt(rec, p, v)
	if err != nil {
		return 0, nil, err
	}
	for i := 1; i < 5; i++ {
		if i == 3 {
			if _, p, err = seqAt(rec, p); err != nil {
				return 0, nil, err
			}
		}
		if _, _, _, p, err = partAt(rec, p, v); err != nil {
			return 0, nil, err
		}
	}
	if shape != fieldUUID && idEnd == start { // text or hex of nothing: ""
		return 0, nil, errNoID
	}
	return p, fieldOf(rec, shape, start, idEnd).appendText(dst), nil
}
