package content

import (
	"fmt"
	"io"
)

// Reader reads an object one chunk in memory at a time, whatever its size: the terminal's
// store and the relay's stores (bbolt, JetStream) read through it, each with its own chunk
// function, which checks the chunk against the object's digests before it returns it.
type Reader struct {
	obj   Hash
	size  int64
	n     int // chunks
	next  int // next chunk to load
	buf   []byte
	off   int // read offset in buf
	chunk func(i int, buf []byte) ([]byte, error)
}

// NewReader reads the object obj of size bytes in n chunks; chunk appends chunk i, checked, to
// buf (nil at the first call) and returns it.
func NewReader(obj Hash, size int64, n int, chunk func(i int, buf []byte) ([]byte, error)) *Reader {
	return &Reader{obj: obj, size: size, n: n, chunk: chunk}
}

// Size is the object's size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Read reads the object on; a chunk that cannot be read or does not check is an error naming
// the object, wrapping the chunk function's.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.next == r.n {
			return 0, io.EOF
		}
		var err error
		if r.buf, err = r.chunk(r.next, r.buf[:0]); err != nil {
			r.buf, r.off = r.buf[:0], 0
			return 0, fmt.Errorf("read %s: %w", r.obj, err)
		}
		r.next++
		r.off = 0
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// Close releases the reader's buffer.
func (r *Reader) Close() error {
	r.buf = nil
	return nil
}
