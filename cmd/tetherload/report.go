package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is what one run measured. It is printed as a table and as one JSON line; the JSON
// names are the contract for scripts that compare runs.
type Report struct {
	// storeOps is each gateway's store counts at the load's start and end (fillRelays).
	storeOps [][2]map[string]int64
	// What was run.
	Terminals   int     `json:"terminals"`
	PerFacility int     `json:"per_facility"`
	Facilities  int     `json:"facilities"`
	BatchItems  int     `json:"batch_items"`
	Window      int     `json:"window"`
	Rate        float64 `json:"rate,omitempty"` // -rate: the paced load's batches a second (0: unpaced)
	Mix         string  `json:"mix"`
	CutEveryS   float64 `json:"cut_every_s,omitempty"`
	CutProb     float64 `json:"cut_prob,omitempty"`
	Seed        uint64  `json:"seed"`
	Gateways    int     `json:"gateways"`        // relay gateways the terminals were spread over
	Store       string  `json:"store,omitempty"` // "nats" when the gateways keep their state in a NATS cluster
	// The machine, because it is shared: figures are only comparable within one run.
	CPUs    int     `json:"cpus"`
	LoadAvg float64 `json:"loadavg"`
	Go      string  `json:"go"`

	// Setup and connection ramp.
	EnrollS         float64 `json:"enroll_s"`
	EnrollPerS      float64 `json:"enroll_per_s"`
	RampS           float64 `json:"ramp_s"`
	HandshakesPerS  float64 `json:"handshakes_per_s"` // first connections of all terminals / ramp time
	Handshakes      int64   `json:"handshakes"`       // every welcome of the run, reconnects too
	HandshakeErrors int64   `json:"handshake_errors"`
	Busy            int64   `json:"busy"` // handshakes refused with 1013 (too many unauthenticated)
	// Redirects are handshakes answered with a redirect to the facility's gateway (-homes).
	Redirects int64 `json:"redirects,omitempty"`

	// The load.
	LoadS        float64 `json:"load_s"` // from the first batch to the last ack (or the drain limit)
	Items        int64   `json:"items"`  // items acknowledged, each counted once
	Batches      int64   `json:"batches"`
	ItemsPerS    float64 `json:"items_per_s"`
	BatchesPerS  float64 `json:"batches_per_s"`
	Ack          Latency `json:"ack"`
	Rejected     int64   `json:"rejected"` // items the relay refused (a realistic load has none)
	DownItems    int64   `json:"down_items"`
	DownPerS     float64 `json:"down_per_s"`
	DownAcks     int64   `json:"down_acks"` // down_ack frames sent (the relay makes one durable write for each)
	DownAcksPerS float64 `json:"down_acks_per_s"`
	Cuts         int64   `json:"cuts"`
	Lost         int64   `json:"lost"` // connections ended by the relay or the network, not the tool
	Unacked      int64   `json:"unacked"`
	DrainTimeout bool    `json:"drain_timeout,omitempty"`
	BatchBytes   int     `json:"batch_bytes"`      // mean uplink batch frame, as encoded
	IdleS        float64 `json:"idle_s,omitempty"` // -idle: how long the connections were held, with no load
	// The tool's own CPU during the load (its terminals share the machine with the relay).
	ToolCPUS       float64 `json:"tool_cpu_s,omitempty"`
	ToolCPUPercent float64 `json:"tool_cpu_pct,omitempty"`
	// The NATS nodes' CPU during the load, when the tool started them (-nats-server).
	ClusterCPUS float64 `json:"cluster_cpu_s,omitempty"`
	// CPU is what an acknowledged batch cost the machine, by part; with a baseline's CPU an
	// operation it says how far the machine's CPU alone lets the ratio go.
	CPU *CPUCost `json:"cpu,omitempty"`
	// Streams is what each stream of the gateways' cluster took during the load (StoreNATS).
	Streams []StreamFigure `json:"streams,omitempty"`

	Storm *Storm `json:"storm,omitempty"`

	// Why things went wrong, counted by reason (close code and reason, or a short error).
	LostReasons    map[string]int64 `json:"lost_reasons,omitempty"`
	FailureReasons map[string]int64 `json:"failure_reasons,omitempty"`
	Anomalies      map[string]int64 `json:"anomalies,omitempty"`

	Verify *Verify      `json:"verify,omitempty"`
	Relay  *RelayStats  `json:"relay,omitempty"`  // one relay
	Relays []RelayStats `json:"relays,omitempty"` // several gateways, in -relay order
	// What a connected terminal costs the relay, over every gateway: (connected - enrolled)
	// summed over the gateways, divided by the terminals.
	RelayKiBPerConn   float64 `json:"relay_kib_per_conn,omitempty"`    // RSS
	RelayGoKiBPerConn float64 `json:"relay_go_kib_per_conn,omitempty"` // Go heap in use + stacks, after a GC
	// RelayKiBPerTerminal is what a terminal costs with its enrollment: RSS from start to
	// connected summed over the gateways, divided by the terminals (docs/SCALE.md, "10,000
	// idle kiosks, stop 44": the enrollments' memory is not all the connections').
	RelayKiBPerTerminal float64 `json:"relay_kib_per_terminal,omitempty"`

	Baselines []Baseline `json:"baselines,omitempty"`
}

// Storm is the reconnect storm: every terminal cut at once, and the time until the last one
// was welcomed again.
type Storm struct {
	Terminals  int     `json:"terminals"`
	RecoverS   float64 `json:"recover_s"`
	Recovered  int     `json:"recovered"`
	Busy       int64   `json:"busy"`
	TimedOut   bool    `json:"timed_out,omitempty"`
	DuringLoad bool    `json:"during_load,omitempty"`
}

// Verify is the check, through the admin API, that the relay holds every acknowledged item
// exactly once.
type Verify struct {
	Stored     int64 `json:"stored"`     // items of this run's terminals the relay lists
	Duplicates int64 `json:"duplicates"` // the same item id, or (terminal, epoch, seq), listed twice
	Missing    int64 `json:"missing"`    // acknowledged but not listed
	Refused    int64 `json:"refused"`
	OK         bool  `json:"ok"`
}

// RelayStats is one relay process (a gateway), read from /proc and, when its -debug-listen
// address is known, from its Go runtime (after a GC).
type RelayStats struct {
	URL             string  `json:"url,omitempty"`
	Terminals       int     `json:"terminals"` // connected to this gateway
	PID             int     `json:"pid,omitempty"`
	RSSStartMiB     float64 `json:"rss_start_mib"`     // before enrollment
	RSSEnrolledMiB  float64 `json:"rss_enrolled_mib"`  // terminals enrolled, none connected
	RSSConnectedMiB float64 `json:"rss_connected_mib"` // all terminals welcomed (after -idle), before the load
	RSSEndMiB       float64 `json:"rss_end_mib"`
	HWMMiB          float64 `json:"hwm_mib"`
	KiBPerTerminal  float64 `json:"kib_per_terminal"` // (connected - start) / terminals: enrollment included
	KiBPerConn      float64 `json:"kib_per_conn"`     // (connected - enrolled) / terminals: the connections alone
	CPUS            float64 `json:"cpu_s"`            // during the load
	CPUPercent      float64 `json:"cpu_pct"`          // of one core, during the load
	// Go heap in use plus goroutine stacks, in MiB, and goroutines, from /debug/pprof.
	GoEnrolledMiB       float64 `json:"go_enrolled_mib,omitempty"`
	GoConnectedMiB      float64 `json:"go_connected_mib,omitempty"`
	GoKiBPerConn        float64 `json:"go_kib_per_conn,omitempty"`
	StackKiBPerConn     float64 `json:"stack_kib_per_conn,omitempty"`
	GoroutinesEnrolled  int     `json:"goroutines_enrolled,omitempty"`
	GoroutinesConnected int     `json:"goroutines_connected,omitempty"`
	// StoreOps is what the gateway's store did during the load (tether_store_kv_total: commit,
	// conflict, read, cache_hit, list, message, view), when it counts (JetStream).
	StoreOps map[string]int64 `json:"store_ops,omitempty"`
}

// Baseline is a durable-write loop measured in the same run, and the relay's batches/s as a
// ratio to it.
type Baseline struct {
	Name    string  `json:"name"`
	Writers int     `json:"writers"`
	Ops     int64   `json:"ops"`
	OpsPerS float64 `json:"ops_per_s"`
	Ratio   float64 `json:"ratio"` // relay batches/s ÷ ops/s
	// The jetstream baseline: message size, NATS connections the writers share, and each
	// publish's time to its ack.
	MsgBytes int      `json:"msg_bytes,omitempty"`
	Conns    int      `json:"conns,omitempty"`
	Latency  *Latency `json:"latency,omitempty"`
	// What an operation cost the machine: the tool's CPU and the cluster's (the relays are
	// stopped by then), in µs, and how busy the machine's CPUs were.
	CPUPerOpUS float64 `json:"cpu_per_op_us,omitempty"`
	MachinePct float64 `json:"machine_pct,omitempty"`
	// BatchCost is an acknowledged batch's CPU (Report.CPU.TotalUS) in operations' CPU: on a
	// machine whose CPUs are the limit in both, the ratio cannot exceed 1/BatchCost. ToolCost
	// is the tool's share of it alone.
	BatchCost float64 `json:"batch_cost_ops,omitempty"`
	ToolCost  float64 `json:"tool_cost_ops,omitempty"`
}

// CPUCost is the CPU an acknowledged batch cost, in µs: the tool (its terminals), the gateways
// and, when the tool started it, the NATS cluster; and how busy the machine's CPUs were.
type CPUCost struct {
	ToolUS     float64 `json:"tool_us"`
	GatewaysUS float64 `json:"gateways_us"`
	ClusterUS  float64 `json:"cluster_us,omitempty"`
	TotalUS    float64 `json:"total_us"`
	MachinePct float64 `json:"machine_pct"`
}

// fillCPU divides the load's CPU figures by the batches acknowledged; wall is the span they
// cover. It leaves CPU nil when the relays' processes were not known.
func (rep *Report) fillCPU(wall time.Duration) {
	if rep.Batches == 0 || wall <= 0 || rep.IdleS > 0 {
		return
	}
	var gw float64
	n := 0
	for _, s := range rep.Relays {
		if s.PID != 0 {
			gw += s.CPUS
			n++
		}
	}
	if rep.Relay != nil && rep.Relay.PID != 0 {
		gw += rep.Relay.CPUS
		n++
	}
	if n == 0 {
		return
	}
	per := func(s float64) float64 { return 1e6 * s / float64(rep.Batches) }
	c := &CPUCost{ToolUS: per(rep.ToolCPUS), GatewaysUS: per(gw), ClusterUS: per(rep.ClusterCPUS)}
	c.TotalUS = c.ToolUS + c.GatewaysUS + c.ClusterUS
	c.MachinePct = 100 * (rep.ToolCPUS + gw + rep.ClusterCPUS) / wall.Seconds() / float64(max(rep.CPUs, 1))
	rep.CPU = c
}

// costIn fills b's cost figures from its CPU an operation and the load's CPU a batch.
func (b *Baseline) costIn(rep *Report) {
	if b.CPUPerOpUS <= 0 || rep.CPU == nil {
		return
	}
	b.BatchCost = rep.CPU.TotalUS / b.CPUPerOpUS
	b.ToolCost = rep.CPU.ToolUS / b.CPUPerOpUS
}

// JSON writes the report as one line.
func (rep *Report) JSON(w io.Writer) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Table writes the report for a person.
func (rep *Report) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("terminals", "%d kiosks in %d facilities (%d each)", rep.Terminals, rep.Facilities, rep.PerFacility)
	if rep.Gateways > 1 || rep.Store != "" {
		row("relay", "%d gateway(s), store %s", rep.Gateways, cmp.Or(rep.Store, "bbolt"))
	}
	row("batches", "%d item(s) each, window %d, mix %s", rep.BatchItems, rep.Window, rep.Mix)
	if rep.CutEveryS > 0 {
		row("link cuts", "about every %.3gs per terminal", rep.CutEveryS)
	}
	if rep.CutProb > 0 {
		row("link cuts", "with probability %.3g after each batch", rep.CutProb)
	}
	row("machine", "%d CPUs, load average %.2f at start, %s", rep.CPUs, rep.LoadAvg, rep.Go)
	row("enrollment", "%.2fs (%.0f/s)", rep.EnrollS, rep.EnrollPerS)
	row("handshakes", "%.0f/s over the ramp (%.2fs); %d in all, %d failed, %d busy, %d redirected", rep.HandshakesPerS, rep.RampS, rep.Handshakes, rep.HandshakeErrors, rep.Busy, rep.Redirects)
	if rep.IdleS > 0 {
		row("idle", "%.3gs, no load", rep.IdleS)
	}
	row("load", "%.2fs", rep.LoadS)
	row("items acked", "%d (%.0f/s)", rep.Items, rep.ItemsPerS)
	if rep.Rate > 0 {
		row("paced", "%.0f new batches a second offered (-rate)", rep.Rate)
	}
	row("batches acked", "%d (%.0f/s), %d bytes each on average", rep.Batches, rep.BatchesPerS, rep.BatchBytes)
	row("ack latency", "p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d batches)", rep.Ack.P50ms, rep.Ack.P99ms, rep.Ack.MaxMs, rep.Ack.Samples)
	row("downlink", "%d items applied (%.0f/s), %d down_acks sent (%.0f/s)", rep.DownItems, rep.DownPerS, rep.DownAcks, rep.DownAcksPerS)
	row("refused", "%d", rep.Rejected)
	if rep.ToolCPUS > 0 {
		row("tool CPU", "%.2fs during the load (%.0f%% of one core), %.0f µs a batch", rep.ToolCPUS, rep.ToolCPUPercent, 1e6*rep.ToolCPUS/float64(max(rep.Batches, 1)))
	}
	if c := rep.CPU; c != nil {
		cluster := ""
		if c.ClusterUS > 0 {
			cluster = fmt.Sprintf(" + cluster %.0f µs", c.ClusterUS)
		}
		row("CPU a batch", "tool %.0f µs + gateways %.0f µs%s = %.0f µs (the machine's CPUs %.0f%% busy)", c.ToolUS, c.GatewaysUS, cluster, c.TotalUS, c.MachinePct)
	}
	for _, f := range rep.Streams {
		row("stream "+f.Name, "%s", streamRow(f))
	}
	row("connections", "%d cut by the tool, %d lost (closed by the relay or the network)", rep.Cuts, rep.Lost)
	if rep.Unacked > 0 || rep.DrainTimeout {
		row("unacknowledged", "%d items at the end (drain limit reached: %v)", rep.Unacked, rep.DrainTimeout)
	}
	if s := rep.Storm; s != nil {
		during := "after the load"
		if s.DuringLoad {
			during = "during the load"
		}
		row("reconnect storm", "%d of %d welcomed again in %.2fs (%s; %d busy refusals, timed out: %v)",
			s.Recovered, s.Terminals, s.RecoverS, during, s.Busy, s.TimedOut)
	}
	for _, part := range []struct {
		name string
		m    map[string]int64
	}{{"lost because", rep.LostReasons}, {"failed because", rep.FailureReasons}, {"anomaly", rep.Anomalies}} {
		for _, k := range slices.Sorted(maps.Keys(part.m)) {
			row(part.name, "%s: %d", k, part.m[k])
		}
	}
	if v := rep.Verify; v != nil {
		row("exactly once", "ok=%v: %d stored, %d duplicates, %d missing, %d refused", v.OK, v.Stored, v.Duplicates, v.Missing, v.Refused)
	}
	relayRows := func(name string, s *RelayStats) {
		if s.PID != 0 {
			row(name+" RSS", "%.1f MiB at start, %.1f MiB enrolled, %.1f MiB connected (%.1f KiB per connection, %.1f KiB per terminal with enrollment), %.1f MiB at end, peak %.1f MiB",
				s.RSSStartMiB, s.RSSEnrolledMiB, s.RSSConnectedMiB, s.KiBPerConn, s.KiBPerTerminal, s.RSSEndMiB, s.HWMMiB)
			if rep.IdleS == 0 {
				row(name+" CPU", "%.2fs during the load (%.0f%% of one core), %.0f µs a batch", s.CPUS, s.CPUPercent, 1e6*s.CPUS/float64(max(rep.Batches, 1)))
			}
		}
		if len(s.StoreOps) > 0 {
			o := s.StoreOps
			per := func(n int64) float64 { return float64(n) / float64(max(o["commit"], 1)) }
			row(name+" store", "%d commits, %d conflicts (%.2f a commit), %d refused as too large, %d leader reads (%.1f a commit; %.1f one by one), %d replica reads (%.1f a commit), %d cache hits, %d listings (%.1f a commit), %d messages (%.1f a commit), %d views (%d run again)",
				o["commit"], o["conflict"], per(o["conflict"]), o["too_large"], o["read"], per(o["read"]), per(o["read"]-o["prefetch"]), o["replica_read"], per(o["replica_read"]), o["cache_hit"], o["list"], per(o["list"]), o["message"], per(o["message"]), o["view"], o["view_conflict"])
		}
		if s.GoroutinesConnected > 0 {
			row(name+" Go heap", "%.1f MiB enrolled, %.1f MiB connected (%.1f KiB per connection, stacks %.1f KiB), goroutines %d -> %d",
				s.GoEnrolledMiB, s.GoConnectedMiB, s.GoKiBPerConn, s.StackKiBPerConn, s.GoroutinesEnrolled, s.GoroutinesConnected)
		}
	}
	if s := rep.Relay; s != nil {
		relayRows("relay", s)
	}
	for i := range rep.Relays {
		s := &rep.Relays[i]
		name := fmt.Sprintf("gateway %d", i+1)
		row(name, "%s, %d terminals", s.URL, s.Terminals)
		relayRows(name, s)
	}
	if len(rep.Relays) > 0 && (rep.RelayKiBPerConn != 0 || rep.RelayGoKiBPerConn != 0) {
		row("memory per terminal", "%.1f KiB RSS with its enrollment; %.1f KiB RSS, %.1f KiB Go heap+stacks for the connections alone (all gateways)",
			rep.RelayKiBPerTerminal, rep.RelayKiBPerConn, rep.RelayGoKiBPerConn)
	}
	for _, b := range rep.Baselines {
		row("baseline "+b.Name, "%.0f ops/s (%d writers); relay batches/s ÷ this = %.3f", b.OpsPerS, b.Writers, b.Ratio)
		if b.Latency != nil {
			row("baseline "+b.Name, "%d-byte messages over %d connections; publish ack p50 %.2f ms, p99 %.2f ms, max %.2f ms",
				b.MsgBytes, b.Conns, b.Latency.P50ms, b.Latency.P99ms, b.Latency.MaxMs)
		}
		if b.CPUPerOpUS > 0 {
			row("baseline "+b.Name, "CPU an op %.1f µs (the machine's CPUs %.0f%% busy)", b.CPUPerOpUS, b.MachinePct)
		}
		if b.BatchCost > 0 {
			row("baseline "+b.Name, "a batch costs %.1f ops in CPU (the tool's share %.1f): where CPU is the limit, the ratio is at most %.3f", b.BatchCost, b.ToolCost, 1/b.BatchCost)
		}
	}
	return tw.Flush()
}
