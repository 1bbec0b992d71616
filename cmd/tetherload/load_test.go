package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

const testToken = "tetherload-test-token-0123456789"

// newRelay is the real relay on a bbolt file in a temp dir, behind a 127.0.0.1 listener.
func newRelay(t *testing.T) (*relay.Relay, *httptest.Server) {
	t.Helper()
	r, err := relay.Open(relay.Config{DataDir: t.TempDir(), AdminToken: testToken, PINParams: kiosk.TestPINParams(), Logf: t.Logf})
	if err != nil {
		t.Fatalf("open relay: %v", err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close relay: %v", err)
		}
		srv.Close()
	})
	return r, srv
}

func testConfig(url string) Config {
	mix, _ := ParseMix(DefaultMix)
	return Config{RelayURLs: []string{url}, AdminToken: testToken, Terminals: 20, PerFacility: 4, Inmates: 3,
		BatchItems: 3, Window: 4, Batches: 10, Drain: 10 * time.Second, Timeout: 2 * time.Minute,
		CutProb: 0.2, Storm: true, StormTimeout: time.Minute, Mix: mix, Seed: 7, DialConcurrency: 8,
		RelayPIDs: []int{os.Getpid()}, Verify: true}
}

// With links cut at random after batches and a reconnect storm, the report counts each item
// once, and the relay holds exactly the items the terminals made: each (terminal, epoch, seq)
// and each item id once, none refused, seqs 1..n per terminal.
func TestLoadExactlyOnceWithCuts(t *testing.T) {
	r, srv := newRelay(t)
	cfg := testConfig(srv.URL)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	perTerm := cfg.Batches * cfg.BatchItems
	want := int64(cfg.Terminals * perTerm)
	if rep.Items != want || rep.Unacked != 0 || rep.Rejected != 0 {
		t.Fatalf("report: %d items acknowledged, %d unacknowledged, %d refused; want %d, 0, 0", rep.Items, rep.Unacked, rep.Rejected, want)
	}
	if rep.Cuts == 0 || rep.Lost != 0 {
		t.Fatalf("report: %d cuts, %d lost (%v); want cuts and none lost", rep.Cuts, rep.Lost, rep.LostReasons)
	}
	// Every cut and the storm end in a new handshake.
	if rep.Handshakes < int64(cfg.Terminals)*2+rep.Cuts {
		t.Errorf("report: %d handshakes, want at least %d (first connections, cuts, storm)", rep.Handshakes, int64(cfg.Terminals)*2+rep.Cuts)
	}
	if rep.Verify == nil || !rep.Verify.OK || rep.Verify.Stored != want {
		t.Fatalf("the tool's own exactly-once check: %+v, want ok with %d stored", rep.Verify, want)
	}
	if s := rep.Storm; s == nil || s.TimedOut || s.Recovered != cfg.Terminals || s.RecoverS <= 0 {
		t.Fatalf("storm: %+v, want all %d terminals welcomed again", s, cfg.Terminals)
	}
	if rep.DownItems == 0 || rep.DownAcks == 0 {
		t.Errorf("%d downlink items applied, %d down_acks: charges and letters fan out to the facility's other kiosks", rep.DownItems, rep.DownAcks)
	}

	// What the relay itself says it holds.
	items, err := r.Items(relay.ItemFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(items)) != want {
		t.Fatalf("relay holds %d items, the tool sent %d", len(items), want)
	}
	ids := map[string]bool{}
	seqs := map[string]map[uint64]bool{}
	epochs := map[string]string{}
	for _, it := range items {
		if ids[it.ID] {
			t.Fatalf("item %s stored twice", it.ID)
		}
		ids[it.ID] = true
		if it.Refused != "" {
			t.Fatalf("item %d of %s refused: %s", it.Seq, it.TerminalID, it.Refused)
		}
		if e, ok := epochs[it.TerminalID]; ok && e != it.Epoch {
			t.Fatalf("terminal %s stored items of two epochs", it.TerminalID)
		}
		epochs[it.TerminalID] = it.Epoch
		if seqs[it.TerminalID] == nil {
			seqs[it.TerminalID] = map[uint64]bool{}
		}
		if seqs[it.TerminalID][it.Seq] {
			t.Fatalf("terminal %s seq %d stored twice", it.TerminalID, it.Seq)
		}
		seqs[it.TerminalID][it.Seq] = true
		switch it.Kind {
		case wire.UpCharge, wire.UpMessage, wire.UpDeviceStatus:
		default:
			t.Fatalf("unexpected kind %q", it.Kind)
		}
	}
	if len(seqs) != cfg.Terminals {
		t.Fatalf("items from %d terminals, want %d", len(seqs), cfg.Terminals)
	}
	for term, s := range seqs {
		for q := uint64(1); q <= uint64(perTerm); q++ {
			if !s[q] {
				t.Fatalf("terminal %s: seq %d missing", term, q)
			}
		}
	}
	terms, err := r.Terminals()
	if err != nil || len(terms) != cfg.Terminals {
		t.Fatalf("relay lists %d terminals (%v), want %d", len(terms), err, cfg.Terminals)
	}

	// Latencies as a user reads them.
	if rep.Ack.Samples != int(rep.Batches) || rep.Ack.P50ms <= 0 || rep.Ack.P50ms > rep.Ack.P99ms || rep.Ack.P99ms > rep.Ack.MaxMs {
		t.Fatalf("ack latency %+v over %d batches: want samples = batches and 0 < p50 <= p99 <= max", rep.Ack, rep.Batches)
	}
	if rep.ItemsPerS <= 0 || rep.BatchesPerS <= 0 || rep.HandshakesPerS <= 0 {
		t.Fatalf("rates: %v items/s, %v batches/s, %v handshakes/s", rep.ItemsPerS, rep.BatchesPerS, rep.HandshakesPerS)
	}
	if rep.Relay == nil || rep.Relay.RSSEndMiB <= 0 || rep.Relay.HWMMiB < rep.Relay.RSSEndMiB {
		t.Fatalf("process figures: %+v", rep.Relay)
	}

	// The JSON line decodes to the same figures, and the table names them.
	var buf bytes.Buffer
	if err := rep.JSON(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.HasSuffix(buf.String(), "\n") {
		t.Fatalf("JSON report is %d lines, want one", n)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("decode JSON report: %v", err)
	}
	if back.Items != rep.Items || back.Ack != rep.Ack || back.Storm == nil || back.Verify == nil || !back.Verify.OK {
		t.Fatalf("JSON report decodes differently: %+v", back)
	}
	buf.Reset()
	if err := rep.Table(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"items acked", "ack latency", "reconnect storm", "exactly once     ok=true", "relay RSS"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}

	// The exactly-once check sees a gap: claim one more acknowledged item than the relay holds.
	var some relay.StoredItem = items[0]
	fake := &terminal{id: some.TerminalID, epoch: some.Epoch, nextSeq: uint64(perTerm) + 1}
	a := &admin{ep: endpoints{http: srv.URL}, token: testToken, hc: srv.Client()}
	v, err := verify(context.Background(), []*admin{a}, []*terminal{fake})
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.Missing != 1 || v.Stored != int64(perTerm) {
		t.Fatalf("verify with an item the relay never got: %+v, want 1 missing", v)
	}
}

// Two gateways list one store, each its own facilities as they stand and the other's as the kv
// state has them, behind: an item either lists is stored, a duplicate in either is counted,
// and an item neither lists is missing.
func TestCheckCountsWhatAnyGatewayLists(t *testing.T) {
	a := &terminal{id: "ta", epoch: "e1", nextSeq: 3}
	b := &terminal{id: "tb", epoch: "e1", nextSeq: 2}
	item := func(term *terminal, seq uint64) storedItem {
		return storedItem{Seq: seq, ID: fmt.Sprintf("%s-%d", term.id, seq), TerminalID: term.id, Epoch: term.epoch}
	}
	// Gateway 1 holds a's facility, gateway 2 b's: each lists the other's last item late.
	one := []storedItem{item(a, 1), item(a, 2), item(a, 3), item(b, 1)}
	two := []storedItem{item(a, 1), item(a, 2), item(b, 1), item(b, 2), {Seq: 9, ID: "x", TerminalID: "not-ours", Epoch: "e1"}}
	v := check([][]storedItem{one, two}, []*terminal{a, b})
	if !v.OK || v.Stored != 5 || v.Missing != 0 {
		t.Fatalf("both listings: %+v, want 5 stored, none missing", v)
	}
	if v := check([][]storedItem{one}, []*terminal{a, b}); v.OK || v.Missing != 1 {
		t.Fatalf("gateway 1's listing alone: %+v, want b's last item missing", v)
	}
	two = append(two, item(b, 2))
	a.nextSeq = 4
	v = check([][]storedItem{one, two}, []*terminal{a, b})
	if v.OK || v.Duplicates != 1 || v.Missing != 1 || v.Stored != 6 {
		t.Fatalf("a duplicate in one listing, an item in none: %+v, want 1 duplicate, 1 missing, 6 stored", v)
	}
}

// A duration-bound run with periodic cuts stops by itself, and everything it made is acknowledged
// within the drain.
func TestLoadByDurationWithPeriodicCuts(t *testing.T) {
	r, srv := newRelay(t)
	cfg := testConfig(srv.URL)
	cfg.Terminals, cfg.Batches, cfg.Duration = 6, 0, 1500*time.Millisecond
	cfg.CutProb, cfg.CutEvery, cfg.Storm, cfg.StormAt = 0, 300*time.Millisecond, true, 500*time.Millisecond
	cfg.BatchItems, cfg.Window = 1, 2
	cfg.Mix = Mix{Message: 1}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Items == 0 || rep.Unacked != 0 || rep.DrainTimeout {
		t.Fatalf("report: %d items, %d unacknowledged, drain timeout %v", rep.Items, rep.Unacked, rep.DrainTimeout)
	}
	if rep.Storm == nil || !rep.Storm.DuringLoad || rep.Storm.Recovered != cfg.Terminals {
		t.Fatalf("storm during the load: %+v", rep.Storm)
	}
	if !rep.Verify.OK {
		t.Fatalf("exactly once: %+v", rep.Verify)
	}
	// Requests to staff go straight to the department (their own review setting is off by
	// default): every letter sent is on the relay once, delivered.
	stored, err := r.Outbound(relay.OutboundFilter{Status: kiosk.MsgDelivered})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(stored)) != rep.Items {
		t.Fatalf("%d letters delivered, want the %d sent", len(stored), rep.Items)
	}
}

// A paced load makes no more batches than its rate allows: each terminal one every
// Terminals/Rate seconds, the first at a random point of its first interval, so at most
// Rate×Duration + Terminals in all (a slow machine makes fewer, never more). Every one is
// stored exactly once, and the report says the rate it ran at.
func TestPacedLoadKeepsToItsRate(t *testing.T) {
	_, srv := newRelay(t)
	cfg := testConfig(srv.URL)
	cfg.Terminals, cfg.Batches, cfg.Duration, cfg.Rate = 10, 0, time.Second, 50
	cfg.CutProb, cfg.Storm, cfg.BatchItems = 0, false, 1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	most := int64(cfg.Rate*cfg.Duration.Seconds()) + int64(cfg.Terminals)
	if rep.Batches == 0 || rep.Batches > most || rep.Unacked != 0 {
		t.Fatalf("paced at %g a second for %v: %d batches acknowledged (%d unacknowledged), want 1..%d", cfg.Rate, cfg.Duration, rep.Batches, rep.Unacked, most)
	}
	if rep.Rate != cfg.Rate || !rep.Verify.OK {
		t.Fatalf("report: rate %g, exactly once %+v; want %g and ok", rep.Rate, rep.Verify, cfg.Rate)
	}
}

// Each baseline runs and reports a positive rate, and leaves no file behind.
func TestBaselines(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{BaselineFsync, BaselineUpdate, BaselineBatch} {
		b, err := RunBaseline(context.Background(), name, dir, 4, 200*time.Millisecond, BaselineEnv{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b.Ops <= 0 || b.OpsPerS <= 0 || b.Name != name {
			t.Fatalf("%s: %+v, want a positive rate", name, b)
		}
		if want := map[string]int{BaselineFsync: 1}[name]; want != 0 && b.Writers != want {
			t.Fatalf("%s: %d writers, want %d", name, b.Writers, want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("baselines left %d entries in %s", len(left), dir)
	}
	if _, err := ParseBaselines("fsync,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown baseline: %v", err)
	}
}

// The command line refuses what it cannot run, naming the flag.
func TestFlags(t *testing.T) {
	tok := t.TempDir() + "/tok"
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-spawn"},
		{[]string{"-spawn", "relayd", "-relay", "http://127.0.0.1:1"}, "leave out -relay"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-duration", "1s", "-batches", "3"}, "exactly one of -duration, -batches and -idle"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-idle", "1s", "-storm"}, "-idle holds"},
		{[]string{"-spawn", "relayd", "-gateways", "2"}, "-nats-server or -store"},
		{[]string{"-spawn", "relayd", "-nats-server", "ns", "-store", "nats://127.0.0.1:4222"}, "give one"},
		{[]string{"-spawn", "relayd", "-baseline", "jetstream"}, "-baseline jetstream"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-gateways", "2"}, "go with -spawn"},
		{[]string{"-relay", "http://127.0.0.1:1,http://127.0.0.1:2", "-admin-token-file", tok, "-relay-pid", "1"}, "-relay-pid names 1 processes for 2"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-mix", "charge=x"}, "-mix"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-batch-items", "300"}, "-batch-items"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-rate", "-5"}, "-rate -5"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-idle", "1s", "-rate", "10"}, "no -rate"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-baseline", "fsync,fsync"}, "twice"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", t.TempDir() + "/none"}, "-admin-token-file"},
		{[]string{"-spawn", "relayd", "-nats-server", "ns", "-nats-ca", "ca.pem"}, "go with -store"},
		{[]string{"-spawn", "relayd", "-store", "nats://127.0.0.1:4222", "-nats-cert", "c.pem"}, "go together"},
		{[]string{"-spawn", "relayd", "-relay-file"}, "-relay-file spawns relayd on a file beside a cluster"},
		{[]string{"-relay", "http://127.0.0.1:1", "-admin-token-file", tok, "-relay-file"}, "-relay-file spawns relayd on a file beside a cluster"},
		{[]string{"-spawn", "relayd", "-nats-server", "ns", "-relay-file", "-gateways", "2"}, "-relay-file with -gateways 2"},
	} {
		_, err := parseFlags(c.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one naming %q", c.args, err, c.want)
		}
	}
	o, err := parseFlags([]string{"-relay", "ws://127.0.0.1:1/", "-admin-token-file", tok}, &bytes.Buffer{})
	if err != nil || o.cfg.AdminToken != testToken || o.cfg.Duration != 30*time.Second {
		t.Fatalf("defaults: %v %+v", err, o.cfg)
	}
}

// With -relay-file the spawned relayd keeps its state on its own file beside the cluster that
// -nats-server starts, so the cluster serves the jetstream baseline alone; without it the
// relay's state is in the cluster.
func TestRelayFileKeepsTheRelayOffTheCluster(t *testing.T) {
	const cluster = "nats://127.0.0.1:1,nats://127.0.0.1:2"
	for _, c := range []struct {
		args      []string
		wantStore bool
	}{
		{[]string{"-spawn", "relayd", "-nats-server", "ns", "-baseline", "jetstream"}, true},
		{[]string{"-spawn", "relayd", "-nats-server", "ns", "-baseline", "jetstream", "-relay-file"}, false},
		{[]string{"-spawn", "relayd", "-store", cluster, "-relay-file"}, false},
	} {
		o, err := parseFlags(c.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		store := o.relayStore(cluster)
		args := strings.Join(gatewayArgs(o, store, []string{"http://127.0.0.1:9"}, 0, "127.0.0.1:10"), " ")
		if got := strings.Contains(args, "-store "+cluster); got != c.wantStore || (store != "") != c.wantStore {
			t.Errorf("%q: relayd %s (store %q), want the cluster as its store: %v", c.args, args, store, c.wantStore)
		}
		// The cluster's CPU over the load is the relay's only where the relay is on it; the
		// baseline publishes to the cluster, counts its CPU, and with -relay-file over two
		// connections, as against the two gateways the runs have.
		nodes := []int{11, 12, 13}
		if got := o.relayClusterPIDs(nodes); (len(got) == 3) != c.wantStore {
			t.Errorf("%q: the relay's cluster processes %v, want the nodes counted: %v", c.args, got, c.wantStore)
		}
		env := o.baselineEnv(cluster, nil, 1, 309, nodes)
		wantConns := 1
		if !c.wantStore {
			wantConns = 2
		}
		if env.NATS != cluster || env.Conns != wantConns || env.MsgBytes != 309 || len(env.CPUPIDs) != 3 {
			t.Errorf("%q: the baseline's %+v, want the cluster over %d connections, 309-byte messages, the nodes' CPU", c.args, env, wantConns)
		}
	}
}

func TestParseRelayURL(t *testing.T) {
	ep, err := parseRelayURL("wss://relay.example:8443/")
	if err != nil || ep.http != "https://relay.example:8443" || ep.ws != "wss://relay.example:8443"+wire.PathTerminal {
		t.Fatalf("parse: %+v %v", ep, err)
	}
	for _, bad := range []string{"ftp://x", "http://u:p@x", "http://x/path", "http://x?q=1", "x"} {
		if _, err := parseRelayURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("%q: the error repeats the password: %v", bad, err)
		}
	}
}
