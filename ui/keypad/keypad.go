// Package keypad is the on-screen PIN keypad: ten digit keys in a given (possibly scrambled)
// order, plus back-space and OK, every key a large touch target.
package keypad

import (
	"fmt"
	"math/rand/v2"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

// Key is what a key press means; the serial PIN pad reports the same kinds.
type Key int

const (
	Digit Key = iota
	Backspace
	Clear
	Enter
	Cancel
)

func (k Key) String() string {
	switch k {
	case Digit:
		return "digit"
	case Backspace:
		return "backspace"
	case Clear:
		return "clear"
	case Enter:
		return "enter"
	case Cancel:
		return "cancel"
	}
	return fmt.Sprintf("key(%d)", int(k))
}

// Standard is the phone layout: 1-9 in rows, 0 under 8.
const Standard = "1234567890"

// Scramble returns the ten digits in a random order from r, so that someone watching
// finger positions over a shoulder learns nothing from one login to the next.
func Scramble(r *rand.Rand) string {
	d := []byte(Standard)
	r.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
	return string(d)
}

// KeySize is the size of each key: well above theme.MinTarget.
var KeySize = fyne.NewSize(120, 76)

// New builds the keypad with digits laid out in order (ten distinct digits; the tenth sits
// bottom-middle); each press calls onKey (digit is 0 except for Digit).
func New(order string, okLabel string, onKey func(k Key, digit byte)) (fyne.CanvasObject, error) {
	if err := checkOrder(order); err != nil {
		return nil, err
	}
	key := func(label string, k Key, d byte) fyne.CanvasObject {
		b := widget.NewButton(label, func() { onKey(k, d) })
		return theme.MinSize(b, KeySize.Width, KeySize.Height)
	}
	var cells []fyne.CanvasObject
	for i := 0; i < 9; i++ {
		cells = append(cells, key(string(order[i]), Digit, order[i]))
	}
	back := widget.NewButtonWithIcon("", fynetheme.NavigateBackIcon(), func() { onKey(Backspace, 0) })
	cells = append(cells, theme.MinSize(back, KeySize.Width, KeySize.Height))
	cells = append(cells, key(string(order[9]), Digit, order[9]))
	ok := widget.NewButton(okLabel, func() { onKey(Enter, 0) })
	ok.Importance = widget.HighImportance
	cells = append(cells, theme.MinSize(ok, KeySize.Width, KeySize.Height))
	return container.NewGridWithColumns(3, cells...), nil
}

func checkOrder(order string) error {
	if len(order) != 10 {
		return fmt.Errorf("keypad order %q: want the ten digits", order)
	}
	seen := map[byte]bool{}
	for i := 0; i < len(order); i++ {
		c := order[i]
		if c < '0' || c > '9' || seen[c] {
			return fmt.Errorf("keypad order %q: want each digit 0-9 once", order)
		}
		seen[c] = true
	}
	return nil
}
