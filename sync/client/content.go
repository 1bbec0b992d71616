package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The terminal's side of content transfer (docs/PROTOCOL.md, "Content (photos and media)"):
// on each connection, every object the content store wants (retained by a letter or a
// purchase, not held whole) is pulled from the relay: the manifest first, checked against the
// reference, then the missing chunks, two wants of wire.MaxWantChunks in flight, each chunk
// checked, those that arrived together committed in one transaction. After a cut the next
// connection asks only for what the store still misses.

// contentWindow is the chunks a terminal has asked for and not received, at most: two wants,
// so the relay writes one window while the terminal commits the other (docs/PROTOCOL.md).
const contentWindow = 2 * wire.MaxWantChunks

// contentFrames is the room for content frames between the reader and the fetcher: a whole
// window and its content_missing, so the reader never waits on a commit.
const contentFrames = contentWindow + 2

// FetchContent wakes the content fetcher: something new is retained (a letter with a photo was
// applied) and is asked for now, on the open connection.
func (e *Engine) FetchContent() {
	select {
	case e.contentWake <- struct{}{}:
	default:
	}
}

// retainPhotos retains, on a tablet, the photos of the letters among items, pinned (the
// person's own, kept until deleted) under their letter (vocab.PhotoHolder), so they are
// fetched at once and are there offline. A shared kiosk retains nothing here: it fetches a
// letter's photos when the letter is opened and lets go of them at logout (ui), so its cache
// holds one person's photos at a time and never wants more than it can keep. Retaining is
// idempotent, so a letter sent again retains nothing new; a letter the terminal then refuses
// (a malformed reference) has its references skipped here too. It reports whether anything
// was retained, for FetchContent.
func (e *Engine) retainPhotos(items []wire.DownItem) (bool, error) {
	st := e.cfg.Content
	if st == nil {
		return false, nil
	}
	checked := false
	retained := false
	for _, it := range items {
		if it.Kind != wire.DownInboundMessage {
			continue
		}
		var m vocab.Message
		if json.Unmarshal(it.Body, &m) != nil || len(m.Photos) == 0 || m.ID == "" ||
			vocab.ValidatePhotos(m.Photos, 0) != nil {
			continue
		}
		if !checked {
			_, bound, err := e.term.BoundInmate()
			if err != nil {
				return false, fmt.Errorf("retain photos: %w", err)
			}
			if !bound {
				return false, nil // a shared kiosk: on demand, from the screens
			}
			checked = true
		}
		// A photo the person deleted here, or the policy expired, is not retained again when
		// the relay sends its letter a second time (kiosk.DeletePhoto, DeleteLetter).
		gone, err := e.term.PhotosGone(m.ID)
		if err != nil {
			return false, fmt.Errorf("retain photos of letter %s: %w", m.ID, err)
		}
		for _, p := range m.Photos {
			if gone[p.SHA256] != "" {
				continue
			}
			ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
			if err != nil {
				continue
			}
			if err := st.Retain(ref, vocab.PhotoHolder(m.ID), true); err != nil {
				return false, fmt.Errorf("retain photo %s of letter %s: %w", p.SHA256, m.ID, err)
			}
			retained = true
		}
	}
	return retained, nil
}

// contentFrame hands a content frame from the reader to the fetcher.
func (l *link) contentFrame(ctx context.Context, f wire.Frame) {
	select {
	case l.contents <- f:
	case <-ctx.Done():
	}
}

// contentRetry is how long an object given up on a connection (the relay does not hold it
// yet, or sent it wrong) waits before it is asked for again on the same connection.
const contentRetry = 5 * time.Minute

// content fetches what the store wants, then waits for FetchContent or contentRetry. An object
// the relay does not hold, will not send, or sends wrong is logged and left for later; only a
// failing link or store ends the connection.
func (l *link) content(ctx context.Context) error {
	st := l.e.cfg.Content
	if st == nil {
		return nil
	}
	retry := l.e.tick.NewTimer(contentRetry)
	defer retry.Stop()
	skip := map[content.Hash]bool{}
	for {
		if _, err := l.e.retainOwned(); err != nil { // a tablet's library (library.go)
			return err
		}
		refs, err := st.Wanted(maxWanted)
		if err != nil {
			return fmt.Errorf("read wanted content: %w", err)
		}
		for _, ref := range refs {
			if skip[ref.Object] {
				continue
			}
			done, err := l.fetch(ctx, st, ref)
			if err != nil || ctx.Err() != nil {
				return err
			}
			if !done {
				skip[ref.Object] = true
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.e.contentWake:
		case <-retry.C():
			clear(skip)
			retry.Reset(contentRetry)
		}
	}
}

// maxWanted bounds the references read per pass: a kiosk's letters of the day, a tablet's
// library; more are read on the next pass.
const maxWanted = 4096

// fetch pulls one object; done is false when it was given up for this connection.
func (l *link) fetch(ctx context.Context, st *content.Store, ref content.Ref) (done bool, err error) {
	obj := ref.Object
	state, err := st.State(obj)
	if err != nil {
		return false, fmt.Errorf("content %s: %w", obj, err)
	}
	// Two wants in flight: the relay writes the next window while this one is committed.
	outstanding := map[uint32]bool{}
	if state == content.Absent {
		// The manifest and the first chunks in one want: a photo arrives in one round trip.
		// The chunks wait in l.contents until the manifest is checked.
		want := wire.ContentWant{Object: obj, Manifest: true}
		for i := range min(content.ChunkCount(ref.Size), wire.MaxWantChunks) {
			want.Chunks = append(want.Chunks, uint32(i))
		}
		if err := l.send(ctx, want); err != nil {
			return false, err
		}
		for _, i := range want.Chunks {
			outstanding[i] = true
		}
		f, ok := l.awaitContent(ctx, obj)
		if !ok {
			return false, nil
		}
		switch {
		case f.ContentMissing != nil:
			l.e.logf("sync: relay will not send content %s: %s", obj, f.ContentMissing.Reason)
			return false, nil
		case f.ContentManifest == nil:
			l.e.logf("sync: content %s: expected its manifest, got %s", obj, f.Type)
			return false, nil
		}
		if err := st.Begin(ref, f.ContentManifest.Manifest); err != nil {
			l.e.logf("sync: content %s: manifest refused: %v", obj, err)
			return false, nil
		}
	}
	failed := map[int]bool{} // chunks that came wrong once on this connection
	batch := make([]content.Received, 0, contentWindow)
	for {
		if len(outstanding) <= contentWindow-wire.MaxWantChunks {
			missing, err := st.Missing(obj, len(outstanding)+wire.MaxWantChunks)
			if errors.Is(err, content.ErrUnknownObject) {
				return false, nil // evicted meanwhile: begun again on the next pass
			}
			if err != nil {
				return false, fmt.Errorf("content %s: %w", obj, err)
			}
			want := wire.ContentWant{Object: obj}
			for _, i := range missing {
				if !outstanding[uint32(i)] {
					want.Chunks = append(want.Chunks, uint32(i))
				}
			}
			if len(want.Chunks) > 0 {
				if err := l.send(ctx, want); err != nil {
					return false, err
				}
				for _, i := range want.Chunks {
					outstanding[i] = true
				}
			} else if len(outstanding) == 0 {
				return true, nil // nothing missing, nothing asked for: held whole
			}
		}
		// One chunk asked for, then every other one already here, committed in one transaction.
		batch = batch[:0]
		refusedBy := "" // the relay's content_missing reason, once what came is committed
		for len(batch) == 0 && refusedBy == "" {
			f, ok := l.nextContent(ctx, obj, true)
			if !ok {
				return false, nil // the link ended
			}
			batch, refusedBy = takeChunk(f, outstanding, batch)
		}
		for len(batch) < cap(batch) && refusedBy == "" {
			f, ok := l.nextContent(ctx, obj, false)
			if !ok {
				break
			}
			batch, refusedBy = takeChunk(f, outstanding, batch)
		}
		if len(batch) == 0 {
			l.e.logf("sync: relay will not send content %s: %s", obj, refusedBy)
			return false, nil
		}
		complete, refused, err := st.PutChunks(obj, batch)
		switch {
		case errors.Is(err, content.ErrObjectMismatch):
			l.e.logf("sync: content %s: %v", obj, err)
			return false, nil
		case errors.Is(err, content.ErrUnknownObject):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("store content %s: %w", obj, err)
		}
		for _, r := range refused {
			if failed[r.Index] {
				l.e.logf("sync: content %s: chunk %d came wrong twice: %v", obj, r.Index, r.Err)
				return false, nil
			}
			failed[r.Index] = true // asked for again with the next want
		}
		if complete {
			l.e.logf("sync: content %s received (%d bytes)", obj, ref.Size)
		}
		if refusedBy != "" {
			l.e.logf("sync: relay will not send content %s: %s", obj, refusedBy)
			return false, nil
		}
	}
}

// takeChunk adds a chunk that was asked for to batch (others are ignored), or returns the
// reason of a content_missing.
func takeChunk(f wire.Frame, outstanding map[uint32]bool, batch []content.Received) ([]content.Received, string) {
	if f.ContentMissing != nil {
		return batch, f.ContentMissing.Reason
	}
	if c := f.Chunk; c != nil && outstanding[c.Index] {
		delete(outstanding, c.Index)
		batch = append(batch, content.Received{Index: int(c.Index), Data: c.Data})
	}
	return batch, ""
}

// awaitContent returns the next content frame about obj; ok is false when the link ends.
func (l *link) awaitContent(ctx context.Context, obj content.Hash) (wire.Frame, bool) {
	return l.nextContent(ctx, obj, true)
}

// nextContent returns the next content frame about obj (frames about other objects are
// dropped). Without wait it returns at once, ok false, when none is queued.
func (l *link) nextContent(ctx context.Context, obj content.Hash, wait bool) (wire.Frame, bool) {
	for {
		var f wire.Frame
		if wait {
			select {
			case <-ctx.Done():
				return wire.Frame{}, false
			case f = <-l.contents:
			}
		} else {
			select {
			case f = <-l.contents:
			default:
				return wire.Frame{}, false
			}
		}
		var about content.Hash
		switch {
		case f.ContentManifest != nil:
			about = f.ContentManifest.Object
		case f.Chunk != nil:
			about = f.Chunk.Object
		case f.ContentMissing != nil:
			about = f.ContentMissing.Object
		}
		if about == obj {
			return f, true
		}
	}
}
