package relay

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/wire"
)

// An idle connection holds one goroutine, its read loop: the downlink writer runs only while
// it has work, and pings and the cursor's writes run on timers. Once the connections went
// idle, downlink queued for them still comes down at once (a notice to the facility), each
// acknowledgement is taken, and they go back to one goroutine each.
func TestIdleConnectionHoldsOneGoroutine(t *testing.T) {
	const n = 40
	e := newEnv(t, func(c *Config) {
		c.MaxPending, c.MaxPendingPerAddr = n, n
		c.PingInterval = time.Hour // no ping under way while goroutines are counted
	})
	e.seed()
	terms := make([]*term, n)
	for i := range terms {
		terms[i] = e.enroll(wire.ModeKiosk, "")
	}
	base := runtime.NumGoroutine()
	conns := make([]*tconn, n)
	for i, tm := range terms {
		conns[i] = tm.connect(t, 0)
	}
	// What the enrollment queued (policy, roster) comes down and is acknowledged: each writer
	// and each down_ack's look has run.
	for _, c := range conns {
		c.waitDown(wire.DownInmate, nil)
	}
	idle := func(what string) {
		t.Helper()
		waitUntil(t, what, func() bool { return runtime.NumGoroutine()-base <= n })
	}
	idle("the connections hold one goroutine each")

	var notice wire.Notice
	e.must(201, "POST", "/admin/v1/notices", map[string]any{"facility_id": "north", "text": "Kiosks close at 21:00"}, &notice)
	for _, c := range conns {
		if got := decodeAs[wire.Notice](t, c.waitDown(wire.DownNotice, nil).Body); got.Text != "Kiosks close at 21:00" {
			t.Fatalf("terminal %s got notice %+v", c.term.id, got)
		}
		c.ackDown(c.lastSeq())
	}
	waitUntil(t, "every acknowledgement taken", func() bool {
		for _, c := range conns {
			if s := e.r.hub.session(c.term.id); s == nil || s.acked.Load() != c.lastSeq() {
				return false
			}
		}
		return true
	})
	idle("the connections went back to one goroutine each")
	if got := e.r.hub.count(); got != n {
		t.Fatalf("%d terminals connected, want %d", got, n)
	}
}

// An idle connection waits for its next frame on a goroutine that holds nothing but that read:
// the reader that handled a frame (JSON, the store, each of which grows a goroutine's stack
// for good while it then waits) handed the next read to a fresh goroutine, so an idle
// connection's stack is the small one its wait needs (memory per idle terminal,
// docs/SCALE.md). Each connection here handled frames (down_acks) before going idle.
func TestIdleConnectionWaitsOnAFreshReader(t *testing.T) {
	const n = 3
	e := newEnv(t, func(c *Config) { c.PingInterval = time.Hour })
	e.seed()
	conns := make([]*tconn, n)
	for i := range conns {
		conns[i] = e.enroll(wire.ModeKiosk, "").connect(t, 0)
	}
	for _, c := range conns {
		c.waitDown(wire.DownInmate, nil)
		c.ackDown(c.lastSeq())
	}
	waitUntil(t, "every acknowledgement taken", func() bool {
		for _, c := range conns {
			if s := e.r.hub.session(c.term.id); s == nil || s.acked.Load() != c.lastSeq() {
				return false
			}
		}
		return true
	})
	const pkg = "github.com/tether-kiosk/tether/sync/relay."
	var readers []string
	waitUntil(t, "a reader waiting on each connection", func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		readers = readers[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, pkg+"(*Relay).readLoop(") && strings.Contains(g, "websocket.(*Conn).Reader") {
				readers = append(readers, g)
			}
		}
		return len(readers) == n
	})
	for _, g := range readers {
		var ours []string
		for _, line := range strings.Split(g, "\n") {
			// The socket's own read (termconn.go) is a frame of a few words, as net's is.
			if strings.HasPrefix(line, pkg) && !strings.HasPrefix(line, pkg+"(*termConn).Read(") {
				ours = append(ours, line[len(pkg):strings.LastIndex(line, "(")])
			}
		}
		if len(ours) != 1 || !strings.Contains(g, "created by "+pkg+"(*Relay).readLoop") {
			t.Fatalf("an idle connection's reader holds the frames %v (want only readLoop's, on a goroutine readLoop started):\n%s", ours, g)
		}
	}
}
