package kiosk

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkMinuteBilling measures beginning one billed minute (one transaction with fsync:
// charge, queue item, account, session) against an empty fsync'd bbolt update on the same
// disk, measured in the same run; and a Tick with no minute due, which the UI calls 4x a second.
func BenchmarkMinuteBilling(b *testing.B) {
	b.Run("baseline_empty_update", func(b *testing.B) {
		s, err := OpenStore(b.TempDir(), StoreOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for b.Loop() {
			if err := s.update("bench", func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bMeta)).Put([]byte("bench"), []byte("x"))
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bill_minute", func(b *testing.B) {
		r := benchRig(b)
		for b.Loop() {
			r.keepBilling(b)
			r.clk.Advance(time.Minute)
			r.term.Tick()
		}
	})
	b.Run("tick_no_minute_due", func(b *testing.B) {
		r := benchRig(b)
		for b.Loop() {
			r.clk.Advance(time.Millisecond)
			r.term.Touch()
			r.term.Tick()
			if _, ok := r.term.Active(); !ok {
				b.Fatal("session ended")
			}
		}
	})
}

func benchRig(b *testing.B) *rig {
	r := newRig(b, func(p *Policy) {
		p.MaxSession = Duration(24 * time.Hour)
		p.IdleTimeout = Duration(24 * time.Hour)
		p.Cooldown = 0
		p.MaxDeposit = 1_000_000
		p.OfflineSpendCap = 1_000_000
		// Each op jumps a whole minute in one Tick; that is not a freeze to be credited.
		p.StallThreshold = Duration(2 * time.Minute)
	})
	r.tb = b
	r.addInmate("bench", 1_000_000)
	r.mustLogin("bench")
	return r
}

// keepBilling, outside the timer, starts a new session or settles the queue when the next
// minute could not be billed.
func (r *rig) keepBilling(b *testing.B) {
	info, ok := r.term.Active()
	if ok && info.TimeLeft > time.Minute {
		return
	}
	b.StopTimer()
	defer b.StartTimer()
	if ok {
		if err := r.term.Logout(); err != nil {
			b.Fatal(err)
		}
	}
	if items, err := r.store.Pending(0, 1<<30, 1<<40); err == nil && len(items) > 0 {
		if _, err := r.store.Ack(r.clk.Now(), items[len(items)-1].Seq); err != nil {
			b.Fatal(err)
		}
	}
	if bal := r.balance("bench"); bal < 100_000 {
		r.deposit("bench", 1_000_000, time.Now().String())
	}
	r.mustLogin("bench")
}
