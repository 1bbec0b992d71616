package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The relay's side of content transfer (docs/PROTOCOL.md, "Content (photos and media)"): the
// objects it holds live in a ContentStore. By default that is their own bbolt file, content.db
// in DataDir, opened on first use, so a relay that serves no content never creates it; gateways
// sharing a JetStream store share one on JetStream instead (Config.Content, sync/relay/jscontent).
// Each object is held for the facilities (or the inmates) it was named to, and served only to
// their terminals.

// ContentStore is what the relay needs of its content store: objects addressed by sha256,
// chunked as kiosk/content chunks them, each held for named holders and deleted when the
// last one lets go. Every method is safe for concurrent use.
type ContentStore interface {
	// PutFor stores an object read from rd (streamed, a chunk at a time) and adds holder's
	// pinned claim on it, as one step: a concurrent Release of the object's last other holder
	// cannot delete it between the two. Putting an object already held writes no bytes again.
	PutFor(rd io.Reader, holder string) (content.Ref, error)
	// Retain adds holder's claim on the object ref names (held or not yet).
	Retain(ref content.Ref, holder string, pinned bool) error
	// Release drops holder's claim; the object goes with its last holder. Releasing a claim
	// not held is no error.
	Release(obj content.Hash, holder string) error
	// Holders lists who retains obj, and whether any of them pins it.
	Holders(obj content.Hash) (holders []string, pinned bool, err error)
	// State says whether obj's bytes are held whole.
	State(obj content.Hash) (content.State, error)
	// Manifest is obj's encoded manifest (content.ErrUnknownObject if not held).
	Manifest(obj content.Hash) ([]byte, error)
	// Chunk appends chunk i of obj to buf, checked against its manifest on the way out
	// (content.ErrNoSuchChunk past the last, content.ErrCorrupt if damaged).
	Chunk(obj content.Hash, i int, buf []byte) ([]byte, error)
	// Open reads an object held whole, each chunk checked as it is read.
	Open(obj content.Hash) (io.ReadCloser, error)
	// Stats counts what the store holds.
	Stats() (content.Stats, error)
}

// boltContent is the bbolt content store behind ContentStore: kiosk/content, as terminals use it.
type boltContent struct{ *content.Store }

func (b boltContent) PutFor(rd io.Reader, holder string) (content.Ref, error) {
	m, err := b.Put(rd)
	if err != nil {
		return content.Ref{}, err
	}
	ref := m.Ref()
	// Pinned: the relay evicts nothing (it has no cap); the holder is what entitles. One
	// process writes this file, and nothing in it releases an object it is putting.
	if err := b.Retain(ref, holder, true); err != nil {
		return content.Ref{}, err
	}
	return ref, nil
}

func (b boltContent) Open(obj content.Hash) (io.ReadCloser, error) { return b.Store.Open(obj) }

// media is the relay's own bbolt content store, opened on first use and closed with the relay.
type media struct {
	mu     sync.Mutex
	store  *content.Store
	closed bool
}

// contentStore is Config.Content, or the bbolt content store in DataDir, opened on first use.
func (r *Relay) contentStore() (ContentStore, error) {
	if r.cfg.Content != nil {
		return r.cfg.Content, nil
	}
	r.media.mu.Lock()
	defer r.media.mu.Unlock()
	if r.media.closed {
		return nil, errors.New("relay closed")
	}
	if r.media.store == nil {
		s, err := content.Open(filepath.Join(r.cfg.DataDir, content.File), content.Options{NoSync: r.cfg.NoSync})
		if err != nil {
			return nil, err
		}
		r.media.store = s
	}
	return boltContent{r.media.store}, nil
}

// closeContent closes the bbolt content store, if it was opened; called by Close. A store
// from Config.Content is its opener's to close.
func (r *Relay) closeContent() error {
	r.media.mu.Lock()
	defer r.media.mu.Unlock()
	r.media.closed = true
	if r.media.store == nil {
		return nil
	}
	err := r.media.store.Close()
	r.media.store = nil
	return err
}

// Content holders: who an object was named to.
func facilityHolder(facility string) string { return "facility:" + facility }
func inmateHolder(inmate string) string     { return "inmate:" + inmate }

// heldHolder holds the photos of a letter held for photo review: it entitles no terminal.
func heldHolder(messageID string) string { return "held:" + messageID }

// PutContent stores an object read from rd (streamed, a chunk at a time) and makes it
// available to the terminals of facility, returning the reference a downlink body carries.
// Checking what the object is (a photo: kiosk/photo) is the caller's part.
func (r *Relay) PutContent(rd io.Reader, facility string) (content.Ref, error) {
	if facility == "" {
		return content.Ref{}, errors.New("put content: facility is missing")
	}
	return r.putContent(rd, facilityHolder(facility))
}

// putContent stores an object for holder (a facility's terminals, or a letter held for review).
func (r *Relay) putContent(rd io.Reader, holder string) (content.Ref, error) {
	s, err := r.contentStore()
	if err != nil {
		return content.Ref{}, fmt.Errorf("put content: %w", err)
	}
	ref, err := s.PutFor(rd, holder)
	if err != nil {
		return content.Ref{}, fmt.Errorf("put content: %w", err)
	}
	return ref, nil
}

// entitled reports whether a terminal may fetch obj: it was named to the terminal's facility,
// or to the inmate a tablet is bound to.
func entitled(s ContentStore, obj content.Hash, t TerminalInfo) (bool, error) {
	holders, _, err := s.Holders(obj)
	if err != nil {
		return false, err
	}
	for _, h := range holders {
		if h == facilityHolder(t.FacilityID) || (t.InmateID != "" && h == inmateHolder(t.InmateID)) {
			return true, nil
		}
	}
	return false, nil
}

// contentQueue bounds the wants read on one connection and not yet answered: a terminal keeps
// one outstanding (wire.MaxWantChunks chunks), so more only make a misbehaving one wait.
const contentQueue = 4

// contentWant hands a content_want to the connection's content worker, started on the first
// one: the reader goes on reading (pongs, down_acks) while chunks are written.
func (r *Relay) contentWant(ctx context.Context, s *session, wants chan wire.ContentWant, w wire.ContentWant) chan wire.ContentWant {
	if wants == nil {
		wants = make(chan wire.ContentWant, contentQueue)
		go r.serveContent(ctx, s, wants)
	}
	select {
	case wants <- w:
	case <-ctx.Done():
	}
	return wants
}

// serveContent answers a connection's wants in order, reading one chunk at a time from the
// store as it is about to be written, into one chunk buffer and one frame buffer.
func (r *Relay) serveContent(ctx context.Context, s *session, wants <-chan wire.ContentWant) {
	buf := make([]byte, 0, content.ChunkSize)
	frame := make([]byte, 0, wire.ChunkFrameLen(content.ChunkSize))
	for {
		var w wire.ContentWant
		select {
		case <-ctx.Done():
			return
		case w = <-wants:
		}
		if err := r.answerWant(ctx, s, w, &buf, &frame); err != nil {
			if ctx.Err() == nil {
				r.fail(s.conn, "serve content to "+s.id, err)
			}
			return
		}
	}
}

func (r *Relay) answerWant(ctx context.Context, s *session, w wire.ContentWant, buf, frame *[]byte) error {
	missing := func(reason string) error {
		return r.send(ctx, s.conn, wire.ContentMissing{Object: w.Object, Reason: reason})
	}
	t, found, err := r.terminal(s.id)
	if err != nil {
		return err
	}
	if !found || t.Revoked {
		return missing(wire.ContentNotYours)
	}
	st, err := r.contentStore()
	if err != nil {
		return err
	}
	ok, err := entitled(st, w.Object, t.TerminalInfo)
	if err == nil && ok {
		err = r.recordFreeFetch(st, w.Object, t.TerminalInfo) // library media (purchase.go)
	} else if err == nil {
		ok, err = r.catalogEntitled(st, w.Object, t.TerminalInfo) // library media (purchase.go)
	}
	if err != nil {
		return err
	}
	if !ok {
		r.logf("relay: terminal %s asked for content %s not named to it", s.id, w.Object)
		return missing(wire.ContentNotYours)
	}
	if state, err := st.State(w.Object); err != nil {
		return err
	} else if state != content.Whole {
		return missing(wire.ContentNotHeld)
	}
	if w.Manifest {
		man, err := st.Manifest(w.Object)
		if err != nil {
			return err
		}
		if err := r.send(ctx, s.conn, wire.ContentManifest{Object: w.Object, Manifest: man}); err != nil {
			return err
		}
	}
	beyond := false
	for _, i := range w.Chunks {
		*buf, err = st.Chunk(w.Object, int(i), (*buf)[:0])
		switch {
		case errors.Is(err, content.ErrNoSuchChunk):
			beyond = true
			continue
		case errors.Is(err, content.ErrCorrupt), errors.Is(err, content.ErrIncomplete), errors.Is(err, content.ErrUnknownObject):
			// Damaged on disk (and dropped), or gone meanwhile: the terminal asks again later.
			r.logf("relay: content %s chunk %d: %v", w.Object, i, err)
			return missing(wire.ContentNotHeld)
		case err != nil:
			return err
		}
		if err := r.sendChunk(ctx, s, wire.Chunk{Object: w.Object, Index: i, Data: *buf}, frame); err != nil {
			return err
		}
	}
	if beyond {
		return missing(wire.ContentNoSuchChunk)
	}
	return nil
}

// sendChunk writes a chunk into the connection's frame buffer and sends it: as a binary chunk
// message, uncompressed, to a terminal whose hello offered binary_chunks; otherwise as a JSON
// chunk frame built in one pass (wire.AppendChunkFrame).
func (r *Relay) sendChunk(ctx context.Context, s *session, c wire.Chunk, frame *[]byte) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if s.binaryChunks && !r.cfg.JSONChunksOnly {
		b, err := wire.AppendBinaryChunk((*frame)[:0], c)
		if err != nil {
			return err
		}
		*frame = b
		if err := writeUncompressed(wctx, s.conn, websocket.MessageBinary, b); err != nil {
			return err
		}
		r.metrics.chunks.WithLabelValues("binary").Inc()
		return nil
	}
	b, err := wire.AppendChunkFrame((*frame)[:0], c)
	if err != nil {
		return err
	}
	*frame = b
	if err := s.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return err
	}
	r.metrics.chunks.WithLabelValues("json").Inc()
	return nil
}

// writeUncompressed sends b as one message without permessage-deflate, even on a connection
// that negotiated it: compression is chosen per message (RFC 7692, the RSV1 bit), and the
// websocket library compresses a message only if the first write of it reaches its threshold
// (at least 128 bytes), so a first write of one byte sends the whole message plain, in
// continuation frames. Chunks of media are already compressed: deflating them costs both ends
// CPU for nothing (TestBinaryChunksGoUncompressed counts the bytes on the wire).
func writeUncompressed(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, b []byte) error {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for _, part := range [][]byte{b[:min(1, len(b))], b[min(1, len(b)):]} {
		if _, err := w.Write(part); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
