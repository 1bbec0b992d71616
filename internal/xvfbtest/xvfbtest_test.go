package xvfbtest

import (
	"os"
	"strings"
	"testing"
)

// Start gives a display whose X socket exists while the test runs.
func TestStartGivesADisplayWithItsSocket(t *testing.T) {
	display := Start(t)
	n, ok := strings.CutPrefix(display, ":")
	if !ok || n == "" {
		t.Fatalf("display %q", display)
	}
	if _, err := os.Stat("/tmp/.X11-unix/X" + n); err != nil {
		t.Fatalf("display %s has no socket: %v", display, err)
	}
}
