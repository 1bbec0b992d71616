package gctune

import (
	"flag"
	"math"
	"runtime/debug"
	"strings"
	"testing"
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
