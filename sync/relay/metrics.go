package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Operations endpoints. They need no token: a probe and a scraper hold none, and they tell
// nothing beyond counts, terminal ids and software versions (no inmate, no body, no PIN).
const (
	PathHealthz = "/healthz" // the process answers
	PathReadyz  = "/readyz"  // the store is open and takes a write
	PathMetrics = "/metrics" // Prometheus text format, tether_* series
)

// readyEvery bounds how often /readyz writes to the store: each probe is a transaction with
// an fsync, and the endpoint is open to anyone who reaches the relay.
const readyEvery = time.Second

// metrics is one relay's Prometheus series, in a registry of its own (never the global
// default one: two relays in a process, as in tests, keep separate counts).
type metrics struct {
	reg        *prometheus.Registry
	stored     *prometheus.CounterVec
	refusals   *prometheus.CounterVec
	batch      prometheus.Histogram
	handshakes *prometheus.CounterVec
	admin      *prometheus.CounterVec
	console    *prometheus.CounterVec
	chunks     *prometheus.CounterVec
	homes      *prometheus.CounterVec
	// listsDiffer is how many gateways heard now work out homes from another gateway list.
	listsDiffer prometheus.Gauge
	handler     http.Handler

	// The last /readyz probe, so a flood of probes costs one write a second.
	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error
}

// itemCount is one uplink item a write stored: its kind and, if refused, why. The fanout keeps
// them until the transaction commits, like its log lines, so a re-run counts nothing twice.
type itemCount struct{ kind, reason string }

func newMetrics(r *Relay) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.stored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_items_stored_total",
		Help: "Uplink items stored and applied, by kind (resends of a held item are not counted)."}, []string{"kind"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_refusals_total",
		Help: "Uplink items refused for good, by reason."}, []string{"reason"})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tether_batch_store_seconds",
		Help:    "Time to store one connection's uplink batches, transaction and fsync included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_handshakes_total",
		Help: "Terminal handshakes (hello, challenge, auth), by result: ok or refused."}, []string{"result"})
	m.admin = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_admin_requests_total",
		Help: "Admin API requests, by route pattern, method and status code."}, []string{"route", "method", "code"})
	m.console = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_console_requests_total",
		Help: "Staff console requests, by method and status code."}, []string{"method", "code"})
	m.chunks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_content_chunks_sent_total",
		Help: "Content chunks sent to terminals, by form: binary (hello binary_chunks) or json."}, []string{"form"})
	m.homes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_gateway_homes_total",
		Help: "Terminals sent to the gateway that serves their facility: redirected at auth, or moved (connection closed to reconnect there)."}, []string{"action"})
	m.listsDiffer = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tether_gateway_lists_differ",
		Help: "Gateways heard now that work out facility homes from another -gateways list than this one's (should be 0)."})
	m.reg.MustRegister(m.stored, m.refusals, m.batch, m.handshakes, m.admin, m.console, m.chunks, m.homes, m.listsDiffer,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tether_store_write_transactions_total",
			Help: "Write transactions of the relay's store (group commits)."},
			func() float64 { return float64(r.writeTxs.Load()) }),
		&fleetCollector{r: r},
		storeCollector{r: r},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Registry is the relay's own Prometheus registry, for a program that serves more series.
func (r *Relay) Registry() *prometheus.Registry { return r.metrics.reg }

// committed counts what a committed write stored.
func (m *metrics) committed(f *fanout) {
	for _, c := range f.counts {
		if c.reason != "" {
			m.refusals.WithLabelValues(c.reason).Inc()
			continue
		}
		m.stored.WithLabelValues(c.kind).Inc()
	}
}

// count keeps an item stored in this write (see itemCount). Only the kind of an item taken
// is a label: a refused item's kind may be anything a hostile terminal made up.
func (f *fanout) count(kind, reason string) {
	f.counts = append(f.counts, itemCount{kind: kind, reason: reason})
}

func (m *metrics) batchStored(start time.Time) { m.batch.Observe(time.Since(start).Seconds()) }

func (m *metrics) handshake(ok bool) {
	res := "refused"
	if ok {
		res = "ok"
	}
	m.handshakes.WithLabelValues(res).Inc()
}

// methodLabel keeps a client's method out of the labels unless it is one the API uses: a
// made-up method must not mint a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead:
		return m
	}
	return "other"
}

func (m *metrics) adminRequest(req *http.Request, status int) {
	route := req.Pattern // the mux's pattern: a fixed set, whatever the path held
	if route == "" {
		route = "other"
	}
	m.admin.WithLabelValues(route, methodLabel(req.Method), codeLabel(status)).Inc()
}

func codeLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// CountConsole wraps the staff console's handler so its requests show in
// tether_console_requests_total. The console registers its own routes; this is its one hook.
func (r *Relay) CountConsole(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { r.metrics.console.WithLabelValues(methodLabel(req.Method), codeLabel(sw.status)).Inc() }()
		h.ServeHTTP(sw, req)
	})
}

// routeOps registers /healthz, /readyz and /metrics.
func (r *Relay) routeOps(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathReadyz, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := r.Ready(req.Context()); err != nil {
			r.logf("relay: not ready: %v", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: the store does not take a write (see the log)\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET "+PathMetrics, r.metrics.handler)
}

// errClosed is Ready's answer once the relay is closing.
var errClosed = errors.New("relay is closed")

// Ready checks that the store is open and takes a write: a real write transaction (put and
// delete of a probe key, so no data changes) through the same queue as every other write,
// committed with an fsync. A check less than readyEvery old is answered again.
func (r *Relay) Ready(ctx context.Context) error {
	select {
	case <-r.closed:
		return errClosed
	default:
	}
	m := r.metrics
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	now := r.clock.Now()
	if !m.readyAt.IsZero() && now.Sub(m.readyAt) >= 0 && now.Sub(m.readyAt) < readyEvery {
		return m.readyErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.readyErr = r.update("readiness probe", func(tx kv.Tx, _ *fanout) error {
		b := tx.Bucket([]byte(bMeta))
		if b == nil {
			return errors.New("meta bucket missing")
		}
		key := []byte("ready_probe")
		if err := b.Put(key, []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		return b.Delete(key)
	})
	m.readyAt = now
	return m.readyErr
}

// storeCollector exports what the store counts (kv.StatsReporter: the JetStream store), so
// that where a gateway's time goes (conflicts re-run, leader round trips, listings) is
// measured, not guessed. A store that counts nothing exports nothing.
type storeCollector struct{ r *Relay }

var descStoreOps = prometheus.NewDesc("tether_store_kv_total",
	"What the relay's key-value store did, by op: commit (write transactions committed), conflict "+
		"(transactions run again because what they read changed), view, read (network round trips), "+
		"cache_hit (reads the gateway's cache answered), list (bucket listings), message (messages committed), "+
		"prefetch (of read, those made several at a time rather than one after another), replica_read (reads any replica "+
		"answered), replica_miss (requests of those a replica could not answer, read from the leader instead), "+
		"stale_view (reads of the fleet's gauges, from replicas), feed_lost (times the watch feed was lost and its "+
		"watchers read the store again), too_large (write transactions refused as larger than one commit takes: "+
		"their work was for nothing).",
	[]string{"op"}, nil)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descStoreOps }

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	sr, ok := c.r.db.(kv.StatsReporter)
	if !ok {
		return
	}
	st := sr.KVStats()
	for _, o := range []struct {
		op string
		n  int64
	}{{"commit", st.Commits}, {"conflict", st.Conflicts}, {"view_conflict", st.ViewConflicts}, {"view", st.Views}, {"read", st.Reads},
		{"cache_hit", st.CacheHits}, {"list", st.Lists}, {"message", st.Messages}, {"prefetch", st.Prefetched}, {"replica_read", st.ReplicaReads},
		{"replica_miss", st.ReplicaMisses}, {"stale_view", st.StaleViews}, {"guessed", st.Guessed}, {"feed_lost", st.FeedLosses},
		{"too_large", st.TooLarge}} {
		ch <- prometheus.MustNewConstMetric(descStoreOps, prometheus.CounterValue, float64(o.n), o.op)
	}
}

// fleetCollector reads the terminals at each scrape: how many are enrolled and connected, the
// downlink backlog, and each terminal's health as it last reported it. On a relay of gateways
// with facility homes each gateway reports the terminals of the facilities it serves
// (fleetForMetrics), so that every terminal's series come from one gateway and the fleet is
// the sum over gateways; otherwise every terminal is reported.
type fleetCollector struct{ r *Relay }

var (
	descEnrolled  = prometheus.NewDesc("tether_terminals_enrolled", "Terminals enrolled and not revoked (with facility homes: of the facilities this gateway serves).", nil, nil)
	descConnected = prometheus.NewDesc("tether_terminals_connected", "Of tether_terminals_enrolled, those with an authenticated connection now (with facility homes: through any gateway).", nil, nil)
	descGwConns   = prometheus.NewDesc("tether_gateway_connections", "Authenticated terminal connections this relay or gateway holds now.", nil, nil)
	descBacklog   = prometheus.NewDesc("tether_downlink_backlog_items", "Downlink items queued and not yet acknowledged, over the terminals of tether_terminals_enrolled.", nil, nil)
	termLabels    = []string{"terminal", "facility", "mode"}
	descTConn     = prometheus.NewDesc("tether_terminal_connected", "1 while the terminal is connected.", termLabels, nil)
	descTBacklog  = prometheus.NewDesc("tether_terminal_downlink_backlog_items", "Downlink items queued for the terminal and not yet acknowledged.", termLabels, nil)
	descTWaiting  = prometheus.NewDesc("tether_terminal_uplink_waiting_items", "The terminal's forwarding queue as it last reported it.", termLabels, nil)
	descTSeen     = prometheus.NewDesc("tether_terminal_last_seen_timestamp_seconds", "When the terminal last authenticated (Unix time; 0: never).", termLabels, nil)
	descTInfo     = prometheus.NewDesc("tether_terminal_info", "The terminal's software as its hello said (value 1).", append(termLabels, "software"), nil)
	descTDevice   = prometheus.NewDesc("tether_terminal_device_connected", "1 while the device is connected, as the terminal last reported (device_status).",
		append(termLabels, "device", "role"), nil)
	descScrapeErr = prometheus.NewDesc("tether_fleet_scrape_errors", "1 when the terminals could not be read for this scrape.", nil, nil)
	descHeld      = prometheus.NewDesc("tether_facilities_held", "Facilities this relay or gateway holds in the facility log now (-hold-facilities): claims that stood.", nil, nil)
)

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEnrolled, descConnected, descGwConns, descBacklog, descTConn, descTBacklog, descTWaiting, descTSeen, descTInfo, descTDevice, descScrapeErr, descHeld} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descGwConns, float64(c.r.hub.count()))
	gauge(descHeld, float64(c.r.held.standing()))
	terms, devices, err := c.r.fleetForMetrics()
	if err != nil {
		gauge(descScrapeErr, 1)
		return
	}
	gauge(descScrapeErr, 0)
	enrolled, connected, backlog := 0, 0, uint64(0)
	for _, t := range terms {
		if t.Revoked {
			continue
		}
		enrolled++
		behind := t.DownQueued - min(t.DownAcked, t.DownQueued)
		backlog += behind
		l := []string{t.ID, t.FacilityID, t.Mode}
		conn := 0.0
		if t.Connected {
			conn = 1
			connected++
		}
		seen := 0.0
		if !t.LastSeen.IsZero() {
			seen = float64(t.LastSeen.UnixNano()) / 1e9
		}
		gauge(descTConn, conn, l...)
		gauge(descTBacklog, float64(behind), l...)
		gauge(descTWaiting, float64(t.ItemsWaiting), l...)
		gauge(descTSeen, seen, l...)
		gauge(descTInfo, 1, append(l, t.Software)...)
		seenDev := map[string]bool{}
		for _, d := range devices[t.ID] {
			if seenDev[d.Name] {
				continue // two with one name would be one series twice
			}
			seenDev[d.Name] = true
			up := 0.0
			if d.State == "connected" {
				up = 1
			}
			gauge(descTDevice, up, append(l, d.Name, d.Role)...)
		}
	}
	gauge(descEnrolled, float64(enrolled))
	gauge(descConnected, float64(connected))
	gauge(descBacklog, float64(backlog))
}

// fleetForMetrics reads the terminals a scrape reports, and their device reports, from
// replicas where the store has them (a View of every terminal at every scrape of every
// gateway was most of a cluster's leader reads when nothing else ran). With facility homes
// they are the terminals of the facilities whose home is this gateway as it sees the others
// now: a state's gateways then each read and report their share, not every terminal each.
func (r *Relay) fleetForMetrics() ([]TerminalInfo, map[string][]vocab.DeviceHealth, error) {
	if !r.homes.on() {
		terms, err := r.terminals(r.staleView)
		if err != nil {
			return nil, nil, err
		}
		devices, err := r.deviceReports()
		return terms, devices, err
	}
	var mine []string
	err := r.staleView("list facilities with terminals", func(tx kv.Tx) error {
		mine = mine[:0]
		b := tx.Bucket([]byte(bFacTerms))
		if b == nil {
			return nil // no terminal enrolled yet
		}
		return b.ForEachBucket(func(name []byte) error {
			if f := string(name); r.homes.of(f, false) == r.homes.self {
				mine = append(mine, f)
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	terms, err := r.FleetOf(mine...)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(terms))
	for _, t := range terms {
		if !t.Revoked {
			ids = append(ids, t.ID)
		}
	}
	raw, err := r.DeviceStatuses(ids...)
	if err != nil {
		return nil, nil, err
	}
	devices := make(map[string][]vocab.DeviceHealth, len(raw))
	for id, body := range raw {
		devices[id] = reportedDevices(body)
	}
	return terms, devices, nil
}

// deviceReports is each terminal's last device_status report, its devices only, within the
// limits a terminal keeps to (vocab.MaxHealthDevices, names cut to vocab.MaxHealthNameBytes):
// what a hostile terminal sends beyond them mints no series. A body that is not a health
// report (an older terminal's free-form one) gives no devices.
func (r *Relay) deviceReports() (map[string][]vocab.DeviceHealth, error) {
	out := map[string][]vocab.DeviceHealth{}
	err := r.staleView("read device reports", func(tx kv.Tx) error {
		clear(out) // a View may run again
		return tx.Bucket([]byte(bDevices)).ForEach(func(k, v []byte) error {
			if devs := reportedDevices(v); devs != nil {
				out[string(k)] = devs
			}
			return nil
		})
	})
	return out, err
}

// reportedDevices is the devices of one device_status body, within the limits of
// deviceReports; nil for a body that is not a health report.
func reportedDevices(body []byte) []vocab.DeviceHealth {
	var h vocab.Health
	if json.Unmarshal(body, &h) != nil {
		return nil
	}
	devs := h.Devices[:min(len(h.Devices), vocab.MaxHealthDevices)]
	for i := range devs {
		devs[i].Name = cutLabel(devs[i].Name)
		devs[i].Role = cutLabel(devs[i].Role)
	}
	return devs
}

// cutLabel keeps a terminal-given label within vocab.MaxHealthNameBytes and valid UTF-8.
func cutLabel(s string) string {
	if len(s) > vocab.MaxHealthNameBytes {
		s = s[:vocab.MaxHealthNameBytes]
	}
	return strings.ToValidUTF8(s, "")
}
