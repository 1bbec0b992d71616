package kiosk

import (
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkEnqueueMessage measures a durable send: the message, its forwarding item and the
// draft's removal in one bbolt transaction with real fsync. Compare with
// BenchmarkEmptyUpdateFsync from the same run: the floor any durable write pays.
func BenchmarkEnqueueMessage(b *testing.B) {
	for _, size := range []int{1000, 13000} {
		b.Run(fmt.Sprintf("chars=%d", size), func(b *testing.B) {
			r := newMBRig(b)
			r.addInmate(b, "i1", true)
			c := r.approved(b, "i1", "Ana", "ana@example.com")
			r.login(b, "i1")
			body := strings.Repeat("Hola mamá 中😀 ", size/13+1) // 13 code points
			body = string([]rune(body)[:size])
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := r.t.Send("i1", c.ID, "", body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEmptyUpdateFsync is the baseline: a bbolt Update that writes nothing still commits
// (freelist and meta page) with fsync.
func BenchmarkEmptyUpdateFsync(b *testing.B) {
	r := newMBRig(b)
	for b.Loop() {
		if err := r.store.db.Update(func(*bolt.Tx) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}
