// Package clock gives the terminal its sense of time: a wall clock for what people read,
// and a monotonic clock for every duration that bills, so that a wall-clock jump
// (NTP correction, a dead RTC battery) neither bills nor frees a minute.
package clock

import (
	"sync"
	"time"
)

// Clock is passed to everything that needs time; nothing reads time.Now directly.
type Clock interface {
	// Now is the wall-clock time, for records and screens.
	Now() time.Time
	// Mono is the time elapsed since an arbitrary origin fixed when the clock was made;
	// it never goes backwards and ignores wall-clock changes.
	Mono() time.Duration
}

// Real reads the system clocks.
type Real struct{ origin time.Time }

// NewReal returns a Clock whose Mono origin is now.
func NewReal() *Real { return &Real{origin: time.Now()} }

func (r *Real) Now() time.Time { return time.Now() }

// Mono uses the monotonic reading carried by time.Now, which wall-clock steps do not move.
func (r *Real) Mono() time.Duration { return time.Since(r.origin) }

// Fake is a clock that moves only when told to; safe for concurrent use.
type Fake struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

// NewFake returns a fake clock showing wall time start and monotonic time zero.
func NewFake(start time.Time) *Fake { return &Fake{wall: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

func (f *Fake) Mono() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mono
}

// Advance moves both clocks forward by d, as real time passing does.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
	f.mono += d
}

// JumpWall moves only the wall clock (either way), as an NTP step or an RTC reset does.
func (f *Fake) JumpWall(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}
