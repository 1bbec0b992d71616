package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/tether-kiosk/tether/kiosk"
)

// Config is one load run.
type Config struct {
	// RelayURLs are the http(s):// or ws(s):// bases of the relay's gateways (one for a
	// single relayd); terminal i connects to gateway i mod len, the admin calls go to the first.
	RelayURLs   []string
	AdminToken  string
	Terminals   int
	PerFacility int
	Inmates     int // per facility
	BatchItems  int
	Window      int
	// Rate paces the load: new batches a second across all terminals, each terminal making
	// one every Terminals/Rate seconds (0: as fast as the window allows). A machine kept below
	// full measures a build's CPU a batch without the queueing of a saturated one.
	Rate float64
	// Duration of the load, or Batches per terminal, or Idle: no load, the connections held
	// this long and the relay's memory measured at the end (one of the three).
	Duration time.Duration
	Batches  int
	Idle     time.Duration
	// Drain bounds the wait for the last acks after Duration.
	Drain time.Duration
	// Timeout bounds the whole run, enrollment to the end of verification.
	Timeout  time.Duration
	CutEvery time.Duration // cut each link about this often (0: never)
	CutProb  float64       // cut the link right after a batch with this probability
	// Storm cuts every terminal at once and times the reconnection: StormAt into the load, or
	// after the load when StormAt is 0.
	Storm   bool
	StormAt time.Duration
	// StormTimeout bounds the wait for every terminal to be welcomed again.
	StormTimeout time.Duration
	Mix          Mix
	Seed         uint64
	// DialConcurrency bounds first connections in flight during the ramp (the relay refuses
	// more than 64 unauthenticated connections by default).
	DialConcurrency int
	RelayPIDs       []int    // one per gateway, for RSS and CPU; empty: no process figures
	RelayDebug      []string // relayd -debug-listen bases, one per gateway, for Go heap figures; optional
	// ClusterPIDs are the NATS nodes the tool started (-nats-server), for the CPU a batch
	// costs the cluster; empty: the cluster's share is not known.
	ClusterPIDs []int
	// StoreNATS is the cluster the gateways keep their state in (servers, comma-separated),
	// for what each of its streams took during the load; empty: not measured.
	StoreNATS string
	// StoreNATSOptions are how to connect to StoreNATS: its credentials and TLS.
	StoreNATSOptions []nats.Option
	EnrollSpread     bool // enroll each terminal through its own gateway, not all through the first
	// GatewayByFacility connects every terminal of a facility to one gateway (facility f to
	// gateway f mod n) instead of spreading each facility's terminals over all of them.
	GatewayByFacility bool
	// Homes: terminals follow the relay's redirects to their facility's gateway (hello
	// redirects; docs/SCALE.md "Facility homes"). With -spawn the gateways get -gateway-url.
	Homes  bool
	Verify bool // check exactly-once through GET /admin/v1/items after the load
	// NoAckLetters leaves hello's ack_letters out, as terminals built before it: the relay
	// then sends each letter's state down as a message_status.
	NoAckLetters bool
	// CPUProfile, if set, receives a CPU profile of the tool itself over the load (from its
	// first batch to its last ack): what the simulated terminals cost, apart from the relay.
	CPUProfile io.Writer
	Logf       func(format string, args ...any)
}

func (c *Config) check() error {
	switch {
	case c.Terminals < 1 || c.Terminals > 100000:
		return fmt.Errorf("-terminals %d: want 1..100000", c.Terminals)
	case c.PerFacility < 1:
		return fmt.Errorf("-per-facility %d: want at least 1", c.PerFacility)
	case c.Inmates < 1 || c.Inmates > 1000:
		return fmt.Errorf("-inmates %d: want 1..1000", c.Inmates)
	case c.BatchItems < 1 || c.BatchItems > 256:
		return fmt.Errorf("-batch-items %d: want 1..256 (a terminal closes a batch at 256)", c.BatchItems)
	case c.Window < 1 || c.Window > 64:
		return fmt.Errorf("-window %d: want 1..64", c.Window)
	case len(c.RelayURLs) < 1 || len(c.RelayURLs) > 8:
		return fmt.Errorf("%d relay URLs: want 1..8", len(c.RelayURLs))
	case len(c.RelayPIDs) > 0 && len(c.RelayPIDs) != len(c.RelayURLs), len(c.RelayDebug) > 0 && len(c.RelayDebug) != len(c.RelayURLs):
		return errors.New("give one relay process id (and debug address) per relay URL, or none")
	case btoi(c.Duration > 0)+btoi(c.Batches > 0)+btoi(c.Idle > 0) != 1:
		return errors.New("give exactly one of -duration, -batches and -idle")
	case c.Idle > 0 && (c.Storm || c.CutEvery > 0 || c.CutProb > 0):
		return errors.New("-idle holds the connections still: no -storm, -cut-every or -cut-prob")
	case c.Batches < 0 || c.Duration < 0 || c.Idle < 0 || c.Drain < 0 || c.CutEvery < 0 || c.StormAt < 0:
		return errors.New("durations and counts must not be negative")
	case c.Rate < 0 || c.Rate > 1e7:
		return fmt.Errorf("-rate %g: want 0 (unpaced) to 10,000,000 batches a second", c.Rate)
	case c.Rate > 0 && c.Idle > 0:
		return errors.New("-idle holds the connections still: no -rate")
	case c.CutProb < 0 || c.CutProb >= 1:
		return fmt.Errorf("-cut-prob %g: want 0 <= p < 1", c.CutProb)
	case c.Timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.DialConcurrency < 1:
		return fmt.Errorf("-dial-concurrency %d: want at least 1", c.DialConcurrency)
	case c.Mix.Charge+c.Mix.Message+c.Mix.Status == 0:
		return errors.New("the mix has no kind with a positive weight")
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// run is the state the terminals of one run share.
type run struct {
	cfg     Config
	eps     []endpoints // the gateways'; terminal i uses eps[r.gateway(i)]
	hc      *http.Client
	dialSem chan struct{}

	start    chan struct{} // closed when every terminal is welcomed: the load begins
	loadOver chan struct{} // closed when no new items may be made (-duration reached)
	runOver  chan struct{} // closed when the terminals must close and stop
	storm    chan struct{} // closed at the reconnect storm

	rampWG, finishedWG, exitWG sync.WaitGroup

	stormLeft atomic.Int64
	stormEnd  atomic.Int64 // unix nanoseconds of the last re-welcome
	stormDone chan struct{}

	items, batches, downItems, downAcks, handshakes, handshakeErrors, busy, cuts, lostN, redirects atomic.Int64
	// firstWelcomes counts, by gateway, the terminals first welcomed there: after a home's
	// redirect, not where they were sent first (gatewayOf).
	firstWelcomes           []atomic.Int64
	lastAck                 atomic.Int64
	batchBytes, batchFrames atomic.Int64 // uplink batch frames as encoded, new or resent

	mu        sync.Mutex
	lostWhy   map[string]int64
	failedWhy map[string]int64
	anomalies map[string]int64
}

// gateway is the index of the gateway terminal i connects to.
func (r *run) gateway(i int) int { return gatewayOf(r.cfg, i) }

// welcomedBy is r.firstWelcomes as counts, read once every terminal was welcomed.
func (r *run) welcomedBy() []int {
	n := make([]int, len(r.firstWelcomes))
	for g := range r.firstWelcomes {
		n[g] = int(r.firstWelcomes[g].Load())
	}
	return n
}

func gatewayOf(cfg Config, i int) int {
	if cfg.GatewayByFacility {
		return (i / cfg.PerFacility) % len(cfg.RelayURLs)
	}
	return i % len(cfg.RelayURLs)
}

func (r *run) count(m map[string]int64, key string) {
	r.mu.Lock()
	m[key]++
	r.mu.Unlock()
}

func (r *run) failed(err error) {
	r.handshakeErrors.Add(1)
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code == websocket.StatusTryAgainLater {
		r.busy.Add(1)
	}
	r.count(r.failedWhy, reason(err))
}

func (r *run) lost(err error) {
	r.lostN.Add(1)
	r.count(r.lostWhy, reason(err))
}

func (r *run) anomaly(what string) { r.count(r.anomalies, what) }

func (r *run) stormWelcomed() {
	if r.stormLeft.Add(-1) == 0 {
		r.stormEnd.Store(time.Now().UnixNano())
		close(r.stormDone)
	}
}

func (r *run) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}

// Run enrolls the terminals, connects them, drives the load and reports. It returns an error
// only when the run could not be made (setup failed, terminals could not connect); trouble
// during the load (lost connections, refusals, a failed exactly-once check) is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var eps []endpoints
	for _, u := range cfg.RelayURLs {
		ep, err := parseRelayURL(u)
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// One transport for everything; enough idle connections that admin calls reuse them.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second, ForceAttemptHTTP2: false}}
	defer hc.CloseIdleConnections()
	r := &run{cfg: cfg, eps: eps, hc: hc, dialSem: make(chan struct{}, cfg.DialConcurrency),
		start: make(chan struct{}), loadOver: make(chan struct{}), runOver: make(chan struct{}),
		storm: make(chan struct{}), stormDone: make(chan struct{}),
		lostWhy: map[string]int64{}, failedWhy: map[string]int64{}, anomalies: map[string]int64{},
		firstWelcomes: make([]atomic.Int64, len(eps))}
	nf := (cfg.Terminals + cfg.PerFacility - 1) / cfg.PerFacility
	rep := &Report{Terminals: cfg.Terminals, PerFacility: cfg.PerFacility, Facilities: nf, BatchItems: cfg.BatchItems,
		Window: cfg.Window, Rate: cfg.Rate, Mix: cfg.Mix.String(), CutEveryS: cfg.CutEvery.Seconds(), CutProb: cfg.CutProb, Seed: cfg.Seed,
		CPUs: runtime.NumCPU(), LoadAvg: loadAverage(), Go: runtime.Version(), Gateways: len(eps)}

	// Per gateway: start, enrolled, connected, load start, load end.
	const sStart, sEnrolled, sConnected, sLoadStart, sLoadEnd = 0, 1, 2, 3, 4
	proc := make([][5]procSample, len(cfg.RelayPIDs))
	sample := func(i int) error {
		for g, pid := range cfg.RelayPIDs {
			s, err := sampleProc(pid)
			if err != nil {
				return err
			}
			proc[g][i] = s
		}
		return nil
	}
	heaps := make([][2]goMem, len(cfg.RelayDebug)) // enrolled, connected
	sampleHeap := func(i int) error {
		for g, base := range cfg.RelayDebug {
			m, err := readGoMem(ctx, hc, base)
			if err != nil {
				return err
			}
			heaps[g][i] = m
		}
		return nil
	}
	if err := sample(sStart); err != nil {
		return nil, err
	}

	a := &admin{ep: eps[0], token: cfg.AdminToken, hc: hc}
	terms, err := enroll(ctx, r, a, nf, rep)
	if err != nil {
		return nil, err
	}
	// Memory before any terminal connects: what the connections add is measured from here.
	if err := sampleHeap(0); err != nil {
		return nil, err
	}
	if err := sample(sEnrolled); err != nil {
		return nil, err
	}

	// Connect every terminal; the load starts when all are welcomed.
	r.rampWG.Add(len(terms))
	r.finishedWG.Add(len(terms))
	r.exitWG.Add(len(terms))
	rampStart := time.Now()
	for _, t := range terms {
		go t.loop(ctx)
	}
	stop := func() {
		if !closed(r.runOver) {
			close(r.runOver)
		}
		r.exitWG.Wait()
	}
	if !waitWG(ctx, &r.rampWG) {
		stop()
		return nil, fmt.Errorf("only %d of %d terminals were welcomed before the time limit (-timeout %v); handshake failures: %s",
			r.handshakes.Load(), len(terms), cfg.Timeout, r.reasons(r.failedWhy))
	}
	rep.RampS = time.Since(rampStart).Seconds()
	rep.HandshakesPerS = float64(len(terms)) / rep.RampS
	if cfg.Idle > 0 {
		r.logf("%d terminals welcomed in %.2fs; holding them idle for %v", len(terms), rep.RampS, cfg.Idle)
		select {
		case <-time.After(cfg.Idle):
		case <-ctx.Done():
		}
	}
	// The heap read first: it runs a GC, so the RSS read after it holds less garbage.
	if err := sampleHeap(1); err != nil {
		stop()
		return nil, err
	}
	if err := sample(sConnected); err != nil {
		stop()
		return nil, err
	}
	if cfg.Idle > 0 {
		close(r.loadOver)
		stop()
		rep.Handshakes, rep.HandshakeErrors, rep.Busy, rep.Redirects = r.handshakes.Load(), r.handshakeErrors.Load(), r.busy.Load(), r.redirects.Load()
		rep.Lost = r.lostN.Load()
		r.mu.Lock()
		rep.LostReasons, rep.FailureReasons, rep.Anomalies = nonEmpty(r.lostWhy), nonEmpty(r.failedWhy), nonEmpty(r.anomalies)
		r.mu.Unlock()
		rep.IdleS = cfg.Idle.Seconds()
		rep.fillRelays(cfg, proc, heaps, len(terms), r.welcomedBy())
		return rep, nil
	}
	r.logf("%d terminals welcomed in %.2fs; load begins", len(terms), rep.RampS)

	// What each gateway's store did during the load (JetStream gateways export it).
	storeOps := make([][2]map[string]int64, len(eps))
	sampleOps := func(i int) {
		for g, ep := range eps {
			ops, err := readStoreOps(ctx, hc, ep.http)
			if err != nil {
				r.logf("gateway %d: %v", g+1, err)
				continue
			}
			storeOps[g][i] = ops
		}
	}
	// The streams are read outside the spans the CPU figures cover: the reads cost the cluster
	// and the tool CPU that no batch did.
	var streamsStart map[string]streamState
	if cfg.StoreNATS != "" {
		var err error
		if streamsStart, err = sampleStreams(ctx, cfg.StoreNATS, cfg.StoreNATSOptions); err != nil {
			r.logf("%v", err)
		}
	}
	sampleOps(0)
	_ = sample(sLoadStart)
	clusterStart, clusterErr := cpuOf(cfg.ClusterPIDs)
	self, selfErr := sampleProc(os.Getpid())
	profiling := false
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			r.logf("tool CPU profile: %v", err)
		} else {
			profiling = true
		}
	}
	loadStart := time.Now()
	r.lastAck.Store(loadStart.UnixNano())
	close(r.start)

	loadDone := make(chan struct{})
	stormFinished := make(chan struct{})
	if cfg.Storm {
		go func() {
			defer close(stormFinished)
			var at <-chan time.Time
			if cfg.StormAt > 0 {
				at = time.After(cfg.StormAt)
			}
			select {
			case <-at:
			case <-loadDone:
			case <-ctx.Done():
				return
			}
			st := &Storm{Terminals: len(terms), DuringLoad: !closed(loadDone)}
			r.stormLeft.Store(int64(len(terms)))
			r.logf("reconnect storm: cutting all %d terminals", len(terms))
			busy := r.busy.Load()
			stormAt := time.Now()
			close(r.storm)
			select {
			case <-r.stormDone:
			case <-time.After(cfg.StormTimeout):
				st.TimedOut = true
			case <-ctx.Done():
				st.TimedOut = true
			}
			st.Recovered = len(terms) - int(max(0, r.stormLeft.Load()))
			if st.TimedOut {
				st.RecoverS = time.Since(stormAt).Seconds()
			} else {
				st.RecoverS = time.Unix(0, r.stormEnd.Load()).Sub(stormAt).Seconds()
			}
			st.Busy = r.busy.Load() - busy
			rep.Storm = st
		}()
	} else {
		close(stormFinished)
	}

	finished := make(chan struct{})
	go func() { r.finishedWG.Wait(); close(finished) }()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	var loadTimer, drainTimer <-chan time.Time
	if cfg.Duration > 0 {
		loadTimer = time.After(cfg.Duration)
	}
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-loadTimer:
			close(r.loadOver)
			loadTimer, drainTimer = nil, time.After(cfg.Drain)
		case <-drainTimer:
			rep.DrainTimeout = true
			break wait
		case <-progress.C:
			r.logf("%.0fs: %d items acknowledged, %d cuts, %d lost", time.Since(loadStart).Seconds(), r.items.Load(), r.cuts.Load(), r.lostN.Load())
		case <-ctx.Done():
			rep.DrainTimeout = true
			break wait
		}
	}
	loadEnd := time.Unix(0, r.lastAck.Load())
	_ = sample(sLoadEnd)
	if clusterEnd, err := cpuOf(cfg.ClusterPIDs); err == nil && clusterErr == nil && len(cfg.ClusterPIDs) > 0 {
		rep.ClusterCPUS = (clusterEnd - clusterStart).Seconds()
	}
	if profiling {
		pprof.StopCPUProfile()
	}
	var cpuWall time.Duration // the span the CPU figures cover
	if selfEnd, err := sampleProc(os.Getpid()); err == nil && selfErr == nil {
		rep.ToolCPUS = (selfEnd.cpu - self.cpu).Seconds()
		cpuWall = selfEnd.at.Sub(self.at)
		if wall := cpuWall; wall > 0 {
			rep.ToolCPUPercent = 100 * rep.ToolCPUS / wall.Seconds()
		}
	}
	sampleOps(1)
	rep.storeOps = storeOps
	if streamsStart != nil {
		// ctx may be done (the drain limit): the figures are still wanted.
		if end, err := sampleStreams(context.WithoutCancel(ctx), cfg.StoreNATS, cfg.StoreNATSOptions); err != nil {
			r.logf("%v", err)
		} else {
			rep.Streams = streamFigures(streamsStart, end, r.batches.Load())
		}
	}

	if !closed(r.loadOver) {
		close(r.loadOver)
	}
	close(loadDone)
	// The storm goroutine fills rep.Storm within its own bounds.
	<-stormFinished
	stop()

	// Gather what the terminals measured.
	var lat []time.Duration
	for _, t := range terms {
		lat = append(lat, t.lat...)
		rep.Rejected += t.rejected
		rep.Unacked += int64(len(t.pending))
	}
	rep.LoadS = loadEnd.Sub(loadStart).Seconds()
	rep.Items, rep.Batches, rep.DownItems, rep.DownAcks = r.items.Load(), r.batches.Load(), r.downItems.Load(), r.downAcks.Load()
	if rep.LoadS > 0 {
		rep.ItemsPerS = float64(rep.Items) / rep.LoadS
		rep.BatchesPerS = float64(rep.Batches) / rep.LoadS
		rep.DownPerS = float64(rep.DownItems) / rep.LoadS
		rep.DownAcksPerS = float64(rep.DownAcks) / rep.LoadS
	}
	rep.Ack = summarise(lat)
	if n := r.batchFrames.Load(); n > 0 {
		rep.BatchBytes = int(r.batchBytes.Load() / n)
	}
	rep.Handshakes, rep.HandshakeErrors, rep.Busy, rep.Redirects = r.handshakes.Load(), r.handshakeErrors.Load(), r.busy.Load(), r.redirects.Load()
	rep.Cuts, rep.Lost = r.cuts.Load(), r.lostN.Load()
	r.mu.Lock()
	rep.LostReasons, rep.FailureReasons, rep.Anomalies = nonEmpty(r.lostWhy), nonEmpty(r.failedWhy), nonEmpty(r.anomalies)
	r.mu.Unlock()

	if err := rep.fillRelays(cfg, proc, heaps, len(terms), r.welcomedBy()); err != nil {
		return rep, err
	}
	rep.fillCPU(cpuWall)
	if cfg.Verify {
		admins := make([]*admin, len(r.eps))
		for g, ep := range r.eps {
			admins[g] = &admin{ep: ep, token: a.token, hc: a.hc}
		}
		v, err := verify(ctx, admins, terms)
		if err != nil {
			return rep, fmt.Errorf("check exactly-once: %w", err)
		}
		rep.Verify = v
	}
	return rep, nil
}

// enroll creates the facilities and enrolls the terminals, a few at a time.
func enroll(ctx context.Context, r *run, a *admin, nf int, rep *Report) ([]*terminal, error) {
	cfg := &r.cfg
	started := time.Now()
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("make run id: %w", err)
	}
	// Facility names carry a run id, so runs against the same relay do not touch each other's rosters.
	runID := hex.EncodeToString(id[:])
	pinHash, err := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err != nil {
		return nil, fmt.Errorf("hash the load inmates' PIN: %w", err)
	}
	facilities := make([]string, nf)
	inmates := make([][]string, nf)
	for f := range nf {
		facilities[f] = fmt.Sprintf("load-%s-f%04d", runID, f)
		if inmates[f], err = a.setupFacility(ctx, facilities[f], cfg.Inmates, pinHash); err != nil {
			return nil, err
		}
	}
	r.logf("created %d facilities; enrolling %d terminals", nf, cfg.Terminals)
	terms := make([]*terminal, cfg.Terminals)
	jobs := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f := i / cfg.PerFacility
				// With EnrollSpread each terminal enrolls through the gateway it will connect
				// to; by default all through the first, as staff would through one console
				// (concurrent enrollments on two gateways conflict on the shared store).
				ga := a
				if cfg.EnrollSpread {
					ga = &admin{ep: r.eps[r.gateway(i)], token: a.token, hc: a.hc}
				}
				resp, priv, err := ga.enrollKiosk(ectx, facilities[f], fmt.Sprintf("load kiosk %d", i))
				if err != nil {
					select {
					case errc <- fmt.Errorf("enroll terminal %d of %s: %w", i, facilities[f], err):
					default:
					}
					cancel()
					continue
				}
				var ep [16]byte
				if _, err := rand.Read(ep[:]); err != nil {
					select {
					case errc <- fmt.Errorf("make epoch: %w", err):
					default:
					}
					cancel()
					continue
				}
				terms[i] = &terminal{idx: i, gw: r.gateway(i), id: resp.TerminalID, facility: facilities[f], inmates: inmates[f], priv: priv,
					epoch: hex.EncodeToString(ep[:]), mix: cfg.Mix, run: r,
					rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)))}
			}
		}()
	}
feed:
	for i := range cfg.Terminals {
		select {
		case jobs <- i:
		case <-ectx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("enrollment did not finish within -timeout: %w", ctx.Err())
	}
	rep.EnrollS = time.Since(started).Seconds()
	rep.EnrollPerS = float64(cfg.Terminals) / rep.EnrollS
	return terms, nil
}

// verify lists the relay's stored items through every gateway and checks that every item this
// run's terminals had acknowledged is there exactly once (by item id and by (terminal, epoch,
// seq)). A gateway lists the facilities it holds as they stand, and the others' as the kv state
// has them, up to their holders' projection interval behind (docs/SCALE.md, "Where a held
// relay's cluster time goes"): an item is stored if any gateway lists it.
func verify(ctx context.Context, admins []*admin, terms []*terminal) (*Verify, error) {
	listings := make([][]storedItem, 0, len(admins))
	for _, a := range admins {
		items, err := a.items(ctx)
		if err != nil {
			return nil, err
		}
		listings = append(listings, items)
	}
	return check(listings, terms), nil
}

// check is verify's count over the gateways' listings of one store: stored, what some listing
// holds; duplicates, the most any one listing holds; missing, an acknowledged item none holds.
func check(listings [][]storedItem, terms []*terminal) *Verify {
	type key struct {
		term, epoch string
		seq         uint64
	}
	ours := make(map[string]*terminal, len(terms))
	for _, t := range terms {
		ours[t.id] = t
	}
	v := &Verify{}
	listed := map[key]bool{} // every item some listing holds, and whether it was refused
	for _, items := range listings {
		var dups int64
		ids := map[string]bool{}
		seqs := map[key]bool{}
		for _, it := range items {
			if _, ok := ours[it.TerminalID]; !ok {
				continue
			}
			k := key{it.TerminalID, it.Epoch, it.Seq}
			if ids[it.ID] || seqs[k] {
				dups++
			}
			ids[it.ID], seqs[k] = true, true
			listed[k] = listed[k] || it.Refused != ""
		}
		v.Duplicates = max(v.Duplicates, dups)
	}
	v.Stored = int64(len(listed)) + v.Duplicates
	for _, r := range listed {
		if r {
			v.Refused++
		}
	}
	for _, t := range terms {
		acked := t.nextSeq
		if len(t.pending) > 0 {
			acked = t.pending[0].Seq - 1
		}
		for s := uint64(1); s <= acked; s++ {
			if _, ok := listed[key{t.id, t.epoch, s}]; !ok {
				v.Missing++
			}
		}
	}
	v.OK = v.Duplicates == 0 && v.Missing == 0 && v.Refused == 0
	return v
}

// waitWG waits for wg or ctx, whichever comes first.
func waitWG(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func nonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func (r *run) reasons(m map[string]int64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// fillRelays turns the process and heap samples into the report's per-gateway figures (and
// Relay, when there is one gateway). It reads each process once more for its end figures.
// welcomed is how many terminals each gateway first welcomed.
func (rep *Report) fillRelays(cfg Config, proc [][5]procSample, heaps [][2]goMem, terminals int, welcomed []int) error {
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	bmib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	var deltaKiB, deltaTermKiB, deltaGoB int64
	var withHeap bool
	for g := range cfg.RelayURLs {
		on := 0 // terminals first welcomed on gateway g
		if g < len(welcomed) {
			on = welcomed[g]
		}
		st := RelayStats{URL: cfg.RelayURLs[g], Terminals: on}
		if g < len(proc) {
			p := proc[g]
			end, err := sampleProc(cfg.RelayPIDs[g])
			if err != nil {
				return err
			}
			st.PID = cfg.RelayPIDs[g]
			st.RSSStartMiB, st.RSSEnrolledMiB, st.RSSConnectedMiB = mib(p[0].mem.RSSKiB), mib(p[1].mem.RSSKiB), mib(p[2].mem.RSSKiB)
			st.RSSEndMiB, st.HWMMiB = mib(end.mem.RSSKiB), mib(end.mem.HWMKiB)
			if on > 0 {
				st.KiBPerTerminal = float64(p[2].mem.RSSKiB-p[0].mem.RSSKiB) / float64(on)
				st.KiBPerConn = float64(p[2].mem.RSSKiB-p[1].mem.RSSKiB) / float64(on)
			}
			deltaKiB += p[2].mem.RSSKiB - p[1].mem.RSSKiB
			deltaTermKiB += p[2].mem.RSSKiB - p[0].mem.RSSKiB
			if cfg.Idle == 0 {
				cpu := p[4].cpu - p[3].cpu
				st.CPUS = cpu.Seconds()
				if wall := p[4].at.Sub(p[3].at); wall > 0 {
					st.CPUPercent = 100 * cpu.Seconds() / wall.Seconds()
				}
			}
		}
		if g < len(heaps) {
			h := heaps[g]
			withHeap = true
			st.GoEnrolledMiB, st.GoConnectedMiB = bmib(h[0].HeapInuse+h[0].StackInuse), bmib(h[1].HeapInuse+h[1].StackInuse)
			st.GoroutinesEnrolled, st.GoroutinesConnected = h[0].Goroutines, h[1].Goroutines
			d := int64(h[1].HeapInuse+h[1].StackInuse) - int64(h[0].HeapInuse+h[0].StackInuse)
			deltaGoB += d
			if on > 0 {
				st.GoKiBPerConn = float64(d) / 1024 / float64(on)
				st.StackKiBPerConn = (float64(h[1].StackInuse) - float64(h[0].StackInuse)) / 1024 / float64(on)
			}
		}
		if g < len(rep.storeOps) && len(rep.storeOps[g][1]) > 0 {
			st.StoreOps = map[string]int64{}
			for op, n := range rep.storeOps[g][1] {
				st.StoreOps[op] = n - rep.storeOps[g][0][op]
			}
		}
		rep.Relays = append(rep.Relays, st)
	}
	if len(proc) > 0 && terminals > 0 {
		rep.RelayKiBPerConn = float64(deltaKiB) / float64(terminals)
		rep.RelayKiBPerTerminal = float64(deltaTermKiB) / float64(terminals)
	}
	if withHeap && terminals > 0 {
		rep.RelayGoKiBPerConn = float64(deltaGoB) / 1024 / float64(terminals)
	}
	if len(rep.Relays) == 1 {
		// One relay keeps the report's older shape: "relay", no "relays".
		if len(proc) > 0 || withHeap {
			one := rep.Relays[0]
			rep.Relay = &one
		}
		rep.Relays = nil
	}
	return nil
}
