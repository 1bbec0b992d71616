// Package xvfbtest starts a private X server (Xvfb) for a test that needs a real window: the
// smoke tests of the kiosk binaries, and tests of Fyne's real driver. It is for tests only.
package xvfbtest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Start starts Xvfb on a free display number and returns the display (":N") for DISPLAY; it
// is stopped when the test ends. Without Xvfb installed the test is skipped, saying why.
func Start(t testing.TB) string {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Skip("skipped: Xvfb is not installed (make deps installs it)")
	}
	for n := 90; n < 190; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
		if _, err := os.Stat(sock); err == nil {
			continue
		}
		cmd := exec.Command(xvfb, fmt.Sprintf(":%d", n), "-screen", "0", "1920x1080x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start Xvfb: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(sock); err == nil {
				t.Cleanup(func() {
					// SIGTERM lets Xvfb remove its lock and socket; a kill would leave them.
					_ = cmd.Process.Signal(syscall.SIGTERM)
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						_ = cmd.Process.Kill()
						<-exited
					}
				})
				return fmt.Sprintf(":%d", n)
			}
			select {
			case <-exited:
				deadline = time.Time{} // lost a race for this number: try the next
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatal("no free X display number for Xvfb")
	return ""
}
