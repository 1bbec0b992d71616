// Package boltfile checks a bbolt file before bbolt maps it into memory, and opens it so that a
// damaged file is refused with an error instead of crashing the process.
//
// bbolt trusts its file: it maps it and follows the page ids its meta page names. A file cut
// short (a full disk, a copy interrupted, a power cut on a file system that lies about fsync)
// makes those pages lie past the end of the mapping, and the first read is a SIGBUS, which no
// recover can catch. So the header is read with plain reads first, and only a file whose
// meta pages hold together and whose pages all lie inside the file is handed to bbolt.
//
// Both the terminal's store (kiosk) and the relay's (sync/relay) use it; it imports neither.
package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is what every *DamageError matches with errors.Is.
var ErrDamaged = errors.New("the file is damaged")

// DamageError says what is wrong with a bbolt file. It is never an operating-system failure
// (permission, a directory in the way, a read error): those are returned as they are.
type DamageError struct {
	Path    string // the file; empty from CheckReader
	Problem string // plain words, e.g. "file is 8192 bytes but its pages need 65536 (truncated)"
}

func (e *DamageError) Error() string {
	if e.Path == "" {
		return e.Problem
	}
	return e.Path + ": " + e.Problem
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

func damaged(format string, args ...any) *DamageError {
	return &DamageError{Problem: fmt.Sprintf(format, args...)}
}

// The on-disk layout this package reads (bbolt file format version 2). Every page starts with
// a 16-byte header: page id (8), flags (2), element count (2), overflow page count (4). The
// first two pages are meta pages; their body follows the header:
//
//	0 magic (4)  4 version (4)  8 page size (4)  12 flags (4)
//	16 root bucket page id (8)  24 root bucket sequence (8)
//	32 freelist page id (8)  40 high-water page id (8)  48 transaction id (8)
//	56 checksum (8): FNV-1a 64 over bytes 0..55
//
// Integers are in the machine's byte order (bbolt writes its structs as they are in memory).
const (
	pageHeaderSize = 16
	metaSize       = 64
	checksumOffset = 56

	magic   = 0xED0CDAED
	version = 2

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagFreelist = 0x10

	noFreelist = ^uint64(0) // bbolt's marker for "the freelist is not kept in the file"

	minPageSize = 512
	maxPageSize = 1 << 20
)

var order = binary.NativeEndian

// Header is what Check read from the meta page bbolt will use.
type Header struct {
	PageSize  int
	Txid      uint64
	HighWater uint64 // the first page id past the file's pages
	Root      uint64 // the root bucket's page
	Freelist  uint64 // the freelist's page, or ^0 when it is not kept in the file
}

type meta struct {
	Header
	problem string // why this meta page is not usable; empty when it is
}

// parseMeta reads a meta page body (metaSize bytes).
func parseMeta(b []byte) meta {
	var m meta
	switch {
	case order.Uint32(b[0:]) != magic:
		m.problem = "not a bbolt meta page (wrong magic number)"
		return m
	case order.Uint32(b[4:]) != version:
		m.problem = fmt.Sprintf("unknown bbolt file version %d", order.Uint32(b[4:]))
		return m
	}
	h := fnv.New64a()
	h.Write(b[:checksumOffset])
	if h.Sum64() != order.Uint64(b[checksumOffset:]) {
		m.problem = "meta page checksum mismatch"
		return m
	}
	ps := order.Uint32(b[8:])
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		m.problem = fmt.Sprintf("implausible page size %d", ps)
		return m
	}
	m.PageSize = int(ps)
	m.Root = order.Uint64(b[16:])
	m.Freelist = order.Uint64(b[32:])
	m.HighWater = order.Uint64(b[40:])
	m.Txid = order.Uint64(b[48:])
	return m
}

// readMeta reads the meta page at off; a short file gives a meta with a problem, not an error.
func readMeta(r io.ReaderAt, size, off int64) (meta, error) {
	if off+pageHeaderSize+metaSize > size {
		return meta{problem: "the file ends before this meta page"}, nil
	}
	b := make([]byte, metaSize)
	if _, err := r.ReadAt(b, off+pageHeaderSize); err != nil {
		return meta{}, fmt.Errorf("read meta page at byte %d: %w", off, err)
	}
	return parseMeta(b), nil
}

// Check reads the header of the bbolt file at path without mapping it and returns the meta
// page bbolt would use. A damaged file gives a *DamageError naming path; a file that cannot be
// read at all (missing, a directory, permission) gives that error, wrapped with %w.
func Check(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Header{}, err
	}
	if fi.IsDir() {
		return Header{}, &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR}
	}
	if !fi.Mode().IsRegular() {
		return Header{}, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("not a regular file (%v)", fi.Mode().Type())}
	}
	h, err := CheckReader(f, fi.Size())
	var de *DamageError
	if errors.As(err, &de) {
		de.Path = path
	}
	if err != nil && de == nil {
		return h, fmt.Errorf("check %s: %w", path, err)
	}
	return h, err
}

// CheckReader is Check over the size bytes of r.
func CheckReader(r io.ReaderAt, size int64) (Header, error) {
	if size == 0 {
		return Header{}, damaged("the file is empty (truncated)")
	}
	m0, err := readMeta(r, size, 0)
	if err != nil {
		return Header{}, err
	}
	// The page size comes from the first meta page; if that one is bad, from the second,
	// which sits one page in and names the same size.
	ps := m0.PageSize
	var m1 meta
	if m0.problem != "" {
		for try := minPageSize; try <= maxPageSize; try *= 2 {
			m, err := readMeta(r, size, int64(try))
			if err != nil {
				return Header{}, err
			}
			if m.problem == "" && m.PageSize == try {
				ps, m1 = try, m
				break
			}
		}
		if ps == 0 {
			return Header{}, damaged("neither meta page is valid (first: %s)", m0.problem)
		}
	} else {
		if m1, err = readMeta(r, size, int64(ps)); err != nil {
			return Header{}, err
		}
	}
	if size < 2*int64(ps) {
		return Header{}, damaged("file is %d bytes, shorter than its two %d-byte meta pages (truncated)", size, ps)
	}
	// bbolt uses the valid meta page with the higher transaction id.
	use := m0
	switch {
	case m0.problem != "":
		use = m1
	case m1.problem == "" && m1.Txid > m0.Txid:
		use = m1
	}
	if use.PageSize != ps {
		return Header{}, damaged("the meta pages disagree on the page size (%d and %d)", m0.PageSize, m1.PageSize)
	}
	h := use.Header
	if h.HighWater < 4 {
		return h, damaged("high-water mark %d is below the four pages every file has", h.HighWater)
	}
	if h.HighWater > uint64(size)/uint64(ps) {
		return h, damaged("file is %d bytes but its pages need %d (truncated)", size, satMul(h.HighWater, uint64(ps)))
	}
	if h.Root < 2 || h.Root >= h.HighWater {
		return h, damaged("root page %d is outside the file's pages 2..%d", h.Root, h.HighWater-1)
	}
	if err := checkPage(r, h, h.Root, "root", flagBranch|flagLeaf); err != nil {
		return h, err
	}
	if h.Freelist != noFreelist {
		if h.Freelist < 2 || h.Freelist >= h.HighWater {
			return h, damaged("freelist page %d is outside the file's pages 2..%d", h.Freelist, h.HighWater-1)
		}
		if err := checkFreelist(r, h); err != nil {
			return h, err
		}
	}
	return h, nil
}

func satMul(a, b uint64) uint64 {
	if b != 0 && a > ^uint64(0)/b {
		return ^uint64(0)
	}
	return a * b
}

// pageHeader reads the header of page id.
func pageHeader(r io.ReaderAt, h Header, id uint64) (gotID uint64, flags uint16, count uint16, overflow uint32, err error) {
	b := make([]byte, pageHeaderSize)
	if _, err := r.ReadAt(b, int64(id)*int64(h.PageSize)); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("read page %d: %w", id, err)
	}
	return order.Uint64(b[0:]), order.Uint16(b[8:]), order.Uint16(b[10:]), order.Uint32(b[12:]), nil
}

// checkPage checks that page id says it is page id, of one of the kinds in want, and that its
// overflow pages lie below the high-water mark.
func checkPage(r io.ReaderAt, h Header, id uint64, what string, want uint16) error {
	got, flags, _, overflow, err := pageHeader(r, h, id)
	if err != nil {
		return err
	}
	if got != id {
		return damaged("%s page %d says it is page %d", what, id, got)
	}
	if flags&want == 0 || flags&^want != 0 {
		return damaged("%s page %d has the wrong kind (flags %#x)", what, id, flags)
	}
	if id+uint64(overflow)+1 > h.HighWater {
		return damaged("%s page %d runs past the file's last page", what, id)
	}
	return nil
}

// checkFreelist checks the freelist page and that every page it lists is a real page.
func checkFreelist(r io.ReaderAt, h Header) error {
	if err := checkPage(r, h, h.Freelist, "freelist", flagFreelist); err != nil {
		return err
	}
	_, _, count, overflow, err := pageHeader(r, h, h.Freelist)
	if err != nil {
		return err
	}
	room := (uint64(overflow)+1)*uint64(h.PageSize) - pageHeaderSize
	body := make([]byte, room)
	if _, err := r.ReadAt(body, int64(h.Freelist)*int64(h.PageSize)+pageHeaderSize); err != nil {
		return fmt.Errorf("read freelist: %w", err)
	}
	n, ids := uint64(count), body
	if count == 0xFFFF { // a long list keeps its length in its first element
		n, ids = order.Uint64(body), body[8:]
	}
	if n > uint64(len(ids))/8 {
		return damaged("freelist claims %d pages, more than its page holds", n)
	}
	for i := uint64(0); i < n; i++ {
		if id := order.Uint64(ids[i*8:]); id < 2 || id >= h.HighWater {
			return damaged("freelist lists page %d, outside the file's pages 2..%d", id, h.HighWater-1)
		}
	}
	return nil
}

// Open checks the file at path (when it exists) and opens it with bbolt. A damaged file gives
// a *DamageError naming path and is left as it was; so does a panic or a memory fault inside
// bbolt while it opens the file. ErrTimeout (another process holds the file) and
// operating-system errors (permission, a directory in the way, a full disk) are returned as
// they are, so errors.Is(err, fs.ErrPermission) and the like work.
//
// After a panic inside bbolt.Open the file may stay open and locked by this process: the
// caller is expected to give up on it (the programs exit).
func Open(path string, mode os.FileMode, opts *bolt.Options) (*bolt.DB, error) {
	if _, err := Check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var db *bolt.DB
	err := Guard(path, func() error {
		var err error
		db, err = bolt.Open(path, mode, opts)
		return err
	})
	if err == nil {
		return db, nil
	}
	var pe *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, ErrDamaged), errors.Is(err, berrors.ErrTimeout),
		errors.As(err, &pe), errors.As(err, &errno):
		return nil, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, &DamageError{Path: path, Problem: err.Error()}
	default:
		return nil, &DamageError{Path: path, Problem: "bbolt could not open it: " + err.Error()}
	}
}

// Guard runs fn, turning a panic or a memory fault (a read past the end of a mapped file)
// inside it into a *DamageError naming path.
func Guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamageError{Path: path, Problem: fmt.Sprintf("bbolt failed reading it: %v", r)}
		}
	}()
	return fn()
}
