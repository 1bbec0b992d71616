package faclog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Op is what a Write does to the kv state.
type Op byte

const (
	// OpPut sets Key to Value in the bucket at Path, making the buckets on the way.
	OpPut Op = 1
	// OpDelete removes Key from the bucket at Path (nothing, if either is missing).
	OpDelete Op = 2
	// OpDeleteBucket removes the bucket at Path with everything in it (nothing, if missing).
	OpDeleteBucket Op = 3
	// OpSequence sets the sequence of the bucket at Path to Seq, making the buckets on the way.
	OpSequence Op = 4
	// OpCreateBucket makes the bucket at Path and the buckets on the way, if missing.
	OpCreateBucket Op = 5
	// OpAppend adds Value to the end of Key's value in the bucket at Path (Value is the value
	// if Key is missing), making the buckets on the way. An entry carries what was added, not
	// the record again: a record that many group commits add to (a facility's item ids) costs
	// each entry only its share, and the projection writes it once.
	OpAppend Op = 6
)

// Write is one change to the kv state, as a group commit of a held facility made it: an entry
// of the facility's log carries the group's writes, in order, and the projection applies them
// to the kv store.
type Write struct {
	Op    Op
	Path  [][]byte // the bucket, from the root; never empty
	Key   []byte   // OpPut, OpDelete, OpAppend
	Value []byte   // OpPut, OpAppend
	Seq   uint64   // OpSequence
}

// writesVersion leads an encoded entry: a later layout gets another.
const writesVersion = 1

// EncodeWrites is ws as an entry's data.
func EncodeWrites(ws []Write) []byte {
	b := make([]byte, 0, encodedLen(ws))
	b = append(b, writesVersion)
	b = binary.AppendUvarint(b, uint64(len(ws)))
	bytes := func(v []byte) { b = binary.AppendUvarint(b, uint64(len(v))); b = append(b, v...) }
	for _, w := range ws {
		b = append(b, byte(w.Op))
		b = binary.AppendUvarint(b, uint64(len(w.Path)))
		for _, p := range w.Path {
			bytes(p)
		}
		switch w.Op {
		case OpPut, OpAppend:
			bytes(w.Key)
			bytes(w.Value)
		case OpDelete:
			bytes(w.Key)
		case OpSequence:
			b = binary.AppendUvarint(b, w.Seq)
		}
	}
	return b
}

// encodedLen is the length of EncodeWrites(ws): a group commit's entry is tens of kilobytes,
// and grown from nothing its buffer was copied a dozen times (2 % of a holding gateway's CPU
// under status reports, stop 46), and kept up to twice its size until projected.
func encodedLen(ws []Write) int {
	bytes := func(v []byte) int { return uvarintLen(uint64(len(v))) + len(v) }
	n := 1 + uvarintLen(uint64(len(ws)))
	for _, w := range ws {
		n += 1 + uvarintLen(uint64(len(w.Path)))
		for _, p := range w.Path {
			n += bytes(p)
		}
		switch w.Op {
		case OpPut, OpAppend:
			n += bytes(w.Key) + bytes(w.Value)
		case OpDelete:
			n += bytes(w.Key)
		case OpSequence:
			n += uvarintLen(w.Seq)
		}
	}
	return n
}

// uvarintLen is the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// Coalesce is ws without the writes of a key that a later Put of the same key in the same
// bucket makes moot: an earlier Put, Append or Delete of it. Applied in order, it leaves the
// kv state ws leaves: the later Put sets the key whatever it held, and makes the buckets on
// the way as the earlier write did (a bucket that write made and a write between them
// deleted, the Put makes again; writes are blind, so nothing between reads what it dropped).
// A later Delete makes nothing moot: the Put before it made the buckets on the way, which
// stay. A group commit's calls each write what they changed, so a kiosk with three batches
// in one group wrote its device report and its high-water mark three times each, and the
// entry carried all three (docs/SCALE.md, "What a batch makes the cluster store").
//
// An Append is then joined to the Put or Append of the same key before it, when no write
// between them deletes the key or makes, drops or numbers a bucket: the one write sets or adds
// both values, where it set or added the first. A group commit's calls each add their items
// to the group's one item log record, so a group of thirty one-item batches carried a Put and
// 29 Appends of one record, and each of them copied the whole record again where the entry
// was projected.
//
// ws is not changed; the result is ws itself when nothing was dropped or joined.
func Coalesce(ws []Write) []Write {
	later := map[string]bool{} // keys a later Put sets
	var drop []bool
	for i := len(ws) - 1; i >= 0; i-- {
		w := ws[i]
		if w.Op != OpPut && w.Op != OpAppend && w.Op != OpDelete {
			continue
		}
		k := pathKey(w.Path, w.Key)
		if later[k] {
			if drop == nil {
				drop = make([]bool, len(ws))
			}
			drop[i] = true
			continue
		}
		if w.Op == OpPut {
			later[k] = true
		}
	}
	var out []Write
	// last: where among the kept writes each key's Put or Append is that a following Append
	// may join; joined: the kept writes whose Value is out's own (the first join copied it),
	// which later joins grow in place. n counts the kept writes, whether or not out is built
	// yet (it is from the first join on).
	var last map[string]int
	var joined map[int]bool
	n := 0
	for i, w := range ws {
		if drop != nil && drop[i] {
			continue
		}
		switch w.Op {
		case OpPut, OpAppend:
			k := pathKey(w.Path, w.Key)
			if j, ok := last[k]; ok && w.Op == OpAppend {
				if out == nil {
					out = keptBefore(ws, drop, i)
				}
				if !joined[j] {
					out[j].Value = append(make([]byte, 0, 2*(len(out[j].Value)+len(w.Value))), out[j].Value...)
					if joined == nil {
						joined = map[int]bool{}
					}
					joined[j] = true
				}
				out[j].Value = append(out[j].Value, w.Value...)
				continue
			}
			if last == nil {
				last = map[string]int{}
			}
			last[k] = n
		case OpDelete:
			delete(last, pathKey(w.Path, w.Key))
		default: // a bucket made, dropped or numbered: nothing joins across it
			clear(last)
		}
		n++
		if out != nil {
			out = append(out, w)
		}
	}
	if out == nil && drop == nil {
		return ws
	}
	if out == nil {
		out = keptBefore(ws, drop, len(ws))
	}
	return out
}

// keptBefore is the writes of ws before i that drop does not drop, in a new slice.
func keptBefore(ws []Write, drop []bool, i int) []Write {
	out := make([]Write, 0, len(ws))
	for j, w := range ws[:i] {
		if drop == nil || !drop[j] {
			out = append(out, w)
		}
	}
	return out
}

// pathKey names key in the bucket at path, each name length-prefixed so that no two differ
// only in where the names split.
func pathKey(path [][]byte, key []byte) string {
	n := len(key) + 2
	for _, p := range path {
		n += len(p) + 2
	}
	b := make([]byte, 0, n)
	for _, p := range path {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	b = binary.AppendUvarint(b, uint64(len(key)))
	return string(append(b, key...))
}

// errShort: the data ends inside a write.
var errShort = errors.New("ends too soon")

// DecodeWrites reads an entry's data. An error names the write that was wrong and how.
func DecodeWrites(data []byte) ([]Write, error) {
	if len(data) == 0 || data[0] != writesVersion {
		return nil, fmt.Errorf("faclog: writes: version %v, want %d", data[:min(1, len(data))], writesVersion)
	}
	d := data[1:]
	uvarint := func() (uint64, error) {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			return 0, errShort
		}
		d = d[n:]
		return v, nil
	}
	bytes := func() ([]byte, error) {
		n, err := uvarint()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d)) {
			return nil, errShort
		}
		v := d[:n:n]
		d = d[n:]
		return v, nil
	}
	n, err := uvarint()
	if err != nil {
		return nil, fmt.Errorf("faclog: writes: the count %w", err)
	}
	if n > uint64(len(d)) { // each write takes two bytes at least
		return nil, fmt.Errorf("faclog: writes: %d writes in %d bytes", n, len(d))
	}
	ws := make([]Write, 0, n)
	for i := range n {
		if len(d) == 0 {
			return nil, fmt.Errorf("faclog: writes: write %d: %w", i, errShort)
		}
		w := Write{Op: Op(d[0])}
		d = d[1:]
		np, err := uvarint()
		if err == nil && (np == 0 || np > uint64(len(d))) {
			err = fmt.Errorf("has a path of %d buckets", np)
		}
		for j := uint64(0); err == nil && j < np; j++ {
			var p []byte
			if p, err = bytes(); err == nil && len(p) == 0 {
				err = fmt.Errorf("names an empty bucket at depth %d", j)
			}
			w.Path = append(w.Path, p)
		}
		if err == nil {
			switch w.Op {
			case OpPut, OpAppend:
				if w.Key, err = bytes(); err == nil {
					w.Value, err = bytes()
				}
			case OpDelete:
				w.Key, err = bytes()
			case OpSequence:
				w.Seq, err = uvarint()
			case OpDeleteBucket, OpCreateBucket:
			default:
				err = fmt.Errorf("has op %d", w.Op)
			}
		}
		if err == nil && (w.Op == OpPut || w.Op == OpDelete || w.Op == OpAppend) && len(w.Key) == 0 {
			err = errors.New("has an empty key")
		}
		if err != nil {
			return nil, fmt.Errorf("faclog: writes: write %d %w", i, err)
		}
		ws = append(ws, w)
	}
	if len(d) != 0 {
		return nil, fmt.Errorf("faclog: writes: %d bytes after the last write", len(d))
	}
	return ws, nil
}

// Apply applies ws to tx in order.
func Apply(tx kv.Tx, ws []Write) error {
	for i, w := range ws {
		if err := apply(tx, w); err != nil {
			return fmt.Errorf("faclog: write %d (op %d at %q): %w", i, w.Op, w.Path, err)
		}
	}
	return nil
}

func apply(tx kv.Tx, w Write) error {
	create := w.Op == OpPut || w.Op == OpSequence || w.Op == OpCreateBucket || w.Op == OpAppend
	parent := w.Path
	if w.Op == OpDeleteBucket {
		parent = w.Path[:len(w.Path)-1]
	}
	// b is the bucket at parent; nil with parent empty means the root.
	var b kv.Bucket
	for _, name := range parent {
		var next kv.Bucket
		var err error
		switch {
		case b == nil && create:
			next, err = tx.CreateBucketIfNotExists(name)
		case b == nil:
			next = tx.Bucket(name)
		case create:
			next, err = b.CreateBucketIfNotExists(name)
		default:
			next = b.Bucket(name)
		}
		if err != nil {
			return err
		}
		if next == nil {
			return nil // deleting in a bucket that is not there: nothing to delete
		}
		b = next
	}
	switch w.Op {
	case OpPut:
		return b.Put(w.Key, w.Value)
	case OpAppend:
		return kv.Append(b, w.Key, w.Value)
	case OpDelete:
		return b.Delete(w.Key)
	case OpSequence:
		return b.SetSequence(w.Seq)
	case OpCreateBucket:
		return nil // made on the way
	default: // OpDeleteBucket
		name := w.Path[len(w.Path)-1]
		var err error
		if b == nil {
			err = tx.DeleteBucket(name)
		} else {
			err = b.DeleteBucket(name)
		}
		if errors.Is(err, kv.ErrBucketNotFound) {
			return nil
		}
		return err
	}
}
