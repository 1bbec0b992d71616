// Package keyboard is the on-screen keyboard for kiosks and tablets without a physical one:
// QWERTY with the Spanish letters (ñ, á é í ó ú ü) and marks (¿ ¡), every key a touch target.
package keyboard

import (
	"strings"
	"unicode"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

// Rows are the character keys, top to bottom; Shift, Backspace, Enter and Space are added.
var Rows = []string{
	"1234567890",
	"qwertyuiop",
	"asdfghjklñ",
	"zxcvbnm,.?",
	"áéíóúü¿¡!@",
}

// KeyHeight keeps each key above theme.MinTarget.
const KeyHeight float32 = 52

// ShiftLabel is the Shift key's face.
const ShiftLabel = "⇧"

// Labels are the words on the special keys, in the inmate's language.
type Labels struct {
	Space string
}

// Keyboard types into whatever target the screen gives it.
type Keyboard struct {
	// OnRune receives each character; OnKey receives fyne.KeyBackspace and fyne.KeyReturn.
	OnRune func(rune)
	OnKey  func(fyne.KeyName)

	shift   bool
	letters []*widget.Button
	shiftB  *widget.Button
	obj     fyne.CanvasObject
}

// New builds a keyboard; set OnRune and OnKey before it is shown.
func New(l Labels) *Keyboard {
	k := &Keyboard{}
	var rows []fyne.CanvasObject
	for i, row := range Rows {
		var keys []fyne.CanvasObject
		if i == 3 {
			// A glyph, not a word: the key must stay as narrow as the letters beside it.
			k.shiftB = widget.NewButton(ShiftLabel, k.toggleShift)
			keys = append(keys, k.shiftB)
		}
		for _, r := range row {
			keys = append(keys, k.charKey(r))
		}
		switch i {
		case 0:
			keys = append(keys, widget.NewButtonWithIcon("", fynetheme.NavigateBackIcon(), func() { k.key(fyne.KeyBackspace) }))
		case 2:
			keys = append(keys, widget.NewButtonWithIcon("", fynetheme.ConfirmIcon(), func() { k.key(fyne.KeyReturn) }))
		}
		rows = append(rows, theme.MinSize(container.NewGridWithColumns(11, padRow(keys)...), 0, KeyHeight))
	}
	space := widget.NewButton(l.Space, func() { k.rune(' ') })
	rows = append(rows, theme.MinSize(space, 0, KeyHeight))
	k.obj = container.NewVBox(rows...)
	return k
}

// padRow fills a row to 11 cells so keys line up in columns.
func padRow(keys []fyne.CanvasObject) []fyne.CanvasObject {
	for len(keys) < 11 {
		keys = append(keys, widget.NewLabel(""))
	}
	return keys
}

func (k *Keyboard) charKey(r rune) fyne.CanvasObject {
	b := widget.NewButton(string(r), nil)
	b.OnTapped = func() {
		ch := []rune(b.Text)[0]
		k.rune(ch)
		if k.shift && unicode.IsLetter(ch) {
			k.setShift(false) // one capital at a time, as phone keyboards do
		}
	}
	if unicode.IsLetter(r) {
		k.letters = append(k.letters, b)
	}
	return b
}

func (k *Keyboard) toggleShift() { k.setShift(!k.shift) }

func (k *Keyboard) setShift(on bool) {
	k.shift = on
	for _, b := range k.letters {
		if on {
			b.SetText(strings.ToUpper(b.Text))
		} else {
			b.SetText(strings.ToLower(b.Text))
		}
	}
	if on {
		k.shiftB.Importance = widget.HighImportance
	} else {
		k.shiftB.Importance = widget.MediumImportance
	}
	k.shiftB.Refresh()
}

func (k *Keyboard) rune(r rune) {
	if k.OnRune != nil {
		k.OnRune(r)
	}
}

func (k *Keyboard) key(n fyne.KeyName) {
	if k.OnKey != nil {
		k.OnKey(n)
	}
}

// Object is the keyboard's canvas object to place on a screen.
func (k *Keyboard) Object() fyne.CanvasObject { return k.obj }

// Shifted reports whether the next letter will be a capital.
func (k *Keyboard) Shifted() bool { return k.shift }

// TypeInto makes the keyboard type into e as a physical keyboard would.
func (k *Keyboard) TypeInto(e *widget.Entry) {
	k.OnRune = e.TypedRune
	k.OnKey = func(n fyne.KeyName) { e.TypedKey(&fyne.KeyEvent{Name: n}) }
}
