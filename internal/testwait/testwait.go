// Package testwait is how tests wait for what happens on another goroutine or in another
// process (a sync engine, a relay, a device on a pty, a child kioskd): poll a condition until
// it holds. It is for tests only; no production package imports it.
//
// The limit only stops a hung test; it is not a budget the code under test must meet, so it
// is generous, and a test never asserts how long something took. Logic that depends on time
// is tested with kiosk/clock's fake clock or testing/synctest instead.
package testwait

import (
	"testing"
	"time"
)

// Limit is how long Until and UntilSaw wait at most, unless the test binary's own deadline
// (go test -timeout) comes sooner: then they give up just before it, to say what they waited
// for rather than die in the middle of the wait.
const Limit = time.Minute

// deadlineMargin is left before the test binary's deadline to report and clean up.
const deadlineMargin = 5 * time.Second

// maxPause is the longest pause between two polls; the first ones are shorter, so a
// condition that soon holds costs little wall time, and one that takes long costs little CPU.
const maxPause = 50 * time.Millisecond

// Until polls cond until it holds, and ends the test (tb.Fatalf) if it does not by the limit.
// Like every Fatal, call it from the test's goroutine only.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	UntilSaw(tb, what, func() (bool, string) { return cond(), "" })
}

// UntilSaw is Until for a condition that says what it saw; the last thing it saw is in the
// failure, to show how far things got.
func UntilSaw(tb testing.TB, what string, cond func() (ok bool, saw string)) {
	tb.Helper()
	// The mark never changes, so the limit counts from the start.
	poll(tb, what, func() (bool, string, string) { ok, saw := cond(); return ok, "", saw }, realTime{})
}

// UntilProgress is UntilSaw for work that moves in steps, like a queue draining through a
// relay on a busy machine: mark says how far it got, and the limit counts from the last time
// the mark changed. A wait that keeps moving is not a hang, however slow the machine; one
// that stops moving for the limit is, and fails saying where it stopped.
func UntilProgress(tb testing.TB, what string, cond func() (ok bool, mark, saw string)) {
	tb.Helper()
	poll(tb, what, cond, realTime{})
}

// clock is the time poll uses: real time, or a test's own (testwait_test.go).
type clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realTime struct{}

func (realTime) Now() time.Time        { return time.Now() }
func (realTime) Sleep(d time.Duration) { time.Sleep(d) }

func poll(tb testing.TB, what string, cond func() (ok bool, mark, saw string), c clock) {
	tb.Helper()
	end := time.Time{} // the test binary's deadline, less the margin
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if e, ok := d.Deadline(); ok {
			end = e.Add(-deadlineMargin)
		}
	}
	deadline := func(from time.Time) time.Time {
		d := from.Add(Limit)
		if !end.IsZero() && end.Before(d) {
			return end
		}
		return d
	}
	giveUp := deadline(c.Now())
	var last string
	pause := time.Millisecond
	for first := true; ; first = false {
		ok, mark, saw := cond()
		if ok {
			return
		}
		if !first && mark != last {
			giveUp = deadline(c.Now())
		}
		last = mark
		if !c.Now().Before(giveUp) {
			if saw != "" {
				tb.Fatalf("gave up waiting for %s; last saw: %s", what, saw)
			}
			tb.Fatalf("gave up waiting for %s", what)
		}
		c.Sleep(pause)
		pause = min(2*pause, maxPause)
	}
}
