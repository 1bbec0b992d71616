// Command tetherload puts a Tether relay under load: it enrolls simulated kiosks through the
// admin API, connects them all over the real protocol (sync/wire), sends realistic uplink in
// pipelined batches while acknowledging downlink like a terminal, optionally cuts links and
// storms reconnects, and reports throughput, acknowledgement latency, handshakes, lost
// connections, the relay's memory and CPU, and durable-write baselines measured in the same run.
//
//	tetherload -spawn bin/relayd -terminals 200 -per-facility 20 -batch-items 1 -duration 30s -baseline fsync,update,batch
//	tetherload -relay http://127.0.0.1:8443 -admin-token-file tok -relay-pid 1234 -terminals 1000 -batches 50 -json
//	tetherload -spawn bin/relayd -nats-server bin/nats-server -gateways 2 -terminals 1000 -duration 30s -baseline jetstream
//	tetherload -spawn bin/relayd -nats-server bin/nats-server -gateways 2 -terminals 10000 -idle 20s
//
// With -nats-server it starts a 3-node NATS JetStream cluster from that binary, and the
// spawned relayd gateways (-gateways) keep their state in it (relayd -store); -store names a
// running cluster instead. Terminals are spread over the gateways (terminal i on gateway
// i mod n). It talks only to the relay URLs it is given (or to what it spawns on 127.0.0.1).
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/tether-kiosk/tether/internal/logging"
	"github.com/tether-kiosk/tether/internal/natsconn"
)

func main() {
	// Every generated item takes a UUIDv7 (a letter two): read from the system's random source
	// in blocks rather than with a system call each, on the machine the relay measured shares.
	// Set before any goroutine makes one (the library's rule).
	uuid.EnableRandPool()
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
	natsServer    string
	store         string
	relayFile     bool
	nats          natsconn.Flags
	gateways      int
	relayURLs     string
	relayPIDs     string
	relayDebug    string
	cpuProfile    string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	c := &o.cfg
	fs := flag.NewFlagSet("tetherload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.relayURLs, "relay", "", "relay base URL (http://, https://, ws:// or wss://), or the gateways' URLs comma-separated; not with -spawn")
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
	fs.Float64Var(&c.Rate, "rate", 0, "pace the load at this many new batches a second across all terminals (0: as fast as the window allows)")
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
	fs.StringVar(&o.relayPIDs, "relay-pid", "", "relay process ids, one per -relay URL comma-separated, for RSS and CPU from /proc (set by -spawn)")
	fs.StringVar(&o.relayDebug, "relay-debug", "", "relayd -debug-listen base URLs, one per -relay URL, for Go heap figures (set by -spawn)")
	o.nats.Register(fs, "-store (its gateways, the jetstream baseline and the streams' figures)")
	fs.IntVar(&o.gateways, "gateways", 1, "with -spawn, relayd gateways to start (more than one needs -nats-server or -store)")
	fs.StringVar(&o.natsServer, "nats-server", "", "with -spawn, start a 3-node NATS JetStream cluster from this nats-server binary and put the relay's state in it")
	fs.StringVar(&o.store, "store", "", "NATS servers (nats://host:port,...) of a running cluster: the spawned gateways' -store, and the jetstream baseline's cluster")
	fs.BoolVar(&o.relayFile, "relay-file", false, "with -spawn and -nats-server or -store, keep the spawned relayd's state in its own bbolt file all the same: the cluster\n"+
		"serves the jetstream baseline alone (what a relay with no cluster behind it reaches against the publish rate of the same run)")
	fs.BoolVar(&c.Homes, "homes", false, "terminals follow redirects to their facility's gateway; with -spawn and -gateways above 1 each gateway gets\n"+
		"relayd -gateway-url, so the relay places each facility on one gateway (docs/SCALE.md \"Facility homes\")")
	fs.BoolVar(&c.GatewayByFacility, "gateway-by-facility", false, "connect all terminals of a facility to one gateway (facility f to gateway f mod n), not terminal i to gateway i mod n")
	fs.BoolVar(&c.EnrollSpread, "enroll-spread", false, "enroll each terminal through the gateway it connects to (default: all through the first)")
	fs.DurationVar(&c.Idle, "idle", 0, "no load: connect every terminal, hold the connections this long, and measure the relay's memory")
	fs.BoolVar(&c.NoAckLetters, "no-ack-letters", false, "terminals as built before ack_letters: letters' states come down as message_status items, not in the acks")
	fs.BoolVar(&c.Verify, "verify", true, "after the load, check through GET /admin/v1/items that every acknowledged item is stored exactly once")
	fs.StringVar(&o.baselines, "baseline", "", "durable-write baselines measured in the same run: fsync,update,batch,jetstream (or none)")
	fs.DurationVar(&o.baselineTime, "baseline-time", 5*time.Second, "how long each baseline runs")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the tool itself over the load to this file")
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
	if o.nats.Any() && o.store == "" {
		return o, fmt.Errorf("-nats-creds, -nats-nkey, -nats-ca, -nats-cert and -nats-key go with -store (a cluster -nats-server starts asks for none)")
	}
	if err := o.nats.Check(); err != nil {
		return o, err
	}
	if o.baselineTime <= 0 || o.baselineTime > 10*time.Minute {
		return o, fmt.Errorf("-baseline-time %v: want more than 0 and at most 10m", o.baselineTime)
	}
	if c.Duration == 0 && c.Batches == 0 && c.Idle == 0 {
		c.Duration = 30 * time.Second
	}
	c.RelayURLs = splitList(o.relayURLs)
	c.RelayDebug = splitList(o.relayDebug)
	for _, p := range splitList(o.relayPIDs) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return o, fmt.Errorf("-relay-pid %q: want process ids, comma-separated", o.relayPIDs)
		}
		c.RelayPIDs = append(c.RelayPIDs, pid)
	}
	switch {
	case o.spawn != "" && (len(c.RelayURLs) > 0 || o.tokenFile != "" || len(c.RelayPIDs) > 0 || len(c.RelayDebug) > 0):
		return o, errors.New("-spawn starts its own relay: leave out -relay, -admin-token-file, -relay-pid and -relay-debug")
	case o.spawn == "" && (len(c.RelayURLs) == 0 || o.tokenFile == ""):
		return o, errors.New("give -relay URL and -admin-token-file FILE, or -spawn path/to/relayd")
	case o.spawn == "" && (o.spawnArgs != "" || o.keep || o.natsServer != "" || o.gateways != 1):
		return o, errors.New("-spawn-args, -keep, -nats-server and -gateways go with -spawn")
	case len(c.RelayPIDs) > 0 && len(c.RelayPIDs) != len(c.RelayURLs):
		return o, fmt.Errorf("-relay-pid names %d processes for %d relay URLs", len(c.RelayPIDs), len(c.RelayURLs))
	case len(c.RelayDebug) > 0 && len(c.RelayDebug) != len(c.RelayURLs):
		return o, fmt.Errorf("-relay-debug names %d addresses for %d relay URLs", len(c.RelayDebug), len(c.RelayURLs))
	case o.gateways < 1 || o.gateways > 8:
		return o, fmt.Errorf("-gateways %d: want 1..8 (relayd announces at most 8)", o.gateways)
	case o.gateways > 1 && o.natsServer == "" && o.store == "":
		return o, errors.New("-gateways above 1 share one store: give -nats-server or -store")
	case o.natsServer != "" && o.store != "":
		return o, errors.New("-nats-server starts a cluster and -store names a running one: give one")
	case slices.Contains(o.baselineNames, BaselineJetStream) && o.natsServer == "" && o.store == "":
		return o, errors.New("-baseline jetstream publishes to a NATS cluster: give -nats-server or -store")
	case o.relayFile && (o.spawn == "" || o.natsServer == "" && o.store == ""):
		return o, errors.New("-relay-file spawns relayd on a file beside a cluster: give -spawn and -nats-server or -store")
	case o.relayFile && o.gateways != 1:
		return o, fmt.Errorf("-relay-file with -gateways %d: gateways on files share nothing, so run one", o.gateways)
	}
	if o.spawn != "" {
		c.RelayURLs = make([]string, o.gateways) // filled in by runMain; counted by check
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
	natsURLs := o.store
	var clusterPIDs []int
	natsOpts, err := o.nats.Options()
	if err != nil {
		return err
	}
	o.cfg.StoreNATSOptions = natsOpts
	if o.natsServer != "" {
		cl, err := startCluster(ctx, o.natsServer, o.tmp, logf)
		if err != nil {
			return err
		}
		defer func() {
			if err := cl.stop(o.keep); err != nil {
				logf("%v", err)
			}
		}()
		natsURLs = cl.URLs()
		clusterPIDs = cl.pids()
	}
	relayNATS := o.relayStore(natsURLs)
	o.cfg.StoreNATS, o.cfg.ClusterPIDs = relayNATS, o.relayClusterPIDs(clusterPIDs)
	var sps []*spawned
	stopRelays := func() {
		for _, sp := range sps {
			if serr := sp.stop(o.keep); serr != nil {
				logf("%v", serr)
			} else if o.keep {
				logf("kept %s", sp.dir)
			}
		}
		sps = nil
	}
	defer stopRelays()
	if o.spawn != "" {
		if sps, err = spawnGateways(o, relayNATS, logf); err != nil {
			return err
		}
		o.cfg.RelayURLs, o.cfg.RelayPIDs, o.cfg.RelayDebug = nil, nil, nil
		for _, sp := range sps {
			o.cfg.RelayURLs = append(o.cfg.RelayURLs, sp.base)
			o.cfg.RelayPIDs = append(o.cfg.RelayPIDs, sp.cmd.Process.Pid)
			o.cfg.RelayDebug = append(o.cfg.RelayDebug, sp.debug)
		}
		o.cfg.AdminToken = sps[0].token
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		o.cfg.CPUProfile = f
	}
	rep, err := Run(ctx, o.cfg)
	// The relays stop before the baselines, which then have the machine (and the cluster) alone.
	stopRelays()
	if err != nil {
		if rep != nil {
			_ = rep.JSON(stderr)
		}
		return err
	}
	if relayNATS != "" {
		rep.Store = "nats"
	}
	env := o.baselineEnv(natsURLs, natsOpts, len(o.cfg.RelayURLs), rep.BatchBytes, clusterPIDs)
	for _, name := range o.baselineNames {
		logf("baseline %s for %v", name, o.baselineTime)
		b, err := RunBaseline(ctx, name, o.tmp, o.cfg.Terminals, o.baselineTime, env)
		if err != nil {
			return err
		}
		b.costIn(rep)
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

// gatewayArgs are the arguments of spawned gateway g of urls, whose state is in the cluster
// natsURLs ("": each on its own file).
func gatewayArgs(o options, natsURLs string, urls []string, g int, debug string) []string {
	args := []string{"-debug-listen", debug}
	if natsURLs != "" {
		args = append(args, "-store", natsURLs)
		args = append(args, o.nats.Args()...)
	}
	if o.gateways > 1 {
		args = append(args, "-gateways", strings.Join(urls, ","))
		if o.cfg.Homes {
			args = append(args, "-gateway-url", urls[g])
		}
	}
	return append(args, strings.Fields(o.spawnArgs)...)
}

// relayStore is where spawned relays keep their state: the cluster natsURLs, or their own
// files ("") with -relay-file, when the cluster is the jetstream baseline's alone.
func (o options) relayStore(natsURLs string) string {
	if o.relayFile {
		return ""
	}
	return natsURLs
}

// relayClusterPIDs are the cluster's processes whose CPU over the load is the relay's: none
// with -relay-file, where the cluster serves the baseline alone.
func (o options) relayClusterPIDs(clusterPIDs []int) []int {
	if o.relayFile {
		return nil
	}
	return clusterPIDs
}

// baselineEnv is what the baselines run against: the cluster natsURLs, over a connection a
// relay (relays), messages of the run's batch size, the cluster's CPU counted as theirs.
func (o options) baselineEnv(natsURLs string, natsOpts []nats.Option, relays, batchBytes int, clusterPIDs []int) BaselineEnv {
	env := BaselineEnv{NATS: natsURLs, NATSOptions: natsOpts, Conns: relays, MsgBytes: batchBytes, CPUPIDs: clusterPIDs}
	if o.relayFile {
		// The publish rate the gateways' runs are held to is over two connections, one a
		// gateway (docs/SCALE.md), and one connection publishes less: the same here, so that
		// a relay on a file is measured against the same rate.
		env.Conns = 2
	}
	if env.MsgBytes == 0 {
		env.MsgBytes = 256 // an -idle run sent no batch
	}
	return env
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

// spawnGateways starts o.gateways relayd processes on reserved loopback ports with one admin
// token, each announcing all of them (-gateways) and, with natsURLs, keeping its state there
// (-store); each serves its Go profiles on a loopback port of its own (-debug-listen).
func spawnGateways(o options, natsURLs string, logf func(string, ...any)) ([]*spawned, error) {
	ports, err := freePorts(2 * o.gateways)
	if err != nil {
		return nil, err
	}
	var urls []string
	for g := range o.gateways {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", ports[g]))
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("make admin token: %w", err)
	}
	token := hex.EncodeToString(tok[:])
	var sps []*spawned
	for g := range o.gateways {
		debug := fmt.Sprintf("127.0.0.1:%d", ports[o.gateways+g])
		sp, err := spawnRelay(o.spawn, o.tmp, strings.TrimPrefix(urls[g], "http://"), token, gatewayArgs(o, natsURLs, urls, g, debug))
		if err != nil {
			for _, prev := range sps {
				_ = prev.stop(false)
			}
			return nil, fmt.Errorf("gateway %d: %w", g+1, err)
		}
		sp.debug = "http://" + debug
		logf("spawned relayd pid %d at %s (directory %s)", sp.cmd.Process.Pid, sp.base, sp.dir)
		sps = append(sps, sp)
	}
	return sps, nil
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
