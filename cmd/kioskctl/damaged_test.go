package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
)

// truncatedStore leaves a real store cut short in a new data directory.
func truncatedStore(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path = filepath.Join(dir, kiosk.StoreFile)
	if err := os.Truncate(path, 5000); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// Every command on a damaged store says so, names the file and the way out, and exits 3.
func TestDamagedStoreExitsThree(t *testing.T) {
	dir, path := truncatedStore(t)
	for _, args := range [][]string{{"status"}, {"verify"}, {"reissue"}, {"compact"}, {"backup", filepath.Join(t.TempDir(), "b.db")}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{args[0], "--data", dir}, args[1:]...), strings.NewReader(""), &out, &errb)
		if err == nil {
			t.Fatalf("%v on a damaged store succeeded", args)
		}
		if exitStatus(err) != 3 || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "kioskctl backup") {
			t.Fatalf("%v: exit %d: %v", args, exitStatus(err), err)
		}
	}
	if fi, _ := os.Stat(path); fi.Size() != 5000 {
		t.Fatalf("the damaged store was changed: %d bytes", fi.Size())
	}
	if exitStatus(os.ErrPermission) != 1 {
		t.Fatal("a failure that is not damage exits 3")
	}
}

// A store file that cannot be opened (a directory in its place) is a storage error, never
// reported as damage: exit 1, the system's words, no advice to restore a backup.
func TestStoreInTheWayIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, kiosk.StoreFile), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"verify"}, {"compact"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{args[0], "--data", dir}, args[1:]...), strings.NewReader(""), &out, &errb)
		if err == nil || exitStatus(err) != 1 || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "damaged") {
			t.Fatalf("%v with a directory in place of the store: exit %d: %v", args, exitStatus(err), err)
		}
	}
}
