package content

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 5*ChunkSize + 77} {
		data := randomBytes(n, uint64(n))
		m, err := Build(bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		enc := m.Encode()
		got, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got.Object != m.Object || got.Size != int64(n) || len(got.Chunks) != ChunkCount(int64(n)) || !bytes.Equal(got.Encode(), enc) {
			t.Fatalf("%d bytes: round trip changed the manifest", n)
		}
		for i, c := range got.Chunks {
			lo := i * ChunkSize
			if c != Sum(data[lo:lo+ChunkLen(int64(n), i)]) {
				t.Fatalf("%d bytes: chunk %d digest wrong", n, i)
			}
		}
	}
}

// Each way a manifest can be malformed is refused with ErrBadManifest and words naming it.
func TestManifestRefusals(t *testing.T) {
	m, _ := Build(bytes.NewReader(randomBytes(2*ChunkSize+5, 9)), nil)
	good := m.Encode()
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":          {nil, "shorter than its"},
		"magic":          {edit(func(b []byte) []byte { b[3] = '2'; return b }), "does not start with"},
		"chunk size":     {edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[44:], 1<<20); return b }), "chunk size"},
		"count":          {edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[48:], 2); return b }), "chunks listed"},
		"size":           {edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[36:], 1<<40); return b }), "object size"},
		"trailing":       {append(bytes.Clone(good), 0), "bytes of chunk digests"},
		"truncated":      {good[:len(good)-1], "bytes of chunk digests"},
		"zero object":    {edit(func(b []byte) []byte { clear(b[4:36]); return b }), "all zeros"},
		"too big":        {make([]byte, MaxManifestBytes+1), "limit"},
		"size 0 chunk 1": {edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[36:], 0); return b }), "chunks listed"},
	}
	for name, c := range cases {
		_, err := DecodeManifest(c.b)
		if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadManifest saying %q", name, err, c.want)
		}
	}
}

func TestParseHash(t *testing.T) {
	h := Sum([]byte("x"))
	if got, err := ParseHash(h.String()); err != nil || got != h {
		t.Fatalf("ParseHash(%s) = %s, %v", h, got, err)
	}
	for _, bad := range []string{"", h.String()[:63], strings.ToUpper(h.String()), h.String()[:63] + "g"} {
		if _, err := ParseHash(bad); !errors.Is(err, ErrBadHash) {
			t.Errorf("ParseHash(%q): %v, want ErrBadHash", bad, err)
		}
	}
}

// FuzzDecodeManifest: the decoder never panics, and what it accepts is canonical: encoding it
// again gives the same bytes, so one object has one manifest digest.
func FuzzDecodeManifest(f *testing.F) {
	for _, n := range []int{0, 10, ChunkSize, 3*ChunkSize + 1} {
		m, _ := Build(bytes.NewReader(randomBytes(n, 1)), nil)
		f.Add(m.Encode())
	}
	f.Add([]byte("TCM1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not match ErrBadManifest", err)
			}
			return
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("accepted a manifest that does not encode back to itself")
		}
		if len(m.Chunks) != ChunkCount(m.Size) || m.Size > MaxObjectBytes {
			t.Fatalf("accepted %d chunks for %d bytes", len(m.Chunks), m.Size)
		}
	})
}
