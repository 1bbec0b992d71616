package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestStampsExactlyOnceAcrossLinkCutsAndRejection: a facility priced per letter. Letters are
// stamped on the terminal while the link is cut at random byte offsets and moments, the
// terminal and the relay restart in the middle; each stamp is charged once on both sides, and
// each letter staff reject is refunded once, reaching the terminal's balance, its statement
// and the letter's stamp, whatever the cuts did to the downlink.
func TestStampsExactlyOnceAcrossLinkCutsAndRejection(t *testing.T) {
	const letters, rejected = 40, 15
	rl := startRelayHold(t, "", relay.HoldAll)
	rl.seed()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.BatchItems = 4 } // small batches: more cut points, each fits a link
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "the stamp pricing on the terminal", func() (bool, string) {
		return tm.term.Policy().ChargesStamps(), tm.term.Policy().Pricing
	})
	tm.login("B1", "1234")
	ana := approvedContact(t, rl, tm, "A1", "Ana", "ana@example.org")
	start, _ := tm.term.Balance("A1")

	px.setBudget(400, 6000, 11)
	// The cutter's cuts of a live connection count with the byte budgets': a slow run (the
	// package's tests beside others, JetStream under -race) has few connections that live
	// long enough to spend a budget.
	var timedCuts atomic.Int64
	cuts := func() int64 { return px.cuts.Load() + timedCuts.Load() }
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Add(1)
	go func() {
		defer cutter.Done()
		rng := rand.New(rand.NewPCG(5, 6))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(10+rng.IntN(80)) * time.Millisecond):
				if px.cutAll() > 0 {
					timedCuts.Add(1)
				}
			}
		}
	}()
	var ids []string
	for i := range letters {
		m, err := tm.term.Send("A1", ana, "Hi", fmt.Sprintf("letter %d: %s", i, strings.Repeat("news. ", 10)))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, m.ID)
		if i == letters/2 { // a restart in the middle: the queue and the stamps stay
			tm.reopen(kiosk.StoreOptions{})
			tm.start()
			tm.login("B1", "1234")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, _ := tm.term.Balance("A1"); b != start-letters*25 {
		t.Fatalf("terminal balance after %d stamped letters = %s, want %s", letters, b, start-letters*25)
	}
	tm.waitSynced()
	rl.restart()
	px.setBackend(rl.addr())

	// Staff review every letter, some rejected, while the link is still being cut.
	for i, id := range ids {
		testwait.UntilSaw(t, "the letter held on the relay", func() (bool, string) {
			os, err := rl.r.Outbound(relay.OutboundFilter{Status: vocab.MsgHeld})
			for _, o := range os {
				if o.ID == id {
					return true, ""
				}
			}
			return false, fmt.Sprint(len(os), err)
		})
		if i < rejected {
			rl.admin("POST", "/admin/v1/outbound/"+id+"/reject", map[string]string{"reason": "content_policy"}, nil)
		} else {
			rl.admin("POST", "/admin/v1/outbound/"+id+"/approve", nil, nil)
		}
	}
	// Cut while the terminal reconnects and syncs until the run has had cuts enough to prove
	// something, however fast the letters went through.
	testwait.UntilSaw(t, "five cuts of live connections", func() (bool, string) {
		return cuts() >= 5, fmt.Sprint(cuts())
	})
	close(stop)
	cutter.Wait()
	px.setBudget(0, 0, 0)
	px.cutAll()
	tm.waitSynced()
	downlinkDone(t, rl, tm, en.TerminalID)
	t.Logf("%d cuts, %d of them mid-stream", cuts(), px.cuts.Load())

	want := start - (letters-rejected)*25
	if b, _ := tm.term.Balance("A1"); b != want {
		t.Fatalf("terminal balance = %s, want %s (%d stamps, %d refunded)", b, want, letters, rejected)
	}
	rb, err := rl.r.Balance("A1")
	if err != nil || rb.BalanceCents != want {
		t.Fatalf("relay balance = %+v %v, want %s", rb, err, want)
	}
	u, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	stamps, refunds := 0, 0
	for _, r := range u.Records {
		switch {
		case r.Kind == "charge" && r.MessageID != "":
			stamps++
		case r.Kind == "credit" && r.MessageID != "":
			refunds++
		}
	}
	if stamps != letters || refunds != rejected {
		t.Fatalf("relay holds %d stamps and %d refunds, want %d and %d", stamps, refunds, letters, rejected)
	}
	for i, id := range ids {
		s, ok, err := tm.term.StampOf("A1", id)
		if err != nil || !ok || s.Cents != 25 || s.Refunded != (i < rejected) {
			t.Fatalf("letter %d: stamp %+v %v %v, refunded should be %v", i, s, ok, err, i < rejected)
		}
	}
	lines, err := tm.term.Statement("A1")
	if err != nil {
		t.Fatal(err)
	}
	credits := 0
	for _, l := range lines {
		if l.Kind == kiosk.LineCredit && l.MessageID != "" && l.Reason == kiosk.CreditStampRejected {
			credits++
		}
	}
	if credits != rejected {
		t.Fatalf("the statement shows %d stamp refunds, want %d", credits, rejected)
	}
}

// TestStampedLettersNeverUnpaidAcrossLinkCuts: the relay holds a letter until the stamp that
// follows it arrives, and rejects it stamp_missing if the next item its terminal sends is not
// that stamp. An honest terminal, with batches of 3 items (so a letter and its stamp are split
// across batches, and connections, often), link cuts at random moments and a restart of the
// terminal and the relay, loses no letter to that rule: every letter ends delivered, on the
// relay and on the terminal, each stamp charged once on both sides.
func TestStampedLettersNeverUnpaidAcrossLinkCuts(t *testing.T) {
	const letters = 30
	rl := startRelayHold(t, "", relay.HoldNone) // no review: a paid letter goes out at once
	rl.seed()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.BatchItems = 3 } // odd batches: letter and stamp split
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "the stamp pricing on the terminal", func() (bool, string) {
		return tm.term.Policy().ChargesStamps(), tm.term.Policy().Pricing
	})
	tm.login("B1", "1234")
	ana := approvedContact(t, rl, tm, "A1", "Ana", "ana@example.org")
	start, _ := tm.term.Balance("A1")

	px.setBudget(300, 5000, 7)
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Add(1)
	go func() {
		defer cutter.Done()
		rng := rand.New(rand.NewPCG(7, 8))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+rng.IntN(40)) * time.Millisecond):
				px.cutAll()
			}
		}
	}()
	// At least letters letters, and more (up to three times as many) until enough cuts have
	// landed mid-stream: on a slow machine fewer of the cutter's moments find a frame in flight.
	const minCuts = 3
	var ids []string
	for i := 0; i < letters || (px.cuts.Load() < minCuts && i < 3*letters); i++ {
		m, err := tm.term.Send("A1", ana, "Hi", fmt.Sprintf("letter %d: %s", i, strings.Repeat("news. ", 8)))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, m.ID)
		switch i {
		case letters / 3: // the terminal restarts: its queue, letters and stamps stay
			tm.reopen(kiosk.StoreOptions{})
			tm.start()
			tm.login("B1", "1234")
		case 2 * letters / 3: // the relay restarts under the proxy
			rl.restart()
			px.setBackend(rl.addr())
		}
		time.Sleep(3 * time.Millisecond)
	}
	close(stop)
	cutter.Wait()
	px.setBudget(0, 0, 0)
	px.cutAll()
	tm.waitSynced()
	downlinkDone(t, rl, tm, en.TerminalID)
	if px.cuts.Load() < minCuts {
		t.Fatalf("only %d mid-stream cuts happened in %d letters; the test proves little", px.cuts.Load(), len(ids))
	}
	t.Logf("%d mid-frame cuts over %d letters", px.cuts.Load(), len(ids))

	delivered, err := rl.r.Outbound(relay.OutboundFilter{Status: vocab.MsgDelivered})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]relay.Outbound{}
	for _, o := range delivered {
		out[o.ID] = o
	}
	for i, id := range ids {
		if o, ok := out[id]; !ok || o.AwaitingStamp || o.StampDue != 25 {
			all, _ := rl.r.Outbound(relay.OutboundFilter{})
			for _, o := range all {
				if o.ID == id {
					t.Fatalf("letter %d on the relay: %s %q (awaiting stamp %v), want delivered", i, o.Status, o.Reason, o.AwaitingStamp)
				}
			}
			t.Fatalf("letter %d is not on the relay", i)
		}
	}
	testwait.UntilSaw(t, "every letter delivered on the terminal", func() (bool, string) {
		sent, err := tm.term.Sent("A1")
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, m := range sent {
			if m.State == kiosk.MsgDelivered {
				n++
			} else if m.State == kiosk.MsgRejected {
				return false, "rejected: " + m.Reason
			}
		}
		return n == len(ids), fmt.Sprint(n, " delivered")
	})
	want := start - vocab.Cents(len(ids))*25
	if b, _ := tm.term.Balance("A1"); b != want {
		t.Fatalf("terminal balance = %s, want %s", b, want)
	}
	if rb, err := rl.r.Balance("A1"); err != nil || rb.BalanceCents != want {
		t.Fatalf("relay balance = %+v %v, want %s", rb, err, want)
	}
}

// TestLetterUnstampedAcrossSwitchToStampsIsRejectedUnpaid: a terminal that has not heard that
// the facility now prices letters per message (offline across the switch; to the relay no
// different from a terminal that leaves stamps out) sends a letter with no stamp. The relay
// holds it, never delivers it, and rejects it stamp_missing when the terminal's next item is
// not its stamp; the terminal shows it rejected with that reason, no money moves for it, and
// the next letter, stamped, is delivered.
func TestLetterUnstampedAcrossSwitchToStampsIsRejectedUnpaid(t *testing.T) {
	rl := startRelayHold(t, "", relay.HoldNone)
	rl.seed()
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	ana := approvedContact(t, rl, tm, "A1", "Ana", "ana@example.org")
	tm.waitSynced()

	tm.stopSync() // the link is down
	unpaid, err := tm.term.Send("A1", ana, "Hi", "written before the terminal heard of stamps")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	tm.start()
	testwait.UntilSaw(t, "the stamp pricing on the terminal", func() (bool, string) {
		return tm.term.Policy().ChargesStamps(), tm.term.Policy().Pricing
	})
	tm.waitSynced()
	if o := outboundByID(t, rl, unpaid.ID); o.Status == vocab.MsgDelivered {
		t.Fatalf("an unstamped letter was delivered: %+v", o)
	}
	paid, err := tm.term.Send("A1", ana, "Hi", "stamped")
	if err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	if o := outboundByID(t, rl, unpaid.ID); o.Status != vocab.MsgRejected || o.Reason != wire.ReasonStampMissing {
		t.Fatalf("the unstamped letter on the relay: %s %q, want rejected %s", o.Status, o.Reason, wire.ReasonStampMissing)
	}
	if o := outboundByID(t, rl, paid.ID); o.Status != vocab.MsgDelivered {
		t.Fatalf("the stamped letter on the relay: %s %q, want delivered", o.Status, o.Reason)
	}
	testwait.UntilSaw(t, "the terminal showing the unstamped letter rejected and the other delivered", func() (bool, string) {
		sent, err := tm.term.Sent("A1")
		if err != nil {
			return false, err.Error()
		}
		st := map[string]kiosk.Message{}
		for _, m := range sent {
			st[m.ID] = m
		}
		u, d := st[unpaid.ID], st[paid.ID]
		return u.State == kiosk.MsgRejected && u.Reason == wire.ReasonStampMissing && d.State == kiosk.MsgDelivered,
			fmt.Sprintf("%s %q / %s", u.State, u.Reason, d.State)
	})
	if _, stamped, err := tm.term.StampOf("A1", unpaid.ID); err != nil || stamped {
		t.Fatalf("the unstamped letter carries a stamp on the terminal: %v %v", stamped, err)
	}
	u, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	stamps := 0
	for _, r := range u.Records {
		if r.Kind == "charge" && r.MessageID != "" {
			stamps++
			if r.MessageID != paid.ID {
				t.Fatalf("a stamp recorded for letter %s", r.MessageID)
			}
		}
	}
	if stamps != 1 {
		t.Fatalf("relay holds %d stamps, want 1 (the stamped letter's)", stamps)
	}
}

// outboundByID is letter id as the relay's review API lists it.
func outboundByID(t *testing.T, rl *relayEnv, id string) relay.Outbound {
	t.Helper()
	all, err := rl.r.Outbound(relay.OutboundFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("letter %s is not on the relay", id)
	return relay.Outbound{}
}
