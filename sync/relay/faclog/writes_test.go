package faclog

import (
	"fmt"
	"strings"
	"testing"
)

// Whatever an entry's data, DecodeWrites returns writes that encode to the same writes, or an error
// that says which write was wrong; it never panics and never reads past the end.
func FuzzDecodeWrites(f *testing.F) {
	f.Add(EncodeWrites(nil))
	f.Add(EncodeWrites([]Write{
		{Op: OpPut, Path: [][]byte{[]byte("a"), []byte("n")}, Key: []byte("k"), Value: []byte("v")},
		{Op: OpPut, Path: [][]byte{[]byte("a")}, Key: []byte("empty")},
		{Op: OpDelete, Path: [][]byte{[]byte("b")}, Key: []byte("k")},
		{Op: OpDeleteBucket, Path: [][]byte{[]byte("a"), []byte("n")}},
		{Op: OpSequence, Path: [][]byte{[]byte("a")}, Seq: 1 << 40},
		{Op: OpCreateBucket, Path: [][]byte{[]byte("c"), []byte("d")}},
		{Op: OpAppend, Path: [][]byte{[]byte("ids")}, Key: []byte("m1"), Value: []byte("tail")},
	}))
	f.Add([]byte{1, 1, 9, 1, 1, 'a'})
	f.Add([]byte{1, 200})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, err := DecodeWrites(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "faclog: writes: ") {
				t.Fatalf("error %q does not say it is the writes", err)
			}
			return
		}
		// Lengths may be written in more bytes than they need, so the encoding of what was
		// read need not be the same bytes; what it reads as must be the same writes.
		enc := EncodeWrites(ws)
		if len(enc) != encodedLen(ws) {
			t.Fatalf("%+v encodes in %d bytes, told as %d", ws, len(enc), encodedLen(ws))
		}
		again, err := DecodeWrites(enc)
		if err != nil || fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", ws) {
			t.Fatalf("%x decodes to %+v, which encodes to what decodes to %+v, %v", data, ws, again, err)
		}
		for i, w := range ws {
			if len(w.Path) == 0 || (w.Op == OpPut || w.Op == OpDelete || w.Op == OpAppend) && len(w.Key) == 0 {
				t.Fatalf("write %d of %x has no place: %+v", i, data, w)
			}
		}
	})
}

// BenchmarkEncodeWrites encodes a status group commit's writes as its calls make them, before
// Coalesce joins the additions: 30 calls, each a device report, a high-water mark, an item
// record's append and an id.
func BenchmarkEncodeWrites(b *testing.B) {
	var ws []Write
	for i := range 30 {
		t := []byte(fmt.Sprintf("terminal-%04d", i))
		ws = append(ws,
			Write{Op: OpPut, Path: [][]byte{[]byte("devices")}, Key: t, Value: []byte(strings.Repeat("s", 180))},
			Write{Op: OpPut, Path: [][]byte{[]byte("dedupe")}, Key: append(t, "/epoch-1"...), Value: []byte("12345678")},
			Write{Op: OpAppend, Path: [][]byte{[]byte("items")}, Key: []byte("block-7"), Value: []byte(strings.Repeat("i", 300))},
			Write{Op: OpAppend, Path: [][]byte{[]byte("own"), []byte("fac_ids"), []byte("north")}, Key: []byte("rec-3"), Value: []byte(strings.Repeat("d", 40))})
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(EncodeWrites(ws)) == 0 {
			b.Fatal("empty")
		}
	}
}
