package main

import "github.com/tether-kiosk/tether/kiosk"

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
