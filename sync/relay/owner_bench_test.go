package relay

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkReconnectStormClaim measures what claiming a terminal at hello costs a reconnect
// storm on a gateway of a JetStream store: n enrolled kiosks dial at once, in alternating
// rounds with the claim (and the owner check) on and off in one process, so the machine's
// load falls on both alike. It reports the slowest round's admit time of each and their ratio.
//
//	go test -run '^$' -bench ReconnectStormClaim -benchtime 1x ./sync/relay/
func BenchmarkReconnectStormClaim(b *testing.B) {
	raiseFileLimit(b)
	for _, n := range []int{1000, 3000} {
		b.Run(fmt.Sprintf("terminals=%d", n), func(b *testing.B) { benchStormClaim(b, n) })
	}
}

func benchStormClaim(b *testing.B, n int) {
	c := natstest.Start(b)
	st := jetStore(b, c, 0, "storm")
	var logged atomic.Int64 // the relay's first log lines say why a hello failed
	e := newEnv(b, func(cfg *Config) {
		cfg.Store = st
		cfg.Logf = func(format string, args ...any) {
			if strings.Contains(format, "%v") && logged.Add(1) <= 5 {
				b.Logf(format, args...)
			}
		}
		cfg.MaxPending, cfg.MaxPendingPerAddr = n, n
		cfg.HandshakeTimeout, cfg.HelloTimeout = time.Minute, time.Minute
		cfg.PingInterval = time.Hour
	})
	e.seed()
	terms := make([]*loadTerm, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range terms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
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
			terms[i] = &loadTerm{id: resp.TerminalID, epoch: hex.EncodeToString(ep), priv: priv}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	gateway := e.r.gateway
	lost := map[bool]int{}
	storm := func(claim bool) time.Duration {
		if claim {
			e.r.gateway = gateway
		} else {
			e.r.gateway = nil // as the relay on its own file: no claim, no owner check
		}
		conns := make([]*websocket.Conn, n)
		var failed atomic.Int64
		var firstErr atomic.Value
		start := time.Now()
		for i, tm := range terms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := loadConnect(e.wsURL(), tm)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				conns[i] = c
			}()
		}
		wg.Wait()
		took := time.Since(start)
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
		if failed.Load() > 0 {
			b.Logf("claim %v: %d of %d terminals not admitted, first: %v", claim, failed.Load(), n, firstErr.Load())
			lost[claim] += int(failed.Load())
		}
		for e.r.hub.count() > 0 { // the next storm starts on an empty gateway
			time.Sleep(10 * time.Millisecond)
		}
		return took
	}
	var on, off time.Duration
	b.ResetTimer()
	for range b.N {
		for range 2 {
			off = max(off, storm(false))
			on = max(on, storm(true))
		}
	}
	b.StopTimer()
	e.r.gateway = gateway
	b.ReportMetric(off.Seconds(), "admit-s-noclaim")
	b.ReportMetric(on.Seconds(), "admit-s-claim")
	b.ReportMetric(on.Seconds()/off.Seconds(), "claim/noclaim")
	b.ReportMetric(float64(lost[false]), "lost-noclaim")
	b.ReportMetric(float64(lost[true]), "lost-claim")
	b.ReportMetric(0, "ns/op")
}
