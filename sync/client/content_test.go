package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/wire"
)

// hostileContent serves one object as a relay that must not be trusted would: serve(want)
// returns the frames to answer a want with. Every want is recorded.
type hostileContent struct {
	mu    sync.Mutex
	wants []wire.ContentWant
	// binary: chunks go as binary chunk messages (hello binary_chunks), the rest as JSON.
	binary bool
}

func (h *hostileContent) run(ctx context.Context, c *websocket.Conn, serve func(n int, w wire.ContentWant) []any) {
	c.SetReadLimit(wire.MaxFrameBytes)
	acceptAnyAuth(ctx, c)
	for {
		_, raw, err := c.Read(ctx)
		if err != nil {
			return
		}
		f, err := wire.DecodeFrame(raw)
		if err != nil || f.ContentWant == nil {
			continue // batches and down_acks: not this test's business
		}
		h.mu.Lock()
		h.wants = append(h.wants, *f.ContentWant)
		n := len(h.wants)
		h.mu.Unlock()
		for _, msg := range serve(n, *f.ContentWant) {
			if ch, ok := msg.(wire.Chunk); ok && h.binary {
				b, _ := wire.AppendBinaryChunk(nil, ch)
				c.Write(ctx, websocket.MessageBinary, b)
				continue
			}
			b, _ := wire.Encode(msg)
			c.Write(ctx, websocket.MessageText, b)
		}
	}
}

func (h *hostileContent) seen() []wire.ContentWant {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.wants)
}

func contentObject(t *testing.T) ([]byte, *content.Manifest) {
	data := make([]byte, 2*content.ChunkSize+500)
	rand.NewChaCha8([32]byte{9}).Read(data)
	m, err := content.Build(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return data, m
}

func chunkOf(data []byte, i uint32) []byte {
	lo := int(i) * content.ChunkSize
	return data[lo:min(lo+content.ChunkSize, len(data))]
}

// A chunk whose bytes are not the manifest's is never stored: the terminal asks again for
// that chunk alone, and the object becomes usable only when the right bytes came; in a JSON
// frame or in a binary chunk message alike.
func TestForgedChunkIsAskedForAgain(t *testing.T) {
	t.Run("json", func(t *testing.T) { forgedChunkIsAskedForAgain(t, false) })
	t.Run("binary", func(t *testing.T) { forgedChunkIsAskedForAgain(t, true) })
}

func forgedChunkIsAskedForAgain(t *testing.T, binary bool) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	data, m := contentObject(t)
	ref := m.Ref()
	h := hostileContent{binary: binary}
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		h.run(ctx, c, func(n int, w wire.ContentWant) []any {
			var out []any
			if w.Manifest {
				out = append(out, wire.ContentManifest{Object: ref.Object, Manifest: m.Encode()})
			}
			for _, i := range w.Chunks {
				b := bytes.Clone(chunkOf(data, i))
				if i == 1 && n == 1 { // the first time chunk 1 is asked for, it comes forged
					b[7] ^= 0x40
				}
				out = append(out, wire.Chunk{Object: ref.Object, Index: i, Data: b})
			}
			return out
		})
	}
	if err := store.Retain(ref, "msg:1", false); err != nil {
		t.Fatal(err)
	}
	runEngine(t, term, dir, func(c *Config) { c.Content = store })
	testwait.UntilSaw(t, "the object to arrive", func() (bool, string) {
		st, _ := store.State(ref.Object)
		return st == content.Whole, st.String()
	})
	r, err := store.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("object differs from what was served")
	}
	wants := h.seen()
	if len(wants) != 2 || !wants[0].Manifest || !slices.Equal(wants[0].Chunks, []uint32{0, 1, 2}) || !slices.Equal(wants[1].Chunks, []uint32{1}) {
		t.Fatalf("wants %+v: want the manifest with chunks 0 1 2, then chunk 1 alone", wants)
	}
}

// A manifest that is not the reference's is refused before any chunk is asked for, and nothing
// of the object is kept.
func TestManifestNotTheReferencesIsRefused(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, m := contentObject(t)
	ref := m.Ref()
	other, _ := content.Build(strings.NewReader("another object altogether"), nil)
	var h hostileContent
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		h.run(ctx, c, func(int, wire.ContentWant) []any {
			// Its own object's manifest, relabelled: the frame is well formed, the digest is not
			// the reference's.
			lie := *other
			lie.Object = ref.Object
			return []any{wire.ContentManifest{Object: ref.Object, Manifest: lie.Encode()}}
		})
	}
	var logs strings.Builder
	var mu sync.Mutex
	if err := store.Retain(ref, "msg:1", false); err != nil {
		t.Fatal(err)
	}
	runEngine(t, term, dir, func(c *Config) {
		c.Content = store
		c.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			logs.WriteString(strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
		}
	})
	testwait.UntilSaw(t, "the manifest to be refused", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "manifest refused"), logs.String()
	})
	if st, _ := store.State(ref.Object); st != content.Absent {
		t.Fatalf("state after a refused manifest: %v", st)
	}
	if wants := h.seen(); len(wants) != 1 {
		t.Fatalf("wants %+v: after the manifest was refused nothing more is asked for", wants)
	}
	if n, _ := store.Stats(); n.Objects != 0 {
		t.Fatalf("store holds %+v after a refused manifest", n)
	}
}

// An object the relay does not hold yet is asked for again on the same connection after
// contentRetry, and arrives then.
func TestNotHeldIsAskedForAgainLater(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	data, m := contentObject(t)
	ref := m.Ref()
	var h hostileContent
	var mu sync.Mutex
	connections := 0
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		mu.Lock()
		connections++
		mu.Unlock()
		h.run(ctx, c, func(n int, w wire.ContentWant) []any {
			if n == 1 {
				return []any{wire.ContentMissing{Object: ref.Object, Reason: wire.ContentNotHeld}}
			}
			var out []any
			if w.Manifest {
				out = append(out, wire.ContentManifest{Object: ref.Object, Manifest: m.Encode()})
			}
			for _, i := range w.Chunks {
				out = append(out, wire.Chunk{Object: ref.Object, Index: i, Data: chunkOf(data, i)})
			}
			return out
		})
	}
	if err := store.Retain(ref, "msg:1", false); err != nil {
		t.Fatal(err)
	}
	eng := runEngine(t, term, dir, func(c *Config) { c.Content = store })
	testwait.UntilSaw(t, "the first answer", func() (bool, string) { return len(h.seen()) == 1, fmt.Sprint(len(h.seen())) })
	// Until the retry is due nothing more is asked.
	eng.clk.Advance(contentRetry - time.Second)
	if st, _ := store.State(ref.Object); st != content.Absent || len(h.seen()) != 1 {
		t.Fatalf("before the retry: state %v, %d wants", st, len(h.seen()))
	}
	eng.clk.Advance(time.Second)
	testwait.UntilSaw(t, "the object to arrive on the retry", func() (bool, string) {
		st, _ := store.State(ref.Object)
		return st == content.Whole, st.String()
	})
	mu.Lock()
	defer mu.Unlock()
	if connections != 1 {
		t.Fatalf("%d connections: the retry should use the open one", connections)
	}
}

// A binary message that is not a binary chunk closes the connection as malformed, naming what
// was wrong; a terminal that did not offer binary_chunks closes on any binary message, as
// every terminal before them did.
func TestBadBinaryChunkClosesLink(t *testing.T) {
	for _, c := range []struct {
		name    string
		noOffer bool
		msg     []byte
		reason  string
	}{
		{"short", false, []byte("TCC1 short"), "malformed frame: binary chunk: 10 bytes, shorter than its 40-byte header"},
		{"not offered", true, append([]byte(wire.BinaryChunkMagic), make([]byte, 40)...), wire.ReasonBinary},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeRelay(t, false)
			term, dir := enrolledPlain(t, f)
			closed := make(chan websocket.CloseError, 1)
			f.onConnect = func(ctx context.Context, conn *websocket.Conn) {
				acceptAnyAuth(ctx, conn)
				conn.Write(ctx, websocket.MessageBinary, c.msg)
				var err error
				for err == nil {
					_, _, err = conn.Read(ctx) // until the close frame
				}
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					select {
					case closed <- ce:
					default:
					}
				}
			}
			runEngine(t, term, dir, func(cfg *Config) { cfg.NoBinaryChunks = c.noOffer })
			if ce := <-closed; ce.Code != websocket.StatusPolicyViolation || ce.Reason != c.reason {
				t.Fatalf("terminal closed with %d %q, want 1008 %q", ce.Code, ce.Reason, c.reason)
			}
		})
	}
}
