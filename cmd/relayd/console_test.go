package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestConsoleUserAndLogin makes the first admin with `relayd console-user add`, starts relayd
// and signs in to the console it serves.
func TestConsoleUserAndLogin(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	add := []string{"add", "-data", dir, "-username", "root", "-name", "First Admin", "-roles", "admin", "-facilities", "*"}
	if err := consoleUser(add, strings.NewReader("long enough password\n"), &out, &errb); err != nil {
		t.Fatalf("console-user add: %v\n%s", err, errb.String())
	}
	if err := consoleUser(add, strings.NewReader("long enough password\n"), &out, &errb); err == nil {
		t.Errorf("adding the same account twice succeeded")
	}
	if err := consoleUser([]string{"add", "-data", dir, "-username", "xy", "-name", "X", "-roles", "admin", "-facilities", "*"},
		strings.NewReader("short\n"), &out, &errb); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("a short password: %v", err)
	}
	out.Reset()
	if err := consoleUser([]string{"list", "-data", dir}, nil, &out, &errb); err != nil || !strings.Contains(out.String(), "root\tFirst Admin\tadmin\t*") {
		t.Errorf("list: %v %q", err, out.String())
	}

	base, _, stderr, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0"}, nil)
	defer stop()
	status, path, page := consoleLogin(t, base, "root", "long enough password")
	if status != http.StatusOK || !bytes.Contains(page, []byte("Audit log")) || path != "/console/policy" {
		t.Errorf("after signing in: %d at %s: %.300s", status, path, page)
	}
	if !strings.Contains(stderr.String(), "/console/") {
		t.Errorf("relayd does not log the console's address:\n%s", stderr)
	}
	// The bearer API is still there for scripts.
	if code := get(t, http.DefaultClient, base+"/admin/v1/terminals", "wrong-token-0123456789"); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("admin API with a wrong token: %d", code)
	}
}
