package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// verify is `relayd verify`: relay.Verify on the file of a stopped relay (a running one holds
// the file; its admin API answers GET /admin/v1/verify instead), or on the gateways' stream
// with -store while they run (the whole-store reads of a running relay, docs/SCALE.md). It
// prints each problem, or "relay ok", and fails when anything is wrong, as `kioskctl verify`
// does for a terminal.
func verify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relayd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := addStateFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd verify -data DIR [-json]\n       relayd verify -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] [-json]\n\n"+
			"Checks relay.db's pages and the relay's rules of money and letters: running totals against\n"+
			"deposits, charges and credits; every credit against its charge; every uplink item stored\nonce; letters under their own ids. "+
			"With -data the relay must be stopped; with -store the gateways\nmay keep running.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	r, closeRelay, err := state.open(context.Background(), stderr)
	if err != nil {
		return err
	}
	defer closeRelay()
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
