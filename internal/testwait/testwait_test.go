package testwait

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUntilWaitsForAnotherGoroutine: the condition turns true on another goroutine and
// Until returns without failing the test.
func TestUntilWaitsForAnotherGoroutine(t *testing.T) {
	var mu sync.Mutex
	done := false
	go func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}()
	polls := 0
	Until(t, "the goroutine", func() bool {
		polls++
		mu.Lock()
		defer mu.Unlock()
		return done
	})
	if polls == 0 {
		t.Fatal("the condition was never asked")
	}
}

// fakeTB records a Fatalf instead of ending the test, and has a deadline already past, so
// UntilSaw gives up after one poll.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	for _, a := range args {
		f.failed += "|" + a.(string)
	}
	panic(f) // Fatalf does not return
}
func (f *fakeTB) Deadline() (time.Time, bool) { return time.Now(), true }

// TestUntilSawGivesUpSayingWhatItSaw: at the deadline the failure names what was awaited and
// what the condition saw last.
func TestUntilSawGivesUpSayingWhatItSaw(t *testing.T) {
	f := &fakeTB{}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("UntilSaw did not fail: %v", r)
			}
		}()
		UntilSaw(f, "the relay to answer", func() (bool, string) { return false, "3 waiting" })
	}()
	if !strings.Contains(f.failed, "the relay to answer") || !strings.Contains(f.failed, "3 waiting") {
		t.Fatalf("failure %q does not say what was awaited and seen", f.failed)
	}
}

// virtualTime is a clock that moves only when poll sleeps.
type virtualTime struct{ now time.Time }

func (v *virtualTime) Now() time.Time        { return v.now }
func (v *virtualTime) Sleep(d time.Duration) { v.now = v.now.Add(d) }

// openTB is a fakeTB without a deadline of its own.
type openTB struct{ testing.TB }

func (openTB) Helper() {}
func (o openTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// waitProgress runs poll on virtual time and returns when (in virtual minutes) it gave up,
// with its failure, or -1 if it did not.
func waitProgress(cond func(now time.Duration) (ok bool, mark, saw string)) (at float64, failed string) {
	v := &virtualTime{now: time.Unix(0, 0)}
	start := v.now
	defer func() {
		if r := recover(); r != nil {
			at, failed = v.now.Sub(start).Minutes(), fmt.Sprint(r)
		}
	}()
	poll(openTB{}, "the queue to drain", func() (bool, string, string) { return cond(v.now.Sub(start)) }, v)
	return -1, ""
}

// TestUntilProgressWaitsWhileTheWorkMoves: a drain that moves a step every 30 s is waited for
// well past the limit; one that stops fails a limit after its last step, saying where it was.
func TestUntilProgressWaitsWhileTheWorkMoves(t *testing.T) {
	at, failed := waitProgress(func(now time.Duration) (bool, string, string) {
		step := int(now / (30 * time.Second))
		return step >= 20, fmt.Sprint(step), ""
	})
	if at >= 0 {
		t.Fatalf("gave up at %.1f virtual minutes on a drain still moving: %s", at, failed)
	}
	at, failed = waitProgress(func(now time.Duration) (bool, string, string) {
		step := min(int(now/(30*time.Second)), 6) // stops at 3 minutes
		return false, fmt.Sprint(step), fmt.Sprintf("%d waiting", 100-step)
	})
	if at < 3+Limit.Minutes() || at > 3+Limit.Minutes()+0.01 {
		t.Fatalf("a drain that stopped at 3 minutes was given up at %.2f minutes, want %.0f", at, 3+Limit.Minutes())
	}
	if !strings.Contains(failed, "the queue to drain") || !strings.Contains(failed, "94 waiting") {
		t.Fatalf("failure %q does not say what was awaited and where it stopped", failed)
	}
	// UntilSaw's condition has no mark: its limit counts from the start.
	at, _ = waitProgress(func(time.Duration) (bool, string, string) { return false, "", "" })
	if at < Limit.Minutes() || at > Limit.Minutes()+0.01 {
		t.Fatalf("a wait without progress gave up at %.2f minutes, want %.0f", at, Limit.Minutes())
	}
}
