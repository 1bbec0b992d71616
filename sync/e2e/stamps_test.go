package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
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
				px.cutAll()
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
	close(stop)
	cutter.Wait()
	px.setBudget(0, 0, 0)
	px.cutAll()
	tm.waitSynced()
	downlinkDone(t, rl, tm, en.TerminalID)
	if px.cuts.Load() < 5 {
		t.Fatalf("only %d mid-stream cuts happened; the test proves little", px.cuts.Load())
	}
	t.Logf("%d mid-frame cuts", px.cuts.Load())

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
