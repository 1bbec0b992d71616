package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
	"github.com/tether-kiosk/tether/sync/wire"
)

// realRelayBytes makes a relay store with a few hundred KB in it (a facility, terminals and
// deposits fanned out to them) and returns its file.
func realRelayBytes(t *testing.T) []byte {
	t.Helper()
	e := newEnv(t, func(c *Config) { c.NoSync = true })
	e.seed()
	e.enroll(wire.ModeKiosk, "")
	e.enroll(wire.ModeKiosk, "")
	for i := 0; i < 400; i++ {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: fmt.Sprintf("dep-%04d-%s", i, strings.Repeat("r", 40))}); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	raw, err := os.ReadFile(filepath.Join(e.dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// openRelayDamaged writes raw as relay.db and opens a relay on it: refused as damaged (naming
// the file, left as it was) or a relay that answers.
func openRelayDamaged(t *testing.T, raw []byte, what string) (refused bool) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, DBFile)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(Config{DataDir: dir, NoSync: true, PINParams: kiosk.TestPINParams()})
	if err != nil {
		if kiosk.KindOf(err) != kiosk.KindCorrupt || !errors.Is(err, boltfile.ErrDamaged) || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), "restore relay.db from a backup") {
			t.Fatalf("%s: %v (kind %v), want a damaged-store refusal naming %s and the way out", what, err, kiosk.KindOf(err), path)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
			t.Fatalf("%s: the refused file was changed", what)
		}
		return true
	}
	defer r.Close()
	if _, err := r.Terminals(); err != nil {
		t.Fatalf("%s: opened, but: %v", what, err)
	}
	return false
}

// relay.db cut short at every page boundary and at odd offsets, or with bytes flipped in its
// meta pages, is refused cleanly or works; relayd never crashes on it.
func TestRelayStoreTruncatedAndFlippedNeverCrash(t *testing.T) {
	bboltOnly(t)
	raw := realRelayBytes(t)
	const ps = 4096
	refused := 0
	for n := 0; n < len(raw); n += ps {
		for _, cut := range []int{n, n + 3, n + 2100} {
			if cut < len(raw) && openRelayDamaged(t, raw[:cut], fmt.Sprint("cut at ", cut)) {
				refused++
			}
		}
	}
	if refused < 60 {
		t.Fatalf("only %d of the cuts were refused; the store is too small for this test", refused)
	}
	for page := 0; page < 2; page++ {
		for off := 16; off < 80; off += 3 {
			bad := bytes.Clone(raw)
			bad[page*ps+off] ^= 0x5a
			openRelayDamaged(t, bad, fmt.Sprint("flipped meta byte ", page*ps+off))
		}
	}
	bad := bytes.Clone(raw)
	for i := 16; i < 80; i++ {
		bad[i] ^= 0xff
		bad[ps+i] ^= 0xff
	}
	if !openRelayDamaged(t, bad, "both meta pages flipped") {
		t.Fatal("a relay store with both meta pages destroyed opened")
	}
}

// A relay.db the system will not open is a storage error carrying the system's error, not "damaged".
func TestRelayOpenOSErrorsAreNotDamage(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, DBFile), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{DataDir: dir})
	if kiosk.KindOf(err) != kiosk.KindIO || !errors.Is(err, syscall.EISDIR) || errors.Is(err, boltfile.ErrDamaged) {
		t.Fatalf("a directory in place of relay.db: %v (kind %v), want a storage error wrapping EISDIR", err, kiosk.KindOf(err))
	}

	e := newEnv(t)
	e.close()
	path := filepath.Join(e.dir, DBFile)
	if os.Geteuid() == 0 {
		// chmod does not stop root; an immutable file does (open for writing gives EPERM).
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Skipf("running as root and cannot make relay.db immutable (chattr: %v %s): no way to deny root access", err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
	} else if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{DataDir: e.dir})
	if kiosk.KindOf(err) != kiosk.KindIO || !errors.Is(err, fs.ErrPermission) || errors.Is(err, boltfile.ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a relay.db we may not write: %v (kind %v), want a storage error wrapping the permission error", err, kiosk.KindOf(err))
	}
}
