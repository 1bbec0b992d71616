package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/tether-kiosk/tether/kiosk/content"
)

// A chunk frame is almost all base64: through encoding/json a 256 KiB chunk is scanned four
// times to write and five to read (the envelope validated and compacted, the body validated and
// decoded, the string unquoted), which made JSON, not the link or the disk, the cost of
// delivery. AppendChunkFrame writes the frame Encode writes, byte for byte, in one pass;
// decodeChunkFast reads exactly that form in one pass and leaves anything else, valid or not,
// to decodeFrameStd, so what is accepted and every error text stay encoding/json's
// (FuzzChunkDecoderSame holds the two to it).

const (
	chunkHead  = `{"type":"chunk","body":{"sha256":"`
	chunkIndex = `","index":`
	chunkData  = `,"data":"`
	chunkTail  = `"}}`
)

// AppendChunkFrame appends to dst the chunk frame wire.Encode(c) writes, after checking c as
// a decoder would.
func AppendChunkFrame(dst []byte, c Chunk) ([]byte, error) {
	if err := c.validate(); err != nil {
		return dst, fmt.Errorf("encode chunk frame: %w", err)
	}
	dst = append(dst, chunkHead...)
	dst = hex.AppendEncode(dst, c.Object[:])
	dst = append(dst, chunkIndex...)
	dst = strconv.AppendUint(dst, uint64(c.Index), 10)
	dst = append(dst, chunkData...)
	dst = base64.StdEncoding.AppendEncode(dst, c.Data)
	return append(dst, chunkTail...), nil
}

// ChunkFrameLen is the length of the frame AppendChunkFrame writes for n bytes of data at most
// (the index written in full), for sizing a buffer once.
func ChunkFrameLen(n int) int {
	return len(chunkHead) + 2*len(content.Hash{}) + len(chunkIndex) + 10 + len(chunkData) +
		base64.StdEncoding.EncodedLen(n) + len(chunkTail)
}

// decodeChunkFast decodes a chunk frame written as AppendChunkFrame writes it; ok is false
// for anything else, which the caller hands to decodeFrameStd.
func decodeChunkFast(b []byte) (Frame, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(chunkHead))
	if !ok || len(rest) < 2*len(content.Hash{}) {
		return Frame{}, false
	}
	obj, err := content.ParseHash(string(rest[:2*len(content.Hash{})]))
	if err != nil {
		return Frame{}, false
	}
	if rest, ok = bytes.CutPrefix(rest[2*len(content.Hash{}):], []byte(chunkIndex)); !ok {
		return Frame{}, false
	}
	// The index as strconv writes it: digits, no sign, no leading zero, no exponent.
	n := 0
	for n < len(rest) && n < 6 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n == 6 || (n > 1 && rest[0] == '0') {
		return Frame{}, false
	}
	index, err := strconv.ParseUint(string(rest[:n]), 10, 32)
	if err != nil {
		return Frame{}, false
	}
	if rest, ok = bytes.CutPrefix(rest[n:], []byte(chunkData)); !ok {
		return Frame{}, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || !bytes.Equal(rest[end:], []byte(chunkTail)) {
		return Frame{}, false
	}
	text := rest[:end]
	// base64 refuses every byte outside its alphabet but line breaks, which it skips and JSON
	// would refuse; an escape must be unquoted first. Those go the long way.
	if bytes.IndexByte(text, '\\') >= 0 || bytes.IndexByte(text, '\n') >= 0 || bytes.IndexByte(text, '\r') >= 0 {
		return Frame{}, false
	}
	data := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	m, err := base64.StdEncoding.Decode(data, text)
	if err != nil {
		return Frame{}, false
	}
	c := &Chunk{Object: obj, Index: uint32(index), Data: data[:m]}
	if c.validate() != nil {
		return Frame{}, false
	}
	return Frame{Type: TypeChunk, Chunk: c}, true
}
