package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A relayd that exits before it serves is reported with what it wrote, so the person running
// the load sees why (a bad flag, a port taken), and its directory is removed.
func TestSpawnReportsTheLogOfARelaydThatExits(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "relayd")
	script := "#!/bin/sh\necho 'relayd: listen 127.0.0.1:1: address already in use' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := spawnRelay(bin, tmp, "127.0.0.1:1", "", nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("spawn: %v, want relayd's own words", err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "tetherload-relay-*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
