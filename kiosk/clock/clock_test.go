package clock

import (
	"testing"
	"time"
)

func TestFakeWallJumpLeavesMonoAlone(t *testing.T) {
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	f := NewFake(start)
	f.Advance(90 * time.Second)
	f.JumpWall(-48 * time.Hour)
	if got := f.Mono(); got != 90*time.Second {
		t.Fatalf("Mono after wall jump = %v, want 1m30s", got)
	}
	if got, want := f.Now(), start.Add(90*time.Second-48*time.Hour); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
}

// Fake timers fire when Advance reaches them, in deadline order, and never after Stop; a
// Reset discards a value fired before it.
func TestFakeTimersFireOnAdvance(t *testing.T) {
	f := NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	late, early, stopped := f.NewTimer(2*time.Second), f.NewTimer(time.Second), f.NewTimer(time.Second)
	calls := make(chan string, 2)
	f.AfterFunc(1500*time.Millisecond, func() { calls <- "func" })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports an armed timer once")
	}
	if f.Timers() != 3 {
		t.Fatalf("%d timers armed, want 3", f.Timers())
	}
	f.Advance(999 * time.Millisecond)
	select {
	case <-early.C():
		t.Fatal("fired before its deadline")
	default:
	}
	f.Advance(time.Millisecond)
	if at := <-early.C(); !at.Equal(f.Now()) {
		t.Fatalf("fired with %v, want %v", at, f.Now())
	}
	f.Advance(time.Second)
	<-late.C()
	if got := <-calls; got != "func" {
		t.Fatal(got)
	}
	select {
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	// A value fired and not read is dropped by Reset; the timer fires again d later.
	f.Advance(0)
	early.Reset(time.Second)
	late.Reset(0)
	<-late.C()
	if f.WaitTimers(1); f.Timers() != 1 {
		t.Fatalf("%d timers armed, want 1", f.Timers())
	}
	f.Advance(time.Second)
	<-early.C()
}
