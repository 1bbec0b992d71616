// Package gctune sets the Go garbage collector of a daemon (relayd, kioskd) from its flags.
//
// The collector's default (GOGC=100) starts a cycle each time the heap doubles its live part.
// Both daemons keep a small live heap (tens of megabytes) and allocate fast while they move
// letters (frames, records, compression buffers), so at the default the collector ran every
// few milliseconds during a backlog drain and took some 15-25% of the CPU of both ends
// (docs/BENCHMARKS.md, "sixth round"). A higher percentage trades a larger heap, a few
// times the small live one, for fewer cycles. A soft memory limit keeps that trade from
// growing the heap past what the machine can spare: near the limit the collector runs as
// often as it must, whatever the percentage.
//
// The environment wins: GOGC or GOMEMLIMIT, when set, are what an operator asked for, and
// the runtime has already applied them; the flags do not override them.
package gctune

import (
	"flag"
	"fmt"
	"runtime/debug"
)

// Options are the collector settings of a daemon.
type Options struct {
	// Percent is debug.SetGCPercent's value: the heap may grow by this percentage of its live
	// part before a cycle starts. Negative turns the collector off (only with a limit).
	Percent int
	// LimitMiB is a soft memory limit in MiB (debug.SetMemoryLimit); 0 sets none.
	LimitMiB int64
}

// Flags registers -gc-percent and -memory-limit-mib on fs, with the daemon's defaults.
func Flags(fs *flag.FlagSet, o *Options, def Options) {
	fs.IntVar(&o.Percent, "gc-percent", def.Percent,
		"garbage collector target: heap growth, in percent of the live heap, before a cycle (GOGC, which wins if set)")
	fs.Int64Var(&o.LimitMiB, "memory-limit-mib", def.LimitMiB,
		"soft limit of the Go heap in MiB; the collector works harder near it (GOMEMLIMIT, which wins if set); 0 for none")
}

// Check says what is wrong with o, if anything.
func (o Options) Check() error {
	if o.LimitMiB < 0 {
		return fmt.Errorf("-memory-limit-mib %d: must be 0 (none) or more", o.LimitMiB)
	}
	if o.Percent < 0 && o.LimitMiB == 0 {
		return fmt.Errorf("-gc-percent %d turns the collector off: only with a -memory-limit-mib", o.Percent)
	}
	return nil
}

// Apply sets the collector from o, except what getenv says the environment set, and returns
// what is in force, for the daemon's start-up log line.
func Apply(o Options, getenv func(string) string) (string, error) {
	if err := o.Check(); err != nil {
		return "", err
	}
	percent, limit := "GOGC="+getenv("GOGC")+" (environment)", "GOMEMLIMIT="+getenv("GOMEMLIMIT")+" (environment)"
	if getenv("GOGC") == "" {
		debug.SetGCPercent(o.Percent)
		percent = fmt.Sprintf("gc-percent=%d", o.Percent)
	}
	if getenv("GOMEMLIMIT") == "" {
		if o.LimitMiB > 0 {
			debug.SetMemoryLimit(o.LimitMiB << 20)
			limit = fmt.Sprintf("memory-limit-mib=%d", o.LimitMiB)
		} else {
			limit = "memory-limit-mib=none"
		}
	}
	return percent + " " + limit, nil
}
