package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/content"
)

func chunkSamples() []Chunk {
	full := benchChunkFrame()
	return []Chunk{
		full,
		{Object: full.Object, Index: 0, Data: []byte{0}},
		{Object: full.Object, Index: 8191, Data: []byte{0xff, 0xfe}},
		{Object: content.Sum([]byte("x")), Index: 10, Data: []byte("tether photo 001")},
	}
}

// The one-pass writer writes what Encode writes, byte for byte, and the one-pass reader reads
// it back as encoding/json does.
func TestChunkFrameIsWireEncoding(t *testing.T) {
	for _, c := range chunkSamples() {
		want, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendChunkFrame(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("index %d: AppendChunkFrame differs from Encode:\n%.200s\n%.200s", c.Index, got, want)
		}
		if len(got) > ChunkFrameLen(len(c.Data)) {
			t.Fatalf("frame of %d bytes, ChunkFrameLen says %d", len(got), ChunkFrameLen(len(c.Data)))
		}
		f, ok := decodeChunkFast(got)
		if !ok {
			t.Fatalf("index %d: the fast decoder left its own encoding", c.Index)
		}
		std, err := decodeFrameStd(got)
		if err != nil || !sameChunk(f.Chunk, std.Chunk) {
			t.Fatalf("index %d: fast and standard decoders differ (%v)", c.Index, err)
		}
	}
	if _, err := AppendChunkFrame(nil, Chunk{Object: content.Sum(nil), Data: nil}); err == nil || !strings.Contains(err.Error(), "data is 0 bytes") {
		t.Fatalf("an empty chunk encoded: %v", err)
	}
}

func sameChunk(a, b *Chunk) bool {
	return a != nil && b != nil && a.Object == b.Object && a.Index == b.Index && bytes.Equal(a.Data, b.Data)
}

// FuzzChunkDecoderSame: whatever the fast chunk decoder accepts, encoding/json accepts with the
// same value; and DecodeFrame (which tries the fast one first) accepts and refuses exactly what
// the standard decoder does.
func FuzzChunkDecoderSame(f *testing.F) {
	for _, c := range chunkSamples()[1:] {
		b, _ := AppendChunkFrame(nil, c)
		f.Add(b)
	}
	small, _ := AppendChunkFrame(nil, chunkSamples()[3])
	for _, edit := range [][2]string{
		{`"index":10`, `"index":010`}, {`"index":10`, `"index":1e1`}, {`"index":10`, `"index":-10`},
		{`"data":"`, `"data":"\/`}, {`ZXRoZXI`, "ZXRo\nZXI"}, {`"}}`, `"} }`}, {`"}}`, `"}}x`},
		{`"sha256":"2d`, `"sha256":"2D`}, {`{"type"`, ` {"type"`}, {`"data":"`, `"data":"=`},
	} {
		f.Add(bytes.Replace(small, []byte(edit[0]), []byte(edit[1]), 1))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeChunkFast(b)
		std, err := decodeFrameStd(b)
		if ok {
			if err != nil {
				t.Fatalf("fast decoder accepted what encoding/json refuses: %v\n%q", err, b)
			}
			if !sameChunk(fast.Chunk, std.Chunk) {
				t.Fatalf("decoders differ on %q", b)
			}
		}
		got, gerr := DecodeFrame(b)
		if (gerr == nil) != (err == nil) || (err != nil && gerr.Error() != err.Error()) {
			t.Fatalf("DecodeFrame %v, standard %v", gerr, err)
		}
		if err == nil && std.Chunk != nil && !sameChunk(got.Chunk, std.Chunk) {
			t.Fatalf("DecodeFrame's chunk differs on %q", b)
		}
	})
}

// BenchmarkAppendChunkFrame: one full chunk frame, written in one pass (next to
// BenchmarkEncodeChunk).
func BenchmarkAppendChunkFrame(b *testing.B) {
	c := benchChunkFrame()
	buf := make([]byte, 0, ChunkFrameLen(len(c.Data)))
	b.SetBytes(content.ChunkSize)
	for b.Loop() {
		var err error
		if buf, err = AppendChunkFrame(buf[:0], c); err != nil {
			b.Fatal(err)
		}
	}
}
