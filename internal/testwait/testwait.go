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
	deadline := time.Now().Add(Limit)
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := d.Deadline(); ok && end.Add(-deadlineMargin).Before(deadline) {
			deadline = end.Add(-deadlineMargin)
		}
	}
	pause := time.Millisecond
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			if saw != "" {
				tb.Fatalf("gave up waiting for %s; last saw: %s", what, saw)
			}
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPause)
	}
}
