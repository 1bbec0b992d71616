package ui

import (
	"context"
	"image/color"
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// Printing a letter or a lesson page on the facility printer (kiosk/print.go): the screen shows
// the pages and the price before the person confirms, then what became of the job: printed
// and charged, or failed and nothing charged. The Print button shows only where the policy
// lets inmates print and kioskd has a printer (Deps.Printer).

// PrintDoc is what a person prints: a title and plain text.
type PrintDoc struct {
	Title string
	Body  string
}

// Printer prints for the person in session; kioskd adapts hardware/printer's Service to it.
type Printer interface {
	// Quote is what doc costs now: its pages and their price, or why it may not print.
	Quote(doc PrintDoc) (pages int, price kiosk.Cents, err error)
	// Print lays doc out watermarked for person, holds its price, prints it and follows the
	// job until the printer is done: the job comes back charged or released. It may take
	// long; if ctx ends first the job stays held, and kioskd settles it when it starts.
	Print(ctx context.Context, inmateID, person string, doc PrintDoc) (kiosk.PrintJob, error)
}

// printWait bounds how long the screen follows one job; after it the job is settled at the
// next start of kioskd (the price stays held until then, never charged without the printer).
const printWait = 5 * time.Minute

// printButton is the Print button for doc, or nil where printing is off or no printer is set
// up; back shows the screen it was pressed on again.
func (k *Kiosk) printButton(w words, doc PrintDoc, back func()) fyne.CanvasObject {
	if k.printer == nil || !k.d.Policy().PrintsEnabled() {
		return nil
	}
	return big(k.button(w.T("print.button"), fynetheme.DocumentPrintIcon(), func() { k.showPrintQuote(doc, back) }), 220, 64)
}

// showPrintQuote asks the printer's layout for the pages and price, and shows them with the
// balance before the person confirms.
func (k *Kiosk) showPrintQuote(doc PrintDoc, back func()) {
	s := k.sess
	v, w, status := k.sessionView("print")
	v.onTick = k.libraryTick
	k.setScreen(v, k.frame(w, w.T("print.title"), back, status, text(w.T("common.loading"), theme.Grey)))
	pr := k.printer
	k.run(func() func() {
		pages, price, err := pr.Quote(doc)
		return func() {
			if k.sess != s || k.v != v {
				return
			}
			if err != nil {
				k.logf("ui: print quote: %v", err)
				k.showPrintOutcome(back, w.T("print.cannot"), theme.Orange)
				return
			}
			rows := []fyne.CanvasObject{
				theme.Text(doc.Title, theme.SubHeadingSize, theme.White, true),
				text(w.pages("print.quote", pages, price), theme.Yellow),
				text(w.T("library.buy_balance", "balance", s.info.Balance.String()), theme.White),
			}
			var ok *widget.Button
			ok = k.primary(w.T("print.confirm"), fynetheme.DocumentPrintIcon(), func() {
				ok.Disable()
				k.startPrint(doc, back)
			})
			cancel := k.button(w.T("common.cancel"), nil, back)
			rows = append(rows, container.NewHBox(big(ok, 280, 72), big(cancel, 200, 72)))
			k.setScreen(v, k.frame(w, w.T("print.title"), back, status, container.NewVBox(rows...)))
		}
	})
}

// startPrint sends the job off its own goroutine (the printer may take minutes, and the
// worker must stay free for the rest of the session) and shows the outcome when it comes.
func (k *Kiosk) startPrint(doc PrintDoc, back func()) {
	s := k.sess
	v, w, status := k.sessionView("print")
	v.onTick = k.libraryTick
	k.setScreen(v, k.frame(w, w.T("print.title"), nil, status,
		container.NewCenter(theme.Text(w.T("print.printing"), theme.SubHeadingSize, theme.Yellow, true))))
	gen, id, person, pr := k.gen, s.inmateID, s.name+" ("+s.inmateID+")", k.printer
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), printWait)
		defer cancel()
		job, err := pr.Print(ctx, id, person, doc)
		k.do(func() {
			if k.gen != gen || k.sess != s {
				return
			}
			k.refreshSession()
			switch {
			case err == nil && job.State == kiosk.PrintCharged:
				k.showPrintOutcome(back, w.pages("print.done", job.Pages, job.Cents), theme.Green)
			case kiosk.ReasonOf(err) == kiosk.ReasonInsufficientBalance:
				k.showPrintOutcome(back, w.T("print.err.insufficient_balance", "balance", s.info.Balance.String()), theme.Orange)
			case kiosk.ReasonOf(err) == kiosk.ReasonOfflineLimit:
				k.showPrintOutcome(back, w.T("print.err.offline_limit"), theme.Orange)
			case kiosk.ReasonOf(err) != "":
				k.showPrintOutcome(back, w.refusal(err), theme.Orange)
			case job.State == kiosk.PrintHeld:
				k.logf("ui: print job %s: %v", job.ID, err)
				k.showPrintOutcome(back, w.T("print.pending"), theme.Orange)
			default:
				if err != nil {
					k.logf("ui: print: %v", err)
				}
				k.showPrintOutcome(back, w.T("print.failed"), theme.Orange)
			}
		})
	}()
}

// showPrintOutcome says what became of a job.
func (k *Kiosk) showPrintOutcome(back func(), msg string, c color.Color) {
	v, w, status := k.sessionView("print_done")
	v.onTick = k.libraryTick
	rows := []fyne.CanvasObject{theme.Text(msg, theme.SubHeadingSize, c, true),
		big(k.button(w.T("common.back"), fynetheme.NavigateBackIcon(), back), 220, 64)}
	k.setScreen(v, k.frame(w, w.T("print.title"), back, status, container.NewVBox(rows...)))
}

// pages says key of n pages at price, with key_one for a single page.
func (w words) pages(key string, n int, price kiosk.Cents) string {
	if n == 1 {
		return w.T(key+"_one", "price", w.price(price))
	}
	return w.T(key, "n", strconv.Itoa(n), "price", w.price(price))
}
