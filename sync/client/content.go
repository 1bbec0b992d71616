package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The terminal's side of content transfer (docs/PROTOCOL.md, "Content (photos and media)"):
// on each connection, every object the content store wants (retained by a letter or a
// purchase, not held whole) is pulled from the relay: the manifest first, checked against the
// reference, then the missing chunks, at most wire.MaxWantChunks at a time, each checked and
// committed before more are asked for. After a cut the next connection asks only for what the
// store still misses.

// contentFrames is the room for content frames between the reader and the fetcher: one want's
// answers (the manifest, the chunks, a content_missing), so the reader never waits on a commit.
const contentFrames = wire.MaxWantChunks + 2

// FetchContent wakes the content fetcher: something new is retained (a letter with a photo was
// applied) and is asked for now, on the open connection.
func (e *Engine) FetchContent() {
	select {
	case e.contentWake <- struct{}{}:
	default:
	}
}

// contentFrame hands a content frame from the reader to the fetcher.
func (l *link) contentFrame(ctx context.Context, f wire.Frame) {
	select {
	case l.contents <- f:
	case <-ctx.Done():
	}
}

// content fetches what the store wants, then waits for FetchContent. An object the relay does
// not hold, will not send, or sends wrong is left for the next connection (logged); only a
// failing link or store ends the connection.
func (l *link) content(ctx context.Context) error {
	st := l.e.cfg.Content
	if st == nil {
		return nil
	}
	skip := map[content.Hash]bool{}
	for {
		refs, err := st.Wanted(64)
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
		}
	}
}

// fetch pulls one object; done is false when it was given up for this connection.
func (l *link) fetch(ctx context.Context, st *content.Store, ref content.Ref) (done bool, err error) {
	obj := ref.Object
	state, err := st.State(obj)
	if err != nil {
		return false, fmt.Errorf("content %s: %w", obj, err)
	}
	if state == content.Absent {
		if err := l.send(ctx, wire.ContentWant{Object: obj, Manifest: true}); err != nil {
			return false, err
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
	for {
		missing, err := st.Missing(obj, wire.MaxWantChunks)
		if errors.Is(err, content.ErrUnknownObject) {
			return false, nil // evicted meanwhile: begun again on the next pass
		}
		if err != nil {
			return false, fmt.Errorf("content %s: %w", obj, err)
		}
		if len(missing) == 0 {
			return true, nil
		}
		want := wire.ContentWant{Object: obj}
		outstanding := map[uint32]bool{}
		for _, i := range missing {
			want.Chunks = append(want.Chunks, uint32(i))
			outstanding[uint32(i)] = true
		}
		if err := l.send(ctx, want); err != nil {
			return false, err
		}
		for len(outstanding) > 0 {
			f, ok := l.awaitContent(ctx, obj)
			if !ok {
				return false, nil
			}
			if f.ContentMissing != nil {
				l.e.logf("sync: relay will not send content %s: %s", obj, f.ContentMissing.Reason)
				return false, nil
			}
			c := f.Chunk
			if c == nil || !outstanding[c.Index] {
				continue // not asked for: ignored
			}
			delete(outstanding, c.Index)
			complete, err := st.PutChunk(obj, int(c.Index), c.Data)
			switch {
			case errors.Is(err, content.ErrChunkMismatch):
				if failed[int(c.Index)] {
					l.e.logf("sync: content %s: chunk %d came wrong twice: %v", obj, c.Index, err)
					return false, nil
				}
				failed[int(c.Index)] = true
			case errors.Is(err, content.ErrObjectMismatch):
				l.e.logf("sync: content %s: %v", obj, err)
				return false, nil
			case errors.Is(err, content.ErrUnknownObject):
				return false, nil
			case err != nil:
				return false, fmt.Errorf("store content %s: %w", obj, err)
			case complete:
				l.e.logf("sync: content %s received (%d bytes)", obj, ref.Size)
			}
		}
	}
}

// awaitContent returns the next content frame about obj; ok is false when the link ends.
func (l *link) awaitContent(ctx context.Context, obj content.Hash) (wire.Frame, bool) {
	for {
		select {
		case <-ctx.Done():
			return wire.Frame{}, false
		case f := <-l.contents:
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
}
