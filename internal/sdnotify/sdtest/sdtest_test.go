package sdtest_test

import (
	"net"
	"os"
	"testing"

	"github.com/tether-kiosk/tether/internal/sdnotify/sdtest"
)

// The socket reads what a daemon sends to $NOTIFY_SOCKET, in order, and Pending tells an
// empty queue from a sent message without waiting.
func TestSocketReadsWhatIsSent(t *testing.T) {
	s := sdtest.Listen(t)
	if msg, ok := s.Pending(); ok {
		t.Fatalf("a new socket holds %q", msg)
	}
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"READY=1", "STATUS=relay up"} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Next(); got != "READY=1" {
		t.Fatalf("first notification %q", got)
	}
	if got, ok := s.Pending(); !ok || got != "STATUS=relay up" {
		t.Fatalf("second notification %q, %v", got, ok)
	}
	s.None("after both were read")
}
