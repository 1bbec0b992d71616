// Command tetherload puts a Tether relay under load: it enrolls simulated kiosks through the
// admin API, connects them all over the real protocol (sync/wire), sends realistic uplink in
// pipelined batches while acknowledging downlink like a terminal, optionally cuts links and
// storms reconnects, and reports throughput, acknowledgement latency, handshakes, lost
// connections, the relay's memory and CPU, and durable-write baselines measured in the same run.
//
//	tetherload -spawn bin/relayd -terminals 200 -per-facility 20 -batch-items 1 -duration 30s -baseline fsync,update,batch
//	tetherload -relay http://127.0.0.1:8443 -admin-token-file tok -relay-pid 1234 -terminals 1000 -batches 50 -json
//
// It talks only to the relay URL it is given (or to the relayd it spawns on 127.0.0.1).
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tetherload:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	cfg           Config
	tokenFile     string
	spawn         string
	spawnArgs     string
	keep          bool
	tmp           string
	jsonOnly      bool
	mix           string
	baselines     string
	baselineTime  time.Duration
	baselineNames []string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	c := &o.cfg
	fs := flag.NewFlagSet("tetherload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.RelayURL, "relay", "", "relay base URL (http://, https://, ws:// or wss://); not with -spawn")
	fs.StringVar(&o.tokenFile, "admin-token-file", "", "file holding the relay's admin bearer token; not with -spawn")
	fs.StringVar(&o.spawn, "spawn", "", "start this relayd binary on 127.0.0.1 with a fresh temporary data directory and measure it")
	fs.StringVar(&o.spawnArgs, "spawn-args", "", "extra relayd arguments with -spawn, space-separated (e.g. \"-hold none\")")
	fs.BoolVar(&o.keep, "keep", false, "with -spawn, keep the relay's temporary directory (data, token, log)")
	fs.StringVar(&o.tmp, "tmp", os.TempDir(), "directory for the spawned relay's data and the baselines' files (use the same disk as a real relay)")
	fs.IntVar(&c.Terminals, "terminals", 100, "simulated kiosks")
	fs.IntVar(&c.PerFacility, "per-facility", 20, "kiosks per facility (each charge and letter fans out to the facility's other kiosks)")
	fs.IntVar(&c.Inmates, "inmates", 5, "inmates per facility")
	fs.IntVar(&c.BatchItems, "batch-items", 1, "items per uplink batch")
	fs.IntVar(&c.Window, "window", 4, "unacknowledged batches in flight per terminal")
	fs.DurationVar(&c.Duration, "duration", 0, "length of the load (or give -batches)")
	fs.IntVar(&c.Batches, "batches", 0, "batches per terminal (or give -duration)")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "after -duration, how long to wait for the last acknowledgements")
	fs.DurationVar(&c.Timeout, "timeout", 15*time.Minute, "bound on the whole run")
	fs.DurationVar(&c.CutEvery, "cut-every", 0, "cut each terminal's link about this often (jittered), then reconnect and resend")
	fs.Float64Var(&c.CutProb, "cut-prob", 0, "cut the link right after a batch with this probability")
	fs.BoolVar(&c.Storm, "storm", false, "reconnect storm: cut every terminal at once and time until all are welcomed again")
	fs.DurationVar(&c.StormAt, "storm-at", 0, "with -storm, storm this long into the load (default: after the load)")
	fs.DurationVar(&c.StormTimeout, "storm-timeout", 2*time.Minute, "bound on the wait for a storm's reconnections")
	fs.StringVar(&o.mix, "mix", DefaultMix, "uplink kinds by weight: charge, message (to a policy department), status (device_status)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the item mix, inmates, jitter and cuts")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 32, "first connections in flight at once during the ramp")
	fs.IntVar(&c.RelayPID, "relay-pid", 0, "relay process id, for RSS and CPU from /proc (set by -spawn)")
	fs.BoolVar(&c.NoAckLetters, "no-ack-letters", false, "terminals as built before ack_letters: letters' states come down as message_status items, not in the acks")
	fs.BoolVar(&c.Verify, "verify", true, "after the load, check through GET /admin/v1/items that every acknowledged item is stored exactly once")
	fs.StringVar(&o.baselines, "baseline", "", "durable-write baselines measured in the same run: fsync,update,batch (or none)")
	fs.DurationVar(&o.baselineTime, "baseline-time", 5*time.Second, "how long each baseline runs")
	fs.BoolVar(&o.jsonOnly, "json", false, "print only the report's JSON line")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Mix, err = ParseMix(o.mix); err != nil {
		return o, fmt.Errorf("-mix: %w", err)
	}
	if o.baselineNames, err = ParseBaselines(o.baselines); err != nil {
		return o, err
	}
	if o.baselineTime <= 0 || o.baselineTime > 10*time.Minute {
		return o, fmt.Errorf("-baseline-time %v: want more than 0 and at most 10m", o.baselineTime)
	}
	if c.Duration == 0 && c.Batches == 0 {
		c.Duration = 30 * time.Second
	}
	switch {
	case o.spawn != "" && (c.RelayURL != "" || o.tokenFile != "" || c.RelayPID != 0):
		return o, errors.New("-spawn starts its own relay: leave out -relay, -admin-token-file and -relay-pid")
	case o.spawn == "" && (c.RelayURL == "" || o.tokenFile == ""):
		return o, errors.New("give -relay URL and -admin-token-file FILE, or -spawn path/to/relayd")
	case o.spawn == "" && (o.spawnArgs != "" || o.keep):
		return o, errors.New("-spawn-args and -keep go with -spawn")
	}
	if o.tokenFile != "" {
		raw, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return o, fmt.Errorf("-admin-token-file: %w", err)
		}
		c.AdminToken = strings.TrimSpace(string(raw))
		if c.AdminToken == "" {
			return o, fmt.Errorf("-admin-token-file %s is empty", o.tokenFile)
		}
	}
	return o, c.check()
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := logging.Logf(logging.New(stderr, logging.Options{Format: logging.Text}, os.Getenv).With("program", "tetherload"))
	if o.jsonOnly {
		logf = func(string, ...any) {}
	}
	o.cfg.Logf = logf
	// One socket per terminal here; a spawned relayd inherits the raised limit and needs as many.
	limit, err := raiseOpenFiles(uint64(o.cfg.Terminals) + 256)
	if err != nil {
		return err
	}
	logf("open-file limit %d", limit)
	var sp *spawned
	if o.spawn != "" {
		if sp, err = spawnRelay(o.spawn, o.tmp, strings.Fields(o.spawnArgs)); err != nil {
			return err
		}
		logf("spawned relayd pid %d at %s (directory %s)", sp.cmd.Process.Pid, sp.base, sp.dir)
		o.cfg.RelayURL, o.cfg.AdminToken, o.cfg.RelayPID = sp.base, sp.token, sp.cmd.Process.Pid
	}
	rep, err := Run(ctx, o.cfg)
	if sp != nil {
		if serr := sp.stop(o.keep); serr != nil {
			logf("%v", serr)
		} else if o.keep {
			logf("kept %s", sp.dir)
		}
	}
	if err != nil {
		if rep != nil {
			_ = rep.JSON(stderr)
		}
		return err
	}
	for _, name := range o.baselineNames {
		logf("baseline %s for %v", name, o.baselineTime)
		b, err := RunBaseline(ctx, name, o.tmp, o.cfg.Terminals, o.baselineTime)
		if err != nil {
			return err
		}
		if b.OpsPerS > 0 {
			b.Ratio = rep.BatchesPerS / b.OpsPerS
		}
		rep.Baselines = append(rep.Baselines, b)
	}
	if !o.jsonOnly {
		if err := rep.Table(stdout); err != nil {
			return err
		}
	}
	if err := rep.JSON(stdout); err != nil {
		return err
	}
	if rep.Verify != nil && !rep.Verify.OK {
		return fmt.Errorf("exactly-once check failed: %d duplicates, %d missing, %d refused", rep.Verify.Duplicates, rep.Verify.Missing, rep.Verify.Refused)
	}
	return nil
}

// raiseOpenFiles lifts the soft RLIMIT_NOFILE to the hard limit and says so when even that is
// below need.
func raiseOpenFiles(need uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("raise the open-file limit to %d: %w", rl.Max, err)
		}
	}
	if rl.Cur < need {
		return rl.Cur, fmt.Errorf("these terminals need about %d open files but the hard limit is %d: lower -terminals or raise it (ulimit -Hn, or LimitNOFILE in a systemd unit)", need, rl.Cur)
	}
	return rl.Cur, nil
}
