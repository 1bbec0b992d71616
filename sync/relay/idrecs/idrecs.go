// Package idrecs is a facility's item id records (docs/SCALE.md, "Item ids in a held
// facility"): each id its terminals sent, with where it was first stored, grouped by the time
// the id says it was made, in records that group commits add to (kv.Append) and close at
// RecordBytes. An id sent again is found by reading the records of its span, whatever its
// age, with no index of every id in memory.
//
// Index keeps each record's ids as a set, for a look-up that costs a map probe. A relay on a
// shared store keeps its item ids so (sync/relay/facids.go); an entry's layout is entry.go's.
package idrecs

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/google/uuid"
)

// Ref is where an item id was first stored: as the relay's item id record says it.
type Ref struct {
	ID       string
	Terminal string
	Epoch    string
	Seq      uint64
	Hash     string // the item's content hash, as the relay writes it
	Refused  string // the reason it was refused, if it was
}

// RecordBytes is about the most a record holds unless an Index says otherwise: the entry that
// takes it past this closes it, and the span's next entries go to its next record. A group
// commit rewrites at most this much of each span it adds to, for each facility in it, so
// records are small: at 60 KB a gateway's group commits of 25 facilities' status reports
// rewrote a megabyte or more, and the cluster's CPU a batch nearly doubled (tetherload, stop
// 33); a bbolt file writes a leaf of two records again whole. A reader does not care how large
// records are.
const RecordBytes = 4 << 10

// hashSpans is how many spans take the ids that are not UUIDv7s, by their hash.
const hashSpans = 256

// Span names the records id belongs in: "s" and the second (twelve digits) its UUIDv7 says it
// was made
// (terminals make their ids with uuid.NewV7), or "h" and one of 256 groups by its hash for
// an id that is not a UUIDv7. A forged time only moves a hostile terminal's ids among its
// own facility's records.
func Span(id string) string {
	if ms, ok := MadeAt(id); ok {
		// A second, not a minute: a busy facility makes a megabyte of entries a minute, which a
		// group commit would read, and check, whole (tetherload found it, stop 33).
		// 2^48 ms is some 281 billion seconds. Not fmt: a gateway names every item's span
		// twice a batch, and Sprintf was a fortieth of its CPU (stop 34).
		return string(decimal(append(make([]byte, 0, 13), 's'), ms/1000, 12))
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("h%02x", h.Sum32()%hashSpans)
}

// MadeAt is the millisecond (Unix) a UUIDv7 id says it was made; ok is false for an id that
// is not a UUIDv7 in any form uuid.Parse takes.
func MadeAt(id string) (ms uint64, ok bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return 0, false
	}
	return binary.BigEndian.Uint64(append([]byte{0, 0}, u[:6]...)), true
}

// Key is the key of span's n-th record (from 0): keys sort by span, then by n.
func Key(span string, n int) string {
	b := append(append(make([]byte, 0, len(span)+5), span...), '.')
	return string(decimal(b, uint64(n), 4))
}

// decimal appends v to b in at least width digits, zero-padded (fmt's %0*d).
func decimal(b []byte, v uint64, width int) []byte {
	var d [20]byte
	digits := strconv.AppendUint(d[:0], v, 10)
	for range width - len(digits) {
		b = append(b, '0')
	}
	return append(b, digits...)
}
