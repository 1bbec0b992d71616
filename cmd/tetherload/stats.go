package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Latency summarises acknowledgement latencies: the time from writing a batch to reading the
// ack that covers its last item.
type Latency struct {
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// summarise sorts ds in place and reads the nearest-rank percentiles.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.999999) - 1 // nearest rank: ceil(p*n), 1-based
		return ds[max(0, min(i, len(ds)-1))]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{Samples: len(ds), P50ms: ms(rank(0.50)), P99ms: ms(rank(0.99)), MaxMs: ms(ds[len(ds)-1])}
}

// procMem is what /proc/<pid>/status says of a process's memory, in KiB.
type procMem struct {
	RSSKiB, HWMKiB int64
}

// parseProcStatus reads VmRSS and VmHWM from the text of /proc/<pid>/status.
func parseProcStatus(b []byte) (procMem, error) {
	var m procMem
	var haveRSS, haveHWM bool
	for _, line := range bytes.Split(b, []byte("\n")) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst, haveRSS = &m.RSSKiB, true
		case "VmHWM":
			dst, haveHWM = &m.HWMKiB, true
		default:
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return procMem{}, fmt.Errorf("/proc status: %s is %q, want \"<n> kB\"", name, bytes.TrimSpace(rest))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return procMem{}, fmt.Errorf("/proc status: %s is not a size: %q", name, f[0])
		}
		*dst = n
	}
	if !haveRSS || !haveHWM {
		return procMem{}, fmt.Errorf("/proc status: VmRSS or VmHWM missing (a kernel thread or a zombie?)")
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports (the kernel fixes it for user space), so no sysconf is needed.
const clockTicks = 100

// parseProcStat reads utime+stime (fields 14 and 15) from /proc/<pid>/stat as CPU time. The
// command name (field 2) is in parentheses and may hold spaces or parentheses itself, so the
// fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		// 2^36 ticks is over 20 years of CPU; the bound keeps the Duration below overflow.
		if err != nil || n < 0 || n > 1<<36 {
			return 0, fmt.Errorf("/proc stat: utime/stime %q is not a tick count", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// procSample is one reading of a process's memory and CPU time.
type procSample struct {
	at  time.Time
	mem procMem
	cpu time.Duration
}

func sampleProc(pid int) (procSample, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read relay process %d: %w", pid, err)
	}
	mem, err := parseProcStatus(st)
	if err != nil {
		return procSample{}, fmt.Errorf("relay process %d: %w", pid, err)
	}
	sb, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read relay process %d: %w", pid, err)
	}
	cpu, err := parseProcStat(sb)
	if err != nil {
		return procSample{}, fmt.Errorf("relay process %d: %w", pid, err)
	}
	return procSample{at: time.Now(), mem: mem, cpu: cpu}, nil
}

// loadAverage is the first field of /proc/loadavg, or -1 if it cannot be read: the machine is
// shared, and the figure tells a reader how much else ran.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// goMem is what a relayd's Go runtime says of its memory, after a GC.
type goMem struct {
	HeapInuse, StackInuse uint64
	Goroutines            int
}

// readGoMem asks a relayd's -debug-listen for a heap profile after three GCs (whose text form
// ends with the runtime's MemStats) and for its goroutine count.
func readGoMem(ctx context.Context, hc *http.Client, base string) (goMem, error) {
	get := func(path string) ([]byte, error) {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	}
	// Two collections first: each may halve a goroutine's stack that uses under a quarter of
	// it, so an idle relay's stacks (grown during the handshake) settle to what it holds for
	// good, as the relay's own periodic collections would make them over a few minutes.
	for range 2 {
		if _, err := get("/debug/pprof/heap?gc=1"); err != nil {
			return goMem{}, fmt.Errorf("relay GC through %s: %w", base, err)
		}
	}
	heap, err := get("/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return goMem{}, fmt.Errorf("relay heap from %s: %w", base, err)
	}
	gor, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return goMem{}, fmt.Errorf("relay goroutines from %s: %w", base, err)
	}
	return parseGoMem(heap, gor)
}

// parseGoMem reads "# HeapInuse = N" and "# Stack = inuse / sys" from a debug=1 heap profile
// and "goroutine profile: total N" from a debug=1 goroutine profile.
func parseGoMem(heap, goroutines []byte) (goMem, error) {
	var m goMem
	var haveHeap, haveStack bool
	for line := range bytes.SplitSeq(heap, []byte("\n")) {
		name, val, ok := bytes.Cut(bytes.TrimPrefix(line, []byte("# ")), []byte(" = "))
		if !ok || !bytes.HasPrefix(line, []byte("# ")) {
			continue
		}
		switch string(name) {
		case "HeapInuse":
			n, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
			if err != nil {
				return goMem{}, fmt.Errorf("heap profile: HeapInuse %q", val)
			}
			m.HeapInuse, haveHeap = n, true
		case "Stack":
			inuse, _, _ := bytes.Cut(val, []byte(" / "))
			n, err := strconv.ParseUint(string(bytes.TrimSpace(inuse)), 10, 64)
			if err != nil {
				return goMem{}, fmt.Errorf("heap profile: Stack %q", val)
			}
			m.StackInuse, haveStack = n, true
		}
	}
	if !haveHeap || !haveStack {
		return goMem{}, errors.New("heap profile: no HeapInuse or Stack line (not a debug=1 heap profile?)")
	}
	first, _, _ := bytes.Cut(goroutines, []byte("\n"))
	_, total, ok := bytes.Cut(first, []byte("goroutine profile: total "))
	n, err := strconv.Atoi(string(bytes.TrimSpace(total)))
	if !ok || err != nil {
		return goMem{}, fmt.Errorf("goroutine profile: first line %q", first)
	}
	m.Goroutines = n
	return m, nil
}

// storeOpsMetric is the relay's count of what its key-value store did, by op (sync/relay
// metrics.go): only a store that counts (JetStream) exports it.
const storeOpsMetric = "tether_store_kv_total"

// readStoreOps scrapes a relay's /metrics for storeOpsMetric; a relay that exports none gives
// an empty map.
func readStoreOps(ctx context.Context, hc *http.Client, base string) (map[string]int64, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("relay metrics from %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("relay metrics from %s: status %d", base, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("relay metrics from %s: %w", base, err)
	}
	return parseStoreOps(b)
}

// parseStoreOps reads the lines `tether_store_kv_total{op="x"} N` of a Prometheus text page.
func parseStoreOps(page []byte) (map[string]int64, error) {
	ops := map[string]int64{}
	for line := range strings.Lines(string(page)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), storeOpsMetric+`{op="`)
		if !ok {
			continue
		}
		op, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", storeOpsMetric, line)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("%s{op=%q}: %w", storeOpsMetric, op, err)
		}
		ops[op] = int64(f)
	}
	return ops, nil
}

// cpuOf is the CPU time the processes pids have used so far, summed.
func cpuOf(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		s, err := sampleProc(pid)
		if err != nil {
			return 0, err
		}
		sum += s.cpu
	}
	return sum, nil
}
