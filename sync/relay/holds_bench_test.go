package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkHeldStatusBatches drives kiosks of 5 facilities (20 each) over websockets on
// 127.0.0.1 against one relay on the in-process 3-node cluster, each sending one-report
// device status batches one after another, as tetherload's status mix does. path=kv commits
// them in kv transactions, as every relay does today; path=held has the relay hold the 5
// facilities (holds.go), so each group commit is one entry of its facility's log and the kv
// state follows by projection every half second. b.N is the batches sent in all. It reports
// acknowledged batches/s, the kv store's committed messages a batch (the log's entries are not
// among them: one a group commit), and in the same run the cluster's durable R3 publish rate
// from 16 publishers, and the ratio of the two (the measure, on one machine that runs
// terminals, relay and cluster together).
//
//	go test -run '^$' -bench HeldStatusBatches -benchtime 20000x ./sync/relay/
func BenchmarkHeldStatusBatches(b *testing.B) {
	for _, held := range []bool{false, true} {
		name := "path=kv"
		if held {
			name = "path=held"
		}
		b.Run(name, func(b *testing.B) { benchHeldStatus(b, held) })
	}
}

func benchHeldStatus(b *testing.B, held bool) {
	const facilities, perFacility = 5, 20
	c := natstest.Start(b)
	st := jetStore(b, c, 0, "relay")
	e := newEnv(b, func(cfg *Config) {
		cfg.Store, cfg.Logf = st, nil
		cfg.MaxPending, cfg.MaxPendingPerAddr = facilities*perFacility, facilities*perFacility
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var terms []*loadTerm
	for f := range facilities {
		fac := fmt.Sprintf("fac%d", f)
		if err := e.r.PutPolicy(fac, kiosk.DefaultPolicy()); err != nil {
			b.Fatal(err)
		}
		for range perFacility {
			en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: fac, Mode: wire.ModeKiosk})
			if err != nil {
				b.Fatal(err)
			}
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			resp, err := e.r.Enroll(wire.EnrollRequest{Code: en.Code, PublicKey: pub, Signature: wire.SignEnroll(priv, en.Code), Software: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			ep := make([]byte, 16)
			rand.Read(ep)
			terms = append(terms, &loadTerm{id: resp.TerminalID, epoch: hex.EncodeToString(ep), priv: priv})
		}
	}
	if held {
		l := openFacLog(ctx, b, c, 1)
		for f := range facilities {
			if _, err := e.r.holdFacility(ctx, l, fmt.Sprintf("fac%d", f), "gw-bench", faclog.HoldOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	conns := make([]*websocket.Conn, len(terms))
	for i, tm := range terms {
		conn, err := loadConnect(e.wsURL(), tm)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = conn
	}
	per := (b.N + len(terms) - 1) / len(terms)
	before := st.Stats()
	var acked, lost atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, tm := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				tm.seq++
				body := fmt.Sprintf(`{"items_waiting":%d}`, tm.seq%5)
				it := wire.Item{Seq: tm.seq, ID: uuid.Must(uuid.NewV7()).String(), Kind: wire.UpDeviceStatus, CreatedAt: t0, Body: []byte(body)}
				if err := writeFrame(conns[i], wire.Batch{Epoch: tm.epoch, Items: []wire.Item{it}}); err != nil {
					lost.Add(1)
					return
				}
				for {
					f, err := readFrame(conns[i])
					if err != nil {
						lost.Add(1)
						return
					}
					if f.Type == wire.TypeAck && f.Ack.Seq == tm.seq {
						break
					}
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := st.Stats()
	messages := after.Messages - before.Messages
	reads := after.Reads + after.ReplicaReads - before.Reads - before.ReplicaReads
	for _, conn := range conns {
		conn.CloseNow()
	}
	if lost.Load() > 0 {
		b.Fatalf("%d connections lost", lost.Load())
	}
	rate := float64(acked.Load()) / elapsed.Seconds()
	pubs := r3PublishRate(b, ctx, c, 16, 20_000)
	b.ReportMetric(rate, "acked-batches/s")
	b.ReportMetric(float64(messages)/float64(acked.Load()), "kv-msgs/batch")
	b.ReportMetric(float64(reads)/float64(acked.Load()), "kv-reads/batch")
	b.ReportMetric(float64(after.Prefetched-before.Prefetched)/float64(acked.Load()), "together/batch")
	b.ReportMetric(float64(after.Views-before.Views)/float64(acked.Load()), "views/batch")
	b.ReportMetric(pubs, "r3-publishes/s")
	b.ReportMetric(rate/pubs, "ratio")
	b.ReportMetric(0, "ns/op") // not meaningful: b.N batches over many connections
}

// r3PublishRate is the cluster's durable R3 publish rate: n 64-byte messages acknowledged in
// all, from publishers goroutines, to a stream of its own.
func r3PublishRate(b *testing.B, ctx context.Context, c *natstest.Cluster, publishers, n int) float64 {
	js, err := jetstream.New(c.Connect(2))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := natstest.Placed(ctx, func() (jetstream.Stream, error) {
		return js.CreateStream(ctx, jetstream.StreamConfig{Name: "BASELINE", Subjects: []string{"baseline.>"}, Replicas: 3})
	}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := js.Publish(ctx, fmt.Sprintf("baseline.%d", p), make([]byte, 64)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
