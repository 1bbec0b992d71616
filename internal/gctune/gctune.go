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
// The trade is worth it only while the daemon works. An idle relay holding thousands of
// connections keeps a large live heap (their state) and gains nothing from the headroom: at
// 400 percent its RSS was twice what the connections need, the free pages kept for a heap goal
// five times the live heap, and the heap's spans, filled five times over between cycles while
// the connections came, stayed sparse (docs/SCALE.md, memory per idle terminal). With
// IdlePercent, Adapt keeps the high percentage only while the daemon's work count moves.
//
// The environment wins: GOGC or GOMEMLIMIT, when set, are what an operator asked for, and
// the runtime has already applied them; the flags do not override them.
package gctune

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"time"
)

// Options are the collector settings of a daemon.
type Options struct {
	// Percent is debug.SetGCPercent's value: the heap may grow by this percentage of its live
	// part before a cycle starts. Negative turns the collector off (only with a limit).
	Percent int
	// LimitMiB is a soft memory limit in MiB (debug.SetMemoryLimit); 0 sets none.
	LimitMiB int64
	// IdlePercent, when above 0, is the percentage while the daemon is idle: Percent is then
	// in force only while its work goes on (Adapt). 0 keeps Percent at all times.
	IdlePercent int
}

// Flags registers -gc-percent and -memory-limit-mib on fs, with the daemon's defaults.
func Flags(fs *flag.FlagSet, o *Options, def Options) {
	fs.IntVar(&o.Percent, "gc-percent", def.Percent,
		"garbage collector target: heap growth, in percent of the live heap, before a cycle (GOGC, which wins if set)")
	fs.Int64Var(&o.LimitMiB, "memory-limit-mib", def.LimitMiB,
		"soft limit of the Go heap in MiB; the collector works harder near it (GOMEMLIMIT, which wins if set); 0 for none")
}

// IdleFlag registers -gc-idle-percent on fs, for a daemon that runs Adapt (without it an idle
// percentage would stay in force for good).
func IdleFlag(fs *flag.FlagSet, o *Options, def Options) {
	fs.IntVar(&o.IdlePercent, "gc-idle-percent", def.IdlePercent,
		"garbage collector target while idle: -gc-percent holds only while work goes on, this one after "+
			"some seconds without (free memory is then returned to the system); 0 for -gc-percent at all times")
}

// Check says what is wrong with o, if anything.
func (o Options) Check() error {
	if o.LimitMiB < 0 {
		return fmt.Errorf("-memory-limit-mib %d: must be 0 (none) or more", o.LimitMiB)
	}
	if o.IdlePercent < 0 {
		return fmt.Errorf("-gc-idle-percent %d: must be 0 (off) or more", o.IdlePercent)
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
		if o.IdlePercent > 0 {
			// Nothing was done yet: idle until Adapt sees work.
			debug.SetGCPercent(o.IdlePercent)
			percent = fmt.Sprintf("gc-percent=%d gc-idle-percent=%d", o.Percent, o.IdlePercent)
		} else {
			debug.SetGCPercent(o.Percent)
			percent = fmt.Sprintf("gc-percent=%d", o.Percent)
		}
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

// idleTicks is how many ticks without work make a daemon idle: a pause between two batches of
// a drain must not flip the collector back and forth.
const idleTicks = 5

// Adapt runs until ctx ends, when o.IdlePercent is set and the environment left GOGC alone.
// At each tick it reads work, a count of what the daemon did (for relayd, uplink batches
// stored): Percent is in force from the tick that saw it move, IdlePercent from the
// idleTicks-th tick that saw it stand still. Going idle also returns the free pages to the
// system at once (debug.FreeOSMemory: one collection), rather than as the background
// scavenger would over minutes.
func Adapt(ctx context.Context, o Options, getenv func(string) string, work func() uint64, tick <-chan time.Time) {
	if o.IdlePercent <= 0 || getenv("GOGC") != "" {
		return
	}
	last, still, busy := work(), 0, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		n := work()
		switch {
		case n != last:
			last, still = n, 0
			if !busy {
				busy = true
				debug.SetGCPercent(o.Percent)
			}
		case busy:
			if still++; still >= idleTicks {
				busy = false
				debug.SetGCPercent(o.IdlePercent)
				debug.FreeOSMemory()
			}
		}
	}
}
