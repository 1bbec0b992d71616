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
