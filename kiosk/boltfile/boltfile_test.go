package boltfile

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// makeDB writes a real bbolt file with a few hundred KB of data, some of it deleted again (so
// the freelist is not empty), and returns its bytes.
func makeDB(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "real.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 4; round++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprint("bucket-", round%2)))
			if err != nil {
				return err
			}
			for i := 0; i < 300; i++ {
				if err := b.Put([]byte(fmt.Sprintf("key-%d-%05d", round, i)), bytes.Repeat([]byte{byte('a' + i%26)}, 200)); err != nil {
					return err
				}
			}
			if round == 2 {
				return tx.DeleteBucket([]byte("bucket-0"))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// openable reports whether raw, once past Check, opens in bbolt and passes bbolt's own page
// check without crashing the test; a crash would end the whole test binary.
func openable(t testing.TB, raw []byte) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return Guard(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return &DamageError{Path: path, Problem: err.Error()}
			}
			return nil
		})
	})
}

func TestCheckRealFile(t *testing.T) {
	raw := makeDB(t)
	h, err := CheckReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("a sound file was refused: %v", err)
	}
	if h.PageSize != os.Getpagesize() || h.HighWater*uint64(h.PageSize) > uint64(len(raw)) || h.Freelist == noFreelist {
		t.Fatalf("header %+v of a %d-byte file", h, len(raw))
	}
	if err := openable(t, raw); err != nil {
		t.Fatal(err)
	}
}

// Truncated at every page boundary and at odd offsets, a file is refused as damaged unless
// everything its pages need is still there (bbolt grows files ahead of use); never a crash.
func TestCheckTruncated(t *testing.T) {
	raw := makeDB(t)
	h, _ := CheckReader(bytes.NewReader(raw), int64(len(raw)))
	need := int(h.HighWater) * h.PageSize
	ps := h.PageSize
	var cuts []int
	for n := 0; n < len(raw); n += ps {
		cuts = append(cuts, n, n+1, n+ps/2, n+ps-1)
	}
	refused := 0
	for _, n := range cuts {
		if n >= len(raw) {
			continue
		}
		_, err := CheckReader(bytes.NewReader(raw[:n]), int64(n))
		if n < need {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("cut at %d of %d (pages need %d): %v, want damaged", n, len(raw), need, err)
			}
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d, past the %d bytes the pages need: %v", n, need, err)
		}
		if n%ps == 0 {
			if err := openable(t, raw[:n]); err != nil {
				t.Fatalf("cut at %d passed the check but does not open cleanly: %v", n, err)
			}
		}
	}
	if refused < 100 {
		t.Fatalf("only %d cuts refused: the file is too small for this test to mean much", refused)
	}
}

// A flipped byte in a meta page is caught by its checksum; bbolt then falls back to the other
// meta page, as it would itself, and the file still opens.
func TestCheckFlippedMeta(t *testing.T) {
	raw := makeDB(t)
	h, _ := CheckReader(bytes.NewReader(raw), int64(len(raw)))
	for page := 0; page < 2; page++ {
		for off := pageHeaderSize; off < pageHeaderSize+metaSize; off++ {
			bad := bytes.Clone(raw)
			bad[page*h.PageSize+off] ^= 0x40
			got, err := CheckReader(bytes.NewReader(bad), int64(len(bad)))
			if err != nil {
				t.Fatalf("one bad meta page (page %d byte %d) refused: %v", page, off, err)
			}
			if got.Txid == h.Txid && page == int(h.Txid%2) {
				t.Fatalf("page %d byte %d: the damaged meta page was chosen", page, off)
			}
		}
	}
	// Both meta pages bad: refused.
	bad := bytes.Clone(raw)
	bad[pageHeaderSize+checksumOffset] ^= 1
	bad[h.PageSize+pageHeaderSize+checksumOffset] ^= 1
	if _, err := CheckReader(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "neither meta page") {
		t.Fatalf("both meta pages bad: %v", err)
	}
}

// Page ids in a meta page that checksums fine but points outside the file are refused.
func TestCheckMetaPointsOutside(t *testing.T) {
	raw := makeDB(t)
	h, _ := CheckReader(bytes.NewReader(raw), int64(len(raw)))
	cur := int(h.Txid%2) * h.PageSize
	for _, tc := range []struct {
		field int
		value uint64
		want  string
	}{
		{16, h.HighWater, "root page"},
		{16, 1, "root page"},
		{32, h.HighWater + 5, "freelist page"},
		{32, h.Root, "freelist page"}, // a leaf where the freelist should be
		{16, h.Freelist, "root page"},
		{40, uint64(len(raw)/h.PageSize) + 1, "truncated"},
		{40, 2, "high-water"},
		{40, ^uint64(0) / 2, "truncated"},
	} {
		bad := bytes.Clone(raw)
		// Both meta pages get the same lie, so there is no good one to fall back to.
		for _, at := range []int{cur, h.PageSize - cur} {
			m := bad[at+pageHeaderSize : at+pageHeaderSize+metaSize]
			order.PutUint64(m[tc.field:], tc.value)
			sum := fnvSum(m[:checksumOffset])
			order.PutUint64(m[checksumOffset:], sum)
		}
		_, err := CheckReader(bytes.NewReader(bad), int64(len(bad)))
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("field %d = %d: %v, want damaged %q", tc.field, tc.value, err, tc.want)
		}
	}
}

// Check names the file, and tells a directory or a missing file from damage.
func TestCheckPathErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	if _, err := Check(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Check(path)
	if !errors.Is(err, syscall.EISDIR) || errors.Is(err, ErrDamaged) {
		t.Fatalf("directory: %v", err)
	}
	if _, err := Open(path, 0o600, nil); !errors.Is(err, syscall.EISDIR) || errors.Is(err, ErrDamaged) {
		t.Fatalf("open a directory: %v", err)
	}
	os.Remove(path)
	raw := makeDB(t)
	os.WriteFile(path, raw[:5000], 0o600)
	_, err = Open(path, 0o600, nil)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("truncated file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, raw[:5000]) {
		t.Fatal("a refused file was changed")
	}
}

func fnvSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// FuzzCheckReader: no input makes Check panic, and whatever Check lets through opens in bbolt
// without crashing the process (a refusal by bbolt is fine).
func FuzzCheckReader(f *testing.F) {
	raw := makeDB(f)
	f.Add(raw)
	f.Add(raw[:4096])
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:2*4096+7])
	for _, at := range []int{16, 24, 40, 56, 4096 + 40, 4096 + 64} {
		bad := bytes.Clone(raw)
		bad[at] ^= 0xff
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := CheckReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var de *DamageError
			if !errors.As(err, &de) {
				t.Fatalf("an in-memory file gave a non-damage error: %v", err)
			}
			return
		}
		if h.HighWater*uint64(h.PageSize) > uint64(len(data)) {
			t.Fatalf("passed a file whose pages run past its end: %+v, %d bytes", h, len(data))
		}
		_ = openable(t, data)
	})
}
