package jskv_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// BenchmarkR3 measures, in one run on one in-process 3-node cluster, kv transactions per
// second (each one small read-modify-write of a goroutine's own key: one read, one commit) and
// a plain durable publish loop to an R3 stream written with nats.go (each publish waits for
// its ack), both with the same number of goroutines, and reports their ratio (kvtx/publish).
// It also reports single-Get Views, blind one-Put Updates, and read-modify-writes made 16 to
// a transaction, as the relay's group commit makes them.
//
//	go test ./sync/relay/kv/jetstream/ -run '^$' -bench R3 -benchtime 2000x
func BenchmarkR3(b *testing.B) {
	c := natstest.Start(b)
	for _, workers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			nc := c.Connect(0)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			name := fmt.Sprintf("bench%d", workers)
			js, _ := jetstream.New(nc)
			if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name: "pub" + name, Subjects: []string{"pub" + name + ".>"}, Replicas: 3, Storage: jetstream.FileStorage,
			}); err != nil {
				b.Fatal(err)
			}
			c.WaitStream(nc, "pub"+name)
			s := openOn(b, c, nc, name)
			if err := s.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("ctr")); return err }); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 8)
			// The two measures compared run in four alternating rounds, so the machine's
			// moods fall on both alike.
			const rounds = 4
			per := max(1, b.N/workers/rounds)
			var pub, tx time.Duration
			before := s.Stats()
			for range rounds {
				pub += each(b, workers, func(w int) error {
					for range per {
						if _, err := js.Publish(ctx, fmt.Sprintf("pub%s.%d", name, w), payload); err != nil {
							return err
						}
					}
					return nil
				})
				tx += each(b, workers, func(w int) error {
					key := fmt.Appendf(nil, "w%d", w)
					for range per {
						err := s.Update(ctx, func(tx kv.Tx) error {
							bk := tx.Bucket([]byte("ctr"))
							var n uint64
							if v := bk.Get(key); v != nil {
								n = binary.BigEndian.Uint64(v)
							}
							return bk.Put(key, binary.BigEndian.AppendUint64(nil, n+1))
						})
						if err != nil {
							return err
						}
					}
					return nil
				})
			}
			per *= rounds
			reads := each(b, workers, func(w int) error {
				key := fmt.Appendf(nil, "w%d", w)
				for range per {
					if err := s.View(ctx, func(tx kv.Tx) error { tx.Bucket([]byte("ctr")).Get(key); return nil }); err != nil {
						return err
					}
				}
				return nil
			})
			writes := each(b, workers, func(w int) error {
				key := fmt.Appendf(nil, "w%d", w)
				for range per {
					if err := s.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("ctr")).Put(key, payload) }); err != nil {
						return err
					}
				}
				return nil
			})
			// The relay's group commit: one transaction of 16 read-modify-writes.
			const group = 16
			groups := max(1, per/group)
			grouped := each(b, workers, func(w int) error {
				for range groups {
					err := s.Update(ctx, func(tx kv.Tx) error {
						bk := tx.Bucket([]byte("ctr"))
						for k := range group {
							key := fmt.Appendf(nil, "w%d-%d", w, k)
							var n uint64
							if v := bk.Get(key); v != nil {
								n = binary.BigEndian.Uint64(v)
							}
							if err := bk.Put(key, binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						return err
					}
				}
				return nil
			})
			ops := float64(per * workers)
			b.ReportMetric(float64(groups*group*workers)/grouped.Seconds(), "kvrmw-in-16/s")
			b.ReportMetric(float64(groups*group*workers)/grouped.Seconds()/(ops/pub.Seconds()), "ratio-in-16")
			b.ReportMetric(ops/reads.Seconds(), "kvview/s")
			b.ReportMetric(ops/writes.Seconds(), "kvput/s")
			b.ReportMetric(ops/pub.Seconds(), "publish/s")
			b.ReportMetric(ops/tx.Seconds(), "kvtx/s")
			b.ReportMetric(pub.Seconds()/tx.Seconds(), "ratio")
			b.ReportMetric(float64(s.Stats().Conflicts-before.Conflicts), "conflicts")
		})
	}
}

// each runs fn on workers goroutines and returns the wall time they took together.
func each(b *testing.B, workers int, fn func(w int) error) time.Duration {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			if err := fn(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}
