package ui

import (
	"image/color"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/theme"
)

// usagePage is how many statement lines one page shows: a day's sessions bill hundreds of
// minutes, and a touchscreen pages more surely than it scrolls a long list.
const usagePage = 12

// showUsage is the itemised statement (kiosk.Terminal.Statement): one row a deposit, a minute
// charged or a minute refunded, newest first, each with the balance after it, a page at a
// time; a toggle shows the deposits alone.
func (k *Kiosk) showUsage() {
	s := k.sess
	v, w, status := k.sessionView("usage")
	table := container.NewVBox()
	balance := theme.Text("", theme.SubHeadingSize, theme.Yellow, true)
	pageNo := theme.Text("", theme.TextSize, theme.White, false)
	var all []kiosk.StatementLine
	var loadErr error
	page, depositsOnly := 0, false
	var newer, older, filter *widget.Button

	cell := func(s string, c color.Color, bold bool) fyne.CanvasObject {
		t := theme.Text(s, theme.TextSize, c, bold)
		return container.New(clipLayout{}, t) // a long reason must not run into the next column
	}
	row := func(l kiosk.StatementLine) fyne.CanvasObject {
		amount, c := l.Cents.String(), theme.White
		if l.Cents > 0 {
			amount, c = "+"+amount, theme.Green
		}
		return container.New(usageLayout{},
			cell(w.stamp(l.At), theme.White, false),
			cell(w.statementLine(l), theme.White, false),
			cell(amount, c, true),
			cell(l.Balance.String(), theme.White, false))
	}
	render := func() {
		table.RemoveAll()
		if loadErr != nil {
			table.Add(text(w.refusal(loadErr), theme.Orange))
		}
		lines := all
		if depositsOnly {
			lines = nil
			for _, l := range all {
				if l.Kind == kiosk.LineDeposit || l.Kind == kiosk.LineRefund { // the money moves, both ways
					lines = append(lines, l)
				}
			}
		}
		pages := max((len(lines)+usagePage-1)/usagePage, 1)
		page = min(max(page, 0), pages-1)
		if len(lines) == 0 && loadErr == nil {
			empty := "usage.empty"
			if depositsOnly {
				empty = "usage.no_deposits"
			}
			table.Add(label(w.T(empty)))
		}
		if len(lines) > 0 {
			head := []fyne.CanvasObject{}
			for _, id := range []string{"usage.when", "usage.what", "usage.amount", "usage.balance"} {
				head = append(head, cell(w.T(id), theme.Yellow, true))
			}
			table.Add(container.New(usageLayout{}, head...))
			for _, l := range lines[page*usagePage : min((page+1)*usagePage, len(lines))] {
				table.Add(row(l))
			}
		}
		pageNo.Text = w.T("usage.page", "n", strconv.Itoa(page+1), "of", strconv.Itoa(pages))
		pageNo.Refresh()
		newer.Disable()
		if page > 0 {
			newer.Enable()
		}
		older.Disable()
		if page < pages-1 {
			older.Enable()
		}
		filter.SetText(w.T(map[bool]string{false: "usage.show_deposits", true: "usage.show_all"}[depositsOnly]))
	}
	newer = k.button(w.T("usage.newer"), fynetheme.NavigateBackIcon(), func() { page--; render() })
	older = k.button(w.T("usage.older"), fynetheme.NavigateNextIcon(), func() { page++; render() })
	filter = k.button("", fynetheme.ListIcon(), func() { depositsOnly, page = !depositsOnly, 0; render() })
	load := func() {
		id := s.inmateID
		k.run(func() func() {
			lines, err := k.d.Statement(id)
			return func() {
				if k.v != v {
					return
				}
				all, loadErr = lines, err
				balance.Text = ""
				if err == nil {
					bal := kiosk.Cents(0)
					if len(lines) > 0 {
						bal = lines[0].Balance
					}
					balance.Text = w.T("home.balance", "amount", bal.String())
				}
				balance.Refresh()
				render()
			}
		})
	}
	v.onChanged = load
	render()
	top := container.NewBorder(nil, nil, balance, big(filter, 300, 64))
	nav := container.NewBorder(nil, nil, big(newer, 220, 64), big(older, 220, 64), container.NewCenter(pageNo))
	body := container.NewBorder(top, nav, nil, nil, k.vscroll(table))
	k.setScreen(v, k.frame(w, w.T("usage.title"), k.showHome, status, body))
	load()
}

// statementLine says what a statement line was, in the inmate's words.
func (w words) statementLine(l kiosk.StatementLine) string {
	n := strconv.Itoa(l.Minute + 1)
	var s string
	switch {
	case l.Kind == kiosk.LineDeposit:
		return w.T("usage.deposit")
	case l.Kind == kiosk.LineRefund:
		return w.T("usage.refund")
	case l.Pages > 0 && l.Kind == kiosk.LineCharge: // a print job (kiosk/print.go)
		s = w.T("usage.print", "n", strconv.Itoa(l.Pages))
	case l.Pages > 0 && l.Kind == kiosk.LineCredit:
		s = w.T("usage.print_refund", "n", strconv.Itoa(l.Pages))
	case l.Reason == vocab.CreditQuizPassed && l.Kind == kiosk.LineCredit: // education (library)
		s = w.T("usage.quiz_passed")
	case l.ItemID != "" && l.Kind == kiosk.LineCharge: // a library purchase
		s = w.T("usage.purchase")
	case l.ItemID != "" && l.Kind == kiosk.LineCredit:
		s = w.T("usage.purchase_refund")
	case l.MessageID != "" && l.Kind == kiosk.LineCharge: // a stamp (pricing per message)
		s = w.T("usage.stamp")
	case l.MessageID != "" && l.Kind == kiosk.LineCredit:
		why := w.T("usage.why.other")
		switch l.Reason {
		case kiosk.CreditStampRejected:
			why = w.T("usage.why.letter_rejected")
		case kiosk.CreditStampRefused:
			why = w.T("usage.why.stamp_refused")
		}
		s = w.T("usage.stamp_refund", "why", why)
	}
	if s != "" {
		if l.Remote {
			s += " " + w.T("usage.other_kiosk")
		}
		return s
	}
	switch l.Kind {
	case kiosk.LineCharge:
		s = w.T("usage.charge", "n", n)
	case kiosk.LineCredit:
		why := w.T("usage.why.other")
		switch l.Reason {
		case kiosk.CreditStall:
			why = w.T("usage.why.stall")
		case kiosk.CreditTerminalFault:
			why = w.T("usage.why.terminal_fault")
		}
		s = w.T("usage.credit", "n", n, "why", why)
	default:
		return string(l.Kind)
	}
	if l.Remote {
		s += " " + w.T("usage.other_kiosk")
	}
	return s
}

// usageLayout lays a statement row out in fixed proportions, so columns line up.
type usageLayout struct{}

var usageCols = []float32{0.22, 0.48, 0.15, 0.15}

func (usageLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	h := float32(0)
	for _, o := range objs {
		h = max(h, o.MinSize().Height)
	}
	return fyne.NewSize(600, h+theme.MinTarget/4)
}

func (usageLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	x := float32(0)
	for i, o := range objs {
		w := size.Width * usageCols[i%len(usageCols)]
		o.Move(fyne.NewPos(x, 0))
		o.Resize(fyne.NewSize(w, size.Height))
		x += w
	}
}

// clipLayout gives its object the cell's size and reports no width of its own, so a long
// text is cut at the cell's edge by the row's layout rather than widening the table.
type clipLayout struct{}

func (clipLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	return fyne.NewSize(0, objs[0].MinSize().Height)
}

func (clipLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	objs[0].Move(fyne.NewPos(0, 0))
	objs[0].Resize(size)
}
