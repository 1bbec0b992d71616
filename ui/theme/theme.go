// Package theme is the kiosk's high-contrast, touch-first look: white text on black, yellow
// for what matters, text readable at arm's length and every target at least MinTarget units.
package theme

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	fynetheme "fyne.io/fyne/v2/theme"

	"github.com/tether-kiosk/tether/assets"
)

// MinTarget is the smallest width and height of anything a finger must hit (WCAG 2.5.5 asks 44).
const MinTarget float32 = 48

// Text sizes, in Fyne units.
const (
	TextSize       float32 = 22
	HeadingSize    float32 = 34
	SubHeadingSize float32 = 27
	CaptionSize    float32 = 18
)

// Colors used by screens directly (banners, state marks) as well as by the theme.
var (
	Black   = color.NRGBA{0, 0, 0, 255}
	White   = color.NRGBA{255, 255, 255, 255}
	Yellow  = color.NRGBA{255, 212, 0, 255}
	Blue    = color.NRGBA{0, 58, 112, 255}
	Red     = color.NRGBA{255, 140, 140, 255}
	Green   = color.NRGBA{70, 220, 130, 255}
	Orange  = color.NRGBA{255, 176, 0, 255}
	Grey    = color.NRGBA{170, 170, 170, 255}
	Panel   = color.NRGBA{26, 26, 26, 255}
	Overlay = color.NRGBA{0, 0, 0, 235}
)

// Theme is the kiosk theme; it ignores the light/dark variant on purpose: one look everywhere.
type Theme struct {
	regular, bold fyne.Resource
}

var _ fyne.Theme = (*Theme)(nil)

// New returns the kiosk theme with the fonts embedded in assets.
func New() *Theme { return &Theme{regular: assets.FontRegular(), bold: assets.FontBold()} }

func (t *Theme) Color(n fyne.ThemeColorName, _ fyne.ThemeVariant) color.Color {
	switch n {
	case fynetheme.ColorNameBackground:
		return Black
	case fynetheme.ColorNameForeground:
		return White
	case fynetheme.ColorNameButton:
		return Blue
	case fynetheme.ColorNameDisabledButton:
		return color.NRGBA{40, 40, 40, 255}
	case fynetheme.ColorNameDisabled:
		return color.NRGBA{140, 140, 140, 255}
	case fynetheme.ColorNamePrimary:
		return Yellow
	case fynetheme.ColorNameForegroundOnPrimary, fynetheme.ColorNameForegroundOnWarning,
		fynetheme.ColorNameForegroundOnSuccess, fynetheme.ColorNameForegroundOnError:
		return Black
	case fynetheme.ColorNameError:
		return Red
	case fynetheme.ColorNameSuccess:
		return Green
	case fynetheme.ColorNameWarning:
		return Orange
	case fynetheme.ColorNameFocus:
		return color.NRGBA{255, 212, 0, 110}
	case fynetheme.ColorNameHover:
		return color.NRGBA{255, 255, 255, 40}
	case fynetheme.ColorNamePressed:
		return color.NRGBA{255, 212, 0, 90}
	case fynetheme.ColorNameSelection:
		return color.NRGBA{255, 212, 0, 100}
	case fynetheme.ColorNameInputBackground:
		return color.NRGBA{20, 20, 20, 255}
	case fynetheme.ColorNameInputBorder:
		return White
	case fynetheme.ColorNamePlaceHolder:
		return Grey
	case fynetheme.ColorNameSeparator:
		return color.NRGBA{128, 128, 128, 255}
	case fynetheme.ColorNameScrollBar:
		return color.NRGBA{255, 255, 255, 160}
	case fynetheme.ColorNameScrollBarBackground:
		return color.NRGBA{255, 255, 255, 30}
	case fynetheme.ColorNameShadow:
		return color.NRGBA{0, 0, 0, 0}
	case fynetheme.ColorNameHyperlink:
		return color.NRGBA{127, 200, 255, 255}
	case fynetheme.ColorNameHeaderBackground, fynetheme.ColorNameMenuBackground:
		return Panel
	case fynetheme.ColorNameOverlayBackground:
		return Panel
	}
	return White
}

func (t *Theme) Font(s fyne.TextStyle) fyne.Resource {
	if s.Monospace || s.Symbol {
		return fynetheme.DefaultTheme().Font(s) // also embedded (in fyne), so still deterministic
	}
	if s.Bold {
		return t.bold
	}
	return t.regular
}

func (t *Theme) Icon(n fyne.ThemeIconName) fyne.Resource {
	return fynetheme.DefaultTheme().Icon(n)
}

func (t *Theme) Size(n fyne.ThemeSizeName) float32 {
	switch n {
	case fynetheme.SizeNameText:
		return TextSize
	case fynetheme.SizeNameHeadingText:
		return HeadingSize
	case fynetheme.SizeNameSubHeadingText:
		return SubHeadingSize
	case fynetheme.SizeNameCaptionText:
		return CaptionSize
	case fynetheme.SizeNamePadding:
		return 6
	case fynetheme.SizeNameInnerPadding:
		return 12
	case fynetheme.SizeNameLineSpacing:
		return 6
	case fynetheme.SizeNameInlineIcon:
		return 28
	case fynetheme.SizeNameScrollBar:
		return 18
	case fynetheme.SizeNameScrollBarSmall:
		return 6
	case fynetheme.SizeNameSeparatorThickness:
		return 2
	case fynetheme.SizeNameInputBorder:
		return 2
	case fynetheme.SizeNameInputRadius, fynetheme.SizeNameSelectionRadius, fynetheme.SizeNameScrollBarRadius:
		return 6
	}
	return fynetheme.DefaultTheme().Size(n)
}

// MinSize wraps o so it is laid out at least w by h (touch targets, tiles).
func MinSize(o fyne.CanvasObject, w, h float32) fyne.CanvasObject {
	return container.New(&minLayout{min: fyne.NewSize(w, h)}, o)
}

type minLayout struct{ min fyne.Size }

func (l *minLayout) MinSize(objs []fyne.CanvasObject) fyne.Size {
	s := l.min
	for _, o := range objs {
		if o.Visible() {
			s = s.Max(o.MinSize())
		}
	}
	return s
}

func (l *minLayout) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Move(fyne.NewPos(0, 0))
		o.Resize(size)
	}
}

// Text is a label-like canvas text of a given size and color (canvas.Text keeps its size,
// where a widget.Label follows the theme's one size).
func Text(s string, size float32, c color.Color, bold bool) *canvas.Text {
	t := canvas.NewText(s, c)
	t.TextSize = size
	t.TextStyle = fyne.TextStyle{Bold: bold}
	return t
}

// Banner is text on a colored band, for notices and warnings.
func Banner(o fyne.CanvasObject, bg color.Color) fyne.CanvasObject {
	r := canvas.NewRectangle(bg)
	return container.NewStack(r, container.NewPadded(o))
}

// Spacer is an empty expanding space, re-exported so screens need one import less.
func Spacer() fyne.CanvasObject { return layout.NewSpacer() }
