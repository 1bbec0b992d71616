package kioskapp

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/hardware/printer"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/ui"
)

// The library and the printer, as kioskd hands them to the screens: the player over this
// process's audio output, sync's hold on what a person opens on a shared kiosk, and the
// facility printer with its money (hardware/printer.Service).

// libraryDeps wires the library screens: a player per library visit over the process's one
// output, and on a shared kiosk the engine's View/CloseLibraryItem (a tablet keeps what its
// person owns, pinned by sync, and needs neither).
func (a *App) libraryDeps() ui.LibraryDeps {
	out, clk := a.audio, a.clock
	d := ui.LibraryDeps{NewPlayer: func() ui.TrackPlayer { return audio.NewPlayer(out, clk) }}
	if a.mode == ModeTablet {
		return d
	}
	d.View = func(it kiosk.CatalogItem) error {
		if e := a.syncs.Engine(); e != nil {
			return e.ViewLibraryItem(it)
		}
		return nil // not enrolled: nothing can be fetched; the screen says it is still arriving
	}
	d.Close = func(it kiosk.CatalogItem) error {
		if e := a.syncs.Engine(); e != nil {
			return e.CloseLibraryItem(it)
		}
		return nil
	}
	return d
}

// openPrinter makes the print service of the configured printer (nil, nil: none).
func openPrinter(cfg termconfig.PrinterConfig, term *kiosk.Terminal, terminalID string, clk clock.Clock, logf kiosk.Logf) (*printer.Service, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	server, err := cfg.Server()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	name := terminalID
	if name == "" {
		name = "unenrolled terminal"
	}
	logf("printer: queue %s on %s", cfg.Queue, server)
	return &printer.Service{Term: term, Printer: &printer.Printer{Server: server, Queue: cfg.Queue, User: name},
		Terminal: name, Clock: clk, Logf: logf}, nil
}

// printAdapter is the screens' Printer over the print service.
type printAdapter struct{ s *printer.Service }

func (p printAdapter) Quote(doc ui.PrintDoc) (int, kiosk.Cents, error) {
	return p.s.Quote(printer.Document{Title: doc.Title, Body: doc.Body})
}

func (p printAdapter) Print(ctx context.Context, inmateID, person string, doc ui.PrintDoc) (kiosk.PrintJob, error) {
	return p.s.Print(ctx, inmateID, person, printer.Document{Title: doc.Title, Body: doc.Body})
}

// settlePrintsEvery is how often jobs still printing at start are asked about again.
const settlePrintsEvery = 30 * time.Second

// settlePrints settles the print jobs a kioskd stopped mid-job left held: each is charged if
// the printer completed it, given back otherwise. Jobs still printing are asked again, and
// a printer that cannot be reached is tried again, until none is left or kioskd stops.
func (a *App) settlePrints(ctx context.Context) {
	if a.printing == nil {
		return
	}
	for {
		printing, err := a.printing.SettleHeld(ctx)
		if err != nil {
			a.logf("printer: settle held jobs: %v", err)
		}
		if err == nil && printing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(settlePrintsEvery):
		}
	}
}
