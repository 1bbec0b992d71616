package main

import (
	"context"
	"os"

	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// readyGate tells systemd READY=1 once, when the window is up and shows the welcome screen:
// before that, a restarted kiosk is not yet usable, and systemd must not count it started.
// Its methods run on the UI goroutine (kioskapp's OnShown and OnScreen), so it needs no lock.
type readyGate struct {
	notify  func(state string) (bool, error)
	logf    kiosk.Logf
	up      bool   // the window is shown
	current string // the view on screen
	sent    bool
}

func (g *readyGate) shown() {
	g.up = true
	g.check()
}

func (g *readyGate) screen(name string) {
	g.current = name
	g.check()
}

func (g *readyGate) check() {
	if g.sent || !g.up || g.current != "welcome" {
		return
	}
	g.sent = true
	ok, err := g.notify("READY=1")
	switch {
	case err != nil:
		g.logf("systemd: %v", err)
	case ok:
		g.logf("systemd: ready (welcome screen up)")
	}
}

// startWatchdog pings systemd's watchdog through the UI loop (ui.Do, kioskapp's App.Do: Fyne's
// fyne.Do), when the unit asks for it ($WATCHDOG_USEC): a frozen UI stops the pings and
// systemd restarts the kiosk. It returns the pinger, or nil when there is no watchdog.
func startWatchdog(ctx context.Context, ui interface{ Do(func()) }, clk clock.Clock, getenv func(string) string, logf kiosk.Logf) *sdnotify.Pinger {
	every := sdnotify.WatchdogEvery(getenv, os.Getpid(), os.Getppid())
	if every <= 0 {
		return nil
	}
	p := &sdnotify.Pinger{Clock: clk, Every: every, OnLoop: ui.Do}
	go p.Run(ctx)
	logf("systemd: watchdog pinged from the UI loop every %v", every)
	return p
}
