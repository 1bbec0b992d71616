package kiosk

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
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

// benchBody is a 1 KiB message text, as in sync/e2e's benchmarks.
var benchBody = strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit ", 19)[:1024]

// BenchmarkAck256 measures acknowledging a batch of 256 queued 1 KiB messages (one fsync'd
// transaction), as the sync engine does when the relay acks a full batch. The 256 messages are
// queued outside the timer, in one transaction.
func BenchmarkAck256(b *testing.B) {
	r := newMBRig(b)
	r.addInmate(b, "i1", true)
	now := r.clock.Now()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var last uint64
		if err := r.store.update("bench queue", func(tx *bolt.Tx) error {
			for j := 0; j < 256; j++ {
				m, err := newOutboxMessage(now, "i1", "dept-medical", "Medical", fmt.Sprintf("#%d", j), benchBody)
				if err != nil {
					return err
				}
				if err := queueOutboxTx(tx, now, ItemMessage, m); err != nil {
					return err
				}
			}
			last = binary.BigEndian.Uint64(tx.Bucket([]byte(bMeta)).Get([]byte(kNextSeq))) - 1
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := r.t.MarkForwarded(last); err != nil || n < 256 {
			b.Fatalf("ack = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkDownlinkFrame256 measures applying one downlink frame of 256 inbound 1 KiB messages,
// as the sync engine does with a full `down` frame.
func BenchmarkDownlinkFrame256(b *testing.B) {
	r := newDLRig(b)
	var seq uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		items := make([]DownlinkItem, 256)
		for j := range items {
			seq++
			raw, err := json.Marshal(Message{ID: fmt.Sprintf("0192aaaa-0000-7000-8000-%012d", seq), InmateID: "A1",
				Peer: "c-1", PeerName: "Mom", Body: benchBody, CreatedAt: dlStart})
			if err != nil {
				b.Fatal(err)
			}
			items[j] = DownlinkItem{Seq: seq, Kind: DownInboundMessage, Body: raw}
		}
		b.StartTimer()
		applyFrame(b, r.t, items)
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "items/s")
}

func applyFrame(b *testing.B, term *Terminal, items []DownlinkItem) {
	if _, refused, err := term.ApplyDownlinkBatch(items); err != nil || len(refused) > 0 {
		b.Fatalf("apply frame: %v, %v", refused, err)
	}
}
