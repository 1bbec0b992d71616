package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

// button is a touch-sized button whose every tap counts as input (Touch).
func (k *Kiosk) button(label string, icon fyne.Resource, fn func()) *widget.Button {
	b := widget.NewButtonWithIcon(label, icon, nil)
	b.OnTapped = func() {
		k.touch()
		fn()
	}
	return b
}

// primary is a button for the main action of a screen.
func (k *Kiosk) primary(label string, icon fyne.Resource, fn func()) *widget.Button {
	b := k.button(label, icon, fn)
	b.Importance = widget.HighImportance
	return b
}

// big wraps o to at least w by h, never under the touch minimum.
func big(o fyne.CanvasObject, w, h float32) fyne.CanvasObject {
	return theme.MinSize(o, max(w, theme.MinTarget), max(h, theme.MinTarget))
}

// heading is large bold text.
func heading(s string) *canvas.Text { return theme.Text(s, theme.HeadingSize, theme.White, true) }

// label is wrapping body text.
func label(s string) *widget.Label {
	l := widget.NewLabel(s)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// text is one line of body text in a color.
func text(s string, c color.Color) *canvas.Text { return theme.Text(s, theme.TextSize, c, false) }

// tappable is a whole area that reacts to a tap (list rows, the idle screen).
type tappable struct {
	widget.BaseWidget
	content fyne.CanvasObject
	onTap   func()
}

func newTappable(content fyne.CanvasObject, onTap func()) *tappable {
	t := &tappable{content: content, onTap: onTap}
	t.ExtendBaseWidget(t)
	return t
}

func (t *tappable) Tapped(*fyne.PointEvent) {
	if t.onTap != nil {
		t.onTap()
	}
}

func (t *tappable) MinSize() fyne.Size {
	return t.content.MinSize().Max(fyne.NewSize(theme.MinTarget, theme.MinTarget))
}

func (t *tappable) CreateRenderer() fyne.WidgetRenderer { return widget.NewSimpleRenderer(t.content) }

// card is a panel with a border: one row of a list.
func card(bg color.Color, objs ...fyne.CanvasObject) fyne.CanvasObject {
	r := canvas.NewRectangle(bg)
	r.StrokeColor = color.NRGBA{110, 110, 110, 255}
	r.StrokeWidth = 2
	r.CornerRadius = 8
	return container.NewStack(r, container.NewPadded(container.NewVBox(objs...)))
}

// entry is a text entry that counts taps as input and says when it gets focus (so the
// on-screen keyboard knows where to type).
type entry struct {
	widget.Entry
	onTouch func()
	onFocus func()
}

func (k *Kiosk) newEntry(multi bool, placeholder string) *entry {
	e := &entry{onTouch: k.touch}
	e.MultiLine = multi
	if multi {
		e.Wrapping = fyne.TextWrapWord
	}
	e.PlaceHolder = placeholder
	e.ExtendBaseWidget(e)
	return e
}

func (e *entry) Tapped(ev *fyne.PointEvent) {
	if e.onTouch != nil {
		e.onTouch()
	}
	e.Entry.Tapped(ev)
}

func (e *entry) FocusGained() {
	e.Entry.FocusGained()
	if e.onFocus != nil {
		e.onFocus()
	}
}

// frame is a screen of a session: a bar with Back, the title and the time left, then body.
func (k *Kiosk) frame(w words, title string, back func(), status fyne.CanvasObject, body fyne.CanvasObject) fyne.CanvasObject {
	var left fyne.CanvasObject = layout.NewSpacer()
	if back != nil {
		left = big(k.button(w.T("common.back"), fynetheme.NavigateBackIcon(), back), 160, 60)
	}
	if status == nil {
		status = layout.NewSpacer()
	}
	bar := container.NewBorder(nil, nil, left, status, container.NewCenter(heading(title)))
	barBG := canvas.NewRectangle(theme.Panel)
	top := container.NewStack(barBG, container.NewPadded(bar))
	return container.NewBorder(top, nil, nil, nil, container.NewPadded(body))
}

// vscroll scrolls vertically; scrolling counts as input.
func (k *Kiosk) vscroll(o fyne.CanvasObject) *container.Scroll {
	s := container.NewVScroll(o)
	s.OnScrolled = func(fyne.Position) { k.touch() }
	return s
}

// langButtons is one button a language, at least width by height, the current one lit.
func (k *Kiosk) langButtons(w words, current string, width, height float32, pick func(code string)) *fyne.Container {
	langs := container.NewHBox()
	for _, code := range k.cat.Languages() {
		b := k.button(w.T("lang."+code), nil, func() { pick(code) })
		if code == current {
			b.Importance = widget.HighImportance
		}
		langs.Add(big(b, width, height))
	}
	return langs
}
