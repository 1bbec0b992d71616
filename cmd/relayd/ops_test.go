package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
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
