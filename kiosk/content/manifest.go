// Package content is the terminal's content-addressed object store: photos, and later music,
// lessons and other large objects, held once per sha256 and received in chunks that each fit
// one sync frame. A partly received object keeps its verified chunks across a restart and asks
// only for the missing ones; nothing is usable before every chunk and the whole object have
// been checked against their sha256. docs/PROTOCOL.md ("Content") is the wire side of it.
//
// Objects live in their own bbolt file (File), not in the terminal's store: the store is the
// ledger of money and letters, and media would make its backups, its compaction and its
// single write lock pay for megabytes that can always be fetched again.
package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// ChunkSize is the size of every chunk but an object's last. 256 KiB: a chunk travels base64
// in one JSON frame (349,528 bytes plus a small envelope), well inside the frame limit
// (sync/wire MaxFrameBytes, 1 MiB + 64 KiB), so a frame never carries a partial chunk; a
// frame cut mid-way wastes at most one chunk; a 1 MB photo is four chunks; and the buffers a
// reader or writer holds stay a quarter of a megabyte. It equals wire.MaxItemBytes, the largest
// body a terminal already handles in one piece.
const ChunkSize = 256 << 10

// MaxObjectBytes bounds an object: 2 GiB, 8192 chunks. Its manifest (MaxManifestBytes) then
// still fits one frame base64-encoded.
const MaxObjectBytes = int64(MaxChunks) * ChunkSize

// MaxChunks bounds the chunks of one object.
const MaxChunks = 8192

// manifestMagic opens every manifest; the digit is the format version.
const manifestMagic = "TCM1"

// manifestHeader is magic (4), object sha256 (32), size (8), chunk size (4), chunk count (4).
const manifestHeader = 4 + 32 + 8 + 4 + 4

// MaxManifestBytes is the size of the manifest of the largest object.
const MaxManifestBytes = manifestHeader + MaxChunks*sha256.Size

// Hash is a sha256 digest: of an object, of a chunk, or of a manifest.
type Hash [sha256.Size]byte

// Sum is the sha256 of b.
func Sum(b []byte) Hash { return sha256.Sum256(b) }

// String is the digest in lower-case hex, the form used on the wire and in logs.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports the zero digest, which no reference may carry.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText writes the hex form, so a Hash is a JSON string.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads the hex form (ParseHash).
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ErrBadHash is wrapped by ParseHash's errors.
var ErrBadHash = errors.New("not a sha256 digest")

// ParseHash reads 64 lower-case hex digits. Upper case is refused so that each digest has one
// spelling: it is used as a key and compared as text by peers.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*sha256.Size {
		return h, fmt.Errorf("%w: %d characters, want %d", ErrBadHash, len(s), 2*sha256.Size)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return h, fmt.Errorf("%w: character %d is not a lower-case hex digit", ErrBadHash, i)
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// Ref is how a record (a letter's photo, a catalog item) names an object: the object's sha256,
// the sha256 of its manifest (so the manifest is checked before any chunk is asked for), and
// its size (so room is made before it arrives).
type Ref struct {
	Object   Hash  `json:"sha256"`
	Manifest Hash  `json:"manifest"`
	Size     int64 `json:"size"`
}

// Check refuses a reference no object can match.
func (r Ref) Check() error {
	if r.Object.IsZero() || r.Manifest.IsZero() {
		return fmt.Errorf("content reference: %w", ErrBadRef)
	}
	if r.Size < 0 || r.Size > MaxObjectBytes {
		return fmt.Errorf("content reference: size %d outside 0..%d: %w", r.Size, MaxObjectBytes, ErrBadRef)
	}
	return nil
}

// ParseRef is the reference a record names in text (a letter's photo: its sha256 and its
// manifest's, in hex, and its size), checked (Check).
func ParseRef(object, manifest string, size int64) (Ref, error) {
	obj, err := ParseHash(object)
	if err != nil {
		return Ref{}, fmt.Errorf("content reference object: %w", err)
	}
	man, err := ParseHash(manifest)
	if err != nil {
		return Ref{}, fmt.Errorf("content reference manifest: %w", err)
	}
	ref := Ref{Object: obj, Manifest: man, Size: size}
	return ref, ref.Check()
}

// ErrBadRef is wrapped by Ref.Check's errors.
var ErrBadRef = errors.New("malformed content reference")

// ErrBadManifest is wrapped by every DecodeManifest error.
var ErrBadManifest = errors.New("malformed manifest")

// Manifest lists an object's chunks. Its encoding (Encode) is canonical: one object has one
// manifest, byte for byte, and Ref.Manifest is the sha256 of those bytes.
type Manifest struct {
	Object Hash   // sha256 of the whole object
	Size   int64  // bytes
	Chunks []Hash // sha256 of each chunk, in order: ChunkCount(Size) of them
}

// ChunkCount is the number of chunks of an object of size bytes.
func ChunkCount(size int64) int { return int((size + ChunkSize - 1) / ChunkSize) }

// ChunkLen is the length of chunk i of an object of size bytes.
func ChunkLen(size int64, i int) int {
	if rest := size - int64(i)*ChunkSize; rest < ChunkSize {
		return int(rest)
	}
	return ChunkSize
}

// Ref is the reference to the object this manifest describes.
func (m *Manifest) Ref() Ref { return Ref{Object: m.Object, Manifest: Sum(m.Encode()), Size: m.Size} }

// Encode writes the manifest: "TCM1", the object's sha256, its size (uint64 big endian), the
// chunk size (uint32), the chunk count (uint32), then each chunk's sha256.
func (m *Manifest) Encode() []byte {
	b := make([]byte, manifestHeader, manifestHeader+len(m.Chunks)*sha256.Size)
	copy(b, manifestMagic)
	copy(b[4:], m.Object[:])
	binary.BigEndian.PutUint64(b[36:], uint64(m.Size))
	binary.BigEndian.PutUint32(b[44:], ChunkSize)
	binary.BigEndian.PutUint32(b[48:], uint32(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c[:]...)
	}
	return b
}

// DecodeManifest reads a manifest and checks that it holds together: the magic and version,
// the chunk size of this format, a size within MaxObjectBytes, exactly as many chunk digests as
// the size needs and nothing after them. It cannot check the digests themselves: the caller
// compares the manifest's own sha256 with the reference that named it (Store.Begin does).
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestHeader {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its %d-byte header", ErrBadManifest, len(b), manifestHeader)
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadManifest, len(b), MaxManifestBytes)
	}
	if !bytes.Equal(b[:4], []byte(manifestMagic)) {
		return nil, fmt.Errorf("%w: does not start with %q", ErrBadManifest, manifestMagic)
	}
	m := &Manifest{}
	copy(m.Object[:], b[4:36])
	size := binary.BigEndian.Uint64(b[36:])
	if size > uint64(MaxObjectBytes) {
		return nil, fmt.Errorf("%w: object size %d, limit %d", ErrBadManifest, size, MaxObjectBytes)
	}
	m.Size = int64(size)
	if cs := binary.BigEndian.Uint32(b[44:]); cs != ChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d, this format uses %d", ErrBadManifest, cs, ChunkSize)
	}
	n := binary.BigEndian.Uint32(b[48:])
	if want := ChunkCount(m.Size); uint64(n) != uint64(want) {
		return nil, fmt.Errorf("%w: %d chunks listed, a %d-byte object has %d", ErrBadManifest, n, m.Size, want)
	}
	if rest := len(b) - manifestHeader; rest != int(n)*sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes of chunk digests, want %d", ErrBadManifest, rest, int(n)*sha256.Size)
	}
	if m.Object.IsZero() {
		return nil, fmt.Errorf("%w: object digest is all zeros", ErrBadManifest)
	}
	m.Chunks = make([]Hash, n)
	for i := range m.Chunks {
		copy(m.Chunks[i][:], b[manifestHeader+i*sha256.Size:])
	}
	return m, nil
}

// manifestChunk reads chunk i's digest from an encoded manifest already decoded once, without
// decoding the rest (the store reads one digest per chunk received).
func manifestChunk(b []byte, i int) (h Hash) {
	copy(h[:], b[manifestHeader+i*sha256.Size:])
	return h
}

// Build reads an object to its end and returns its manifest, holding one chunk at a time. each,
// when not nil, is called with every chunk in order (the slice is reused after it returns).
func Build(r io.Reader, each func(i int, chunk []byte) error) (*Manifest, error) {
	buf := make([]byte, ChunkSize)
	whole := sha256.New()
	m := &Manifest{}
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if m.Size+int64(n) > MaxObjectBytes {
				return nil, fmt.Errorf("object is larger than %d bytes", MaxObjectBytes)
			}
			whole.Write(buf[:n])
			m.Chunks = append(m.Chunks, Sum(buf[:n]))
			m.Size += int64(n)
			if each != nil {
				if err := each(len(m.Chunks)-1, buf[:n]); err != nil {
					return nil, err
				}
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read object: %w", err)
		}
	}
	copy(m.Object[:], whole.Sum(nil))
	return m, nil
}
