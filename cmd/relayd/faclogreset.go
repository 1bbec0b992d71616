package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tether-kiosk/tether/internal/natsconn"
	"github.com/tether-kiosk/tether/sync/relay"
)

// faclogReset makes the facilities' logs follow the kv state again after a restore of one
// without the other (relay.ResetFacilityLogs): a gateway refuses to hold a facility whose log
// does not follow its kv state (faclog.ErrGap), since applying the log there would write part
// of a later state over an earlier one.
func faclogReset(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relayd faclog-reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", "", "the NATS cluster of the gateways' stream, as relayd's -store: nats://host:port[,host:port...]")
	var nf natsconn.Flags
	nf.Register(fs, "-store")
	facility := fs.String("facility", "", "only this facility (default: every facility the stream has a record of)")
	dryRun := fs.Bool("dry-run", false, "only say which facilities' logs do not follow the kv state")
	asJSON := fs.Bool("json", false, "print what was found and done as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd faclog-reset -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] [-facility ID] [-dry-run] [-json]\n\n"+
			"After TETHER_KV was restored without TETHER_FACLOG (or the other way round), or TETHER_FACLOG\n"+
			"was made again, a gateway refuses to hold a facility whose log does not follow the kv state\n"+
			"(\"the log does not follow the kv state\" in its journal). This takes the kv state as it stands\n"+
			"for each such facility: the log's entries past it, which came after the restored moment, are\n"+
			"never applied. Stop every gateway first; a facility whose log follows is left alone.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *store == "" {
		return usageErrorf("-store nats://... is required: a relay on its own file keeps no facility log")
	}
	o := options{store: *store, nats: nf, beside: true, holdFacilities: true}
	if err := checkStoreFlags(o); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "relayd-faclog-reset-*") // openStore's content import looks in -data
	if err != nil {
		return fmt.Errorf("make a scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	o.data = tmp
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	st, _, flog, closeStore, err := openStore(ctx, o, logf)
	if err != nil {
		return err
	}
	defer closeStore()
	reps, err := relay.ResetFacilityLogs(ctx, st, flog, *facility, *dryRun)
	if *asJSON {
		if perr := printJSON(stdout, reps); perr != nil {
			return fmt.Errorf("print what was found: %w", perr)
		}
		return err
	}
	for _, rep := range reps {
		var line string
		switch {
		case rep.Follows:
			line = fmt.Sprintf("facility %s: its log follows the kv state (entry %d): left alone", rep.Facility, rep.Mark)
		case rep.Reset:
			line = fmt.Sprintf("facility %s: the kv state at entry %d taken as it stands, its log's %d entries past it dropped; the mark is now %d",
				rep.Facility, rep.Mark, rep.Dropped, rep.Last)
		default:
			line = fmt.Sprintf("facility %s: its log does not follow the kv state at entry %d (%d entries past it, last %d): run without -dry-run to take the kv state as it stands",
				rep.Facility, rep.Mark, rep.Dropped, rep.Last)
		}
		if _, werr := fmt.Fprintln(stdout, line); werr != nil {
			return werr
		}
	}
	return err
}
