package kiosk

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// kRelayTime (meta) is the relay's clock at the last welcome, as RFC 3339 with nanoseconds:
// the latest time the terminal has from a clock it does not keep itself.
const kRelayTime = "relay_time"

// relaySeen is the relay's clock at a welcome heard by this process, with the terminal's
// monotonic reading at that moment, so the relay's time can be carried forward without
// the wall clock.
type relaySeen struct {
	at   time.Time
	mono time.Duration
}

// NoteRelayTime records the relay's clock as a welcome reported it (wire.Welcome's
// server_time). Policies that destroy something when a date passes (photo expiry) take the
// earlier of the terminal's clock and the relay's carried forward (AgreedNow), so a tablet
// whose clock jumps forward — a dead RTC battery, a bad NTP answer — destroys nothing early.
// A zero time is ignored. It also says how far the terminal's clock is from the relay's.
func (t *Terminal) NoteRelayTime(relay time.Time) (offset time.Duration, err error) {
	if relay.IsZero() {
		return 0, nil
	}
	local, mono := t.clock.Now(), t.clock.Mono()
	err = t.store.update("note relay time", func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bMeta)).Put([]byte(kRelayTime), []byte(relay.UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	t.relay = relaySeen{at: relay, mono: mono}
	t.mu.Unlock()
	return relay.Sub(local), nil
}

// AgreedNow is the latest time both clocks have reached: the terminal's, and the relay's
// last report carried forward on the monotonic clock (or, after a restart, the stored report
// as it was: the process cannot tell how long it was off). Before any report it is the
// terminal's clock. Expiring by it errs late, never early: offline, a tablet expires photos
// once it hears from the relay again.
func (t *Terminal) AgreedNow() (time.Time, error) {
	local := t.clock.Now()
	t.mu.Lock()
	seen := t.relay
	t.mu.Unlock()
	bound := seen.at
	if !bound.IsZero() {
		bound = bound.Add(t.clock.Mono() - seen.mono)
	} else {
		err := t.store.view(func(tx *bolt.Tx) error {
			v := tx.Bucket([]byte(bMeta)).Get([]byte(kRelayTime))
			if v == nil {
				return nil
			}
			at, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				return fmt.Errorf("stored relay time %q: %w", v, err)
			}
			bound = at
			return nil
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("agreed time: %w", err)
		}
	}
	if !bound.IsZero() && bound.Before(local) {
		return bound, nil
	}
	return local, nil
}
