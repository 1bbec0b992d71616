package ui

import (
	"image/color"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// showUsage is the itemised statement: one row a session, newest first, and the total.
func (k *Kiosk) showUsage() {
	s := k.sess
	v, w, status := k.sessionView("usage")
	table := container.NewVBox()
	total := theme.Text("", theme.SubHeadingSize, theme.Yellow, true)
	cell := func(s string, c color.Color, bold bool) fyne.CanvasObject {
		t := theme.Text(s, theme.TextSize, c, bold)
		return container.New(clipLayout{}, t) // a long reason must not run into the next column
	}
	row := func(r kiosk.Session) fyne.CanvasObject {
		end, reason := w.T("usage.in_progress"), ""
		if !r.End.IsZero() {
			end, reason = w.stamp(r.End), w.endReason(r.EndReason)
		}
		if r.Credited > 0 && r.EndReason != kiosk.EndTerminalFault {
			reason += "; " + w.T("usage.credited", "amount", r.Credited.String())
		}
		return container.New(usageLayout{},
			cell(w.stamp(r.Start), theme.White, false),
			cell(end, theme.White, false),
			cell(strconv.Itoa(r.Minutes), theme.White, false),
			cell((r.Charged-r.Credited).String(), theme.White, false),
			cell(reason, theme.White, false))
	}
	// The head row and the total, above and below the rows, once there are rows.
	headAndTotal := func(rows []kiosk.Session) {
		if len(rows) == 0 {
			return
		}
		head := []fyne.CanvasObject{}
		for _, id := range []string{"usage.start", "usage.end", "usage.minutes", "usage.cost", "usage.reason"} {
			head = append(head, cell(w.T(id), theme.Yellow, true))
		}
		table.Add(container.New(usageLayout{}, head...))
		minutes, cost := 0, kiosk.Cents(0)
		for _, r := range rows {
			minutes += r.Minutes
			cost += r.Charged - r.Credited
		}
		total.Text = w.T("usage.total", "minutes", strconv.Itoa(minutes), "cost", cost.String())
		total.Refresh()
	}
	load := func() {
		id := s.inmateID
		fillList(k, v, w, table, "usage.empty", func() ([]kiosk.Session, error) { return k.d.Usage(id) }, row, headAndTotal)
	}
	v.onChanged = load
	body := container.NewBorder(nil, total, nil, nil, k.vscroll(table))
	k.setScreen(v, k.frame(w, w.T("usage.title"), k.showHome, status, body))
	load()
}

// usageLayout lays a statement row out in fixed proportions, so columns line up.
type usageLayout struct{}

var usageCols = []float32{0.19, 0.19, 0.1, 0.12, 0.40}

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
