// Package keyboard is the on-screen keyboard for kiosks and tablets without a physical one:
// QWERTY with the Spanish letters (ñ, á é í ó ú ü) and marks (¿ ¡), a symbols layer (- _ ' " : / ( )
// + & ...), every key a touch target.
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

// Rows are the character keys, top to bottom; Shift, Backspace, Enter, Space and the key to
// the symbols layer are added.
var Rows = []string{
	"1234567890",
	"qwertyuiop",
	"asdfghjklñ",
	"zxcvbnm,.?",
	"áéíóúü¿¡!@",
}

// SymbolRows are the symbols layer: what letters of a letter or a form need besides letters
// (a dash, quotes, a colon, a slash, brackets, an ampersand...), laid out like Rows.
var SymbolRows = []string{
	"1234567890",
	"-_'\":;/()+",
	"&#$%*=<>[]",
	"{}|~^`\\€,.",
	"¿?¡!@…«»°§",
}

// KeyHeight keeps each key above theme.MinTarget.
const KeyHeight float32 = 52

// ShiftLabel is the Shift key's face.
const ShiftLabel = "⇧"

// SymbolsLabel and LettersLabel are the faces of the key that switches layers: glyphs, the
// same in every language, as on phone keyboards.
const (
	SymbolsLabel = "#+="
	LettersLabel = "abc"
)

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
	letterL fyne.CanvasObject // the letters layer
	symbolL fyne.CanvasObject // the symbols layer, hidden until its key is pressed
	// toSymbols and toLetters are the layer key's two faces; one shows at a time.
	toSymbols, toLetters *widget.Button
	obj                  fyne.CanvasObject
}

// New builds a keyboard; set OnRune and OnKey before it is shown.
func New(l Labels) *Keyboard {
	k := &Keyboard{}
	k.letterL = k.layer(Rows, true)
	k.symbolL = k.layer(SymbolRows, false)
	k.toSymbols = widget.NewButton(SymbolsLabel, func() { k.showSymbols(true) })
	k.toLetters = widget.NewButton(LettersLabel, func() { k.showSymbols(false) })
	k.symbolL.Hide()
	k.toLetters.Hide()
	space := widget.NewButton(l.Space, func() { k.rune(' ') })
	// The layer key sits beside Space, not in a row: a wider face there would widen every column.
	layerKey := theme.MinSize(container.NewStack(k.toSymbols, k.toLetters), 120, KeyHeight)
	bottom := container.NewBorder(nil, nil, layerKey, nil, theme.MinSize(space, 0, KeyHeight))
	k.obj = container.NewVBox(container.NewStack(k.letterL, k.symbolL), bottom)
	return k
}

// layer is one set of rows with Backspace, Enter and (letters) Shift.
func (k *Keyboard) layer(rowsOf []string, letters bool) fyne.CanvasObject {
	var rows []fyne.CanvasObject
	for i, row := range rowsOf {
		var keys []fyne.CanvasObject
		if i == 3 && letters {
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
	return container.NewVBox(rows...)
}

// showSymbols switches to the symbols layer (on) or back to the letters.
func (k *Keyboard) showSymbols(on bool) {
	if on {
		k.letterL.Hide()
		k.toSymbols.Hide()
		k.symbolL.Show()
		k.toLetters.Show()
	} else {
		k.symbolL.Hide()
		k.toLetters.Hide()
		k.letterL.Show()
		k.toSymbols.Show()
	}
}

// Symbols reports whether the symbols layer is on show.
func (k *Keyboard) Symbols() bool { return k.symbolL.Visible() }

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
