package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// liveBytes is the memory held after garbage collection: heap in use plus goroutine stacks.
func liveBytes() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// dialAll opens n connections with up to 16 dials at once; connect returns the open conn.
func dialAll(b *testing.B, n int, connect func(i int) (*websocket.Conn, error)) []*websocket.Conn {
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := connect(i)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return conns
}

func dialOpts() *websocket.DialOptions {
	return &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}, CompressionMode: websocket.CompressionNoContextTakeover}
}

// BenchmarkIdleTerminals measures the memory of 1,000 authenticated, idle terminals on the relay
// against 1,000 plain idle websocket connections (same library, options and client side; the
// server only reads) measured in the same run. Client memory is in both, so the difference is the relay's.
func BenchmarkIdleTerminals(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		// Baseline: a websocket server that accepts and reads, nothing else.
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.Subprotocol},
				CompressionMode: websocket.CompressionNoContextTakeover})
			if err != nil {
				return
			}
			c.SetReadLimit(wire.MaxFrameBytes)
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}))
		url := "ws" + strings.TrimPrefix(plain.URL, "http")
		before := liveBytes()
		conns := dialAll(b, n, func(int) (*websocket.Conn, error) {
			c, _, err := websocket.Dial(context.Background(), url, dialOpts())
			return c, err
		})
		plainBytes := float64(liveBytes()-before) / n
		for _, c := range conns {
			c.CloseNow()
		}
		plain.Close()

		// The relay: n enrolled terminals, each through hello, challenge, auth and welcome.
		e := newEnv(b, func(c *Config) {
			c.NoSync = true
			c.MaxPending = n
			c.MaxPendingPerAddr = n // every bench terminal dials from 127.0.0.1
			c.Logf = nil
			c.HandshakeTimeout = time.Minute
		})
		if err := e.r.PutPolicy("north", kiosk.DefaultPolicy()); err != nil {
			b.Fatal(err)
		}
		terms := make([]*term, n)
		for j := range terms {
			terms[j] = e.enroll(wire.ModeKiosk, "")
		}
		before = liveBytes()
		conns = dialAll(b, n, func(j int) (*websocket.Conn, error) {
			tm := terms[j]
			c, _, err := websocket.Dial(context.Background(), e.wsURL(), dialOpts())
			if err != nil {
				return nil, err
			}
			c.SetReadLimit(wire.MaxFrameBytes)
			if err := writeFrame(c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch}); err != nil {
				return nil, err
			}
			f, err := readFrame(c)
			if err != nil {
				return nil, err
			}
			if err := writeFrame(c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)}); err != nil {
				return nil, err
			}
			if _, err := readFrame(c); err != nil { // welcome
				return nil, err
			}
			return c, nil
		})
		relayBytes := float64(liveBytes()-before) / n
		if got := e.r.hub.count(); got != n {
			b.Fatalf("%d sessions, want %d", got, n)
		}
		b.ReportMetric(plainBytes, "plain-B/conn")
		b.ReportMetric(relayBytes, "relay-B/terminal")
		b.ReportMetric(relayBytes/plainBytes, "relay/plain")
		for _, c := range conns {
			c.CloseNow()
		}
		e.close()
	}
}

func writeFrame(c *websocket.Conn, msg any) error {
	raw, err := wire.Encode(msg)
	if err != nil {
		return err
	}
	return c.Write(context.Background(), websocket.MessageText, raw)
}

func readFrame(c *websocket.Conn) (wire.Frame, error) {
	_, raw, err := c.Read(context.Background())
	if err != nil {
		return wire.Frame{}, err
	}
	return wire.DecodeFrame(raw)
}

// BenchmarkUplinkBatch is the cost of storing one 256-item batch (fsync on), against an empty bbolt
// transaction with fsync in the same run.
func BenchmarkUplinkBatch(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Logf = nil })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	t, _, err := e.r.terminal(k.id)
	if err != nil {
		b.Fatal(err)
	}
	items := make([]wire.Item, 256)
	b.Run("empty-tx", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := e.r.update("bench", func(tx kv.Tx, _ *fanout) error {
				return tx.Bucket([]byte(bMeta)).Put([]byte("bench"), u64(uint64(i)))
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch-256", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for j := range items {
				items[j] = k.item(wire.UpCharge, charge("A1", "bench", j, 5))
				items[j].Body = []byte(`{"record_id":"r` + strconv.FormatUint(k.seq, 10) + `","session_id":"s","inmate_id":"A1","minute":1,"cents":5}`)
			}
			ack, err := e.r.storeBatch(t.TerminalInfo, wire.Batch{Epoch: k.epoch, Items: items})
			if err != nil || ack.Seq != k.seq {
				b.Fatalf("ack %+v, %v", ack, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
	})
	// Device status reports, as a kiosk sends them every few batches: its queue length
	// changes now and then.
	b.Run("status-256", func(b *testing.B) {
		// CPU as well as time: a bbolt commit's fsync is most of the time and none of the CPU.
		start := processCPU(b)
		for i := 0; i < b.N; i++ {
			for j := range items {
				items[j] = k.item(wire.UpDeviceStatus, []byte(`{"badge_reader":"ok","pin_pad":"ok","printer":"ok","link":"up","items_waiting":`+strconv.Itoa(j/64)+`,"disk_free_mib":5120}`))
			}
			ack, err := e.r.storeBatch(t.TerminalInfo, wire.Batch{Epoch: k.epoch, Items: items})
			if err != nil || ack.Seq != k.seq {
				b.Fatalf("ack %+v, %v", ack, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
		b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N*len(items)), "cpu-ns/item")
	})
}

// processCPU is the CPU this process has used (user and system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
