package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/printer"
	"github.com/tether-kiosk/tether/internal/cupstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestPrintChargedOnceAcrossLinkCuts: a facility that sells printing at 30¢ a page. A kiosk
// prints jobs while the link is cut at random byte offsets and moments, and restarts in the
// middle; the printer completes some jobs and fails others. Each completed job is charged
// once, on the kiosk and on the relay; a failed one costs nothing and the relay never hears of
// it; the facility's other kiosk sees the same balance. Then the relay's price changes while the kiosk is offline: the kiosk's charge at the old
// price is refused print_price and the kiosk gives it back itself, so both balances agree.
func TestPrintChargedOnceAcrossLinkCuts(t *testing.T) {
	const jobs = 40
	rl := startRelayHold(t, "", relay.HoldNone)
	rl.seed()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25 // sessions unbilled: only pages cost here
	// Up to 5 pages at 30¢: a job may cost more than any minute.
	p.PrintPagePrice, p.MaxPrintPages, p.OfflineSpendCap = 30, 5, 100000
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.BatchItems = 3 }
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "the print price on the terminal", func() (bool, string) {
		return tm.term.Policy().PrintPagePrice == 30 && tm.term.Policy().Pricing == kiosk.PricingPerMessage, fmt.Sprint(tm.term.Policy().PrintPagePrice)
	})
	px2 := startProxy(t, rl.addr())
	other := openTerminal(t, "", kiosk.StoreOptions{})
	other.enroll(px2.url(), rl.code(wire.ModeKiosk, ""))
	other.start()
	other.waitRoster()
	tm.login("B1", "1234")
	start, _ := tm.term.Balance("A1")

	px.setBudget(300, 4000, 13)
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
			case <-time.After(time.Duration(10+rng.IntN(60)) * time.Millisecond):
				px.cutAll()
			}
		}
	}()
	var spent kiosk.Cents
	completed := map[string]bool{}
	for i := range jobs {
		pages := 1 + i%5
		j, err := tm.term.HoldPrint("A1", pages)
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if err := tm.term.PrintSubmitted(j.ID, 100+i); err != nil {
			t.Fatal(err)
		}
		ok := i%4 != 0   // every fourth job the printer fails
		if i == jobs/2 { // the kiosk stops with the job at the printer; it settles after the start
			tm.reopen(kiosk.StoreOptions{})
			tm.start()
			tm.login("B1", "1234")
		}
		if _, err := tm.term.SettlePrint(j.ID, ok, "printer: aborted"); err != nil {
			t.Fatal(err)
		}
		if ok {
			spent += kiosk.Cents(pages) * 30
			completed[vocab.PrintRecordID(j.ID)] = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, _ := tm.term.Balance("A1"); b != start-spent {
		t.Fatalf("kiosk balance after printing = %s, want %s", b, start-spent)
	}
	tm.waitSynced()
	rl.restart()
	px.setBackend(rl.addr())
	px2.setBackend(rl.addr())
	close(stop)
	cutter.Wait()
	px.setBudget(0, 0, 0)
	px.cutAll()
	tm.waitSynced()
	downlinkDone(t, rl, tm, en.TerminalID)
	if px.cuts.Load() < 3 {
		t.Fatalf("only %d mid-stream cuts happened; the test proves little", px.cuts.Load())
	}
	t.Logf("%d mid-frame cuts", px.cuts.Load())

	relayPrints := func() (charges, credits int, detail string) {
		u, err := rl.r.Usage("A1")
		if err != nil {
			t.Fatal(err)
		}
		var odd []string
		for _, r := range u.Records {
			if !vocab.IsPrintRecord(r.RecordID) {
				continue
			}
			if r.Kind == "charge" {
				charges++
				if !completed[r.RecordID] {
					odd = append(odd, r.RecordID)
				}
			} else {
				credits++
			}
		}
		return charges, credits, strings.Join(odd, ",")
	}
	if c, cr, odd := relayPrints(); c != len(completed) || cr != 0 || odd != "" {
		t.Fatalf("relay holds %d print charges (%d completed) and %d print credits; not completed: %q", c, len(completed), cr, odd)
	}
	if rb, err := rl.r.Balance("A1"); err != nil || rb.BalanceCents != start-spent {
		t.Fatalf("relay balance = %+v %v, want %s", rb, err, start-spent)
	}
	testwait.UntilSaw(t, "the other kiosk's balance", func() (bool, string) {
		b, err := other.term.Balance("A1")
		return err == nil && b == start-spent, fmt.Sprint(b, err)
	})

	// The price changes on the relay while the kiosk is offline and prints at the old one.
	tm.stopSync()
	j, err := tm.term.HoldPrint("A1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.term.SettlePrint(j.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	p.PrintPagePrice = 40
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	tm.start()
	tm.waitSynced()
	testwait.UntilSaw(t, "the refused print charge given back on the kiosk", func() (bool, string) {
		b, err := tm.term.Balance("A1")
		return err == nil && b == start-spent, fmt.Sprint(b, err)
	})
	if rb, err := rl.r.Balance("A1"); err != nil || rb.BalanceCents != start-spent {
		t.Fatalf("relay balance after the refused charge = %+v %v, want %s", rb, err, start-spent)
	}
	if c, cr, _ := relayPrints(); c != len(completed) || cr != 0 {
		t.Fatalf("after the refusal the relay holds %d print charges and %d credits", c, cr)
	}
	lines, err := tm.term.Statement("A1")
	if err != nil {
		t.Fatal(err)
	}
	refunds := 0
	for _, l := range lines {
		if l.Kind == kiosk.LineCredit && l.Reason == vocab.CreditPrintRefused {
			refunds++
		}
	}
	if refunds != 1 {
		t.Fatalf("the statement shows %d refused print charges given back, want 1", refunds)
	}
	if rep, err := tm.term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("kiosk store: %+v %v", rep.Problems, err)
	}
}

// TestPrintThroughCUPSWatermarkedAndCharged: an inmate prints a two-page letter on a kiosk
// through a real CUPS; the printer receives two pages, each watermarked with the inmate, the
// kiosk and the time, and the relay records one charge of two pages at its price. A job the
// printer refuses costs nothing on either side.
func TestPrintThroughCUPSWatermarkedAndCharged(t *testing.T) {
	lab := cupstest.Start(t)
	rl := startRelayHold(t, "", relay.HoldNone)
	rl.seed()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25 // sessions unbilled: only pages cost here
	p.PrintPagePrice, p.MaxPrintPages = 15, 5
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "the print price on the terminal", func() (bool, string) {
		return tm.term.Policy().PrintPagePrice == 15, fmt.Sprint(tm.term.Policy().PrintPagePrice)
	})
	tm.login("B1", "1234")
	start, _ := tm.term.Balance("A1")
	var body strings.Builder
	for i := range 70 {
		fmt.Fprintf(&body, "Line %d of a letter home.\n", i)
	}
	letter := printer.Document{Title: "To Mom", Body: body.String()}
	svc := func(queue string) *printer.Service {
		return &printer.Service{Term: tm.term, Printer: &printer.Printer{Server: lab.Server, Queue: queue, User: "kiosk-b3"},
			Terminal: "Unit B kiosk 3", Clock: clock.NewReal(), Every: 50 * time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit)
	defer cancel()

	pages, price, err := svc("good").Quote(letter)
	if err != nil || pages != 2 || price != 30 {
		t.Fatalf("quote: %d pages for %s, %v; want 2 for 30¢", pages, price, err)
	}
	job, err := svc("good").Print(ctx, "A1", "Ana (A1)", letter)
	if err != nil || job.State != kiosk.PrintCharged {
		t.Fatalf("print: %+v, %v", job, err)
	}
	got := cupstest.PDFText(t, lab.NextPrinted(t))
	if len(got) != 2 {
		t.Fatalf("the printer received %d pages, want 2", len(got))
	}
	for i, page := range got {
		if !strings.Contains(strings.Join(strings.Fields(page), " "), "Printed for Ana (A1) at Unit B kiosk 3, ") {
			t.Errorf("page %d carries no watermark:\n%s", i+1, page)
		}
	}
	failed, err := svc("broken").Print(ctx, "A1", "Ana (A1)", letter)
	if err != nil || failed.State != kiosk.PrintReleased {
		t.Fatalf("print on the refusing printer: %+v, %v", failed, err)
	}
	tm.waitSynced()
	if b, _ := tm.term.Balance("A1"); b != start-30 {
		t.Fatalf("kiosk balance = %s, want %s", b, start-30)
	}
	if rb, err := rl.r.Balance("A1"); err != nil || rb.BalanceCents != start-30 {
		t.Fatalf("relay balance = %+v %v, want %s", rb, err, start-30)
	}
	u, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	var prints []relay.UsageRecord
	for _, r := range u.Records {
		if vocab.IsPrintRecord(r.RecordID) {
			prints = append(prints, r)
		}
	}
	if len(prints) != 1 || prints[0].RecordID != vocab.PrintRecordID(job.ID) || prints[0].Pages != 2 || prints[0].Cents != 30 {
		t.Fatalf("the relay holds print records %+v, want one charge of 2 pages for 30¢", prints)
	}
}
