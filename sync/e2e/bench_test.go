package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/wire"
)

// body1KiB is a 1 KiB message body (letters and spaces, like text an inmate writes).
var body1KiB = strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit ", 19)[:1024]

// benchRig is a relay and an enrolled terminal with the roster synced, sync stopped.
func benchRig(b *testing.B) (*relayEnv, *terminal) {
	b.Helper()
	rl := startRelay(b, "")
	rl.seed()
	tm := openTerminal(b, "", kiosk.StoreOptions{})
	tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.stopSync()
	return rl, tm
}

// queue puts n 1 KiB messages in the terminal's queue (fsync off while filling), then reopens
// the store as a terminal runs it.
func (tm *terminal) queue(n int) {
	tm.t.Helper()
	tm.reopen(kiosk.StoreOptions{NoSync: true})
	tm.login("B1", "1234")
	for i := 0; i < n; i++ {
		if _, err := tm.term.Send("A1", "dept-medical", fmt.Sprintf("A1 #%06d", i), body1KiB); err != nil {
			tm.t.Fatalf("send: %v", err)
		}
	}
	if err := tm.term.Logout(); err != nil {
		tm.t.Fatal(err)
	}
	tm.reopen(kiosk.StoreOptions{})
}

// drain runs the sync engine until the queue is empty and returns how long that took.
func (tm *terminal) drain() time.Duration {
	tm.t.Helper()
	start := time.Now()
	tm.start()
	for {
		n, _, err := tm.store.QueueStats()
		if err != nil {
			tm.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	tm.stopSync()
	return d
}

// rawWebsocketMode writes n 1 KiB text messages over a loopback websocket with the given
// compression on both ends, to a server that reads every one; it is the ceiling sync is
// compared with.
func rawWebsocketMode(b *testing.B, n int, mode websocket.CompressionMode) time.Duration {
	b.Helper()
	got := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(wire.MaxFrameBytes)
		count := 0
		for count < n {
			if _, _, err := c.Read(r.Context()); err != nil {
				break
			}
			count++
		}
		got <- count
	}))
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{CompressionMode: mode})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	msg := []byte(body1KiB)
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
	}
	if k := <-got; k != n {
		b.Fatalf("raw websocket: server read %d of %d", k, n)
	}
	return time.Since(start)
}

// benchDrain times, b.N times over, forwarding n queued messages and writing n raw websocket
// messages (the baseline); only the forwarding counts in the benchmark's own time.
func benchDrain(b *testing.B, n int) (syncTime, rawTime time.Duration) {
	return benchDrainMode(b, n, false)
}

// processCPU is the CPU time (user and system) this process has used so far: both ends of a
// drain run in it, and a figure per letter moves less with the load of a shared machine than
// wall time does.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDrainMode is benchDrain with compression on (plain false) or off (plain true) on both
// the terminal's link and the raw baseline.
func benchDrainMode(b *testing.B, n int, plain bool) (syncTime, rawTime time.Duration) {
	_, tm := benchRig(b)
	tm.cfg = func(c *client.Config) { c.NoCompression = plain }
	mode := websocket.CompressionNoContextTakeover
	if plain {
		mode = websocket.CompressionDisabled
	}
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tm.queue(n)
		b.StartTimer()
		before := processCPU(b)
		stopProfiles := profileDrain(b)
		syncTime += tm.drain()
		stopProfiles()
		cpu += processCPU(b) - before
		b.StopTimer()
		rawTime += rawWebsocketMode(b, n, mode)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu_µs/item")
	return syncTime, rawTime
}

// drainCPUProfileEnv and drainTraceEnv name files that get a CPU profile and an execution
// trace of the drains alone: a profile of the whole run is mostly the filling of the queue.
const (
	drainCPUProfileEnv = "TETHER_DRAIN_CPUPROFILE"
	drainTraceEnv      = "TETHER_DRAIN_TRACE"
)

// profileDrain starts the profiles the environment asks for (drainCPUProfileEnv,
// drainTraceEnv) and returns what stops them.
func profileDrain(b *testing.B) (stop func()) {
	b.Helper()
	var stops []func()
	if name := os.Getenv(drainCPUProfileEnv); name != "" {
		f, err := os.Create(name)
		if err != nil {
			b.Fatalf("drain cpu profile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatalf("drain cpu profile: %v", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if name := os.Getenv(drainTraceEnv); name != "" {
		f, err := os.Create(name)
		if err != nil {
			b.Fatalf("drain trace: %v", err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatalf("drain trace: %v", err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// BenchmarkUplink1KiB: messages/s the terminal forwards (stored durably on both sides, acked)
// next to raw websocket writes of the same messages in the same run.
func BenchmarkUplink1KiB(b *testing.B) {
	const per = 5000
	syncTime, rawTime := benchDrain(b, per)
	msgs := float64(per * b.N)
	b.ReportMetric(msgs/syncTime.Seconds(), "msgs/s")
	b.ReportMetric(msgs/rawTime.Seconds(), "raw_ws_msgs/s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
}

// BenchmarkUplink1KiBPlain is BenchmarkUplink1KiB without permessage-deflate, on the terminal's
// link and on the raw baseline alike: what compression costs a drain.
func BenchmarkUplink1KiBPlain(b *testing.B) {
	const per = 5000
	syncTime, rawTime := benchDrainMode(b, per, true)
	msgs := float64(per * b.N)
	b.ReportMetric(msgs/syncTime.Seconds(), "msgs/s")
	b.ReportMetric(msgs/rawTime.Seconds(), "raw_ws_msgs/s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
}

// BenchmarkDrainBacklog100kPlain is BenchmarkDrainBacklog100k without permessage-deflate.
func BenchmarkDrainBacklog100kPlain(b *testing.B) {
	syncTime, rawTime := benchDrainMode(b, 100000, true)
	b.ReportMetric(syncTime.Seconds()/float64(b.N), "s/drain")
	b.ReportMetric(rawTime.Seconds()/float64(b.N), "raw_ws_s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
}

// BenchmarkDrainBacklog100k: time to forward a 100,000-item backlog (fsync on both sides).
func BenchmarkDrainBacklog100k(b *testing.B) {
	syncTime, rawTime := benchDrain(b, 100000)
	b.ReportMetric(syncTime.Seconds()/float64(b.N), "s/drain")
	b.ReportMetric(rawTime.Seconds()/float64(b.N), "raw_ws_s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
}
