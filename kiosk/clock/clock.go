// Package clock gives the terminal its sense of time: a wall clock for what people read,
// and a monotonic clock for every duration that bills, so that a wall-clock jump
// (NTP correction, a dead RTC battery) neither bills nor frees a minute.
package clock

import (
	"cmp"
	"slices"
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
	// NewTimer fires its channel once, when Mono has moved on by d, as time.NewTimer does.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f on its own goroutine when Mono has moved on by d; the Timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer of a Clock, with time.Timer's semantics (Go 1.23 and later):
// after Stop or Reset returns, no value from before is received.
type Timer interface {
	// C delivers the wall time when the timer fires; nil for an AfterFunc timer.
	C() <-chan time.Time
	// Stop disarms the timer; it reports whether the timer was armed.
	Stop() bool
	// Reset arms the timer to fire d from now; it reports whether it was armed.
	Reset(d time.Duration) bool
}

// Real reads the system clocks.
type Real struct{ origin time.Time }

// NewReal returns a Clock whose Mono origin is now.
func NewReal() *Real { return &Real{origin: time.Now()} }

func (r *Real) Now() time.Time { return time.Now() }

// Mono uses the monotonic reading carried by time.Now, which wall-clock steps do not move.
func (r *Real) Mono() time.Duration { return time.Since(r.origin) }

func (r *Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (r *Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// Fake is a clock that moves only when told to; safe for concurrent use. Its timers fire
// when Advance moves Mono to or past their deadline, in deadline order.
type Fake struct {
	mu     sync.Mutex
	armed  sync.Cond // signalled whenever a timer is armed
	wall   time.Time
	mono   time.Duration
	timers map[*fakeTimer]struct{} // the armed ones
}

// NewFake returns a fake clock showing wall time start and monotonic time zero.
func NewFake(start time.Time) *Fake {
	f := &Fake{wall: start, timers: map[*fakeTimer]struct{}{}}
	f.armed.L = &f.mu
	return f
}

type fakeTimer struct {
	f  *Fake
	c  chan time.Time // nil for AfterFunc
	fn func()
	at time.Duration
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	_, was := t.f.timers[t]
	delete(t.f.timers, t)
	t.drainLocked()
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	_, was := f.timers[t]
	t.drainLocked()
	t.at = f.mono + d
	f.timers[t] = struct{}{}
	f.armed.Broadcast()
	f.fireLocked() // a deadline already reached fires now, as a real timer of d <= 0 does
	return was
}

// drainLocked drops a value fired before a Stop or Reset, as Go's timers do since 1.23.
func (t *fakeTimer) drainLocked() {
	if t.c != nil {
		select {
		case <-t.c:
		default:
		}
	}
}

// fireLocked fires every armed timer whose deadline Mono has reached, earliest first. It sends
// with f.mu held, so no Stop or Reset can slip between the decision and the send.
func (f *Fake) fireLocked() {
	var due []*fakeTimer
	for t := range f.timers {
		if t.at <= f.mono {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *fakeTimer) int { return cmp.Compare(a.at, b.at) })
	for _, t := range due {
		delete(f.timers, t)
		if t.fn != nil {
			go t.fn()
			continue
		}
		select {
		case t.c <- f.wall:
		default:
		}
	}
}

// WaitTimers blocks until at least n timers are armed: a test calls it before Advance so that
// the goroutine it drives has armed the timer the Advance is meant to fire.
func (f *Fake) WaitTimers(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.timers) < n {
		f.armed.Wait()
	}
}

// Timers reports how many timers are armed now.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

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

// Advance moves both clocks forward by d, as real time passing does, and fires the timers
// that fall due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
	f.mono += d
	f.fireLocked()
}

// JumpWall moves only the wall clock (either way), as an NTP step or an RTC reset does.
func (f *Fake) JumpWall(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}
