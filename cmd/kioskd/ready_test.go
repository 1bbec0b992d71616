package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/internal/testwait"
)

// TestReadyOnlyWithWelcomeUp: READY=1 reaches a real notify socket once, and only when the
// window is up and the welcome screen is on it, whichever of the two comes last.
func TestReadyOnlyWithWelcomeUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	read := func(wait time.Duration) (string, bool) {
		buf := make([]byte, 256)
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", false
		} else if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n]), true
	}
	for _, order := range [][]string{{"shown", "enroll", "welcome"}, {"welcome", "shown"}} {
		g := &readyGate{notify: sdnotify.Notify, logf: t.Logf}
		for i, step := range order {
			if step == "shown" {
				g.shown()
			} else {
				g.screen(step)
			}
			last := i == len(order)-1
			msg, got := read(map[bool]time.Duration{true: testwait.Limit, false: 0}[last])
			if got != last || (last && msg != "READY=1") {
				t.Fatalf("%v: after %q: got %q (%v)", order, step, msg, got)
			}
		}
		g.screen("pin")
		g.screen("welcome")
		if msg, got := read(0); got {
			t.Fatalf("%v: a second %q", order, msg)
		}
	}
}
