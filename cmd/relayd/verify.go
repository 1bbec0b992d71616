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
	fs := flag.NewFlagSet("relayd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := addStateFlags(fs)
	var maxMiB uint64
	registerVerifyMax(fs, &maxMiB)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd verify -data DIR [-json]\n       relayd verify -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] [-verify-max-mib N] [-json]\n\n"+
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
	r, closeRelay, err := state.open(context.Background(), stderr, func(c *relay.Config) { c.VerifyMaxBytes = maxMiB << 20 })
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

// registerVerifyMax adds -verify-max-mib, the largest store (on a cluster) a verify reads whole
// into memory, to fs.
func registerVerifyMax(fs *flag.FlagSet, mib *uint64) {
	fs.Uint64Var(mib, "verify-max-mib", relay.DefaultVerifyMaxBytes>>20, "with -store: the largest stream, in MiB, a verify reads whole into memory (its copy takes\n2-3 times as much); a larger one is refused, not read")
}
