package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
)

// downlinkDone waits until the terminal applied everything the relay queued for it, and
// checks the stream had no gap.
func downlinkDone(t *testing.T, rl *relayEnv, tm *terminal, id string) {
	t.Helper()
	testwait.UntilSaw(t, "the downlink to be applied", func() (bool, string) {
		ts, err := rl.r.Terminals()
		if err != nil {
			return false, err.Error()
		}
		for _, ti := range ts {
			if ti.ID == id {
				applied, _ := tm.term.DownlinkApplied()
				return applied == ti.DownQueued && ti.DownAcked == ti.DownQueued,
					fmt.Sprintf("relay queued %d acked %d, terminal applied %d", ti.DownQueued, ti.DownAcked, applied)
			}
		}
		return false, "terminal unknown to the relay"
	})
	gaps, err := tm.store.RecentAudit(10, func(ev kiosk.AuditEvent) bool {
		return ev.Kind == "downlink_gap" || ev.Kind == "downlink_refused"
	})
	if err != nil || len(gaps) > 0 {
		t.Fatalf("downlink gaps or refusals on the terminal: %+v %v", gaps, err)
	}
}

// TestCutLinksExactlyOnceBothWays cuts the connection at random byte offsets (mid-frame, both
// directions) and at random moments, while the terminal sends and the relay sends back.
func TestCutLinksExactlyOnceBothWays(t *testing.T) {
	// At least msgs letters, and more (up to maxMsgs) until minCuts cuts have landed on live
	// connections: on a fast machine the first 600 can be through before the cutter has cut
	// often enough, and on a slow relay (JetStream under -race) few connections live long
	// enough to carry a byte budget, so the cutter's cuts of a live connection count too.
	const msgs, maxMsgs, minCuts, deposits, inbound = 600, 3000, 10, 60, 60
	sent := 0
	var timedCuts atomic.Int64
	rl, px, tm, en := syncedKiosk(t, func(c *client.Config) { c.BatchItems = 16 }) // many small batches: more cut points
	cuts := func() int64 { return px.cuts.Load() + timedCuts.Load() }
	tm.login("B1", "1234")
	mom := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")

	px.setBudget(400, 6000, 7)
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Add(1)
	go func() {
		defer cutter.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(20+rng.IntN(150)) * time.Millisecond):
				if px.cutAll() > 0 {
					timedCuts.Add(1)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for sent < maxMsgs && (sent < msgs || cuts() < minCuts) {
			if err := tm.trySendNumbered("A1", sent, 10); err != nil {
				t.Error(err)
				return
			}
			sent += 10
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < max(deposits, inbound); i++ {
			if i < deposits {
				if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A1", Cents: 100, Ref: fmt.Sprintf("dep-%03d", i)}); err != nil {
					t.Error(err)
					return
				}
			}
			if i < inbound {
				if _, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: mom, Subject: fmt.Sprintf("reply %03d", i), Body: "ok"}); err != nil {
					t.Error(err)
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	cutter.Wait()
	// Let it heal: no more cuts, everything must arrive.
	px.setBudget(0, 0, 0)
	px.cutAll()
	tm.waitSynced()
	downlinkDone(t, rl, tm, en.TerminalID)
	if cuts() < minCuts || px.cuts.Load() == 0 {
		t.Fatalf("only %d cuts of live connections (%d of them mid-frame) happened in %d letters; the test proves little",
			cuts(), px.cuts.Load(), sent)
	}
	t.Logf("%d cuts of live connections, %d of them mid-frame, over %d letters", cuts(), px.cuts.Load(), sent)

	checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": sent})
	inbox, err := tm.term.Inbox("A1")
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	for _, m := range inbox {
		subjects[m.Subject]++
	}
	for i := 0; i < inbound; i++ {
		if n := subjects[fmt.Sprintf("reply %03d", i)]; n != 1 {
			t.Fatalf("inbound reply %03d is in the inbox %d times", i, n)
		}
	}
	// Money: the relay's balance and the terminal's agree once everything is acknowledged.
	bal, err := rl.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	if bal.Deposits != 50000+deposits*100 {
		t.Fatalf("relay deposits = %d, want %d", bal.Deposits, 50000+deposits*100)
	}
	local, err := tm.term.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	if local != bal.BalanceCents {
		t.Fatalf("terminal balance %s, relay balance %s", local, bal.BalanceCents)
	}
}
