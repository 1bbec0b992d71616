package kiosk

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/boltfile"
)

// realStoreBytes makes a store with a few hundred KB of queued records and returns its file.
func realStoreBytes(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	for i := 0; i < 150; i++ {
		if err := s.update("fill", func(tx *bolt.Tx) error {
			_, err := enqueue(tx, time.Now(), ItemAudit, strings.Repeat("record ", 300))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	raw, err := os.ReadFile(filepath.Join(dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// openDamaged writes raw as a store and opens it: it must either be refused as damaged,
// naming the file and leaving it as it was, or open into a store that works.
func openDamaged(t *testing.T, raw []byte, what string) (refused bool) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, StoreFile)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, StoreOptions{NoSync: true})
	if err != nil {
		if KindOf(err) != KindCorrupt || !errors.Is(err, boltfile.ErrDamaged) || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), "kioskctl backup") {
			t.Fatalf("%s: %v (kind %v), want a damaged-store refusal naming %s and the way out", what, err, KindOf(err), path)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
			t.Fatalf("%s: the refused file was changed", what)
		}
		return true
	}
	defer s.Close()
	if _, err := s.Info(); err != nil {
		t.Fatalf("%s: opened, but: %v", what, err)
	}
	if _, err := s.Pending(0, 1000, 1<<30); err != nil {
		t.Fatalf("%s: opened, but the queue cannot be read: %v", what, err)
	}
	return false
}

// A store cut short at every page boundary and at odd offsets, or with bytes flipped in its
// meta pages, is refused cleanly or works; it never crashes kioskd or kioskctl.
func TestStoreTruncatedAndFlippedNeverCrash(t *testing.T) {
	raw := realStoreBytes(t)
	const ps = 4096
	refused := 0
	for n := 0; n < len(raw); n += ps {
		for _, cut := range []int{n, n + 1, n + 2049} {
			if cut < len(raw) && openDamaged(t, raw[:cut], "cut at "+strconv.Itoa(cut)) {
				refused++
			}
		}
	}
	if refused < 100 {
		t.Fatalf("only %d of the cuts were refused; the store is too small for this test", refused)
	}
	for page := 0; page < 2; page++ {
		for off := 16; off < 80; off += 3 {
			bad := bytes.Clone(raw)
			bad[page*ps+off] ^= 0x5a
			openDamaged(t, bad, "flipped meta byte "+strconv.Itoa(page*ps+off))
		}
	}
	bad := bytes.Clone(raw)
	for i := 16; i < 80; i++ {
		bad[i] ^= 0xff
		bad[ps+i] ^= 0xff
	}
	if !openDamaged(t, bad, "both meta pages flipped") {
		t.Fatal("a store with both meta pages destroyed opened")
	}
}

// A store that cannot be opened for reasons of the machine, not of the file, is a storage
// error carrying the system's error, not "damaged".
func TestStoreOpenOSErrorsAreNotDamage(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, StoreFile), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := OpenStore(dir, StoreOptions{})
	if KindOf(err) != KindIO || !errors.Is(err, syscall.EISDIR) || errors.Is(err, boltfile.ErrDamaged) {
		t.Fatalf("a directory in place of the store: %v (kind %v), want a storage error wrapping EISDIR", err, KindOf(err))
	}

	dir = t.TempDir()
	s := openTestStore(t, dir)
	s.Close()
	path := filepath.Join(dir, StoreFile)
	if os.Geteuid() == 0 {
		// chmod does not stop root; an immutable file does (open for writing gives EPERM).
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Skipf("running as root and cannot make the store immutable (chattr: %v %s): no way to deny root access", err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
	} else if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(dir, StoreOptions{})
	if KindOf(err) != KindIO || !errors.Is(err, fs.ErrPermission) || errors.Is(err, boltfile.ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a store we may not write: %v (kind %v), want a storage error wrapping the permission error", err, KindOf(err))
	}
}
