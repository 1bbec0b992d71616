package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/tether-kiosk/tether/sync/relay"
)

// verify is `relayd verify`: relay.Verify on the file of a stopped relay (a running one holds
// the file; its admin API answers GET /admin/v1/verify instead), or on the gateways' stream
// with -store while they run (the whole-store reads of a running relay, docs/SCALE.md). It
// prints each problem, or "relay ok", and fails when anything is wrong, as `kioskctl verify`
// does for a terminal.
func verify(args []string, stdout, stderr io.Writer) error {
	r, closeRelay, asJSON, err := openWholeRead("relayd verify", "usage: relayd verify -data DIR [-json]\n       relayd verify -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] [-verify-max-mib N] [-json]\n\n"+
		"Checks relay.db's pages and the relay's rules of money and letters: running totals against\n"+
		"deposits, charges and credits; every credit against its charge; every uplink item stored\nonce; letters under their own ids. "+
		"With -data the relay must be stopped; with -store the gateways\nmay keep running.", "print the report as JSON", args, stderr)
	if err != nil {
		return err
	}
	defer closeRelay()
	rep, err := r.Verify()
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(stdout, rep); err != nil {
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

// openWholeRead parses the flags of a command that reads the relay's state whole (verify,
// repair-ids: -data or -store, -verify-max-mib, -json) and opens the relay they name.
func openWholeRead(name, usage, jsonUsage string, args []string, stderr io.Writer) (r *relay.Relay, closeFn func(), asJSON bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := addStateFlags(fs)
	var maxMiB uint64
	registerVerifyMax(fs, &maxMiB)
	j := fs.Bool("json", false, jsonUsage)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, false, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, nil, false, usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	r, closeFn, err = state.open(context.Background(), stderr, func(c *relay.Config) { c.VerifyMaxBytes = maxMiB << 20 })
	return r, closeFn, *j, err
}

// printJSON writes v to w as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// registerVerifyMax adds -verify-max-mib, the largest store (on a cluster) a verify reads whole
// into memory, to fs.
func registerVerifyMax(fs *flag.FlagSet, mib *uint64) {
	fs.Uint64Var(mib, "verify-max-mib", relay.DefaultVerifyMaxBytes>>20, "with -store: the largest stream, in MiB, a verify reads whole into memory (its copy takes\n2-3 times as much); a larger one is refused, not read")
}
