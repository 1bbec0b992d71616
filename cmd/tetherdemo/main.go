// Command tetherdemo is the demo kiosk `make run` starts: the real kiosk (the same code as
// kioskd) with an in-process reference relay on a loopback port, a seeded facility and
// simulated badge reader and PIN pad writing real serial frames into pseudo-terminals, plus
// a window of buttons that drive them. It can save screenshots and follow a script, for the
// headless tour, the smoke test and the benchmarks. None of this is linked into kioskd.
//
//	tetherdemo [-data ./demo-data] [-screenshot shot.png] [-script script.txt]
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"fyne.io/fyne/v2"

	"github.com/tether-kiosk/tether/cmd/internal/kioskapp"
	"github.com/tether-kiosk/tether/internal/logging"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/i18n"
)

type options struct {
	dataDir    string
	screenshot string
	script     string
}

func parseFlags(args []string, stderr io.Writer) (options, bool) {
	var o options
	fs := flag.NewFlagSet("tetherdemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dataDir, "data", "demo-data", "demo data directory (reset at start; it must be one the demo made, or empty)")
	fs.StringVar(&o.screenshot, "screenshot", "", "write a PNG of the kiosk window to this path once the welcome screen shows")
	fs.StringVar(&o.script, "script", "", "run the commands in this file (- for stdin): badge, pin, key, tap, wait, screenshot, rss, verify, sleep, quit")
	if err := fs.Parse(args); err != nil {
		return o, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tetherdemo: unexpected argument %q\n", fs.Arg(0))
		return o, false
	}
	return o, true
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, time.Now(), os.Exit))
}

// run is the demo; it returns the exit status: 0 after an orderly stop, 1 on a failure
// (the demo script's included), 2 on a bad command line. exit ends the process at once,
// for a stop that hangs in the window loop.
func run(args []string, stderr io.Writer, started time.Time, exit func(int)) int {
	o, ok := parseFlags(args, stderr)
	if !ok {
		return 2
	}
	logf := kiosk.Logf(logging.Logf(logging.New(stderr, logging.Options{Format: logging.Text}, os.Getenv).With("program", "tetherdemo")))
	if err := demoMain(o, logf, stderr, started, exit); err != nil {
		logf("%v", err)
		return 1
	}
	return 0
}

func demoMain(o options, logf kiosk.Logf, stderr io.Writer, started time.Time, exit func(int)) error {
	// Signals are taken first: one that comes while the demo seeds stops the kiosk as soon as
	// it runs, in order.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stopSignals := onSignal(logf, cancel)
	defer stopSignals()
	d, cfg, err := newDemo(o.dataDir, logf, stderr)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer d.close()
	cat, err := i18n.Load()
	if err != nil {
		return err
	}
	scr := newScreens(cat, logf)
	stop := func(why string) { cancel(errors.New(why)) }

	var (
		app          *kioskapp.App
		panel        fyne.Window
		scriptFailed = make(chan error, 1)
	)
	app, err = kioskapp.Open(kioskapp.Options{DataDir: filepath.Join(o.dataDir, "terminal"), Config: cfg,
		Windowed: true, Logf: logf, Started: started, Stderr: stderr, Hung: func() { exit(1) },
		OnScreen: scr.shown,
		OnShown: func() {
			placeBeside(app.Window(), panel, logf)
			go tour(ctx, o, d, scr, stop, scriptFailed, logf)
		}})
	if err != nil {
		return err
	}
	scr.attach(app.Window(), app.DoAndWait)
	panel = d.panel(app.FyneApp())
	runErr := app.Run(ctx)
	if err := errors.Join(runErr, app.Stop()); err != nil {
		return err
	}
	select {
	case err := <-scriptFailed:
		return fmt.Errorf("the demo script failed: %w", err)
	default:
		return nil
	}
}

// tour waits for the welcome screen, saves the screenshot asked for and runs the script.
func tour(ctx context.Context, o options, d *demo, scr *screens, stop func(string), failed chan<- error, logf kiosk.Logf) {
	if _, err := scr.wait(ctx, "welcome", 2*time.Minute); err != nil {
		logf("%v", err)
		return
	}
	if o.screenshot != "" {
		if err := scr.screenshot(o.screenshot); err != nil {
			logf("screenshot: %v", err)
		}
	}
	if o.script == "" {
		return
	}
	if err := runScript(ctx, o.script, d, scr, stop, logf); err != nil {
		logf("demo script: %v", err)
		failed <- err
		stop("demo script failed")
	}
}

// onSignal cancels with the signal as the cause at SIGTERM or SIGINT.
func onSignal(logf kiosk.Logf, cancel context.CancelCauseFunc) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			logf("received signal %s", s)
			cancel(fmt.Errorf("signal %s", s))
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
