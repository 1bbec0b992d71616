package wire

import (
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/content"
)

// Content transfer (docs/PROTOCOL.md, "Content (photos and media)"). Large objects do not
// travel in the downlink stream: a downlink item only names them (content.Ref: sha256,
// manifest sha256, size), and the terminal pulls what it lacks with content_want. The relay
// answers each want, in order, with the manifest and the chunks asked for, or with
// content_missing. Nothing here is sequenced or acknowledged: every chunk is addressed by its
// object and index and checked against its sha256, so asking twice is harmless, and after a
// cut the terminal asks only for the chunks its store still misses.
const (
	TypeContentWant     = "content_want"     // terminal -> relay
	TypeContentManifest = "content_manifest" // relay -> terminal
	TypeChunk           = "chunk"            // relay -> terminal
	TypeContentMissing  = "content_missing"  // relay -> terminal
)

// MaxWantChunks bounds the chunks one content_want asks for: 8 chunks, 2 MiB in flight, is
// the terminal's window. The relay holds one chunk at a time to answer it.
const MaxWantChunks = 8

// Reasons a relay gives in content_missing.
const (
	// ContentNotHeld: the relay does not hold the object (yet); the terminal asks again on a
	// later connection.
	ContentNotHeld = "not_held"
	// ContentNotYours: nothing the relay sent this terminal names the object; the terminal
	// does not ask for it again.
	ContentNotYours = "not_yours"
	// ContentNoSuchChunk: a chunk index beyond the object's last.
	ContentNoSuchChunk = "no_such_chunk"
)

// ContentWant asks for an object's manifest, some of its chunks, or both.
type ContentWant struct {
	Object   content.Hash `json:"sha256"`
	Manifest bool         `json:"manifest,omitempty"`
	Chunks   []uint32     `json:"chunks,omitempty"` // increasing, at most MaxWantChunks
}

// ContentManifest carries an object's encoded manifest (content.Manifest.Encode).
type ContentManifest struct {
	Object   content.Hash `json:"sha256"`
	Manifest []byte       `json:"manifest"` // base64 in JSON
}

// Chunk carries chunk Index of an object: ChunkSize bytes, fewer for the last.
type Chunk struct {
	Object content.Hash `json:"sha256"`
	Index  uint32       `json:"index"`
	Data   []byte       `json:"data"` // base64 in JSON
}

// ContentMissing says the relay will not send (all or part of) what a want asked for.
type ContentMissing struct {
	Object content.Hash `json:"sha256"`
	Reason string       `json:"reason"`
}

func (w *ContentWant) validate() error {
	if w.Object.IsZero() {
		return errors.New("sha256 is missing")
	}
	if !w.Manifest && len(w.Chunks) == 0 {
		return errors.New("asks for neither the manifest nor a chunk")
	}
	if len(w.Chunks) > MaxWantChunks {
		return fmt.Errorf("asks for %d chunks, limit %d", len(w.Chunks), MaxWantChunks)
	}
	for i, c := range w.Chunks {
		if c >= content.MaxChunks {
			return fmt.Errorf("chunk %d is beyond the largest object (%d chunks)", c, content.MaxChunks)
		}
		if i > 0 && c <= w.Chunks[i-1] {
			return fmt.Errorf("chunks are not in increasing order at %d", i)
		}
	}
	return nil
}

func (m *ContentManifest) validate() error {
	if m.Object.IsZero() {
		return errors.New("sha256 is missing")
	}
	dm, err := content.DecodeManifest(m.Manifest)
	if err != nil {
		return err
	}
	if dm.Object != m.Object {
		return fmt.Errorf("manifest is of object %s, frame says %s", dm.Object, m.Object)
	}
	return nil
}

func (c *Chunk) validate() error {
	if c.Object.IsZero() {
		return errors.New("sha256 is missing")
	}
	if c.Index >= content.MaxChunks {
		return fmt.Errorf("index %d is beyond the largest object (%d chunks)", c.Index, content.MaxChunks)
	}
	if len(c.Data) == 0 || len(c.Data) > content.ChunkSize {
		return fmt.Errorf("data is %d bytes, want 1 to %d", len(c.Data), content.ChunkSize)
	}
	return nil
}

func (m *ContentMissing) validate() error {
	if m.Object.IsZero() {
		return errors.New("sha256 is missing")
	}
	return checkReason("reason", m.Reason)
}

// contentType names the frame type of a content message ("" for any other value); Encode asks
// it for what its own switch does not know.
func contentType(msg any) string {
	switch msg.(type) {
	case ContentWant, *ContentWant:
		return TypeContentWant
	case ContentManifest, *ContentManifest:
		return TypeContentManifest
	case Chunk, *Chunk:
		return TypeChunk
	case ContentMissing, *ContentMissing:
		return TypeContentMissing
	}
	return ""
}

// contentTarget sets f's field for a content frame type and returns it to decode into (nil for
// any other type); decodeFrameStd asks it for what its own switch does not know.
func contentTarget(f *Frame, typ string) interface{ validate() error } {
	switch typ {
	case TypeContentWant:
		f.ContentWant = new(ContentWant)
		return f.ContentWant
	case TypeContentManifest:
		f.ContentManifest = new(ContentManifest)
		return f.ContentManifest
	case TypeChunk:
		f.Chunk = new(Chunk)
		return f.Chunk
	case TypeContentMissing:
		f.ContentMissing = new(ContentMissing)
		return f.ContentMissing
	}
	return nil
}

// contentMsg returns the message a decoded content frame carries (nil for any other).
func contentMsg(f Frame) any {
	switch {
	case f.ContentWant != nil:
		return f.ContentWant
	case f.ContentManifest != nil:
		return f.ContentManifest
	case f.Chunk != nil:
		return f.Chunk
	case f.ContentMissing != nil:
		return f.ContentMissing
	}
	return nil
}
