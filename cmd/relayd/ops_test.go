package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay"
)

// TestSystemdNotifyAndWatchdog: under systemd (a real notify socket, WatchdogSec of 200ms),
// relayd says READY=1 once it listens, keeps pinging the watchdog while its store takes
// writes, and says STOPPING=1 on the way out.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	var got []string
	next := func(want string) {
		t.Helper()
		buf := make([]byte, 512)
		for {
			_ = c.SetReadDeadline(time.Now().Add(testwait.Limit))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q (got %q): %v", want, got, err)
			}
			got = append(got, string(buf[:n]))
			if string(buf[:n]) == want {
				return
			}
		}
	}
	base, _, _, stop := start(t, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0"},
		map[string]string{"WATCHDOG_USEC": "200000", TokenEnv: "a-token-of-enough-length"})
	next("READY=1")
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after READY: %v %v", resp, err)
	}
	next("WATCHDOG=1")
	next("WATCHDOG=1")
	stop()
	next("STOPPING=1")
	if got[0] != "READY=1" {
		t.Fatalf("first notification %q, want READY=1 (all: %q)", got[0], got)
	}
}

// TestOpsEndpointsAndJSONLogs: a running relayd answers /healthz, /readyz and /metrics with
// tether_ series, and with -log-format json every log line is a JSON record without the token.
func TestOpsEndpointsAndJSONLogs(t *testing.T) {
	const token = "ops-test-token-0123456789abcdef"
	base, _, stderr, stop := start(t, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-log-format", "json"},
		map[string]string{TokenEnv: token})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "tether_terminals_enrolled 0"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.500s", path, resp.StatusCode, want, body)
		}
	}
	if st := get(t, http.DefaultClient, base+"/admin/v1/terminals", token); st != 200 {
		t.Fatalf("admin: %d", st)
	}
	stop()
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("too few log lines:\n%s", stderr)
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] == nil {
			t.Errorf("not a JSON log record: %s", l)
		}
		if strings.Contains(l, token) {
			t.Errorf("the token reached the log: %s", l)
		}
	}
}

// TestBackupCommandRestores: relayd backup copies a running relay's store over its admin
// API; the documented restore (the copy as relay.db in a data directory) passes relayd verify
// and shows the facility's roster and money.
func TestBackupCommandRestores(t *testing.T) {
	const token = "backup-test-token-0123456789abc"
	env := map[string]string{TokenEnv: token}
	base, _, _, stop := start(t, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0"}, env)
	defer stop()
	post := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	post("PUT", "/admin/v1/facilities/north/roster", `{"inmates":[{"id":"A1","name":"Ana","badges":["B1"],"pin":"4821","language":"en","status":"active"}]}`)
	post("POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":2500,"ref":"dep-1"}`)

	out := filepath.Join(t.TempDir(), "relay-backup.db")
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"backup", "-relay", base, "-o", out}, func(k string) string { return env[k] }, &stdout, &stderr, nil); err != nil {
		t.Fatalf("relayd backup: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "written to "+out) {
		t.Errorf("relayd backup said %q", stdout.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	// The restore: the copy becomes relay.db of a (stopped) relay's data directory.
	dir := t.TempDir()
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, relay.DBFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"verify", "-data", dir}, func(string) string { return "" }, &stdout, &stderr, nil); err != nil {
		t.Fatalf("relayd verify on the restored copy: %v\n%s", err, stdout.String())
	}
	r, err := relay.Open(relay.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.Balance("A1")
	if err != nil || b.BalanceCents != 2500 {
		t.Fatalf("restored balance = %+v, %v; want 2500", b, err)
	}
	// A wrong token writes nothing.
	bad := filepath.Join(t.TempDir(), "bad.db")
	err = run(context.Background(), []string{"backup", "-relay", base, "-o", bad}, func(k string) string {
		return map[string]string{TokenEnv: "not-the-token-0123456789"}[k]
	}, &stdout, &stderr, nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("backup with a wrong token: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(bad)); len(entries) != 0 {
		t.Fatalf("a failed backup left %v", entries)
	}
}
