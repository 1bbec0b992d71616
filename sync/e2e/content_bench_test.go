package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/wire"
)

const deliverySize = 50 << 20

// deliveryChunk fills buf with chunk i of the delivered object: random bytes, which no
// compression shrinks, so neither side is flattered by permessage-deflate.
func deliveryChunk(buf []byte, i int) []byte {
	buf = buf[:content.ChunkLen(deliverySize, i)]
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 0xde}).Read(buf)
	return buf
}

type deliveryReader struct {
	i   int
	buf []byte
	off int
}

func (r *deliveryReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.i == content.ChunkCount(deliverySize) {
			return 0, io.EOF
		}
		r.buf = deliveryChunk(r.buf[:cap(r.buf)], r.i)
		r.i++
		r.off = 0
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// rawWebsocketBytes writes the delivered object's bytes over a loopback websocket with the
// same compression, 256 KiB binary messages, to a server that reads them all: the ceiling.
func rawWebsocketBytes(b *testing.B) time.Duration {
	return rawWebsocketBytesMode(b, websocket.CompressionNoContextTakeover)
}

// rawWebsocketBytesMode is rawWebsocketBytes with the given compression on both ends.
func rawWebsocketBytesMode(b *testing.B, mode websocket.CompressionMode) time.Duration {
	b.Helper()
	n := content.ChunkCount(deliverySize)
	got := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(wire.MaxFrameBytes)
		total := 0
		for count := 0; count < n; count++ {
			_, data, err := c.Read(r.Context())
			if err != nil {
				break
			}
			total += len(data)
		}
		got <- total
	}))
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{CompressionMode: mode})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	buf := make([]byte, content.ChunkSize)
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := c.Write(ctx, websocket.MessageBinary, deliveryChunk(buf, i)); err != nil {
			b.Fatal(err)
		}
	}
	if k := <-got; k != deliverySize {
		b.Fatalf("raw websocket: server read %d of %d bytes", k, deliverySize)
	}
	return time.Since(start)
}

// rssKiB is this process's resident set (relay and terminal together in these tests).
func rssKiB() int { return procStatusKiB("VmRSS:") }

// procStatusKiB reads a kB field of /proc/self/status (0 if absent).
func procStatusKiB(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb
		}
	}
	return 0
}

// BenchmarkContentDelivery50MB: a 50 MB object pulled by a kiosk from a real relay through
// real sync (manifest, chunks each verified and committed with fsync on the terminal, the
// whole object checked), next to raw websocket writes of the same bytes in the same run: with
// the link's compression (raw_ws, the baseline of the issue) and without (raw_plain, the
// stricter ceiling). form=binary: chunks in binary messages, uncompressed (hello
// binary_chunks); form=json: base64 in JSON text frames through permessage-deflate, as an
// older terminal gets them. rss-MB is the process's largest resident set during the
// deliveries, sampled every 10 ms; it holds the relay too, and the start is rss-start-MB.
func BenchmarkContentDelivery50MB(b *testing.B) {
	b.Run("form=binary", func(b *testing.B) { benchContentDelivery(b, false) })
	b.Run("form=json", func(b *testing.B) { benchContentDelivery(b, true) })
}

func benchContentDelivery(b *testing.B, jsonChunks bool) {
	rl := startRelay(b, "")
	rl.seed()
	store, err := content.Open(filepath.Join(b.TempDir(), content.File), content.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	tm := openTerminal(b, "", kiosk.StoreOptions{})
	tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.Content, c.NoBinaryChunks = store, jsonChunks }
	tm.start()
	tm.waitRoster()
	ref, err := rl.r.PutContent(&deliveryReader{buf: make([]byte, 0, content.ChunkSize)}, "north")
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	startRSS := rssKiB()
	var peak atomic.Int64
	var delivering atomic.Bool
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if delivering.Load() {
					peak.Store(max(peak.Load(), int64(rssKiB())))
				}
			}
		}
	}()
	var syncTime, rawTime, plainTime time.Duration
	b.SetBytes(deliverySize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		delivering.Store(true)
		if err := store.Retain(ref, "bench", false); err != nil {
			b.Fatal(err)
		}
		tm.eng.FetchContent()
		for {
			st, err := store.State(ref.Object)
			if err != nil {
				b.Fatal(err)
			}
			if st == content.Whole {
				break
			}
			time.Sleep(time.Millisecond)
		}
		syncTime += time.Since(start)
		delivering.Store(false)
		b.StopTimer()
		if err := store.Release(ref.Object, "bench"); err != nil { // deleted: fetched anew next time
			b.Fatal(err)
		}
		rawTime += rawWebsocketBytes(b)
		plainTime += rawWebsocketBytesMode(b, websocket.CompressionDisabled)
		b.StartTimer()
	}
	b.StopTimer()
	close(stop)
	<-sampled
	mb := float64(deliverySize) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/syncTime.Seconds(), "sync-MB/s")
	b.ReportMetric(mb/rawTime.Seconds(), "raw_ws-MB/s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
	b.ReportMetric(mb/plainTime.Seconds(), "raw_plain-MB/s")
	b.ReportMetric(plainTime.Seconds()/syncTime.Seconds(), "sync/raw_plain")
	b.ReportMetric(float64(peak.Load())/1024, "rss-MB")
	b.ReportMetric(float64(startRSS)/1024, "rss-start-MB")
}

// childContentEnv names the environment variable that turns the test binary into a terminal
// process that fetches one object and reports (TestChildContentTerminal); its value is a
// childContentSpec in JSON.
const childContentEnv = "TETHER_E2E_CHILD_CONTENT"

type childContentSpec struct {
	Dir        string      `json:"dir"`
	Ref        content.Ref `json:"ref"`
	JSONChunks bool        `json:"json_chunks"`
}

// BenchmarkContentDelivery50MBTerminalProcess is BenchmarkContentDelivery50MB with the
// terminal in a process of its own (this test binary, run as TestChildContentTerminal), so
// its resident set is the terminal's alone: term-rss-MB is the child's peak (VmHWM, its whole
// life: start, handshake, roster, the 50 MB), term-rss-start-MB its resident set before it asks
// for the object, and term-anon-MB the peak of its anonymous memory (RssAnon: heap and stacks,
// without the pages of its bbolt files mapped in, sampled every 10 ms during the delivery).
// Each iteration enrolls a new kiosk; only the delivery is timed (in the child, from asking to
// holding the object whole and checked).
func BenchmarkContentDelivery50MBTerminalProcess(b *testing.B) {
	b.Run("form=binary", func(b *testing.B) { benchContentTerminalProcess(b, false) })
	b.Run("form=json", func(b *testing.B) { benchContentTerminalProcess(b, true) })
}

func benchContentTerminalProcess(b *testing.B, jsonChunks bool) {
	rl := startRelay(b, "")
	rl.seed()
	ref, err := rl.r.PutContent(&deliveryReader{buf: make([]byte, 0, content.ChunkSize)}, "north")
	if err != nil {
		b.Fatal(err)
	}
	var syncTime, rawTime time.Duration
	var peakKiB, startKiB, anonKiB int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tm := openTerminal(b, "", kiosk.StoreOptions{})
		tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
		tm.close() // the child owns the store
		spec, _ := json.Marshal(childContentSpec{Dir: tm.dir, Ref: ref, JSONChunks: jsonChunks})
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildContentTerminal$", "-test.v")
		cmd.Env = append(os.Environ(), childContentEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child terminal: %v\n%s", err, out)
		}
		var secs float64
		var hwm, start, anon int
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			if _, err := fmt.Sscanf(l, "child-content: seconds %g hwm-kB %d start-kB %d anon-kB %d", &secs, &hwm, &start, &anon); err == nil {
				found = true
			}
		}
		if !found {
			b.Fatalf("child terminal reported nothing:\n%s", out)
		}
		syncTime += time.Duration(secs * float64(time.Second))
		peakKiB, startKiB, anonKiB = max(peakKiB, hwm), max(startKiB, start), max(anonKiB, anon)
		rawTime += rawWebsocketBytes(b)
		b.StartTimer()
	}
	b.StopTimer()
	mb := float64(deliverySize) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/syncTime.Seconds(), "sync-MB/s")
	b.ReportMetric(mb/rawTime.Seconds(), "raw_ws-MB/s")
	b.ReportMetric(rawTime.Seconds()/syncTime.Seconds(), "sync/raw")
	b.ReportMetric(float64(peakKiB)/1024, "term-rss-MB")
	b.ReportMetric(float64(startKiB)/1024, "term-rss-start-MB")
	b.ReportMetric(float64(anonKiB)/1024, "term-anon-MB")
	b.ReportMetric(syncTime.Seconds()/float64(b.N), "s/delivery")
	b.ReportMetric(0, "ns/op") // the iteration is mostly a child process starting: not a figure
}

// TestChildContentTerminal is the child process of BenchmarkContentDelivery50MBTerminalProcess;
// it does nothing when run normally.
func TestChildContentTerminal(t *testing.T) {
	raw := os.Getenv(childContentEnv)
	if raw == "" {
		t.Skip("only runs as a child process")
	}
	var spec childContentSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	store, err := content.Open(filepath.Join(spec.Dir, content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tm := openTerminal(t, spec.Dir, kiosk.StoreOptions{})
	tm.cfg = func(c *client.Config) { c.Content, c.NoBinaryChunks = store, spec.JSONChunks }
	tm.start()
	tm.waitRoster()
	startKiB := procStatusKiB("VmRSS:")
	var anonKiB atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			anonKiB.Store(max(anonKiB.Load(), int64(procStatusKiB("RssAnon:"))))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	if err := store.Retain(spec.Ref, "bench", false); err != nil {
		t.Fatal(err)
	}
	tm.eng.FetchContent()
	for {
		st, err := store.State(spec.Ref.Object)
		if err != nil {
			t.Fatal(err)
		}
		if st == content.Whole {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatal("the object did not arrive in 10 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	close(stop)
	<-sampled
	fmt.Printf("child-content: seconds %g hwm-kB %d start-kB %d anon-kB %d\n", secs, procStatusKiB("VmHWM:"), startKiB, anonKiB.Load())
}
