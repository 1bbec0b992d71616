package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/serialport"
)

const testUsage = `usage:
  kioskctl test badge --port PATH --framing NAME [--json] [line settings]
  kioskctl test pinpad --port PATH [--json] [line settings]
  kioskctl test ports

badge and pinpad print decoded events as they arrive until interrupted; with --json one
object a line: {"kind":"badge","id":"..."}, {"kind":"rejected","reason":"..."},
{"kind":"key","key":"digit|enter|backspace|clear|cancel"} (never a digit's value).
ports lists serial ports, /dev/serial/by-id first, with what each resolves to.
framings: ` + "em4100, wiegand26, magstripe, line" + `
`

// runTestDevice is "kioskctl test ...": a technician's live view of one serial device.
func runTestDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, testUsage)
		return errors.New("test: say badge, pinpad or ports")
	}
	what := args[0]
	switch what {
	case "ports":
		return listPorts(stdout)
	case "badge", "pinpad":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, testUsage)
		return nil
	default:
		fmt.Fprint(stderr, testUsage)
		return fmt.Errorf("test: %q unknown (want badge, pinpad or ports)", what)
	}

	fs := flag.NewFlagSet("kioskctl test "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := device.Config{Name: what, Role: device.RoleBadge}
	if what == "pinpad" {
		cfg.Role = device.RolePinPad
	}
	fs.StringVar(&cfg.Path, "port", "", "serial device `path`, e.g. /dev/serial/by-id/usb-...")
	fs.IntVar(&cfg.Baud, "baud", 9600, "baud rate")
	fs.IntVar(&cfg.DataBits, "data-bits", 8, "data bits (5-8)")
	fs.StringVar(&cfg.Parity, "parity", "N", "parity: N, E or O")
	fs.IntVar(&cfg.StopBits, "stop-bits", 1, "stop bits: 1 or 2")
	asJSON := fs.Bool("json", false, "print one JSON object a line")
	if what == "badge" {
		fs.StringVar(&cfg.Framing, "framing", "", "reader framing: "+strings.Join(badge.Framings(), ", "))
		fs.StringVar(&cfg.IDFormat, "id-format", "", "em4100: decimal or hex; wiegand26: fc-card or card")
		fs.StringVar(&cfg.Prefix, "prefix", "", "line: prefix to strip")
		fs.StringVar(&cfg.Suffix, "suffix", "", "line: suffix to strip")
		fs.IntVar(&cfg.MaxLen, "max-len", 0, "line: longest id (default 64)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("test %s: %w", what, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("test %s: unexpected argument %q", what, fs.Arg(0))
	}
	if cfg.Path == "" {
		return fmt.Errorf("test %s: --port is required (see kioskctl test ports)", what)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("test %s: %w", what, err)
	}

	var errMu sync.Mutex // the manager logs from its own goroutine
	logf := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	events := make(chan device.Event, 64)
	m, err := device.New([]device.Config{cfg}, device.Options{Events: events, Logf: logf})
	if err != nil {
		return fmt.Errorf("test %s: %w", what, err)
	}
	logf("listening on %s; interrupt to stop", cfg.Path)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		m.Run(runCtx)
		close(done)
	}()
	enc := json.NewEncoder(stdout)
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case ev := <-events:
			if err := printEvent(stdout, enc, ev, *asJSON); err != nil {
				cancel()
				<-done
				return fmt.Errorf("test %s: write: %w", what, err)
			}
		}
	}
}

// deviceEvent is the --json form of an event; it has no field that could carry a digit.
type deviceEvent struct {
	Kind   string `json:"kind"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason,omitempty"`
	Key    string `json:"key,omitempty"`
}

func printEvent(w io.Writer, enc *json.Encoder, ev device.Event, asJSON bool) error {
	out := deviceEvent{Kind: string(ev.Kind), ID: ev.ID, Reason: ev.Reason}
	switch ev.Kind {
	case device.EventKey:
		out.Key = ev.Key.Kind()
	case device.EventPIN:
		ev.PIN.Wipe() // a test tool has no use for it
	}
	if asJSON {
		return enc.Encode(out)
	}
	var line string
	switch ev.Kind {
	case device.EventBadge:
		line = "badge " + ev.ID
	case device.EventRejected:
		line = "rejected: " + ev.Reason
	case device.EventKey:
		line = "key " + out.Key
	case device.EventPIN:
		line = "PIN entered (not shown)"
	case device.EventConnected:
		line = "connected"
	default:
		line = string(ev.Kind) + ": " + ev.Reason
	}
	_, err := fmt.Fprintf(w, "%s %s\n", ev.At.Format("15:04:05.000"), line)
	return err
}

func listPorts(stdout io.Writer) error {
	ports, err := serialport.List()
	if err != nil {
		return fmt.Errorf("test ports: %w", err)
	}
	if len(ports) == 0 {
		fmt.Fprintln(stdout, "no serial ports found")
		return nil
	}
	for _, p := range ports {
		fmt.Fprintln(stdout, p)
	}
	return nil
}
