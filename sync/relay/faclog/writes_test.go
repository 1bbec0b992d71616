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
		again, err := DecodeWrites(EncodeWrites(ws))
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
