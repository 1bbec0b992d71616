package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/kiosk"
)

func TestExampleConfigIsValid(t *testing.T) {
	c, err := termconfig.Load(filepath.Join("..", "..", "assets", "demo", "kioskd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 2 || c.Devices[0].DedupeWindow != termconfig.Duration(2*time.Second) {
		t.Fatalf("devices = %+v", c.Devices)
	}
	dc := c.DeviceConfigs()
	if dc[1].KeyMap['#'] != "enter" || dc[1].KeyMap[0x7f] != "backspace" {
		t.Fatalf("key map = %v", dc[1].KeyMap)
	}
}

// A broken config exits 2 before the data directory is touched.
func TestBrokenConfigTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kioskd.json")
	if err := os.WriteFile(cfg, []byte(`{"mode": "kiosk", "devices": [{"name": "x", "role": "scanner", "path": "/dev/ttyS0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var stderr bytes.Buffer
	if code := run([]string{"-config", cfg, "-data", data}, &stderr, time.Now(), noExit(t)); code != 2 {
		t.Fatalf("exit %d, want 2; log:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "devices[0]") || !strings.Contains(stderr.String(), "role") {
		t.Fatalf("log does not name the field:\n%s", stderr.String())
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("data directory was touched: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	// The demo's flags are tetherdemo's now: kioskd refuses them.
	for _, args := range [][]string{{}, {"-config", "x.json"}, {"-demo"}, {"-demo", "-config", "c", "-data", "d"},
		{"-demo-script", "s", "-config", "c", "-data", "d"}, {"-screenshot", "x.png", "-config", "c", "-data", "d"},
		{"-config", "c", "-data", "d", "extra"}} {
		var stderr bytes.Buffer
		if code := run(args, &stderr, time.Now(), noExit(t)); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// A damaged store stops kioskd with exit status 3 (so systemd stops restarting it), naming
// the file and the way out; the file is left as it was.
func TestDamagedStoreExitsThree(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kioskd.json")
	if err := os.WriteFile(cfg, []byte(`{"mode": "kiosk"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(data, kiosk.StoreFile)
	if err := os.Truncate(path, 3*4096+100); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"-config", cfg, "-data", data}, &stderr, time.Now(), noExit(t)); code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), path) || !strings.Contains(stderr.String(), "damaged") {
		t.Fatalf("the message does not name the damaged file: %s", stderr.String())
	}
	if fi, _ := os.Stat(path); fi.Size() != 3*4096+100 {
		t.Fatalf("the damaged store was changed: %d bytes", fi.Size())
	}
	stderr.Reset()
	run([]string{"-h"}, &stderr, time.Now(), noExit(t))
	if !strings.Contains(stderr.String(), "3 when the store is damaged") {
		t.Fatalf("-h does not document exit status 3: %s", stderr.String())
	}
}

// noExit is run's exit for tests: a stop that hangs fails the test instead of ending it.
func noExit(t *testing.T) func(int) {
	return func(code int) { t.Errorf("kioskd gave up on a hung stop (exit %d)", code) }
}
