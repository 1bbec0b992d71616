package theme

import (
	"bytes"
	"image/color"
	"math"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	fynetheme "fyne.io/fyne/v2/theme"

	"github.com/tether-kiosk/tether/assets"
)

// luminance is WCAG 2's relative luminance.
func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	lin := func(v uint32) float64 {
		s := float64(v) / 0xffff
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
}

func contrast(a, b color.Color) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func TestHighContrast(t *testing.T) {
	th := New()
	col := func(n fyne.ThemeColorName) color.Color { return th.Color(n, fynetheme.VariantLight) }
	// WCAG AAA asks 7:1 for body text; every pair a person must read is checked.
	pairs := []struct {
		name   string
		fg, bg color.Color
	}{
		{"text on background", col(fynetheme.ColorNameForeground), col(fynetheme.ColorNameBackground)},
		{"text on buttons", col(fynetheme.ColorNameForeground), col(fynetheme.ColorNameButton)},
		{"text on primary buttons", col(fynetheme.ColorNameForegroundOnPrimary), col(fynetheme.ColorNamePrimary)},
		{"text in entries", col(fynetheme.ColorNameForeground), col(fynetheme.ColorNameInputBackground)},
		{"text on panels", col(fynetheme.ColorNameForeground), Panel},
		{"placeholders", col(fynetheme.ColorNamePlaceHolder), col(fynetheme.ColorNameInputBackground)},
		{"yellow headings", Yellow, Black},
		{"orange refusals", Orange, Black},
		{"green states", Green, Panel},
		{"red states", Red, Panel},
		{"grey details", Grey, Panel},
		{"warning band", Black, Yellow},
	}
	for _, p := range pairs {
		if c := contrast(p.fg, p.bg); c < 7 {
			t.Errorf("%s: contrast %.1f:1, want at least 7:1", p.name, c)
		}
	}
	if th.Size(fynetheme.SizeNameText) < 20 {
		t.Error("body text under 20 units cannot be read at arm's length")
	}
}

func TestEmbeddedFonts(t *testing.T) {
	th := New()
	if !bytes.Equal(th.Font(fyne.TextStyle{}).Content(), assets.FontRegular().Content()) ||
		!bytes.Equal(th.Font(fyne.TextStyle{Bold: true}).Content(), assets.FontBold().Content()) {
		t.Error("theme does not use the fonts embedded in assets")
	}
}

func TestMinSize(t *testing.T) {
	test.NewTempApp(t)
	o := MinSize(Text("x", TextSize, White, false), MinTarget, MinTarget*2)
	if s := o.MinSize(); s.Width < MinTarget || s.Height < MinTarget*2 {
		t.Errorf("MinSize gave %v", s)
	}
}
