package testwait

import (
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
