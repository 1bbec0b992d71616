package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkRelayLoad drives n terminals (kiosks, 20 per facility) over real websockets on
// 127.0.0.1 against a relay with fsync on. Each sends batches of `items` messages (to a
// department, so each is stored and gets a message_status), one batch at a time, and answers
// every downlink frame with a down_ack, like a real terminal. With ack_letters=true the hello asks
// for the letters' states in the acks, as the reference terminal does (no message_status then
// comes down for them); ack_letters=false is a terminal built before that. b.N is the number of batches sent
// in all. It reports acknowledged batches/s, the ack's p50 and p99 (send to ack), connections
// lost, how long the n connections took to be admitted (all dialled at once, a reconnect
// storm), and in the same run the baselines: n goroutines each committing one-put bbolt
// Updates, and the same through bbolt's db.Batch.
//
//	go test -run '^$' -bench RelayLoad -benchtime 4000x ./sync/relay/
func BenchmarkRelayLoad(b *testing.B) {
	raiseFileLimit(b)
	for _, c := range []struct {
		terminals, items int
		ackLetters       bool
	}{{200, 1, true}, {1000, 1, true}, {1000, 1, false}, {1000, 16, true}, {3000, 1, true}} {
		b.Run(fmt.Sprintf("terminals=%d/items=%d/ack_letters=%v", c.terminals, c.items, c.ackLetters), func(b *testing.B) {
			benchLoad(b, c.terminals, c.items, c.ackLetters)
		})
	}
}

func raiseFileLimit(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	if lim.Cur < 8000 {
		b.Skipf("open file limit %d: too low for 3,000 connections", lim.Cur)
	}
}

// loadTerm is one benchmark terminal.
type loadTerm struct {
	id, epoch, inmate string
	priv              ed25519.PrivateKey
	seq               uint64
	ackLetters        bool
}

func benchLoad(b *testing.B, n, perBatch int, ackLetters bool) {
	e := newEnv(b, func(c *Config) {
		c.Logf = nil
		c.HoldPolicy = HoldNone
		c.MaxPending = n
		c.MaxPendingPerAddr = n // every bench terminal dials from 127.0.0.1
		c.HandshakeTimeout = time.Minute
		c.HelloTimeout = time.Minute
	})
	const perFacility = 20
	terms := make([]*loadTerm, n)
	for f := 0; f*perFacility < n; f++ {
		fac := fmt.Sprintf("fac%d", f)
		if err := e.r.PutPolicy(fac, kiosk.DefaultPolicy()); err != nil {
			b.Fatal(err)
		}
		var ro Roster
		for i := 0; i < perFacility; i++ {
			ro.Inmates = append(ro.Inmates, RosterInmate{ID: fmt.Sprintf("%s-i%d", fac, i), Name: "N", Language: "en", Badges: []string{fmt.Sprintf("%s-b%d", fac, i)},
				PINHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", Status: kiosk.StatusActive})
		}
		if err := e.r.PutRoster(fac, ro); err != nil {
			b.Fatal(err)
		}
	}
	// Enrollment is setup, not measured: 16 at a time through the Go API.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range terms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fac := fmt.Sprintf("fac%d", i/perFacility)
			en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: fac, Mode: wire.ModeKiosk})
			if err != nil {
				b.Error(err)
				return
			}
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			resp, err := e.r.Enroll(wire.EnrollRequest{Code: en.Code, PublicKey: pub, Signature: wire.SignEnroll(priv, en.Code), Software: "bench"})
			if err != nil {
				b.Error(err)
				return
			}
			ep := make([]byte, 16)
			rand.Read(ep)
			terms[i] = &loadTerm{id: resp.TerminalID, epoch: hex.EncodeToString(ep), inmate: fmt.Sprintf("%s-i%d", fac, i%perFacility), priv: priv,
				ackLetters: ackLetters}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}

	// The reconnect storm: every terminal dials at once.
	conns := make([]*websocket.Conn, n)
	var admitErrs atomic.Int64
	storm := time.Now()
	for i, tm := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := loadConnect(e.wsURL(), tm)
			if err != nil {
				admitErrs.Add(1)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	admitted := time.Since(storm)
	if admitErrs.Load() > 0 {
		b.Fatalf("%d of %d terminals not admitted", admitErrs.Load(), n)
	}

	perTerm := (b.N + n - 1) / n
	lat := make([][]time.Duration, n)
	var lost atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for i, tm := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := loadRun(conns[i], tm, perTerm, perBatch)
			lat[i] = l
			if err != nil {
				lost.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	for _, c := range conns {
		c.CloseNow()
	}
	rate := float64(len(all)) / elapsed.Seconds()
	update := boltWriters(b, n, len(all), false)
	batch := boltWriters(b, n, len(all), true)
	b.ReportMetric(rate, "acked-batches/s")
	b.ReportMetric(rate*float64(perBatch), "items/s")
	b.ReportMetric(pct(all, 50), "ack-p50-ms")
	b.ReportMetric(pct(all, 99), "ack-p99-ms")
	b.ReportMetric(float64(lost.Load()), "lost-conns")
	b.ReportMetric(admitted.Seconds(), "admit-s")
	b.ReportMetric(update, "update-ops/s")
	b.ReportMetric(batch, "dbbatch-ops/s")
	b.ReportMetric(rate/update, "batches/update")
	b.ReportMetric(0, "ns/op") // not meaningful: b.N batches over n connections
}

func pct(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[(len(sorted)-1)*p/100].Microseconds()) / 1000
}

// loadConnect runs hello, challenge, auth and welcome.
func loadConnect(url string, tm *loadTerm) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, dialOpts())
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(wire.MaxFrameBytes)
	if err := writeFrame(c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch, Software: "bench", AckLetters: tm.ackLetters}); err != nil {
		return nil, err
	}
	f, err := readFrame(c)
	if err != nil || f.Type != wire.TypeChallenge {
		return nil, fmt.Errorf("challenge: %v %v", f.Type, err)
	}
	if err := writeFrame(c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)}); err != nil {
		return nil, err
	}
	for {
		f, err := readFrame(c)
		if err != nil {
			return nil, err
		}
		if f.Type == wire.TypeWelcome {
			return c, nil
		}
	}
}

// loadRun sends batches one after another, answering downlink, and returns each ack's latency.
func loadRun(c *websocket.Conn, tm *loadTerm, batches, perBatch int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, batches)
	for range batches {
		items := make([]wire.Item, perBatch)
		for j := range items {
			tm.seq++
			id := uuid.Must(uuid.NewV7()).String()
			body := fmt.Sprintf(`{"id":%q,"inmate_id":%q,"box":"outbox","peer":"dept-medical","subject":"s","body":"a letter of a few words","state":"pending","created_at":"2026-03-02T10:00:00Z"}`,
				id, tm.inmate)
			items[j] = wire.Item{Seq: tm.seq, ID: id, Kind: wire.UpMessage, CreatedAt: t0, Body: []byte(body)}
		}
		sent := time.Now()
		if err := writeFrame(c, wire.Batch{Epoch: tm.epoch, Items: items}); err != nil {
			return lat, err
		}
		for acked := false; !acked; {
			f, err := readFrame(c)
			if err != nil {
				return lat, err
			}
			switch f.Type {
			case wire.TypeAck:
				if f.Ack.Seq != tm.seq {
					return lat, fmt.Errorf("ack %d, want %d", f.Ack.Seq, tm.seq)
				}
				if tm.ackLetters && (f.Ack.Letters == nil || len(f.Ack.Letters.Delivered) != perBatch) {
					return lat, fmt.Errorf("ack %d reports letters %+v, want %d delivered", f.Ack.Seq, f.Ack.Letters, perBatch)
				}
				lat = append(lat, time.Since(sent))
				acked = true
			case wire.TypeDown:
				if err := writeFrame(c, wire.DownAck{Seq: f.Down.Items[len(f.Down.Items)-1].Seq}); err != nil {
					return lat, err
				}
			default:
				return lat, errors.New("unexpected " + f.Type)
			}
		}
	}
	return lat, nil
}

// boltWriters is the baseline: `writers` goroutines commit `total` one-put transactions in all
// on a fresh bbolt file (fsync on), each through db.Update or db.Batch; it returns commits/s.
func boltWriters(b *testing.B, writers, total int, batch bool) float64 {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "base.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		b.Fatal(err)
	}
	commit := db.Update
	if batch {
		commit = db.Batch
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				if err := commit(func(tx *bolt.Tx) error {
					return tx.Bucket([]byte("b")).Put(u64(uint64(i)), []byte("value of some forty bytes, like a record"))
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}
