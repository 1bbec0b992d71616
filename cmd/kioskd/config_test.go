package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	demoseed "github.com/tether-kiosk/tether/assets/demo"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
)

func TestExampleConfigIsValid(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "..", "assets", "demo", "kioskd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 2 || c.Devices[0].DedupeWindow != Duration(2*time.Second) {
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
	if code := run([]string{"-config", cfg, "-data", data}, &stderr, time.Now()); code != 2 {
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
	for _, args := range [][]string{{}, {"-config", "x.json"}, {"-demo", "-config", "x.json"}, {"-demo-script", "s", "-config", "c", "-data", "d"}, {"-demo", "extra"}} {
		var stderr bytes.Buffer
		if code := run(args, &stderr, time.Now()); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// The demo's cards must open the demo roster: every published PIN matches its stored hash.
func TestDemoPeopleMatchTheRoster(t *testing.T) {
	var ro relay.Roster
	if err := json.Unmarshal(demoseed.RosterJSON(), &ro); err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, in := range ro.Inmates {
		if in.PIN != "" {
			t.Errorf("inmate %s has a plain PIN in the roster", in.ID)
		}
		for _, b := range in.Badges {
			hashes[b] = in.PINHash
		}
	}
	for _, tc := range ro.Technicians {
		for _, b := range tc.Badges {
			hashes[b] = tc.PINHash
		}
	}
	for _, p := range demoPeople {
		h, ok := hashes[p.Badge]
		if !ok {
			t.Errorf("%s: badge %s is on no roster entry", p.Name, p.Badge)
			continue
		}
		if !kiosk.VerifyPIN(h, p.PIN) {
			t.Errorf("%s: the published PIN does not match the roster's hash", p.Name)
		}
	}
	fac, err := demoseed.LoadFacility()
	if err != nil {
		t.Fatal(err)
	}
	if len(fac.Balances) != 3 || len(fac.Held) == 0 || len(fac.Inbound) == 0 {
		t.Fatalf("facility seed = %+v", fac)
	}
}

// Resetting the demo directory never wipes a directory the demo did not make.
func TestDemoResetRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := resetDemoDir(dir); err == nil {
		t.Fatal("reset a directory the demo did not make")
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "demo")
	if err := resetDemoDir(own); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "store.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := resetDemoDir(own); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(own, "store.db")); !os.IsNotExist(err) {
		t.Fatalf("reset left the old store: %v", err)
	}
}

func TestModeComesFromEnrollmentOrConfig(t *testing.T) {
	tablet := client.Enrollment{Mode: ModeTablet, InmateID: "A100001"}
	cases := []struct {
		cfg      string
		enrolled bool
		want     string
		fails    bool
	}{
		{"", false, ModeKiosk, false},
		{ModeTablet, false, ModeTablet, false},
		{"", true, ModeTablet, false},
		{ModeTablet, true, ModeTablet, false},
		{ModeKiosk, true, "", true},
	}
	for _, c := range cases {
		got, err := resolveMode(c.cfg, tablet, c.enrolled)
		if (err != nil) != c.fails || got != c.want {
			t.Errorf("config %q, enrolled %v: got %q, %v", c.cfg, c.enrolled, got, err)
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
	if code := run([]string{"-config", cfg, "-data", data}, &stderr, time.Now()); code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), path) || !strings.Contains(stderr.String(), "damaged") {
		t.Fatalf("the message does not name the damaged file: %s", stderr.String())
	}
	if fi, _ := os.Stat(path); fi.Size() != 3*4096+100 {
		t.Fatalf("the damaged store was changed: %d bytes", fi.Size())
	}
	stderr.Reset()
	run([]string{"-h"}, &stderr, time.Now())
	if !strings.Contains(stderr.String(), "3 when the store is damaged") {
		t.Fatalf("-h does not document exit status 3: %s", stderr.String())
	}
}
