package jskv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A feed that delivers this store's commits late but steadily has missed nothing, and is not
// reported lost: a gateway short of CPU under load had its consumer some thousands of messages
// (3-4 s) behind its own commits, still delivering, and each such loss sent every downlink
// writer of the gateway to the store, several times (the loss, the feed's restart, the tails
// starting again), 4-9 times the other gateway's Views. A feed that stopped delivering while
// one of this store's commits waits is lost after three heartbeats, as before, and so is one
// that delivers but leaves a commit of this store waiting watchBehindMax heartbeats.
// The ticks are the watchdog's, on a clock of the test's.
func TestWatchdogTellsALateFeedFromAStoppedOne(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const hb = time.Second
	s := openTest(t, c, c.Connect(0), Options{Stream: "WD", Prefix: "wd", WatchHeartbeat: hb})
	// The feed under test takes every message, and is told of each commit as a Watch's is.
	w := &watcher{s: s}
	w.follow.Store(&followSet{wide: true})
	s.addFeed(w)
	n := 0
	commit := func() uint64 {
		t.Helper()
		n++
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("down"))
			if err != nil {
				return err
			}
			t1, err := b.CreateBucketIfNotExists([]byte("t1"))
			if err != nil {
				return err
			}
			return t1.Put([]byte(fmt.Sprint(n)), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
		return w.lastCommit.Load()
	}
	now := time.Unix(1_000_000, 0)
	first := commit()
	w.from, w.lastStream, w.heard = first, first-1, now

	// Late: five of this store's commits ahead of the feed, which delivers one a tick while
	// the store commits one more; a heartbeat or a message is heard at every tick.
	pending := []uint64{first}
	for range 4 {
		pending = append(pending, commit())
	}
	for tick := 1; tick <= 20; tick++ {
		now = now.Add(hb)
		pending = append(pending, commit())
		w.lastStream, pending = pending[0], pending[1:]
		w.heard = now.Add(-10 * time.Millisecond)
		if why := w.staleLocked(now); why != "" {
			t.Fatalf("tick %d: a feed delivering a commit a tick, five behind this store's, reported lost: %s", tick, why)
		}
	}

	// Stopped: heartbeats still come, nothing is delivered, this store's commits wait.
	for tick := 1; tick <= 4; tick++ {
		now = now.Add(hb)
		commit()
		w.heard = now
		why := w.staleLocked(now)
		if (why != "") != (tick == 4) {
			t.Fatalf("tick %d of a feed delivering nothing: lost %q, want lost %v", tick, why, tick == 4)
		}
		if why != "" && !strings.Contains(why, "delivered nothing for") {
			t.Errorf("a feed delivering nothing reported lost as %q, want why", why)
		}
	}

	// Ever further behind: the feed delivers a message a tick, of this store's older commits,
	// while the last, which it does not reach, waits (each commit is a message at least).
	mark := w.lastCommit.Load()
	for range watchBehindMax + 10 {
		commit()
	}
	w.lastStream, w.heard, w.behind = mark, now, time.Time{}
	for tick := 1; ; tick++ {
		now = now.Add(hb)
		w.lastStream++
		w.heard = now
		if why := w.staleLocked(now); why != "" {
			if tick <= watchBehindMax {
				t.Fatalf("a feed delivering reported lost at tick %d, before its %d heartbeats: %s", tick, watchBehindMax, why)
			}
			if !strings.Contains(why, "behind a commit of this gateway") {
				t.Errorf("a feed fallen behind reported lost as %q, want why", why)
			}
			break
		}
		if tick > watchBehindMax+2 {
			t.Fatalf("a commit of this store waited %d heartbeats and the feed is not lost", tick)
		}
	}
}
