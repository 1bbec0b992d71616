package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
)

// ctlFlags are the flags every technician command shares.
type ctlFlags struct {
	data   string
	config string
	json   bool
}

func newFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *ctlFlags) {
	fs := flag.NewFlagSet("kioskctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &ctlFlags{}
	fs.StringVar(&cf.data, "data", defaultDataDir(), "terminal data directory (env TETHER_DATA)")
	fs.StringVar(&cf.config, "config", defaultConfigPath(), "kioskd's config file (env TETHER_CONFIG)")
	fs.BoolVar(&cf.json, "json", false, "print JSON for scripts")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	return fs, cf
}

func defaultConfigPath() string {
	if p := os.Getenv("TETHER_CONFIG"); p != "" {
		return p
	}
	return termconfig.DefaultPath
}

// actorName names the technician in audit events: the Unix user running kioskctl.
func actorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return "kioskctl:" + name
}

// dial returns a client of the running kioskd, or nil when none runs.
func dial(data string) (*control.Client, error) {
	c, err := control.Dial(data)
	if errors.Is(err, control.ErrNotRunning) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.Actor = actorName()
	return c, nil
}

// withTerminal opens the store of a stopped kioskd and runs fn on a Terminal over it.
func withTerminal(data string, fn func(t *kiosk.Terminal) error) error {
	s, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		return err
	}
	var id string
	if e, err := client.LoadEnrollment(data); err == nil {
		id = e.TerminalID
	}
	t, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), ID: id})
	if err == nil {
		err = fn(t)
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadConfig reads the config file; a missing file at the default path is an empty config
// (a terminal may run on its enrollment alone).
func loadConfig(path string) (termconfig.Config, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && path == defaultConfigPath() {
		return termconfig.Config{}, nil
	}
	return termconfig.Load(path)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func noArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// ago says how long before now t was, for people.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%s (%v ago)", t.Local().Format("2006-01-02 15:04:05"), d)
}
