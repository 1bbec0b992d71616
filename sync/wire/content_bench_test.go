package wire

import (
	"math/rand/v2"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/content"
)

func benchChunkFrame() Chunk {
	data := make([]byte, content.ChunkSize)
	rand.NewChaCha8([32]byte{1}).Read(data)
	return Chunk{Object: content.Sum(data), Index: 17, Data: data}
}

// BenchmarkEncodeChunk: one full chunk frame, as a relay writes it.
func BenchmarkEncodeChunk(b *testing.B) {
	c := benchChunkFrame()
	b.SetBytes(content.ChunkSize)
	for b.Loop() {
		if _, err := Encode(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChunk: one full chunk frame, as a terminal reads it.
func BenchmarkDecodeChunk(b *testing.B) {
	enc, err := Encode(benchChunkFrame())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(content.ChunkSize)
	for b.Loop() {
		if _, err := DecodeFrame(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChunkStd: the same frame through encoding/json alone (what DecodeFrame did
// before the one-pass reader), for comparison in the same run.
func BenchmarkDecodeChunkStd(b *testing.B) {
	enc, err := Encode(benchChunkFrame())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(content.ChunkSize)
	for b.Loop() {
		if _, err := decodeFrameStd(enc); err != nil {
			b.Fatal(err)
		}
	}
}
