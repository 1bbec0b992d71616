package main

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarise(ds)
	if l.Samples != 100 || l.P50ms != 50 || l.P99ms != 99 || l.MaxMs != 100 {
		t.Fatalf("summarise 1..100 ms: %+v, want p50 50, p99 99, max 100", l)
	}
	if one := summarise([]time.Duration{3 * time.Millisecond}); one.P50ms != 3 || one.MaxMs != 3 {
		t.Fatalf("one sample: %+v", one)
	}
	if (summarise(nil) != Latency{}) {
		t.Fatal("no samples must give zero figures")
	}
}

// The /proc parsers read this very process.
func TestProcSelf(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.mem.RSSKiB <= 0 || s.mem.HWMKiB < s.mem.RSSKiB || s.cpu < 0 {
		t.Fatalf("this process: %+v", s)
	}
	if _, err := sampleProc(1 << 30); err == nil {
		t.Fatal("a process that does not exist gave figures")
	}
	// A command name with spaces and parentheses does not shift the fields.
	cpu, err := parseProcStat([]byte("42 (a) b (c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1\n"))
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("stat with a tricky name: %v %v, want 3s", cpu, err)
	}
	if _, err := parseProcStatus([]byte("Name:\tx\nVmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Fatal("a size in MB accepted")
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix(" message=2, device_status=1 ")
	if err != nil || m != (Mix{Message: 2, Status: 1}) {
		t.Fatalf("parse: %+v %v", m, err)
	}
	for _, bad := range []string{"", "charge=0", "charge", "charge=-1", "charge=1,charge=2", "letters=3", "charge=1001"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{DefaultMix, "status=1", "message=3,charge=0", "charge=,", "device_status=1,status=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		if m.Charge < 0 || m.Message < 0 || m.Status < 0 || m.Charge+m.Message+m.Status == 0 {
			t.Fatalf("%q gave an unusable mix %+v", s, m)
		}
		again, err := ParseMix(m.String())
		if err != nil || again != m {
			t.Fatalf("%q: canonical form %q parses to %+v, %v", s, m.String(), again, err)
		}
	})
}

func FuzzParseProcStatus(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("VmRSS:\t1 kB\nVmHWM:\t2 kB\n"))
	f.Add([]byte("VmRSS: x kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseProcStatus(b)
		if err == nil && (m.RSSKiB < 0 || m.HWMKiB < 0) {
			t.Fatalf("negative size accepted: %+v", m)
		}
	})
}

func FuzzParseProcStat(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("1 (x) S 0 0 0 0 0 0 0 0 0 0 1 2 0"))
	f.Add([]byte("1 (x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseProcStat(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
	})
}

func FuzzParseRelayURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8443", "wss://relay.example/", "ws://[::1]:1", "http://u:p@h", "https://h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := parseRelayURL(s)
		if err != nil {
			return
		}
		if !strings.HasSuffix(ep.ws, "/v1/terminal") || strings.Contains(ep.http, "@") ||
			!(strings.HasPrefix(ep.http, "http://") || strings.HasPrefix(ep.http, "https://")) {
			t.Fatalf("%q gave endpoints %+v", s, ep)
		}
	})
}

// The relay's address is found in each form relayd has written its "serving" line in, and in
// no other line.
func TestServingURL(t *testing.T) {
	for line, want := range map[string]string{
		"relayd: serving http://127.0.0.1:4000 (data /tmp/x)":                                                              "http://127.0.0.1:4000",
		`time=2026-11-30T16:23:44.141Z level=INFO msg=serving url=http://127.0.0.1:35153 data=/tmp/d outbound_review=none`: "http://127.0.0.1:35153",
		`{"time":"2026-11-30T16:23:44Z","level":"INFO","msg":"serving","url":"http://127.0.0.1:9","data":"/tmp/d"}`:        "http://127.0.0.1:9",
	} {
		if got, ok := servingURL(line); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", line, got, ok, want)
		}
	}
	for _, line := range []string{
		`time=2026-11-30T16:23:44.141Z level=INFO msg="staff console" url=http://127.0.0.1:35153/console/`,
		"relayd: generated admin token",
	} {
		if got, ok := servingURL(line); ok {
			t.Errorf("%s: found %q in a line that is not the serving line", line, got)
		}
	}
}

// The store's counts are read off a relay's metrics page, among other series; a page without
// them (a bbolt relay) gives none, and a garbled value is an error naming the op.
func TestParseStoreOps(t *testing.T) {
	page := "# HELP tether_store_kv_total What the store did.\n# TYPE tether_store_kv_total counter\n" +
		"tether_store_kv_total{op=\"commit\"} 1234\ntether_store_kv_total{op=\"conflict\"} 5.0e+01\n" +
		"tether_store_write_transactions_total 99\n"
	ops, err := parseStoreOps([]byte(page))
	if err != nil || len(ops) != 2 || ops["commit"] != 1234 || ops["conflict"] != 50 {
		t.Fatalf("parseStoreOps = %v, %v", ops, err)
	}
	if ops, err := parseStoreOps([]byte("tether_store_write_transactions_total 99\n")); err != nil || len(ops) != 0 {
		t.Fatalf("a page without the series = %v, %v", ops, err)
	}
	if _, err := parseStoreOps([]byte("tether_store_kv_total{op=\"read\"} x\n")); err == nil || !strings.Contains(err.Error(), "read") {
		t.Fatalf("a garbled value: %v", err)
	}
}

// What a batch costs and how far that lets the ratio go: 1,000 batches over 1 s on 2 CPUs,
// the tool 0.1 s, the gateways 0.2 + 0.3 s, the cluster 0.4 s; a baseline op 50 µs.
func TestCPUCost(t *testing.T) {
	rep := &Report{Batches: 1000, CPUs: 2, ToolCPUS: 0.1, ClusterCPUS: 0.4,
		Relays: []RelayStats{{PID: 1, CPUS: 0.2}, {PID: 2, CPUS: 0.3}}}
	rep.fillCPU(time.Second)
	want := CPUCost{ToolUS: 100, GatewaysUS: 500, ClusterUS: 400, TotalUS: 1000, MachinePct: 50}
	if rep.CPU == nil || *rep.CPU != want {
		t.Fatalf("CPU a batch %+v, want %+v", rep.CPU, want)
	}
	b := Baseline{Name: "jetstream", OpsPerS: 40000, CPUPerOpUS: 50, MachinePct: 100}
	b.costIn(rep)
	if b.BatchCost != 20 || b.ToolCost != 2 {
		t.Fatalf("a batch costs %v ops, the tool %v; want 20 and 2", b.BatchCost, b.ToolCost)
	}
	rep.Baselines = []Baseline{b}
	var buf bytes.Buffer
	if err := rep.Table(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"tool 100 µs + gateways 500 µs + cluster 400 µs = 1000 µs (the machine's CPUs 50% busy)",
		"CPU an op 50.0 µs (the machine's CPUs 100% busy)",
		"a batch costs 20.0 ops in CPU (the tool's share 2.0): where CPU is the limit, the ratio is at most 0.050",
	} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, buf.String())
		}
	}
	// Without the relays' processes nothing is divided, and an idle run has no batches.
	for _, r := range []*Report{{Batches: 1000, CPUs: 2, ToolCPUS: 0.1}, {CPUs: 2, ToolCPUS: 0.1, Relays: []RelayStats{{PID: 1, CPUS: 0.2}}}} {
		if r.fillCPU(time.Second); r.CPU != nil {
			t.Errorf("CPU a batch of %+v = %+v, want none", r, r.CPU)
		}
	}
}

// What each stream took during a load: its last sequence's move, with the bytes of what it
// holds spread over the messages; a stream made during the load counts from nothing, and one
// that took nothing is left out.
func TestStreamFigures(t *testing.T) {
	start := map[string]streamState{
		"relay":   {last: 1000, msgs: 900, bytes: 90_000},
		"content": {last: 50, msgs: 50, bytes: 5_000_000},
	}
	end := map[string]streamState{
		"relay":   {last: 3000, msgs: 2700, bytes: 540_000}, // 200 bytes a message held
		"content": {last: 50, msgs: 50, bytes: 5_000_000},
		"faclog":  {last: 400, msgs: 40, bytes: 400_000}, // new; trimmed to its latest 40
	}
	got := streamFigures(start, end, 1000)
	want := []StreamFigure{
		{Name: "faclog", Written: 400, PerBatch: 0.4, HeldMsgs: 40, HeldBytes: 400_000, BytesPerBatch: 4000},
		{Name: "relay", Written: 2000, PerBatch: 2, HeldMsgs: 2700, HeldBytes: 540_000, BytesPerBatch: 400},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stream figures:\n got %+v\nwant %+v", got, want)
	}
	if row := streamRow(got[1]); row != "2000 messages written (2.000 a batch), 200 B a message held: about 400 bytes a batch; 2700 messages, 527.3 KiB held at the end" {
		t.Fatalf("table row: %q", row)
	}
	if got := streamFigures(start, end, 0); len(got) != 2 || got[0].PerBatch != 0 || got[0].BytesPerBatch != 0 {
		t.Fatalf("with no batch: %+v", got)
	}
}
