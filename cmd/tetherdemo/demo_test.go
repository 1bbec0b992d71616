package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	demoseed "github.com/tether-kiosk/tether/assets/demo"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
)

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
