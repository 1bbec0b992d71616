package gctune

import (
	"context"
	"flag"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// restore puts the collector back as the test found it.
func restore(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func noEnv(string) string { return "" }

// The flags' defaults are the daemon's, and Apply puts them in force.
func TestFlagsApply(t *testing.T) {
	restore(t)
	var o Options
	fs := flag.NewFlagSet("d", flag.ContinueOnError)
	Flags(fs, &o, Options{Percent: 400})
	if err := fs.Parse([]string{"-memory-limit-mib", "512"}); err != nil {
		t.Fatal(err)
	}
	got, err := Apply(o, noEnv)
	if err != nil || got != "gc-percent=400 memory-limit-mib=512" {
		t.Fatalf("Apply = %q, %v", got, err)
	}
	if p := debug.SetGCPercent(100); p != 400 {
		t.Fatalf("GC percent in force %d, want 400", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 512<<20 {
		t.Fatalf("memory limit in force %d, want %d", l, 512<<20)
	}
}

// GOGC and GOMEMLIMIT set in the environment are left as the runtime applied them.
func TestEnvironmentWins(t *testing.T) {
	restore(t)
	debug.SetGCPercent(150) // as the runtime would have from GOGC=150
	env := func(k string) string { return map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}[k] }
	got, err := Apply(Options{Percent: 400, LimitMiB: 64}, env)
	if err != nil || !strings.Contains(got, "GOGC=150 (environment)") || !strings.Contains(got, "GOMEMLIMIT=1GiB (environment)") {
		t.Fatalf("Apply = %q, %v", got, err)
	}
	if p := debug.SetGCPercent(100); p != 150 {
		t.Fatalf("GC percent in force %d, want the environment's 150", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Fatalf("memory limit in force %d, want none set by Apply", l)
	}
}

// A negative limit, or the collector off without a limit, is refused and changes nothing.
func TestBadOptionsRefused(t *testing.T) {
	restore(t)
	for _, o := range []Options{{Percent: 100, LimitMiB: -1}, {Percent: -1}} {
		if _, err := Apply(o, noEnv); err == nil || !strings.Contains(err.Error(), "-") {
			t.Errorf("Apply(%+v) = %v, want an error naming the flag", o, err)
		}
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GC percent changed to %d by refused options", p)
	}
}

// gogc is the percentage in force.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// With an idle percentage the daemon starts idle, takes the busy percentage at the first tick
// that sees work, and goes back to idle after idleTicks ticks without; ticks are sent by the
// test, so no clock is involved (a tick's send returns once the one before it was handled).
func TestAdaptFollowsWork(t *testing.T) {
	restore(t)
	o := Options{Percent: 400, IdlePercent: 100}
	got, err := Apply(o, noEnv)
	if err != nil || got != "gc-percent=400 gc-idle-percent=100 memory-limit-mib=none" {
		t.Fatalf("Apply = %q, %v", got, err)
	}
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent %d before any work, want the idle 100", p)
	}
	// work is read once a tick, at its start, and says so: a step returns once its tick read
	// the count, so a change the test makes after it is seen by the next tick and none before,
	// and a step's send returns only once the tick before it was handled.
	var count atomic.Uint64
	read := make(chan struct{})
	work := func() uint64 {
		n := count.Load()
		read <- struct{}{}
		return n
	}
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Adapt(ctx, o, noEnv, work, tick)
	}()
	<-read // Adapt's first reading
	step := func() {
		tick <- time.Time{}
		<-read
	}
	step()
	step()
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent %d with no work, want 100", p)
	}
	count.Add(3)
	step() // sees the work
	step()
	if p := gogc(); p != 400 {
		t.Fatalf("GC percent %d while working, want 400", p)
	}
	for range idleTicks - 2 {
		step()
	}
	// idleTicks-2 ticks without work handled, the idleTicks-1-th read: not idle yet.
	if p := gogc(); p != 400 {
		t.Fatalf("GC percent %d after %d ticks without work, want still 400", p, idleTicks-2)
	}
	step() // the idleTicks-th
	step()
	if p := gogc(); p != 100 {
		t.Fatalf("GC percent %d after %d ticks without work, want the idle 100", p, idleTicks)
	}
	cancel()
	<-done

	// GOGC in the environment: Adapt leaves the collector alone.
	debug.SetGCPercent(150)
	Adapt(context.Background(), o, func(k string) string { return map[string]string{"GOGC": "150"}[k] }, count.Load, nil)
	if p := gogc(); p != 150 {
		t.Fatalf("GC percent %d with GOGC=150 set, want 150", p)
	}
}
