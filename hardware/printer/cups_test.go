package printer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/cupstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// These tests print through a real CUPS scheduler (internal/cupstest): a private cupsd on
// 127.0.0.1 with a queue to a printer that keeps what it is sent and one to a printer that
// refuses every job.

// kioskRig is a real terminal store with one inmate, A1, logged in with $1.00.
type kioskRig struct {
	dir   string
	store *kiosk.Store
	term  *kiosk.Terminal
}

func newKiosk(t *testing.T, dir string) *kioskRig {
	t.Helper()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(), ID: "kiosk-north-3"})
	if err != nil {
		t.Fatal(err)
	}
	return &kioskRig{dir: dir, store: s, term: term}
}

func newKioskWithInmate(t *testing.T) *kioskRig {
	t.Helper()
	k := newKiosk(t, t.TempDir())
	t.Cleanup(func() { k.store.Close() })
	p := kiosk.DefaultPolicy()
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25 // sessions unbilled: only pages cost
	p.PrintPagePrice, p.MaxPrintPages = 15, 5
	if err := k.term.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}
	h, err := kiosk.HashPINWith("1234", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	in := kiosk.Inmate{ID: "A1", Name: "Ana Pérez", Badges: []string{"B-A1"}, PINHash: h, Language: "en", Status: kiosk.StatusActive, Messaging: true}
	if err := k.term.UpsertInmate(in, "test"); err != nil {
		t.Fatal(err)
	}
	if err := k.term.Deposit("A1", 100, "d1"); err != nil {
		t.Fatal(err)
	}
	pend, err := k.term.EnterPIN("B-A1", "1234")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AcceptNotice(pend); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kioskRig) service(lab *cupstest.Lab, queue string) *Service {
	return &Service{Term: k.term, Printer: &Printer{Server: lab.Server, Queue: queue, User: "kiosk-north-3"},
		Terminal: "kiosk-north-3", Clock: clock.NewReal(), Every: 100 * time.Millisecond}
}

func (k *kioskRig) balance(t *testing.T) kiosk.Cents {
	t.Helper()
	b, err := k.term.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *kioskRig) queuedCharges(t *testing.T) []kiosk.Item {
	t.Helper()
	items, err := k.store.Pending(0, 1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []kiosk.Item
	for _, it := range items {
		if it.Kind == kiosk.ItemCharge || it.Kind == kiosk.ItemCredit {
			out = append(out, it)
		}
	}
	return out
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A two-page letter printed through CUPS comes out of the printer as a two-page PDF with the
// watermark on each page, and costs two pages once the printer reports it completed.
func TestCUPSPrintsAWatermarkedLetterAndChargesIt(t *testing.T) {
	lab := cupstest.Start(t)
	k := newKioskWithInmate(t)
	svc := k.service(lab, "good")

	pages, price, err := svc.Quote(twoPageLetter())
	if err != nil || pages != 2 || price != 30 {
		t.Fatalf("quote: %d pages, %s, %v; want 2 pages for 30¢", pages, price, err)
	}
	job, err := svc.Print(ctxFor(t), "A1", "Ana Pérez (A1)", twoPageLetter())
	if err != nil {
		t.Fatal(err)
	}
	if job.State != kiosk.PrintCharged || job.Pages != 2 || job.Cents != 30 {
		t.Fatalf("job %+v, want charged 2 pages for 30¢", job)
	}
	pdf := lab.NextPrinted(t)
	if !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("the printer received %d bytes that are not a PDF", len(pdf))
	}
	// The watermark's time is the kiosk's clock's when it printed: any time, to the minute.
	assertWatermarked(t, pdf, 2, Watermark{Person: "Ana Pérez (A1)", Terminal: "kiosk-north-3"})
	if b := k.balance(t); b != 70 {
		t.Fatalf("balance after printing 2 pages = %s, want 70¢", b)
	}
	if got := k.queuedCharges(t); len(got) != 1 {
		t.Fatalf("queued %d money items for the relay, want the one print charge", len(got))
	}
}

// A job the printer refuses is aborted by CUPS and costs nothing: the balance the inmate sees
// is what it was, and the relay hears nothing of it.
func TestCUPSFailedJobIsReleased(t *testing.T) {
	lab := cupstest.Start(t)
	k := newKioskWithInmate(t)
	job, err := k.service(lab, "broken").Print(ctxFor(t), "A1", "Ana Pérez (A1)", twoPageLetter())
	if err != nil {
		t.Fatal(err)
	}
	if job.State != kiosk.PrintReleased || job.Reason != "printer: aborted" {
		t.Fatalf("job %+v, want released after the printer aborted it", job)
	}
	select {
	case <-lab.Refused:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never reached the refusing printer")
	}
	if b := k.balance(t); b != 100 {
		t.Fatalf("balance after a failed job = %s, want 100¢ unchanged", b)
	}
	if got := k.queuedCharges(t); len(got) != 0 {
		t.Fatalf("a failed job queued %d money items for the relay", len(got))
	}
	// A queue that does not exist: a clear error naming it, and nothing held.
	job, err = k.service(lab, "nosuchqueue").Print(ctxFor(t), "A1", "Ana Pérez (A1)", Document{Body: "x"})
	if !errors.Is(err, ErrNoSuchQueue) || !strings.Contains(err.Error(), "nosuchqueue") || job.State != kiosk.PrintReleased {
		t.Fatalf("printing to a missing queue: %+v, %v", job, err)
	}
	t.Logf("a missing queue: %v", err)
	if b := k.balance(t); b != 100 {
		t.Fatalf("balance after printing to a missing queue = %s", b)
	}
}

// A kiosk that stopped while the printer worked settles the job when it starts again, by
// asking CUPS: a completed job is charged once.
func TestCUPSSettlesAJobAfterARestart(t *testing.T) {
	lab := cupstest.Start(t)
	k := newKioskWithInmate(t)
	pdf, pages, err := Render(twoPageLetter(), Watermark{Person: "Ana Pérez (A1)", Terminal: "kiosk-north-3", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	job, err := k.term.HoldPrint("A1", pages)
	if err != nil {
		t.Fatal(err)
	}
	pr := &Printer{Server: lab.Server, Queue: "good"}
	id, err := pr.Submit(ctxFor(t), "tether-"+job.ID, pdf)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.term.PrintSubmitted(job.ID, id); err != nil {
		t.Fatal(err)
	}
	// The kiosk stops here; the printer finishes meanwhile.
	if err := k.store.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := pr.Follow(ctxFor(t), clock.NewReal(), id, 100*time.Millisecond); err != nil || st.State != JobCompleted {
		t.Fatalf("CUPS job %d: %+v, %v", id, st, err)
	}
	k = newKiosk(t, k.dir)
	t.Cleanup(func() { k.store.Close() })
	if printing, err := k.service(lab, "good").SettleHeld(ctxFor(t)); err != nil || printing != 0 {
		t.Fatalf("settle after restart: %d still printing, %v", printing, err)
	}
	got, err := k.term.PrintJobByID(job.ID)
	if err != nil || got.State != kiosk.PrintCharged {
		t.Fatalf("job after restart: %+v, %v", got, err)
	}
	if b := k.balance(t); b != 70 {
		t.Fatalf("balance = %s, want 70¢", b)
	}
	// Asking again charges nothing more.
	if _, err := k.service(lab, "good").SettleHeld(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if got := k.queuedCharges(t); len(got) != 1 {
		t.Fatalf("queued %d money items, want one charge", len(got))
	}
}
