package main

import (
	"testing"

	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/internal/sdnotify/sdtest"
)

// TestReadyOnlyWithWelcomeUp: READY=1 reaches a real notify socket once, and only when the
// window is up and the welcome screen is on it, whichever of the two comes last.
func TestReadyOnlyWithWelcomeUp(t *testing.T) {
	sock := sdtest.Listen(t)
	for _, order := range [][]string{{"shown", "enroll", "welcome"}, {"welcome", "shown"}} {
		g := &readyGate{notify: sdnotify.Notify, logf: t.Logf}
		for i, step := range order {
			if step == "shown" {
				g.shown()
			} else {
				g.screen(step)
			}
			if i < len(order)-1 {
				sock.None("before the welcome screen is up")
			}
		}
		if got := sock.Next(); got != "READY=1" {
			t.Fatalf("%v: got %q, want READY=1", order, got)
		}
		g.screen("pin")
		g.screen("welcome")
		sock.None("after READY was sent once")
	}
}
