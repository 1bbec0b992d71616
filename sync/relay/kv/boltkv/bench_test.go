package boltkv_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkBolt measures, in one run on one file system, kv transactions per second through
// boltkv (each one small read-modify-write of a goroutine's own key) against a plain bbolt
// one-put Update loop with the same number of goroutines, and reports their ratio: what the
// interface costs over bbolt itself.
//
//	go test ./sync/relay/kv/boltkv/ -run '^$' -bench Bolt -benchtime 2000x
func BenchmarkBolt(b *testing.B) {
	for _, workers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			dir := b.TempDir()
			db, err := bolt.Open(filepath.Join(dir, "plain.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s, err := boltkv.Open(filepath.Join(dir, "kv.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			for _, err := range []error{
				db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("ctr")); return err }),
				s.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("ctr")); return err }),
			} {
				if err != nil {
					b.Fatal(err)
				}
			}
			// Four rounds, alternating, so the machine's moods fall on both alike.
			const rounds = 4
			per := max(1, b.N/workers/rounds)
			var plain, rmw time.Duration
			for range rounds {
				plain += each(b, workers, func(w int) error {
					key := fmt.Appendf(nil, "w%d", w)
					for i := range per {
						if err := db.Update(func(tx *bolt.Tx) error {
							return tx.Bucket([]byte("ctr")).Put(key, binary.BigEndian.AppendUint64(nil, uint64(i)))
						}); err != nil {
							return err
						}
					}
					return nil
				})
				rmw += each(b, workers, func(w int) error {
					key := fmt.Appendf(nil, "w%d", w)
					for range per {
						if err := s.Update(ctx, func(tx kv.Tx) error {
							bk := tx.Bucket([]byte("ctr"))
							var n uint64
							if v := bk.Get(key); v != nil {
								n = binary.BigEndian.Uint64(v)
							}
							return bk.Put(key, binary.BigEndian.AppendUint64(nil, n+1))
						}); err != nil {
							return err
						}
					}
					return nil
				})
			}
			ops := float64(per * workers * rounds)
			b.ReportMetric(ops/plain.Seconds(), "boltupdate/s")
			b.ReportMetric(ops/rmw.Seconds(), "kvtx/s")
			b.ReportMetric(plain.Seconds()/rmw.Seconds(), "ratio")
		})
	}
}

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
