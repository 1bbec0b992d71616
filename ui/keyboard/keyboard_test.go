package keyboard

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

func find(o fyne.CanvasObject, label string) *widget.Button {
	if b, ok := o.(*widget.Button); ok && b.Text == label {
		return b
	}
	if c, ok := o.(*fyne.Container); ok {
		for _, ch := range c.Objects {
			if b := find(ch, label); b != nil {
				return b
			}
		}
	}
	return nil
}

func TestTypesSpanishIntoAnEntry(t *testing.T) {
	test.NewTempApp(t)
	test.ApplyTheme(t, theme.New())
	k := New(Labels{Space: "espacio"})
	e := widget.NewMultiLineEntry()
	k.TypeInto(e)
	w := test.NewWindow(k.Object())
	w.Resize(fyne.NewSize(1000, 420))
	defer w.Close()

	press := func(label string) {
		t.Helper()
		b := find(k.Object(), label)
		if b == nil {
			t.Fatalf("no key %q", label)
		}
		if s := b.Size(); s.Width < theme.MinTarget || s.Height < theme.MinTarget {
			t.Fatalf("key %q is %v, smaller than a finger", label, s)
		}
		test.Tap(b)
	}
	if w := k.Object().MinSize().Width; w > 800 {
		t.Errorf("keyboard needs %v units across; it must fit a 1024-wide tablet beside nothing else", w)
	}
	press("¿")
	press(ShiftLabel)
	press("N") // shifted label
	press("i")
	press("ñ")
	press("o")
	press("espacio")
	press("a")
	press("ú")
	press("n")
	press("?")
	if got, want := e.Text, "¿Niño aún?"; got != want {
		t.Fatalf("typed %q, want %q", got, want)
	}
	if k.Shifted() {
		t.Error("shift stayed on after one letter")
	}
	for _, r := range "ñáéíóúü¿¡" {
		if find(k.Object(), string(r)) == nil {
			t.Errorf("no key for %q", r)
		}
	}
	press(ShiftLabel)
	press("Ñ")
	k.OnKey(fyne.KeyBackspace)
	if got := e.Text; got != "¿Niño aún?" {
		t.Errorf("after Ñ and backspace: %q", got)
	}
}

// visible finds the key labelled label among the keys on show (both layers hold "1").
func visible(o fyne.CanvasObject, label string) *widget.Button {
	if !o.Visible() {
		return nil
	}
	if b, ok := o.(*widget.Button); ok && b.Text == label {
		return b
	}
	if c, ok := o.(*fyne.Container); ok {
		for _, ch := range c.Objects {
			if b := visible(ch, label); b != nil {
				return b
			}
		}
	}
	return nil
}

// TestSymbolsLayerTypesPunctuation: every character a letter or a form commonly needs beyond
// letters can be typed, behind one key that comes back to the letters.
func TestSymbolsLayerTypesPunctuation(t *testing.T) {
	test.NewTempApp(t)
	test.ApplyTheme(t, theme.New())
	k := New(Labels{Space: "space"})
	e := widget.NewMultiLineEntry()
	k.TypeInto(e)
	w := test.NewWindow(k.Object())
	w.Resize(fyne.NewSize(1000, 420))
	defer w.Close()
	press := func(label string) {
		t.Helper()
		b := visible(k.Object(), label)
		if b == nil {
			t.Fatalf("no key %q on show", label)
		}
		if s := b.Size(); s.Width < theme.MinTarget || s.Height < theme.MinTarget {
			t.Fatalf("key %q is %v, smaller than a finger", label, s)
		}
		test.Tap(b)
	}
	if visible(k.Object(), "-") != nil {
		t.Fatal("symbols on show before their key is pressed")
	}
	press(SymbolsLabel)
	want := `-_'":/()+&`
	for _, r := range want {
		press(string(r))
	}
	press(LettersLabel)
	press("o")
	press("k")
	if got := e.Text; got != want+"ok" {
		t.Fatalf("typed %q, want %q", got, want+"ok")
	}
	if w := k.Object().MinSize().Width; w > 800 {
		t.Errorf("keyboard needs %v units across", w)
	}
}
