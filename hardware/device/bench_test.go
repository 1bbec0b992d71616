package device

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/serialport"
	"github.com/tether-kiosk/tether/hardware/sim"
)

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(p*float64(len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkLatencyPTY measures, per framing, the time from the last byte of a frame being
// written to the pty to the badge event reaching the consumer's channel, through the real
// tty, decoder and manager. The baseline, same run: the same frame read back with a bare
// serialport.Read loop and no decoding.
func BenchmarkLatencyPTY(b *testing.B) {
	for _, f := range badge.Framings() {
		b.Run(f, func(b *testing.B) {
			s, err := sim.NewBadgeReaderWith(f, sim.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			frames := make([][]byte, 64)
			ids := make([]string, len(frames))
			for i := range frames {
				ids[i] = map[string]string{badge.EM4100: fmt.Sprintf("%010d", 1000+i),
					badge.Wiegand26: fmt.Sprintf("001-%05d", 1000+i), badge.Magstripe: fmt.Sprintf("4111%04d", i),
					badge.Line: fmt.Sprintf("ID%04d", i)}[f]
				frames[i], _ = s.Frame(ids[i])
			}

			// Baseline: bare port, no decoder, no manager.
			p, err := serialport.Open(serialport.Config{Path: s.Path()})
			if err != nil {
				b.Fatal(err)
			}
			base := make([]time.Duration, 0, 200)
			buf := make([]byte, 256)
			for i := 0; i < 200; i++ {
				fr := frames[i%len(frames)]
				s.Write(fr)
				t0 := time.Now()
				for got := 0; got < len(fr); {
					n, err := p.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				base = append(base, time.Since(t0))
			}
			p.Close()

			events := make(chan Event, 64)
			cfg := Config{Name: "r", Role: RoleBadge, Path: s.Path(), Framing: f, DedupeWindow: time.Nanosecond}
			m, err := New([]Config{cfg}, Options{Events: events})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { m.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			if ev := <-events; ev.Kind != EventConnected {
				b.Fatalf("first event %+v", ev)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(frames)
				s.Write(frames[k])
				t0 := time.Now()
				ev := <-events
				lat = append(lat, time.Since(t0))
				if ev.Kind != EventBadge || ev.ID != ids[k] {
					b.Fatalf("event %+v, want badge %s", ev, ids[k])
				}
			}
			b.StopTimer()
			p50, p99, b50 := percentile(lat, 0.5), percentile(lat, 0.99), percentile(base, 0.5)
			b.ReportMetric(ms(p50), "ms/event-p50")
			b.ReportMetric(ms(p99), "ms/event-p99")
			b.ReportMetric(ms(b50), "ms/rawread-p50")
			b.ReportMetric(float64(p50)/float64(b50), "x-rawread")
		})
	}
}
