package relay

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/wire"
)

// readContent reads frames until a content frame arrives, passing over downlink.
func (tc *tconn) readContent() wire.Frame {
	tc.t.Helper()
	for {
		f := read(tc.t, tc.c)
		switch f.Type {
		case wire.TypeDown:
			tc.down = append(tc.down, f.Down.Items...)
		case wire.TypeContentManifest, wire.TypeChunk, wire.TypeContentMissing:
			return f
		default:
			tc.t.Fatalf("unexpected %s frame", f.Type)
		}
	}
}

// A terminal of the facility an object was put for gets its manifest and the chunks it asks
// for, in order, each matching the manifest, and no_such_chunk for an index beyond the end.
func TestContentServedInOrder(t *testing.T) {
	e := newEnv(t)
	e.seed()
	data := make([]byte, 2*content.ChunkSize+1000)
	rand.NewChaCha8([32]byte{3}).Read(data)
	ref, err := e.r.PutContent(bytes.NewReader(data), "north")
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []*term{e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeTablet, "A1")} {
		tc := tm.connect(t, 0)
		send(t, tc.c, wire.ContentWant{Object: ref.Object, Manifest: true, Chunks: []uint32{0, 2, 5}})
		f := tc.readContent()
		if f.ContentManifest == nil || content.Sum(f.ContentManifest.Manifest) != ref.Manifest {
			t.Fatalf("%s: first answer %s, want the manifest of the reference", tm.mode, f.Type)
		}
		m, _ := content.DecodeManifest(f.ContentManifest.Manifest)
		for _, i := range []uint32{0, 2} {
			f := tc.readContent()
			if f.Chunk == nil || f.Chunk.Index != i || content.Sum(f.Chunk.Data) != m.Chunks[i] {
				t.Fatalf("%s: answer %s, want chunk %d matching the manifest", tm.mode, f.Type, i)
			}
		}
		if f := tc.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNoSuchChunk {
			t.Fatalf("%s: after the last chunk %s, want content_missing no_such_chunk", tm.mode, f.Type)
		}
	}
}

// Another facility's terminal, or a guessed hash, gets not_yours and no byte of the object;
// a terminal that sends a chunk is closed: content frames go one way.
func TestContentNotYours(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ref, err := e.r.PutContent(bytes.NewReader([]byte("a photo for north")), "north")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	south := e.enrollAt("south", wire.ModeKiosk, "")
	tc := south.connect(t, 0)
	for _, obj := range []content.Hash{ref.Object, content.Sum([]byte("guessed"))} {
		send(t, tc.c, wire.ContentWant{Object: obj, Manifest: true, Chunks: []uint32{0}})
		if f := tc.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNotYours || f.ContentMissing.Object != obj {
			t.Fatalf("want from another facility answered %s, want content_missing not_yours", f.Type)
		}
	}
	send(t, tc.c, wire.Chunk{Object: ref.Object, Index: 0, Data: []byte("x")})
	expectClose(t, tc.c, websocket.StatusPolicyViolation, wire.ReasonUnexpected)
}
