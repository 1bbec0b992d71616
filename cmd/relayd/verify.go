package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/tether-kiosk/tether/sync/relay"
)

// verify is `relayd verify`: relay.Verify on the file of a stopped relay (a running one holds
// the file; its admin API answers GET /admin/v1/verify instead). It prints each problem, or
// "relay ok", and fails when anything is wrong, as `kioskctl verify` does for a terminal.
func verify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relayd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "data directory holding relay.db; required")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd verify -data DIR [-json]\n\nChecks relay.db's pages and the relay's rules of money and letters: running totals against\n"+
			"deposits, charges and credits; every credit against its charge; every uplink item stored\nonce; letters under their own ids. The relay must be stopped.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *data == "" {
		return usageErrorf("-data DIR is required")
	}
	r, err := relay.Open(relay.Config{DataDir: *data})
	if err != nil {
		return err
	}
	defer r.Close()
	rep, err := r.Verify()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("print report: %w", err)
		}
	} else if err := rep.WriteText(stdout, "relay"); err != nil {
		return fmt.Errorf("print report: %w", err)
	}
	if !rep.OK {
		return fmt.Errorf("verify: %d problems found", len(rep.Problems))
	}
	return nil
}
