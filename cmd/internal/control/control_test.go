package control

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
)

func newTerminal(t *testing.T, dir string) *kiosk.Terminal {
	t.Helper()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)),
		PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// The socket answers what ComputeStatus answers in process, plus what only a running kioskd knows.
func TestStatusOverSocketMatchesInProcess(t *testing.T) {
	dir := t.TempDir()
	term := newTerminal(t, dir)
	link := status.Link{Connected: true, LastSuccess: time.Date(2026, 11, 26, 8, 59, 0, 0, time.UTC)}
	devs := []status.Device{{Name: "door", Role: "badge", Path: "/dev/ttyUSB0", State: status.DeviceConnected, Accepted: 7,
		Rejected: map[string]uint64{"checksum": 2}}}
	srv, err := Listen(Options{DataDir: dir, Terminal: term, Sources: func() Sources {
		return Sources{DataDir: dir, RelayURL: "wss://relay.example:8443", Link: func() status.Link { return link },
			Devices: func() []status.Device { return devs }}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(srv.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Listen(Options{DataDir: dir, Terminal: term}); err == nil || !strings.Contains(err.Error(), "another kioskd") {
		t.Fatalf("a second server on the same directory: %v", err)
	}
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	got, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kioskd != "running" || len(got.Devices) != 1 || got.Devices[0].Accepted != 7 || got.Devices[0].RejectedTotal() != 2 || got.Relay.URL != "wss://relay.example:8443" {
		t.Fatalf("status over the socket = %+v", got)
	}
	stopped, err := ComputeStatus(term, Sources{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Kioskd != "not running" || stopped.Queue.Waiting != got.Queue.Waiting || stopped.Store.Epoch != got.Store.Epoch || stopped.Store.NextSeq != got.Store.NextSeq {
		t.Fatalf("stopped status %+v disagrees with running %+v on what the store holds", stopped, got)
	}

	var buf bytes.Buffer
	n, err := c.Backup(ctx, &buf)
	if err != nil || n == 0 || int64(buf.Len()) != n {
		t.Fatalf("backup over the socket: %d bytes, %v (buffer %d)", n, err, buf.Len())
	}
	rep, err := c.Verify(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("verify over the socket: %+v, %v", rep, err)
	}
	srv.Close()
	if _, err := os.Stat(srv.Path()); !os.IsNotExist(err) {
		t.Fatalf("socket still there after Close: %v", err)
	}
}
