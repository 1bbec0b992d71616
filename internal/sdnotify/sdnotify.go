// Package sdnotify tells systemd how a service is doing (sd_notify, through
// github.com/coreos/go-systemd/v22/daemon): READY=1 once it serves, STOPPING=1 as it stops,
// and WATCHDOG=1 pings from the part of the program whose hang must restart it. Outside
// systemd ($NOTIFY_SOCKET unset) every call does nothing.
package sdnotify

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// States a service sends.
const (
	Ready    = daemon.SdNotifyReady
	Stopping = daemon.SdNotifyStopping
	Watchdog = daemon.SdNotifyWatchdog
)

// Notify sends state to systemd; it reports whether anyone listened ($NOTIFY_SOCKET set).
func Notify(state string) (bool, error) {
	ok, err := daemon.SdNotify(false, state)
	if err != nil {
		return ok, fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return ok, nil
}

// Status sends a STATUS= line (what systemctl status shows).
func Status(text string) { _, _ = daemon.SdNotify(false, "STATUS="+text) }

// WatchdogEvery is how often to ping: half of the unit's WatchdogSec ($WATCHDOG_USEC), as
// sd_watchdog_enabled(3) advises, or 0 when the watchdog is off or meant for another process.
// $WATCHDOG_PID names the unit's main process: that is this process, or for kioskd under
// cage (cage -- kioskd, NotifyAccess=all) its parent, whose hang is kioskd's hang too.
// go-systemd's SdWatchdogEnabled accepts only the first, hence these few lines.
func WatchdogEvery(getenv func(string) string, pid, ppid int) time.Duration {
	usec, err := strconv.ParseUint(getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return 0
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || (n != pid && n != ppid) {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Pinger sends WATCHDOG=1 through a loop of the program: every interval it hands a ping to
// onLoop, which must run it on that loop (kioskd: the UI goroutine, through fyne.Do). A loop
// that is stuck never runs it, so the pings stop and systemd restarts the service after
// WatchdogSec. Only one ping waits on the loop at a time: a frozen loop does not pile them up.
type Pinger struct {
	Clock    clock.Clock
	Every    time.Duration
	OnLoop   func(func())
	Ping     func() // sends WATCHDOG=1 (nil: Notify(Watchdog))
	waiting  atomic.Bool
	attempts atomic.Uint64
}

// Run pings until ctx ends.
func (p *Pinger) Run(ctx context.Context) {
	ping := p.Ping
	if ping == nil {
		ping = func() { _, _ = Notify(Watchdog) }
	}
	var t clock.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if p.waiting.CompareAndSwap(false, true) {
			p.attempts.Add(1)
			p.OnLoop(func() {
				// Cleared first: once the ping is out, the next tick may hand over another.
				p.waiting.Store(false)
				ping()
			})
		}
		// Armed only after the attempt, the first time too: a test that saw the timer armed
		// knows the tick before it was taken. A timer made armed before the first attempt
		// let a test's tick land before the Reset, which drops it (clock.Timer), and the
		// next ping never came.
		if t == nil {
			t = p.Clock.NewTimer(p.Every)
		} else {
			t.Reset(p.Every)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// Attempts is how many pings were handed to the loop (tests use it to know a tick was taken).
func (p *Pinger) Attempts() uint64 { return p.attempts.Load() }

// Waiting reports whether a ping waits on the loop (the loop has not run the last one).
func (p *Pinger) Waiting() bool { return p.waiting.Load() }
