package main

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/hardware/sim"
)

// panel opens the demo's second window: badge cards and a PIN pad whose every press is
// written as real serial frames into the simulators' pseudo-terminals, which kioskd's
// device manager reads through the real decoders.
func (d *demo) panel(a fyne.App) fyne.Window {
	w := a.NewWindow("Tether demo: simulated devices")
	title := widget.NewLabelWithStyle("Simulated devices", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	how := widget.NewLabel(fmt.Sprintf("Presses become serial frames written into\n%s and %s, read by kioskd's decoders.", d.badge.TTY(), d.pad.TTY()))

	cards := container.NewVBox(widget.NewLabelWithStyle("Badge reader (EM4100): tap a card", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	for _, p := range demoPeople {
		p := p
		name := p.Name
		if p.Technician {
			name += " (tech)"
		}
		cards.Add(container.NewGridWithColumns(2,
			widget.NewButton(name, func() { d.present(p.Badge) }),
			widget.NewLabel(p.Badge+"  PIN "+p.PIN)))
	}
	cards.Add(container.NewGridWithColumns(2,
		widget.NewButton("Unknown card", func() { d.present(demoUnknownBadge) }),
		widget.NewButton("Garbled frame", d.garble)))

	key := func(label string, b byte) fyne.CanvasObject {
		return widget.NewButton(label, func() { d.press(b) })
	}
	grid := container.NewGridWithColumns(3,
		key("1", '1'), key("2", '2'), key("3", '3'),
		key("4", '4'), key("5", '5'), key("6", '6'),
		key("7", '7'), key("8", '8'), key("9", '9'),
		key("Clear", sim.Clear), key("0", '0'), key("⌫", sim.Backspace),
	)
	pad := container.NewVBox(
		widget.NewLabelWithStyle("PIN pad", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		grid,
		container.NewGridWithColumns(2, key("Cancel", sim.Cancel), key("Enter", sim.Enter)),
	)
	w.SetContent(container.NewPadded(container.NewVBox(title, how, widget.NewSeparator(), cards, widget.NewSeparator(), pad)))
	w.Resize(fyne.NewSize(600, 760))
	// Closing the panel only hides it; the kiosk window is the app.
	w.SetCloseIntercept(func() { w.Hide() })
	w.Show()
	return w
}

// placeBeside puts the panel to the right of the kiosk window when no window manager would
// (Xvfb), so neither hides the other; with a window manager the move is only a hint.
func placeBeside(kiosk, panel fyne.Window, logf func(string, ...any)) {
	if err := placeX11(panel, int(kiosk.Canvas().Size().Width)+8, 0); err != nil {
		logf("demo: place device panel: %v", err)
	}
}
