package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/cmd/internal/kioskapp"
	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/internal/sdnotify/sdtest"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// loopDriver is Fyne's test driver with a goroutine of its own as the UI loop: what kioskd
// hands to Do runs there, in order, as on the real driver's main goroutine.
type loopDriver struct {
	app  fyne.App
	q    chan func()
	quit chan struct{}
	once sync.Once
}

func (d *loopDriver) App() fyne.App { return d.app }
func (d *loopDriver) Do(f func()) {
	select {
	case d.q <- f:
	case <-d.quit:
	}
}
func (d *loopDriver) DoAndWait(f func()) {
	done := make(chan struct{})
	d.Do(func() { defer close(done); f() })
	select {
	case <-done:
	case <-d.quit:
	}
}
func (d *loopDriver) Run(win fyne.Window, started func()) {
	win.Show()
	started()
	for {
		select {
		case f := <-d.q:
			f()
		case <-d.quit:
			return
		}
	}
}
func (d *loopDriver) Quit() { d.once.Do(func() { close(d.quit) }) }

// TestFrozenKioskdIsReportedUnhealthy runs kioskd's app (its store, screens and UI loop on
// Fyne's test driver) wired to systemd as kioskd wires it, against a real notify socket and
// WatchdogSec=30s on a fake clock: READY=1 comes with the welcome screen, WATCHDOG=1 every
// 15s; once a screen handler hangs the UI loop, no ping comes, and systemd (the last ping
// against WatchdogSec) finds it unhealthy within WatchdogSec of the hang.
func TestFrozenKioskdIsReportedUnhealthy(t *testing.T) {
	const watchdogTimeout = 30 * time.Second
	sock := sdtest.Listen(t)

	drv := &loopDriver{app: test.NewTempApp(t), q: make(chan func(), 4096), quit: make(chan struct{})}
	ready := &readyGate{notify: sdnotify.Notify, logf: t.Logf}
	app, err := kioskapp.Open(kioskapp.Options{DataDir: t.TempDir(), Logf: t.Logf, Driver: drv,
		OnScreen: ready.screen, OnShown: ready.shown})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- app.Run(ctx) }()
	unfreeze := make(chan struct{})
	var unfreezeOnce sync.Once
	defer func() {
		unfreezeOnce.Do(func() { close(unfreeze) })
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
		if err := app.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if got := sock.Next(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1 with the welcome screen", got)
	}

	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	p := startWatchdog(ctx, app, clk, func(k string) string {
		return map[string]string{"WATCHDOG_USEC": "30000000"}[k]
	}, t.Logf)
	if p == nil || p.Every != watchdogTimeout/2 {
		t.Fatalf("pinger %+v: want one every %v", p, watchdogTimeout/2)
	}
	var lastPing time.Duration
	for i := 0; i < 3; i++ {
		if i > 0 {
			clk.WaitTimers(1)
			clk.Advance(p.Every)
		}
		if got := sock.Next(); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: %q", i, got)
		}
		lastPing = clk.Mono()
	}
	// A screen handler hangs: the UI loop runs nothing more.
	app.Do(func() { <-unfreeze })
	frozenAt := clk.Mono()
	reported := time.Duration(-1)
	for clk.Mono() < frozenAt+2*watchdogTimeout {
		clk.WaitTimers(1)
		clk.Advance(p.Every)
		clk.WaitTimers(1) // the tick was taken (and its ping, if any, handed to the loop)
		sock.None("while the UI loop is frozen")
		if reported < 0 && clk.Mono()-lastPing >= watchdogTimeout {
			reported = clk.Mono()
		}
	}
	if reported < 0 || reported-frozenAt > watchdogTimeout {
		t.Fatalf("frozen at %v, found unhealthy at %v: want within %v", frozenAt, reported, watchdogTimeout)
	}
	unfreezeOnce.Do(func() { close(unfreeze) })
	if got := sock.Next(); got != "WATCHDOG=1" {
		t.Fatalf("after the UI loop ran again: %q", got)
	}
}
