// Command kioskd is the program a kiosk or tablet runs: it wires the terminal's store, its
// serial devices, the sync engine and the touchscreen, full screen with no way out but a
// technician (or SIGTERM). The demo (built-in relay, simulated devices) is another command,
// tetherdemo: none of it is linked here.
//
//	kioskd -config /etc/tether/kioskd.json -data /var/lib/tether
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/kioskapp"
	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/internal/gctune"
	"github.com/tether-kiosk/tether/internal/logging"
	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/internal/version"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
)

// options are kioskd's flags.
type options struct {
	configPath string
	dataDir    string
	windowed   bool
	version    bool
	log        logging.Options
	gc         gctune.Options
}

// gcDefaults: kioskd's live heap is small and a backlog drain allocates fast; at GOGC=100 the
// collector took some 15-25% of a drain's CPU (docs/BENCHMARKS.md, sixth round). The soft
// limit keeps the larger heap this allows within what a kiosk PC can spare.
func gcDefaults() gctune.Options { return gctune.Options{Percent: 400, LimitMiB: 1024} }

// errUsage is a bad command line (flag has printed why).
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("kioskd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "JSON config file (relay, mode, devices, screen)")
	fs.StringVar(&o.dataDir, "data", "", "data directory: the store, identity key and enrollment")
	fs.BoolVar(&o.windowed, "windowed", false, "a normal window instead of full screen (development)")
	gctune.Flags(fs, &o.gc, gcDefaults())
	o.log.Register(fs)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kioskd -config FILE -data DIR [-windowed] [-log-format text|json] [-log-level LEVEL]\n(the demo kiosk is tetherdemo)")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kioskd: unexpected argument %q\n", fs.Arg(0))
		return o, errUsage
	}
	if o.version {
		return o, nil
	}
	if o.configPath == "" || o.dataDir == "" {
		fmt.Fprintln(stderr, "kioskd: -config and -data are required")
		return o, errUsage
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, time.Now(), os.Exit))
}

// Exit statuses. A damaged store gets its own, so a service manager can stop restarting
// (systemd: RestartPreventExitStatus=2 3): a restart would only fail the same way.
const (
	exitFailure = 1
	exitUsage   = 2
	exitDamaged = 3
)

const exitStatuses = `exit status: 0 after an orderly stop, 1 on a failure, 2 on a bad command line or config
(nothing touched), 3 when the store is damaged (left untouched; restarting will not help: restore
it from a kioskctl backup or re-enroll the terminal)`

// run is kioskd; it returns the exit status (see exitStatuses). exit ends the process at
// once (os.Exit), for a stop that hangs in the window loop, which run cannot return from.
func run(args []string, stderr io.Writer, started time.Time, exit func(int)) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return exitUsage
	}
	if o.version {
		fmt.Fprintln(stderr, "kioskd", version.String())
		return 0
	}
	lg := newLogger(stderr, o, os.Getenv)
	gcSet, err := gctune.Apply(o.gc, os.Getenv)
	if err != nil {
		lg.Error("bad flags", "err", err)
		return exitUsage
	}
	lg.Info("garbage collector", "gc", gcSet)
	// Fyne (and any other library) logs through the standard log package: its lines go
	// through the same handler, with the terminal and facility, at Info.
	slog.SetDefault(lg)
	logf := kiosk.Logf(logging.Logf(lg))
	// The config is checked before anything else, so a broken one touches nothing.
	cfg, err := termconfig.Load(o.configPath)
	if err != nil {
		lg.Error("bad config", "err", err)
		return exitUsage
	}
	// Signals are taken before Open: one that comes while kioskd opens stops it in order as
	// soon as it runs, instead of killing it.
	ctx, stop := signalContext(logf)
	defer stop()
	ready := &readyGate{notify: sdnotify.Notify, logf: logf}
	app, err := kioskapp.Open(kioskapp.Options{DataDir: o.dataDir, ConfigPath: o.configPath, Config: cfg,
		Windowed: o.windowed, Logf: logf, Started: started, Stderr: stderr, Hung: func() { exit(exitFailure) },
		OnScreen: ready.screen, OnShown: ready.shown})
	if err != nil {
		return failed(lg, err)
	}
	startWatchdog(ctx, app, clock.NewReal(), os.Getenv, logf)
	runErr := app.Run(ctx)
	_, _ = sdnotify.Notify(sdnotify.Stopping)
	if err := errors.Join(runErr, app.Stop()); err != nil {
		return failed(lg, err)
	}
	return 0
}

// failed logs err and maps it to its exit status.
func failed(lg *slog.Logger, err error) int {
	lg.Error("kioskd failed", "err", err)
	if errors.Is(err, boltfile.ErrDamaged) {
		return exitDamaged
	}
	return exitFailure
}

// signalContext ends at SIGTERM or SIGINT, with the signal as its cause (the stop's reason
// in the log).
func signalContext(logf kiosk.Logf) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
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
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// newLogger is kioskd's logger: every line names the terminal and its facility (from the
// enrollment in the data directory; "unenrolled" before one), so a facility's journal, or a
// log shipper gathering many terminals, tells them apart.
func newLogger(w io.Writer, o options, getenv func(string) string) *slog.Logger {
	id, facility := "unenrolled", "unenrolled"
	if enr, err := client.LoadEnrollment(o.dataDir); err == nil {
		id, facility = enr.TerminalID, enr.Facility
	}
	return logging.New(w, o.log, getenv).With("terminal", id, "facility", facility)
}
