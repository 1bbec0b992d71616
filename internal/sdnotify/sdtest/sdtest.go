// Package sdtest is systemd's end of sd_notify for tests: a real unixgram socket named by
// $NOTIFY_SOCKET, read as systemd reads it. No production package imports it.
package sdtest

import (
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
)

// Socket is a notify socket listening for one test.
type Socket struct {
	t testing.TB
	c *net.UnixConn
}

// Listen makes the socket in a temporary directory and points $NOTIFY_SOCKET at it for the
// rest of the test (t.Setenv: the test cannot be parallel).
func Listen(t *testing.T) *Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &Socket{t: t, c: c}
}

// Next waits for the next notification (testwait.Limit at most: a hung test's bound).
func (s *Socket) Next() string {
	s.t.Helper()
	buf := make([]byte, 4096)
	_ = s.c.SetReadDeadline(time.Now().Add(testwait.Limit))
	n, err := s.c.Read(buf)
	if err != nil {
		s.t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// Pending returns a notification already queued on the socket, without waiting: sd_notify
// writes before it returns, so what was sent is there. (A read deadline in the past would not
// do: Go reports the timeout without looking at the queue.)
func (s *Socket) Pending() (string, bool) {
	s.t.Helper()
	rc, err := s.c.SyscallConn()
	if err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		s.t.Fatal(err)
	}
	if errors.Is(rerr, syscall.EAGAIN) {
		return "", false
	}
	if rerr != nil {
		s.t.Fatal(rerr)
	}
	return string(buf[:n]), true
}

// None fails the test if a notification is queued.
func (s *Socket) None(why string) {
	s.t.Helper()
	if msg, ok := s.Pending(); ok {
		s.t.Fatalf("unexpected notification %q %s", msg, why)
	}
}
