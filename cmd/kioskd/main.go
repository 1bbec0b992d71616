// Command kioskd is the program a kiosk or tablet runs: it wires the terminal's store, its
// serial devices, the sync engine and the touchscreen, full screen with no way out but a
// technician (or SIGTERM).
//
//	kioskd -config /etc/tether/kioskd.json -data /var/lib/tether
//	kioskd -demo [-data ./demo-data] [-screenshot shot.png] [-demo-script script.txt]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
)

// options are kioskd's flags.
type options struct {
	configPath string
	dataDir    string
	windowed   bool
	demo       bool
	screenshot string
	script     string
	stderr     io.Writer // where the log goes (and a goroutine dump if the stop hangs)
}

// errUsage is a bad command line (flag has printed why).
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("kioskd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "JSON config file (relay, mode, devices, screen)")
	fs.StringVar(&o.dataDir, "data", "", "data directory: the store, identity key and enrollment")
	fs.BoolVar(&o.windowed, "windowed", false, "a normal window instead of full screen (development)")
	fs.BoolVar(&o.demo, "demo", false, "demo: built-in relay, seeded facility, simulated devices (data dir default ./demo-data, reset at start)")
	fs.StringVar(&o.screenshot, "screenshot", "", "write a PNG of the window to this path once the welcome screen shows")
	fs.StringVar(&o.script, "demo-script", "", "demo only: run the commands in this file (- for stdin): badge, pin, tap, wait, screenshot, rss, sleep, quit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kioskd -config FILE -data DIR [-windowed]\n       kioskd -demo [-data DIR] [-screenshot PNG] [-demo-script FILE]")
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
	if o.demo {
		if o.configPath != "" {
			fmt.Fprintln(stderr, "kioskd: -demo makes its own config; drop -config")
			return o, errUsage
		}
		if o.dataDir == "" {
			o.dataDir = "demo-data"
		}
		o.windowed = true
		return o, nil
	}
	if o.script != "" {
		fmt.Fprintln(stderr, "kioskd: -demo-script needs -demo")
		return o, errUsage
	}
	if o.configPath == "" || o.dataDir == "" {
		fmt.Fprintln(stderr, "kioskd: -config and -data are required (or -demo)")
		return o, errUsage
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, time.Now()))
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

// run is kioskd; it returns the exit status (see exitStatuses).
func run(args []string, stderr io.Writer, started time.Time) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return exitUsage
	}
	o.stderr = stderr
	lg := log.New(stderr, "kioskd ", log.LstdFlags|log.Lmicroseconds)
	logf := kiosk.Logf(lg.Printf)
	var cfg Config
	if !o.demo {
		// The config is checked before anything else, so a broken one touches nothing.
		cfg, err = LoadConfig(o.configPath)
		if err != nil {
			logf("%v", err)
			return exitUsage
		}
	}
	if err := start(o, cfg, logf, started); err != nil {
		logf("%v", err)
		if errors.Is(err, boltfile.ErrDamaged) {
			return exitDamaged
		}
		return exitFailure
	}
	return 0
}
