package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// A binary chunk message (docs/PROTOCOL.md, "Binary chunks") carries one chunk in a websocket
// binary message: a 40-byte fixed header and the chunk's bytes as they are. A JSON chunk frame
// is base64 (a third more bytes), and a connection that negotiated permessage-deflate
// compresses and inflates all of it on both sides, for content (JPEG, MP3, PDF) that is
// already compressed: the format, not the store or the link, was the cost of delivery. A
// relay sends chunks this way only to a terminal whose hello set binary_chunks; every other
// frame stays a JSON text message.

// BinaryChunkMagic opens every binary chunk message: the format and its version.
const BinaryChunkMagic = "TCC1"

// BinaryChunkHeader is the length of the fixed header: magic, object sha256, index.
const BinaryChunkHeader = 4 + 32 + 4

// AppendBinaryChunk appends to dst the binary chunk message of c, after checking c as
// DecodeBinaryChunk would.
func AppendBinaryChunk(dst []byte, c Chunk) ([]byte, error) {
	if err := c.validate(); err != nil {
		return dst, fmt.Errorf("encode binary chunk: %w", err)
	}
	dst = append(dst, BinaryChunkMagic...)
	dst = append(dst, c.Object[:]...)
	dst = binary.BigEndian.AppendUint32(dst, c.Index)
	return append(dst, c.Data...), nil
}

// DecodeBinaryChunk reads a binary chunk message. The chunk's Data is a slice of b, not a
// copy. The error says what is wrong: a short message, another magic, an all-zero object, an
// index beyond the largest object, no data or more than a chunk's size.
func DecodeBinaryChunk(b []byte) (Chunk, error) {
	if len(b) < BinaryChunkHeader {
		return Chunk{}, fmt.Errorf("binary chunk: %d bytes, shorter than its %d-byte header", len(b), BinaryChunkHeader)
	}
	if !bytes.Equal(b[:4], []byte(BinaryChunkMagic)) {
		return Chunk{}, fmt.Errorf("binary chunk: magic %q, want %q", b[:4], BinaryChunkMagic)
	}
	var c Chunk
	copy(c.Object[:], b[4:36])
	c.Index = binary.BigEndian.Uint32(b[36:40])
	c.Data = b[BinaryChunkHeader:]
	if err := c.validate(); err != nil {
		return Chunk{}, fmt.Errorf("binary chunk: %w", err)
	}
	return c, nil
}
