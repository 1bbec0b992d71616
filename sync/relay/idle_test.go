package relay

import (
	"runtime"
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
