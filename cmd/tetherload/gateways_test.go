package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// gateway is one relay gateway in this process: a relay on the shared JetStream store, behind
// its own 127.0.0.1 listener, counting the terminal connections it was asked for.
type gateway struct {
	r     *relay.Relay
	url   string
	dials atomic.Int64
}

// startGateways opens n relays on one R3 stream of a 3-node natstest cluster, gateway i
// talking to node i, each announcing all of them, as relayd -store ... -gateways ... does.
func startGateways(t *testing.T, c *natstest.Cluster, n int) []*gateway {
	t.Helper()
	return startGatewaysWith(t, c, n, false)
}

// startGatewaysWith is startGateways; with homes each gateway also knows its own URL
// (relayd -gateway-url), so each facility is served by one of them.
func startGatewaysWith(t *testing.T, c *natstest.Cluster, n int, homes bool) []*gateway {
	t.Helper()
	var lns []net.Listener
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns, urls = append(lns, ln), append(urls, "http://"+ln.Addr().String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true} // as relayd opens it
	var gws []*gateway
	for i := range n {
		nc := c.Connect(i)
		st, err := jskv.Open(ctx, nc, o)
		// A fresh cluster may refuse an R3 stream until it knows its peers (API error 10005).
		for err != nil && ctx.Err() == nil {
			var api *jetstream.APIError
			if !errors.As(err, &api) || api.ErrorCode != 10005 {
				break
			}
			time.Sleep(20 * time.Millisecond)
			st, err = jskv.Open(ctx, nc, o)
		}
		if err != nil {
			t.Fatalf("open the store through node %d: %v", i, err)
		}
		c.WaitStream(nc, o.Stream)
		cfg := relay.Config{DataDir: t.TempDir(), Store: st, Gateways: urls, AdminToken: testToken,
			PINParams: kiosk.TestPINParams(), Logf: t.Logf}
		if homes {
			cfg.GatewayURL = urls[i]
		}
		r, err := relay.Open(cfg)
		if err != nil {
			t.Fatalf("open gateway %d: %v", i, err)
		}
		g := &gateway{r: r, url: urls[i]}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == wire.PathTerminal {
				g.dials.Add(1)
			}
			r.ServeHTTP(w, req)
		})}
		go srv.Serve(lns[i])
		t.Cleanup(func() {
			if err := r.Close(); err != nil {
				t.Errorf("close gateway %d: %v", i, err)
			}
			srv.Close()
		})
		gws = append(gws, g)
	}
	return gws
}

// debugServer serves this process's Go profiles as relayd -debug-listen does.
func debugServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// Twenty terminals spread over two gateways on one JetStream cluster: every item is
// acknowledged and stored exactly once, both gateways carry terminals, the report has the
// per-gateway figures in its table and JSON, and the jetstream baseline publishes to the same
// cluster and cleans up after itself.
func TestLoadTwoGatewaysOnJetStream(t *testing.T) {
	c := natstest.Start(t)
	gws := startGateways(t, c, 2)
	dbg := debugServer(t)
	cfg := testConfig(gws[0].url)
	cfg.RelayURLs = []string{gws[0].url, gws[1].url}
	cfg.RelayPIDs = []int{os.Getpid(), os.Getpid()}
	cfg.RelayDebug = []string{dbg, dbg}
	cfg.ClusterPIDs = []int{os.Getpid()} // the cluster runs in this process here
	cfg.StoreNATS = c.URLs()
	cfg.Terminals, cfg.PerFacility, cfg.BatchItems, cfg.Batches = 20, 10, 1, 5
	cfg.CutProb, cfg.Storm, cfg.EnrollSpread = 0, false, true
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := int64(cfg.Terminals * cfg.Batches * cfg.BatchItems)
	if rep.Items != want || rep.Batches != want || rep.Unacked != 0 || rep.Rejected != 0 || rep.Lost != 0 {
		t.Fatalf("report: %d items, %d batches acknowledged, %d unacknowledged, %d refused, %d lost (%v); want %d, %d, 0, 0, 0",
			rep.Items, rep.Batches, rep.Unacked, rep.Rejected, rep.Lost, rep.LostReasons, want, want)
	}
	if rep.Verify == nil || !rep.Verify.OK || rep.Verify.Stored != want {
		t.Fatalf("exactly once: %+v, want ok with %d stored", rep.Verify, want)
	}
	// What the store itself holds, read through the second gateway.
	items, err := gws[1].r.Items(relay.ItemFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(items)) != want {
		t.Fatalf("the store holds %d items, the terminals sent %d", len(items), want)
	}
	for i, g := range gws {
		if n := g.dials.Load(); n < int64(cfg.Terminals/2) {
			t.Errorf("gateway %d was dialled %d times, want at least %d (half the terminals)", i+1, n, cfg.Terminals/2)
		}
	}
	if rep.Gateways != 2 || len(rep.Relays) != 2 || rep.Relay != nil {
		t.Fatalf("report: %d gateways, %d relay entries, single relay %v", rep.Gateways, len(rep.Relays), rep.Relay)
	}
	for i, s := range rep.Relays {
		if s.URL != cfg.RelayURLs[i] || s.Terminals != cfg.Terminals/2 || s.RSSConnectedMiB <= 0 || s.GoroutinesConnected <= 0 || s.GoConnectedMiB <= 0 {
			t.Fatalf("gateway %d figures: %+v", i+1, s)
		}
		// What the gateway's store did over the load (tether_store_kv_total).
		if s.StoreOps["commit"] <= 0 || s.StoreOps["message"] <= 0 {
			t.Errorf("gateway %d store counts over the load: %v, want commits and messages", i+1, s.StoreOps)
		}
	}
	// What the load made the cluster store: the gateways' state stream, "relay", took
	// messages as the items were stored (the same stream's tombstones and all), and holds
	// them at the end.
	var state *StreamFigure
	for i, f := range rep.Streams {
		if f.Name == "relay" {
			state = &rep.Streams[i]
		}
	}
	if state == nil || state.Written == 0 || state.HeldMsgs == 0 || state.HeldBytes == 0 ||
		state.PerBatch != float64(state.Written)/float64(rep.Batches) || state.BytesPerBatch <= 0 {
		t.Fatalf("what the state stream took during the load: %+v (all: %+v)", state, rep.Streams)
	}
	if rep.BatchBytes <= 0 || rep.Ack.Samples != int(want) || rep.Ack.P50ms <= 0 || rep.Ack.P99ms < rep.Ack.P50ms {
		t.Fatalf("batch size %d, latency %+v", rep.BatchBytes, rep.Ack)
	}
	// The CPU a batch cost, by part: the gateways, the tool and the cluster are all this
	// process here, so each part is the process's CPU over the load, a batch (read at
	// slightly different moments: a few clock ticks apart at most).
	near := func(a, b float64) bool { return math.Abs(a-b) <= 4*1e6/100/float64(rep.Batches) }
	if c := rep.CPU; c == nil || rep.ClusterCPUS <= 0 || c.ToolUS <= 0 || !near(c.ClusterUS, c.ToolUS) || !near(c.GatewaysUS, 2*c.ToolUS) ||
		c.TotalUS != c.ToolUS+c.GatewaysUS+c.ClusterUS || c.MachinePct <= 0 {
		t.Fatalf("CPU a batch %+v, cluster %.3fs, tool %.3fs", c, rep.ClusterCPUS, rep.ToolCPUS)
	}

	b, err := RunBaseline(context.Background(), BaselineJetStream, t.TempDir(), cfg.Terminals, 300*time.Millisecond,
		BaselineEnv{NATS: c.URLs(), Conns: 2, MsgBytes: rep.BatchBytes})
	if err != nil {
		t.Fatalf("jetstream baseline: %v", err)
	}
	if b.Ops <= 0 || b.OpsPerS <= 0 || b.Writers != cfg.Terminals || b.MsgBytes != rep.BatchBytes || b.Conns != 2 ||
		b.Latency == nil || b.Latency.Samples != int(b.Ops) || b.Latency.P50ms <= 0 {
		t.Fatalf("jetstream baseline: %+v", b)
	}
	js, err := jetstream.New(c.Connect(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), baselineStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the baseline's stream after the baseline: %v, want it deleted", err)
	}
	if b.CPUPerOpUS <= 0 || b.MachinePct <= 0 {
		t.Fatalf("jetstream baseline's CPU an op: %+v", b)
	}
	b.costIn(rep)
	if want := rep.CPU.TotalUS / b.CPUPerOpUS; b.BatchCost != want || b.ToolCost != rep.CPU.ToolUS/b.CPUPerOpUS {
		t.Fatalf("a batch costs %.2f ops (tool %.2f), want %.2f", b.BatchCost, b.ToolCost, want)
	}
	b.Ratio = rep.BatchesPerS / b.OpsPerS
	rep.Baselines = append(rep.Baselines, b)
	rep.Store = "nats"

	var buf bytes.Buffer
	if err := rep.JSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gateways", "store", "relays", "batches_per_s", "ack", "batch_bytes", "relay_kib_per_conn", "relay_kib_per_terminal", "relay_go_kib_per_conn", "baselines", "verify", "cpu", "cluster_cpu_s", "streams"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, buf.String())
		}
	}
	buf.Reset()
	if err := rep.Table(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 gateway(s), store nats", "gateway 1 ", "gateway 2 ", "gateway 2 Go heap", "gateway 1 store", "memory per terminal",
		"baseline jetstream", "publish ack p50", "ok=true: 100 stored", "CPU a batch", "CPU an op", "where CPU is the limit, the ratio is at most",
		"stream relay ", "bytes a batch"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// With -homes, terminals spread over two gateways are sent to their facility's: of each
// facility's ten, the five that first dial the other gateway are redirected once, and every
// item is stored exactly once.
func TestLoadFollowsFacilityHomes(t *testing.T) {
	c := natstest.Start(t)
	gws := startGatewaysWith(t, c, 2, true)
	testwait.UntilSaw(t, "the gateways agree where facilities are served", func() (bool, string) {
		for f := range 20 {
			name := fmt.Sprintf("facility-%d", f)
			if a, b := gws[0].r.HomeOf(name), gws[1].r.HomeOf(name); a != b {
				return false, fmt.Sprintf("%s: %s and %s", name, a, b)
			}
		}
		return true, ""
	})
	cfg := testConfig(gws[0].url)
	cfg.RelayURLs = []string{gws[0].url, gws[1].url}
	// Three facilities of ten: the tool sends 15 terminals to each gateway first, and a
	// gateway's homes hold 0, 10, 20 or 30, so the report cannot count where they were sent.
	cfg.Terminals, cfg.PerFacility, cfg.BatchItems, cfg.Batches = 30, 10, 1, 5
	cfg.CutProb, cfg.Storm, cfg.Homes = 0, false, true
	cfg.RelayPIDs, cfg.RelayDebug = nil, nil
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := int64(cfg.Terminals * cfg.Batches * cfg.BatchItems)
	if rep.Batches != want || rep.Lost != 0 || rep.Verify == nil || !rep.Verify.OK || rep.Verify.Stored != want {
		t.Fatalf("report: %d batches acknowledged, %d lost (%v), exactly once %+v; want %d, 0, ok", rep.Batches, rep.Lost, rep.LostReasons, rep.Verify, want)
	}
	if rep.Redirects != 15 {
		t.Fatalf("%d handshakes redirected, want 15 (half of each facility's terminals)", rep.Redirects)
	}
	if dials := gws[0].dials.Load() + gws[1].dials.Load(); dials != int64(cfg.Terminals)+rep.Redirects {
		t.Fatalf("the gateways were dialled %d times, want %d (each terminal once, and once more if redirected)", dials, int64(cfg.Terminals)+rep.Redirects)
	}
	// Each gateway's terminals are those of the facilities homed there, where they were
	// welcomed, not where the tool sent them first (terminal i to gateway i mod 2).
	ts, err := gws[0].r.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	homed := map[string]int{}
	for _, x := range ts {
		homed[strings.TrimSuffix(gws[0].r.HomeOf(x.FacilityID), "/")]++
	}
	if len(rep.Relays) != 2 || len(ts) != cfg.Terminals {
		t.Fatalf("the report has %d gateways and the relay %d terminals, want 2 and %d", len(rep.Relays), len(ts), cfg.Terminals)
	}
	for g, s := range rep.Relays {
		if want := homed[strings.TrimSuffix(cfg.RelayURLs[g], "/")]; s.Terminals != want {
			t.Errorf("gateway %d reports %d terminals, want the %d of the facilities homed there", g+1, s.Terminals, want)
		}
	}
	var buf bytes.Buffer
	if err := rep.Table(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "15 redirected") {
		t.Errorf("table does not show the redirects:\n%s", buf.String())
	}
}

// -idle connects every terminal, sends nothing, and reports the connections' memory.
func TestLoadIdle(t *testing.T) {
	_, srv := newRelay(t)
	cfg := testConfig(srv.URL)
	cfg.Batches, cfg.Idle, cfg.CutProb, cfg.Storm = 0, 200*time.Millisecond, 0, false
	cfg.RelayDebug = []string{debugServer(t)}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Items != 0 || rep.Handshakes != int64(cfg.Terminals) || rep.Lost != 0 || rep.IdleS != 0.2 {
		t.Fatalf("idle run: %d items, %d handshakes, %d lost, idle %vs", rep.Items, rep.Handshakes, rep.Lost, rep.IdleS)
	}
	if s := rep.Relay; s == nil || s.Terminals != cfg.Terminals || s.RSSEnrolledMiB <= 0 || s.GoroutinesConnected <= s.GoroutinesEnrolled {
		t.Fatalf("idle run's relay figures: %+v (the connections' goroutines must show)", s)
	}
}

func TestParseGoMem(t *testing.T) {
	heap := []byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 10\n# HeapInuse = 4096\n# Stack = 32768 / 32768\n")
	m, err := parseGoMem(heap, []byte("goroutine profile: total 17\n1 @ 0x1\n"))
	if err != nil || m != (goMem{HeapInuse: 4096, StackInuse: 32768, Goroutines: 17}) {
		t.Fatalf("parse: %+v %v", m, err)
	}
	if _, err := parseGoMem([]byte("# HeapInuse = x\n# Stack = 1 / 1\n"), []byte("goroutine profile: total 1\n")); err == nil {
		t.Fatal("a HeapInuse that is no number accepted")
	}
	if _, err := parseGoMem(heap, []byte("something else\n")); err == nil {
		t.Fatal("a goroutine profile without its total accepted")
	}
}
