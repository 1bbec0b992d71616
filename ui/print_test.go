package ui

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/printer"
	"github.com/tether-kiosk/tether/internal/cupstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// cupsPrinter is the Printer kioskd makes of hardware/printer's Service (written out here as
// cmd/internal/kioskapp has it: ui may not import its package).
type cupsPrinter struct{ s *printer.Service }

func (p cupsPrinter) Quote(doc PrintDoc) (int, kiosk.Cents, error) {
	return p.s.Quote(printer.Document{Title: doc.Title, Body: doc.Body})
}

func (p cupsPrinter) Print(ctx context.Context, inmateID, person string, doc PrintDoc) (kiosk.PrintJob, error) {
	return p.s.Print(ctx, inmateID, person, printer.Document{Title: doc.Title, Body: doc.Body})
}

// printRig is a kiosk whose printer is queue of a real CUPS scheduler.
func printRig(t *testing.T, lab *cupstest.Lab, queue string, policy func(*kiosk.Policy)) *harness {
	return newHarness(t, func(s *setup) {
		s.policy = policy
		s.printer = func(h *harness) Printer {
			return cupsPrinter{&printer.Service{Term: h.term, Printer: &printer.Printer{Server: lab.Server, Queue: queue, User: "term-1"},
				Terminal: "term-1", Clock: clock.NewReal(), Every: 50 * time.Millisecond}}
		}
	})
}

// waitSee waits for the outcome of a print job, which comes from the printer's goroutine.
func (h *harness) waitSee(s string) {
	h.t.Helper()
	testwait.UntilSaw(h.t, "the screen to show "+s, func() (bool, string) {
		h.settle()
		txt := h.screenText()
		return strings.Contains(txt, s), txt
	})
}

// A letter printed through CUPS: the pages and the price show before Print, the page comes
// out of the printer, the screen says it printed and what it cost, and the balance shows it.
func TestPrintALetterShowsQuoteThenPrintedAndCharged(t *testing.T) {
	lab := cupstest.Start(t)
	h := printRig(t, lab, "good", func(p *kiosk.Policy) {
		p.Pricing, p.StampPrice, p.PrintPagePrice, p.MaxPrintPages = kiosk.PricingPerMessage, 25, 15, 5
	})
	h.deliver("in-1", "ana@example.com", "Ana Ruiz", "Hola", "Te quiero mucho.")
	h.login()
	h.tap("Inbox (1)")
	h.tapText("Ana Ruiz")
	h.tap("Print")
	h.mustSee("Hola", "1 page, $0.15", "Your balance: $20.00")
	h.tap("Print now")
	h.waitSee("Printed: 1 page, $0.15 charged.")
	if pdf := lab.NextPrinted(t); len(pdf) == 0 {
		t.Fatal("the printer got an empty job")
	}
	h.tap("Back")
	h.tap("Back")
	h.tap("Back")
	h.mustSee("Balance: $19.85")
}

// A job the printer refuses is given back: the screen says nothing was charged.
func TestPrintFailedChargesNothing(t *testing.T) {
	lab := cupstest.Start(t)
	h := printRig(t, lab, "broken", func(p *kiosk.Policy) {
		p.Pricing, p.StampPrice, p.PrintPagePrice, p.MaxPrintPages = kiosk.PricingPerMessage, 25, 15, 5
	})
	h.login()
	c := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	sent, err := h.term.Send(mariaID, c.ID, "Hola", "Un abrazo")
	must(t, err)
	h.tap("Sent")
	h.tapText("Ana Ruiz")
	h.tap("Print")
	h.mustSee("1 page, $0.15")
	h.tap("Print now")
	h.waitSee("The printer could not print it. Nothing was charged.")
	if b, err := h.term.Balance(mariaID); err != nil || b != 2000-25 {
		t.Fatalf("balance %v %v, want $19.75 (the stamp of %s only)", b, err, sent.ID)
	}
}

// No Print button where the policy does not let inmates print, nor without a printer.
func TestNoPrintButtonWhenPrintingIsOff(t *testing.T) {
	lab := cupstest.Start(t)
	h := printRig(t, lab, "good", func(p *kiosk.Policy) { p.MaxPrintPages = 0 })
	h.deliver("in-1", "ana@example.com", "Ana Ruiz", "Hola", "Te quiero mucho.")
	h.login()
	h.tap("Inbox (1)")
	h.tapText("Ana Ruiz")
	h.mustSee("Te quiero mucho.")
	h.mustNotSee("Print")

	h2 := newHarness(t)
	h2.deliver("in-1", "ana@example.com", "Ana Ruiz", "Hola", "Te quiero mucho.")
	h2.login()
	h2.tap("Inbox (1)")
	h2.tapText("Ana Ruiz")
	h2.mustSee("Te quiero mucho.")
	h2.mustNotSee("Print")
}

// A lesson page prints too: its Print button quotes the page, the page comes out of the
// printer with the watermark naming the person, and the outcome shows.
func TestPrintALessonPage(t *testing.T) {
	lab := cupstest.Start(t)
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	must(t, err)
	t.Cleanup(func() { media.Close() })
	page := []byte("A budget is a plan for the week's money.")
	ref, _ := mediaRef(t, page, vocab.MediaText)
	_, err = media.Put(bytes.NewReader(page))
	must(t, err)
	h := newHarness(t, func(s *setup) {
		s.media = media
		s.policy = func(p *kiosk.Policy) {
			p.Pricing, p.StampPrice, p.PrintPagePrice, p.MaxPrintPages = kiosk.PricingPerMessage, 25, 15, 5
		}
		s.printer = func(h *harness) Printer {
			return cupsPrinter{&printer.Service{Term: h.term, Printer: &printer.Printer{Server: lab.Server, Queue: "good", User: "term-1"},
				Terminal: "term-1", Clock: clock.NewReal(), Every: 50 * time.Millisecond}}
		}
	})
	h.publish(kiosk.CatalogItem{ID: "les-budget", Kind: vocab.CatalogLesson, Title: "Budgeting your account", Pages: []vocab.MediaRef{ref}})
	h.login()
	h.tap("Library")
	h.tap("Open")
	h.mustSee("Page 1 of 1", "A budget is a plan for the week's money.")
	h.tap("Print")
	h.mustSee("Budgeting your account, page 1", "1 page, $0.15")
	h.tap("Print now")
	h.waitSee("Printed: 1 page, $0.15 charged.")
	if text := strings.Join(cupstest.PDFText(t, lab.NextPrinted(t)), " "); !strings.Contains(text, "week's money") ||
		!strings.Contains(text, "Printed for Maria Gonzalez (A1001) at term-1") {
		t.Fatalf("the printed page reads %q", text)
	}
	h.tap("Back")
	h.mustSee("Page 1 of 1")
}

// A job the offline spending limit cannot cover is refused before it reaches the printer, in
// words about printing, and nothing is held.
func TestPrintPastTheOfflineLimitIsRefused(t *testing.T) {
	lab := cupstest.Start(t)
	h := printRig(t, lab, "good", func(p *kiosk.Policy) {
		p.Pricing, p.StampPrice, p.PrintPagePrice, p.MaxPrintPages, p.OfflineSpendCap = kiosk.PricingPerMessage, 25, 15, 5, 10
	})
	h.deliver("in-1", "ana@example.com", "Ana Ruiz", "Hola", "Te quiero mucho.")
	h.login()
	h.tap("Inbox (1)")
	h.tapText("Ana Ruiz")
	h.tap("Print")
	h.tap("Print now")
	h.waitSee("This terminal is offline and printing this would pass the offline spending limit. Nothing was charged.")
	if held, err := h.term.PrintsHeld(); err != nil || len(held) != 0 {
		t.Fatalf("held jobs %+v %v, want none", held, err)
	}
	select {
	case <-lab.Printed:
		t.Fatal("the printer got the refused job")
	default:
	}
}
