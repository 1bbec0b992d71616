package wire

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/content"
)

// binaryChunkVector is docs/PROTOCOL.md's test vector: chunk 1 of the golden object (the 16
// bytes "tether photo 001").
const binaryChunkVector = "54434331" +
	"a82ee23ad027d808ef9a3be7e08826224ece8de90e35c0ebab7dca7b34f90723" +
	"00000001" +
	"7465746865722070686f746f20303031"

// The binary chunk of the golden object's last chunk is the documented vector, and decodes to
// the chunk the JSON frame of the same example carries.
func TestBinaryChunkVector(t *testing.T) {
	b, m := goldenObject()
	c := Chunk{Object: m.Object, Index: 1, Data: b[content.ChunkSize:]}
	got, err := AppendBinaryChunk(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != binaryChunkVector {
		t.Fatalf("binary chunk = %x, the documented vector is %s", got, binaryChunkVector)
	}
	raw, _ := hex.DecodeString(binaryChunkVector)
	back, err := DecodeBinaryChunk(raw)
	if err != nil {
		t.Fatal(err)
	}
	json, err := DecodeFrame(mustReadGolden(t, "frame_chunk.json"))
	if err != nil {
		t.Fatal(err)
	}
	if back.Object != json.Chunk.Object || back.Index != json.Chunk.Index || !bytes.Equal(back.Data, json.Chunk.Data) {
		t.Errorf("binary vector decodes to %+v, the JSON frame to %+v", back, *json.Chunk)
	}
	// A full chunk: 256 KiB of data and the header, nothing more.
	full, err := AppendBinaryChunk(nil, Chunk{Object: m.Object, Index: 0, Data: b[:content.ChunkSize]})
	if err != nil || len(full) != BinaryChunkHeader+content.ChunkSize {
		t.Fatalf("full chunk: %d bytes, %v", len(full), err)
	}
}

func mustReadGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contentGoldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every malformed binary chunk is refused with an error naming what is wrong, and a chunk
// that does not check is not encoded.
func TestBinaryChunkRefusals(t *testing.T) {
	raw, _ := hex.DecodeString(binaryChunkVector)
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	cases := []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, "shorter than its 40-byte header"},
		{"header only", raw[:BinaryChunkHeader], "data is 0 bytes"},
		{"other magic", with(func(b []byte) []byte { b[3] = '2'; return b }), `magic "TCC2"`},
		{"zero object", with(func(b []byte) []byte { clear(b[4:36]); return b }), "sha256 is missing"},
		{"index too high", with(func(b []byte) []byte { b[36] = 1; return b }), "beyond the largest object"},
		{"too much data", append(append([]byte(nil), raw[:BinaryChunkHeader]...), make([]byte, content.ChunkSize+1)...), "want 1 to 262144"},
	}
	for _, c := range cases {
		_, err := DecodeBinaryChunk(c.msg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	if _, err := AppendBinaryChunk(nil, Chunk{Index: 1, Data: []byte("x")}); err == nil {
		t.Error("a chunk without its object was encoded")
	}
}

// FuzzDecodeBinaryChunk: any bytes either are refused or decode to a chunk that encodes back
// to the same bytes (one message per chunk, nothing ignored).
func FuzzDecodeBinaryChunk(f *testing.F) {
	raw, _ := hex.DecodeString(binaryChunkVector)
	f.Add(raw)
	f.Add(raw[:BinaryChunkHeader])
	f.Add([]byte("TCC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeBinaryChunk(b)
		if err != nil {
			return
		}
		again, err := AppendBinaryChunk(nil, c)
		if err != nil {
			t.Fatalf("decoded chunk does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode then encode: %x, was %x", again, b)
		}
	})
}
