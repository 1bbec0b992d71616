package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/content"
)

const contentGoldenDir = "testdata/content"

// goldenObject is the object of the content examples: one full chunk of the bytes 0..255
// repeated, then the 16 bytes "tether photo 001", so its last chunk is small enough to show.
func goldenObject() ([]byte, *content.Manifest) {
	b := make([]byte, content.ChunkSize, content.ChunkSize+16)
	for i := range b {
		b[i] = byte(i)
	}
	b = append(b, "tether photo 001"...)
	m, err := content.Build(bytes.NewReader(b), nil)
	if err != nil {
		panic(err)
	}
	return b, m
}

func goldenContentFrames() map[string]any {
	b, m := goldenObject()
	return map[string]any{
		"frame_content_want.json":     ContentWant{Object: m.Object, Manifest: true, Chunks: []uint32{0, 1}},
		"frame_content_manifest.json": ContentManifest{Object: m.Object, Manifest: m.Encode()},
		"frame_chunk.json":            Chunk{Object: m.Object, Index: 1, Data: b[content.ChunkSize:]},
		"frame_content_missing.json":  ContentMissing{Object: m.Object, Reason: ContentNotHeld},
	}
}

// The content frames are what testdata/content holds, byte for byte once indented, and each
// golden file decodes to the value it was made from.
func TestGoldenContentFrames(t *testing.T) {
	frames := goldenContentFrames()
	for name, msg := range frames {
		enc, err := Encode(msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want bytes.Buffer
		json.Indent(&want, enc, "", "  ")
		want.WriteByte('\n')
		path := filepath.Join(contentGoldenDir, name)
		if *update {
			if err := os.MkdirAll(contentGoldenDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./sync/wire -run Golden -update)", err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: encodes otherwise than the golden file:\n got %s\nwant %s", name, want.Bytes(), got)
		}
		f, err := DecodeFrame(got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, _ := Encode(contentMsg(f))
		if !bytes.Equal(again, enc) {
			t.Errorf("%s: decodes to another value", name)
		}
	}
	entries, err := os.ReadDir(contentGoldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := frames[e.Name()]; !ok {
			t.Errorf("%s: golden file without a test", e.Name())
		}
	}
}

// A 256 KiB chunk, base64 in JSON, fits one frame: the reason for the chunk size.
func TestFullChunkFitsAFrame(t *testing.T) {
	_, m := goldenObject()
	enc, err := Encode(Chunk{Object: m.Object, Index: content.MaxChunks - 1, Data: bytes.Repeat([]byte{0xff}, content.ChunkSize)})
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > MaxFrameBytes {
		t.Fatalf("a full chunk is a %d-byte frame, limit %d", len(enc), MaxFrameBytes)
	}
	big := make([]byte, content.MaxManifestBytes)
	copy(big, m.Encode()) // only the size matters here
	if n := len(`{"type":"content_manifest","body":{"sha256":"","manifest":""}}`) + 64 + (len(big)+2)/3*4; n > MaxFrameBytes {
		t.Fatalf("the largest manifest is a %d-byte frame, limit %d", n, MaxFrameBytes)
	}
}

// Each malformed content frame is refused with words naming what is wrong.
func TestContentFrameRefusals(t *testing.T) {
	b, m := goldenObject()
	obj := m.Object.String()
	other := content.Sum([]byte("x")).String()
	man, _ := json.Marshal(m.Encode())
	chunk, _ := json.Marshal(b[:content.ChunkSize+1])
	cases := map[string]struct{ frame, want string }{
		"want nothing":        {`{"type":"content_want","body":{"sha256":"` + obj + `"}}`, "neither the manifest nor a chunk"},
		"want no object":      {`{"type":"content_want","body":{"manifest":true}}`, "sha256 is missing"},
		"want upper hex":      {`{"type":"content_want","body":{"sha256":"` + strings.ToUpper(obj) + `","manifest":true}}`, "not a sha256 digest"},
		"want short hex":      {`{"type":"content_want","body":{"sha256":"abc","manifest":true}}`, "not a sha256 digest"},
		"want too many":       {`{"type":"content_want","body":{"sha256":"` + obj + `","chunks":[0,1,2,3,4,5,6,7,8]}}`, "asks for 9 chunks"},
		"want disorder":       {`{"type":"content_want","body":{"sha256":"` + obj + `","chunks":[2,1]}}`, "not in increasing order"},
		"want repeat":         {`{"type":"content_want","body":{"sha256":"` + obj + `","chunks":[1,1]}}`, "not in increasing order"},
		"want beyond":         {`{"type":"content_want","body":{"sha256":"` + obj + `","chunks":[8192]}}`, "beyond the largest object"},
		"want negative":       {`{"type":"content_want","body":{"sha256":"` + obj + `","chunks":[-1]}}`, "cannot unmarshal"},
		"manifest of another": {`{"type":"content_manifest","body":{"sha256":"` + other + `","manifest":` + string(man) + `}}`, "manifest is of object"},
		"manifest malformed":  {`{"type":"content_manifest","body":{"sha256":"` + obj + `","manifest":"VENNMQ=="}}`, "malformed manifest"},
		"chunk empty":         {`{"type":"chunk","body":{"sha256":"` + obj + `","index":0,"data":""}}`, "data is 0 bytes"},
		"chunk too big":       {`{"type":"chunk","body":{"sha256":"` + obj + `","index":0,"data":` + string(chunk) + `}}`, "data is 262145 bytes"},
		"chunk beyond":        {`{"type":"chunk","body":{"sha256":"` + obj + `","index":9000,"data":"AA=="}}`, "index 9000"},
		"missing no reason":   {`{"type":"content_missing","body":{"sha256":"` + obj + `"}}`, "reason is missing"},
	}
	for name, c := range cases {
		_, err := DecodeFrame([]byte(c.frame))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
}

// FuzzDecodeContentFrame: a content frame that decodes encodes again to a frame that decodes
// to the same value, and holds only what validate allows.
func FuzzDecodeContentFrame(f *testing.F) {
	for _, msg := range goldenContentFrames() {
		b, _ := Encode(msg)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"content_want","body":{"sha256":"","chunks":[1,0]}}`))
	f.Add([]byte(`{"type":"chunk","body":{"sha256":"00","index":1,"data":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		msg := contentMsg(fr)
		if msg == nil {
			return // another frame type: FuzzDecodeFrame's
		}
		enc, err := Encode(msg)
		if err != nil {
			t.Fatalf("re-encode %s: %v", fr.Type, err)
		}
		fr2, err := DecodeFrame(enc)
		if err != nil {
			t.Fatalf("re-decode %s: %v", fr.Type, err)
		}
		if enc2, _ := Encode(contentMsg(fr2)); !bytes.Equal(enc, enc2) {
			t.Fatalf("%s changed on a round trip", fr.Type)
		}
		if c := fr.Chunk; c != nil && (len(c.Data) == 0 || len(c.Data) > content.ChunkSize) {
			t.Fatalf("accepted a %d-byte chunk", len(c.Data))
		}
		if m := fr.ContentManifest; m != nil {
			if dm, err := content.DecodeManifest(m.Manifest); err != nil || dm.Object != m.Object {
				t.Fatalf("accepted a manifest that does not decode to its object: %v", err)
			}
		}
	})
}
