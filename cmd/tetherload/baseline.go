package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
)

// Baseline names, for -baseline.
const (
	BaselineFsync  = "fsync"  // one writer: write a small record to a file and fsync it
	BaselineUpdate = "update" // W writers, each one Put per bbolt Update (one fsync per write)
	BaselineBatch  = "batch"  // W writers, each one Put per bbolt Batch (writes grouped into one commit)
	// W writers, each a synchronous nats.go js.Publish (waits for the ack) of a batch-sized
	// message to an R3 file stream: the durable write a JetStream relay is compared with.
	BaselineJetStream = "jetstream"
)

// ParseBaselines reads "fsync,update,batch" (any subset; "" or "none" for none).
func ParseBaselines(s string) ([]string, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case BaselineFsync, BaselineUpdate, BaselineBatch, BaselineJetStream:
		default:
			return nil, fmt.Errorf("-baseline %q: unknown baseline %q (want fsync, update, batch or jetstream)", s, name)
		}
		for _, prev := range out {
			if prev == name {
				return nil, fmt.Errorf("-baseline %q: %q is given twice", s, name)
			}
		}
		out = append(out, name)
	}
	return out, nil
}

// maxBaselineOps bounds each baseline in count as well as in time.
const maxBaselineOps = 10_000_000

// BaselineEnv is what the baselines write to besides a directory.
type BaselineEnv struct {
	NATS string // the cluster's servers, comma-separated, for jetstream
	// NATSOptions are the connection's credentials and TLS (tetherload -nats-creds and the like).
	NATSOptions []nats.Option
	Conns       int // NATS connections the jetstream writers share (as many as gateways)
	MsgBytes    int // the jetstream message size (the run's mean batch frame)
	// CPUPIDs are processes besides the tool whose CPU the baseline costs (the NATS nodes the
	// tool started), for Baseline.CPUPerOpUS.
	CPUPIDs []int
}

// RunBaseline measures one baseline in a fresh file under dir (or, for jetstream, in a fresh
// stream of env.NATS) for about d; writers is the number of concurrent writers of all but the
// fsync loop, which has one.
func RunBaseline(ctx context.Context, name, dir string, writers int, d time.Duration, env BaselineEnv) (Baseline, error) {
	// What the baseline costs the machine: the tool's CPU and env.CPUPIDs' (the relays are
	// stopped by then).
	pids := append([]int{os.Getpid()}, env.CPUPIDs...)
	cpu0, cpuErr := cpuOf(pids)
	t0 := time.Now()
	b, err := runBaseline(ctx, name, dir, writers, d, env)
	if err != nil {
		return b, err
	}
	if cpu1, err := cpuOf(pids); err == nil && cpuErr == nil && b.Ops > 0 {
		cpu, wall := cpu1-cpu0, time.Since(t0)
		b.CPUPerOpUS = float64(cpu.Microseconds()) / float64(b.Ops)
		b.MachinePct = 100 * cpu.Seconds() / wall.Seconds() / float64(runtime.NumCPU())
	}
	return b, nil
}

func runBaseline(ctx context.Context, name, dir string, writers int, d time.Duration, env BaselineEnv) (Baseline, error) {
	tmp, err := os.MkdirTemp(dir, "tetherload-baseline-")
	if err != nil {
		return Baseline{}, fmt.Errorf("baseline %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if name == BaselineJetStream {
		return publishLoop(ctx, env, writers, d)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var ops int64
	switch name {
	case BaselineFsync:
		writers = 1
		ops, err = fsyncLoop(ctx, filepath.Join(tmp, "fsync.log"))
	case BaselineUpdate, BaselineBatch:
		ops, err = boltLoop(ctx, filepath.Join(tmp, "baseline.db"), writers, name == BaselineBatch)
	default:
		err = fmt.Errorf("unknown baseline %q", name)
	}
	if err != nil {
		return Baseline{}, fmt.Errorf("baseline %s: %w", name, err)
	}
	el := time.Since(start).Seconds()
	return Baseline{Name: name, Writers: writers, Ops: ops, OpsPerS: float64(ops) / el}, nil
}

// fsyncLoop appends a 64-byte record and fsyncs, until ctx ends: the floor under any durable write.
func fsyncLoop(ctx context.Context, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rec := make([]byte, 64)
	var n int64
	for ctx.Err() == nil && n < maxBaselineOps {
		binary.BigEndian.PutUint64(rec, uint64(n))
		if _, err := f.Write(rec); err != nil {
			return n, err
		}
		if err := f.Sync(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// boltLoop runs writers goroutines, each putting one 64-byte value per transaction (Update) or
// per Batch call, until ctx ends.
func boltLoop(ctx context.Context, path string, writers int, batch bool) (int64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		return 0, err
	}
	var ops atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := make([]byte, 64)
			for i := 0; ctx.Err() == nil && ops.Load() < maxBaselineOps; i++ {
				key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, uint32(w)), uint64(i))
				put := func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(key, val) }
				var err error
				if batch {
					err = db.Batch(put)
				} else {
					err = db.Update(put)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	return ops.Load(), firstErr
}

// baselineStream is the jetstream baseline's stream, made for the run and deleted after it.
const baselineStream = "TETHERLOAD_BASELINE"

// publishLoop runs writers goroutines over env.Conns connections, each publishing
// env.MsgBytes-byte messages to an R3 file stream and waiting for each ack, for about d after
// the stream is made (connecting and making it are not counted: on a busy machine they can
// take longer than the window). A publish under way when the window ends is waited for and
// counted, so every writer counts at least one and the rate is never a window with nothing
// in it. The stream is deleted afterwards.
func publishLoop(ctx context.Context, env BaselineEnv, writers int, d time.Duration) (Baseline, error) {
	b := Baseline{Name: BaselineJetStream, Writers: writers, MsgBytes: max(env.MsgBytes, 1), Conns: max(env.Conns, 1)}
	fail := func(err error) (Baseline, error) { return Baseline{}, fmt.Errorf("baseline jetstream: %w", err) }
	var jss []jetstream.JetStream
	for range b.Conns {
		nc, err := nats.Connect(env.NATS, append([]nats.Option{nats.Name("tetherload-baseline")}, env.NATSOptions...)...)
		if err != nil {
			return fail(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fail(err)
		}
		jss = append(jss, js)
	}
	// The setup and the cleanup get their own time: ctx is the measuring window.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_ = jss[0].DeleteStream(sctx, baselineStream) // a crashed earlier run's
	if _, err := jss[0].CreateStream(sctx, jetstream.StreamConfig{Name: baselineStream, Subjects: []string{"tetherload.baseline.>"},
		Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		return fail(fmt.Errorf("make an R3 stream: %w", err))
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = jss[0].DeleteStream(dctx, baselineStream)
	}()
	payload := make([]byte, b.MsgBytes)
	var stop atomic.Bool
	window := time.AfterFunc(d, func() { stop.Store(true) })
	defer window.Stop()
	var ops atomic.Int64
	lats := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			js := jss[w%len(jss)]
			subj := fmt.Sprintf("tetherload.baseline.%d", w)
			for first := true; first || !stop.Load() && ctx.Err() == nil && ops.Load() < maxBaselineOps; first = false {
				at := time.Now()
				if _, err := js.Publish(ctx, subj, payload); err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err })
					}
					return
				}
				lats[w] = append(lats[w], time.Since(at))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if firstErr != nil {
		return fail(firstErr)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	lat := summarise(all)
	b.Latency = &lat
	b.Ops = ops.Load()
	b.OpsPerS = float64(b.Ops) / el
	return b, nil
}
