package sdnotify

import (
	"context"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/sdnotify/sdtest"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

func TestNotifyReachesTheSocket(t *testing.T) {
	s := sdtest.Listen(t)
	if ok, err := Notify(Ready); !ok || err != nil {
		t.Fatalf("Notify = %v, %v", ok, err)
	}
	if got := s.Next(); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := Notify(Ready); ok || err != nil {
		t.Fatalf("outside systemd: Notify = %v, %v; want a silent no-op", ok, err)
	}
}

func TestWatchdogEvery(t *testing.T) {
	env := func(usec, pid string) func(string) string {
		return func(k string) string {
			return map[string]string{"WATCHDOG_USEC": usec, "WATCHDOG_PID": pid}[k]
		}
	}
	cases := []struct {
		usec, pid string
		want      time.Duration
	}{
		{"30000000", "", 15 * time.Second},
		{"30000000", "100", 15 * time.Second}, // this process
		{"30000000", "99", 15 * time.Second},  // its parent (cage)
		{"30000000", "7", 0},                  // someone else's
		{"", "", 0},
		{"0", "", 0},
		{"lots", "", 0},
	}
	for _, c := range cases {
		if got := WatchdogEvery(env(c.usec, c.pid), 100, 99); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}

// uiLoop stands for kioskd's UI goroutine: it runs what is handed to it, in order. A hung
// screen handler is a job that never returns.
type uiLoop struct{ jobs chan func() }

func newUILoop(t *testing.T) *uiLoop {
	l := &uiLoop{jobs: make(chan func(), 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range l.jobs {
			f()
		}
	}()
	t.Cleanup(func() { close(l.jobs); <-done })
	return l
}

func (l *uiLoop) do(f func()) { l.jobs <- f }

// TestFrozenUILoopIsReportedWithinWatchdogSec: pings flow through the UI loop every half
// WatchdogSec; once a handler hangs the loop, no ping comes, so systemd (here: the last ping's
// time against WatchdogSec) finds the service unhealthy no later than WatchdogSec after the
// hang. When the loop runs again, the ping that waited on it goes out; only one ever waits.
func TestFrozenUILoopIsReportedWithinWatchdogSec(t *testing.T) {
	const watchdogTimeout = 30 * time.Second
	s := sdtest.Listen(t)
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	loop := newUILoop(t)
	p := &Pinger{Clock: clk, Every: WatchdogEvery(func(k string) string {
		return map[string]string{"WATCHDOG_USEC": "30000000"}[k]
	}, 1, 0), OnLoop: loop.do}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var lastPing time.Duration
	unhealthy := func(now time.Duration) bool { return now-lastPing >= watchdogTimeout }
	// Healthy: a ping at the start and at every tick.
	for i := 0; i < 3; i++ {
		if i > 0 {
			clk.WaitTimers(1)
			clk.Advance(p.Every)
		}
		if got := s.Next(); got != "WATCHDOG=1" {
			t.Fatalf("tick %d: got %q", i, got)
		}
		lastPing = clk.Mono()
		if unhealthy(clk.Mono()) {
			t.Fatalf("unhealthy at %v while the loop runs", clk.Mono())
		}
	}
	// A screen handler hangs the loop.
	unfreeze := make(chan struct{})
	loop.do(func() { <-unfreeze })
	frozenAt := clk.Mono()
	reported := time.Duration(-1)
	for clk.Mono() < frozenAt+2*watchdogTimeout {
		clk.WaitTimers(1) // the tick before was taken: its ping (if any) was handed over
		clk.Advance(p.Every)
		clk.WaitTimers(1)
		s.None("while the UI loop is frozen")
		if reported < 0 && unhealthy(clk.Mono()) {
			reported = clk.Mono()
		}
	}
	if reported < 0 || reported-frozenAt > watchdogTimeout {
		t.Fatalf("frozen at %v, reported unhealthy at %v: want within %v", frozenAt, reported, watchdogTimeout)
	}
	if p.Attempts() != 4 || !p.Waiting() {
		t.Fatalf("%d pings handed to the loop (waiting %v): a frozen loop must hold one, not pile them up", p.Attempts(), p.Waiting())
	}
	close(unfreeze)
	if got := s.Next(); got != "WATCHDOG=1" {
		t.Fatalf("after the loop ran again: got %q", got)
	}
}
