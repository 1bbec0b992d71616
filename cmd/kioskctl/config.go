package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/kiosk"
)

const configUsage = `usage:
  kioskctl config show [--config FILE] [--data DIR] [--json]   the configuration in force
  kioskctl config set KEY VALUE [--config FILE] [--data DIR]    change one setting (validated, audited)
  kioskctl config check FILE                                    validate a config file

keys: ` + "relay.url, relay.ca_file, relay.pin_sha256, relay.insecure, mode, screen.width, screen.height,\n  screen.language, devices.NAME (a JSON object of device fields), devices.NAME.FIELD (role, path, baud, data_bits, parity, stop_bits, framing,\n  id_format, prefix, suffix, max_len, dedupe_window)" + `
kioskd reads its config when it starts: restart it to apply a change.
`

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return errors.New("config: say show, set or check")
	}
	fs, cf := newFlags("config "+args[0], configUsage, stderr)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	fs = flagArgs(pos)
	switch args[0] {
	case "show":
		if fs.NArg() != 0 {
			return fmt.Errorf("config show: unexpected argument %q", fs.Arg(0))
		}
		return configShow(ctx, cf, stdout)
	case "set":
		if fs.NArg() != 2 {
			return errors.New("config set: give KEY VALUE")
		}
		return configSet(ctx, cf, fs.Arg(0), fs.Arg(1), stdout)
	case "check":
		if fs.NArg() != 1 {
			return errors.New("config check: give exactly one FILE")
		}
		if _, err := termconfig.Load(fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, configUsage)
		return nil
	}
	return fmt.Errorf("config: unknown subcommand %q (show, set or check)", args[0])
}

func configShow(ctx context.Context, cf *ctlFlags, stdout io.Writer) error {
	var v any
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
		raw, err := c.Config(ctx)
		if err != nil {
			return err
		}
		v = raw
	} else {
		cfg, err := loadConfig(cf.config)
		if err != nil {
			return err
		}
		if v, err = control.ShowConfig(cf.data, cf.config, cfg); err != nil {
			return err
		}
	}
	if cf.json {
		return printJSON(stdout, v)
	}
	var sh control.Shown
	raw, _ := json.Marshal(v)
	if err := json.Unmarshal(raw, &sh); err != nil {
		return fmt.Errorf("config show: %w", err)
	}
	fmt.Fprintf(stdout, "file       %s\nmode       %s\nrelay      %s\n", sh.Path, sh.EffectiveMode, orNone(sh.RelayURL))
	if r := sh.Config.Relay; r.CAFile != "" || r.PinSHA256 != "" || r.Insecure {
		fmt.Fprintf(stdout, "trust      ca_file=%s pin_sha256=%s insecure=%v\n", orNone(r.CAFile), orNone(r.PinSHA256), r.Insecure)
	}
	fmt.Fprintf(stdout, "screen     %dx%d language %s\n", sh.Config.Screen.Width, sh.Config.Screen.Height, orNone(sh.Config.Screen.Language))
	for _, d := range sh.Config.Devices {
		extra := ""
		if d.Framing != "" {
			extra = " framing " + d.Framing
		}
		fmt.Fprintf(stdout, "device     %s: %s at %s%s\n", d.Name, d.Role, d.Path, extra)
	}
	return nil
}

// parseInterleaved lets flags follow positional arguments (config set KEY VALUE --data DIR).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagArgs is a flag set holding only positional arguments, for fs.NArg and fs.Arg.
func flagArgs(pos []string) *flag.FlagSet {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.Parse(append([]string{"--"}, pos...))
	return fs
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func configSet(ctx context.Context, cf *ctlFlags, key, value string, stdout io.Writer) error {
	cfg, err := loadConfig(cf.config)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	next, err := cfg.Set(key, value)
	if err != nil {
		return fmt.Errorf("config set: %w", err)
	}
	// Audited first: a change that cannot be recorded is not made.
	rec := control.Record{Kind: "config_set", Detail: map[string]string{"key": key, "file": cf.config}}
	if !strings.Contains(key, "pin") {
		rec.Detail["value"] = value
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	running := c != nil
	if running {
		defer c.Close()
		err = c.Record(ctx, rec)
	} else {
		err = withTerminal(cf.data, func(t *kiosk.Terminal) error { return t.RecordAction(rec.Kind, actorName(), rec.Detail) })
	}
	if err != nil {
		return err
	}
	if err := next.Save(cf.config); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s = %s in %s\n", key, value, cf.config)
	if running {
		fmt.Fprintln(stdout, "kioskd is running: restart it to apply")
	}
	return nil
}
