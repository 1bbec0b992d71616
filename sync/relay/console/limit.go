package console

import (
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// limiter counts failed logins per key (an account, or a client address) in a sliding window
// on the clock's monotonic time, so a wall-clock jump neither unlocks nor locks anyone. It is
// kept in memory: a restart forgets it, which costs an attacker a restart of the relay.
type limiter struct {
	mu     sync.Mutex
	clock  clock.Clock
	max    int
	window time.Duration
	fails  map[string][]time.Duration
}

// maxLimiterKeys bounds the memory a flood of distinct usernames or addresses can take; past
// it the oldest windows are dropped first (they are the closest to expiring anyway).
const maxLimiterKeys = 10000

func newLimiter(c clock.Clock, max int, window time.Duration) *limiter {
	return &limiter{clock: c, max: max, window: window, fails: map[string][]time.Duration{}}
}

// recent drops failures older than the window; called with mu held.
func (l *limiter) recent(key string, now time.Duration) []time.Duration {
	fs := l.fails[key]
	i := 0
	for i < len(fs) && now-fs[i] >= l.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = fs
	return fs
}

// blocked reports whether key has used up its failures, and how long until one expires.
func (l *limiter) blocked(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Mono()
	fs := l.recent(key, now)
	if len(fs) < l.max {
		return false, 0
	}
	return true, fs[len(fs)-l.max] + l.window - now
}

func (l *limiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Mono()
	if _, ok := l.fails[key]; !ok && len(l.fails) >= maxLimiterKeys {
		for k := range l.fails {
			if len(l.recent(k, now)) == 0 || len(l.fails) >= maxLimiterKeys {
				delete(l.fails, k)
			}
			if len(l.fails) < maxLimiterKeys {
				break
			}
		}
	}
	l.fails[key] = append(l.recent(key, now), now)
}

func (l *limiter) clear(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
