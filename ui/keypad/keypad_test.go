package keypad

import (
	"math/rand/v2"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

func buttons(o fyne.CanvasObject) []*widget.Button {
	var out []*widget.Button
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if b, ok := o.(*widget.Button); ok {
			out = append(out, b)
		}
		if c, ok := o.(*fyne.Container); ok {
			for _, ch := range c.Objects {
				walk(ch)
			}
		}
	}
	walk(o)
	return out
}

func TestKeysReportInLayoutOrder(t *testing.T) {
	test.NewTempApp(t)
	type press struct {
		k Key
		d byte
	}
	var got []press
	pad, err := New("5031748296", "OK", func(k Key, d byte) { got = append(got, press{k, d}) })
	if err != nil {
		t.Fatal(err)
	}
	w := test.NewWindow(pad)
	defer w.Close()
	bs := buttons(pad)
	if len(bs) != 12 {
		t.Fatalf("%d buttons, want 12", len(bs))
	}
	// Labels follow the order, tenth digit bottom-middle.
	want := []string{"5", "0", "3", "1", "7", "4", "8", "2", "9", "", "6", "OK"}
	for i, b := range bs {
		if b.Text != want[i] {
			t.Errorf("button %d shows %q, want %q", i, b.Text, want[i])
		}
		if s := b.Size(); s.Width < theme.MinTarget || s.Height < theme.MinTarget {
			t.Errorf("button %q is %v, smaller than a finger", b.Text, s)
		}
	}
	test.Tap(bs[0])
	test.Tap(bs[10])
	test.Tap(bs[9])
	test.Tap(bs[11])
	wantP := []press{{Digit, '5'}, {Digit, '6'}, {Backspace, 0}, {Enter, 0}}
	if len(got) != len(wantP) {
		t.Fatalf("presses %v, want %v", got, wantP)
	}
	for i := range got {
		if got[i] != wantP[i] {
			t.Errorf("press %d = %v, want %v", i, got[i], wantP[i])
		}
	}
}

func TestScrambleIsAPermutationAndVaries(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		o := Scramble(r)
		if err := checkOrder(o); err != nil {
			t.Fatal(err)
		}
		seen[o] = true
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct layouts in 20 scrambles", len(seen))
	}
}

func TestBadOrderRefused(t *testing.T) {
	for _, o := range []string{"", "123456789", "1123456789", "12345678a0"} {
		if _, err := New(o, "OK", func(Key, byte) {}); err == nil {
			t.Errorf("order %q accepted", o)
		}
	}
}
