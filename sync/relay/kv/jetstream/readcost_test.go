package jskv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// BenchmarkReadCosts measures, on one in-process 3-node cluster, what the cluster and client
// spend in CPU on each kind of request the store makes, beside a durable R3 publish, 64
// goroutines over two connections, each kind for b.N reads (or publishes) in total: a leader
// read (the JetStream API's message get), a direct get answered by any replica, multi gets of
// 8, 32 and 128 subjects (per subject), and the store's commits of 16 messages (per message). Everything runs in this process, so the process's CPU time
// over a phase is what that phase cost (docs/SCALE.md "Reads from replicas").
//
//	go test ./sync/relay/kv/jetstream/ -run '^$' -bench ReadCosts -benchtime 60000x
func BenchmarkReadCosts(b *testing.B) {
	c := natstest.Start(b)
	ncs := []*nats.Conn{c.Connect(0), c.Connect(1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	js, _ := jetstream.New(ncs[0])
	for _, name := range []string{"RCPUB", "RCKV"} {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"},
			Replicas: 3, Storage: jetstream.FileStorage, AllowDirect: name == "RCKV", MaxMsgsPerSubject: 1}); err != nil {
			b.Fatal(err)
		}
		c.WaitStream(ncs[0], name)
	}
	const keys = 1000
	payload := make([]byte, 400)
	for i := range keys {
		if _, err := js.Publish(ctx, fmt.Sprintf("RCKV.k%d", i), payload); err != nil {
			b.Fatal(err)
		}
	}
	const workers = 64
	// phase makes b.N reads (b.N/perOp requests of perOp subjects) or publishes.
	phase := func(name string, perOp int, fn func(nc *nats.Conn, w, i int) error) {
		requests := max(1, b.N/perOp)
		var next atomic.Int64
		cpu0, start := cpuTime(), time.Now()
		if d := each(b, workers, func(w int) error {
			for i := int(next.Add(1)); i <= requests; i = int(next.Add(1)) {
				if err := fn(ncs[w%2], w, i); err != nil {
					return err
				}
			}
			return nil
		}); d <= 0 {
			b.Fatal("no time passed")
		}
		el, cpu := time.Since(start), cpuTime()-cpu0
		b.ReportMetric(float64(cpu.Microseconds())/float64(requests*perOp), name+"-µs-cpu")
		b.ReportMetric(float64(requests*perOp)/el.Seconds(), name+"/s")
	}
	pub := func(nc *nats.Conn, _, i int) error {
		j, _ := jetstream.New(nc)
		_, err := j.Publish(ctx, "RCPUB.w"+strconv.Itoa(i%workers), payload)
		return err
	}
	leader := func(nc *nats.Conn, _, i int) error {
		req, _ := json.Marshal(map[string]string{"last_by_subj": fmt.Sprintf("RCKV.k%d", i%keys)})
		m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.RCKV", req)
		if err == nil && len(m.Data) < len(payload) {
			err = fmt.Errorf("leader read answered %q", m.Data)
		}
		return err
	}
	direct := func(nc *nats.Conn, _, i int) error {
		m, err := nc.RequestWithContext(ctx, fmt.Sprintf("$JS.API.DIRECT.GET.RCKV.RCKV.k%d", i%keys), nil)
		if err == nil && len(m.Data) != len(payload) {
			err = fmt.Errorf("direct get answered %d bytes, status %q", len(m.Data), m.Header.Get("Status"))
		}
		return err
	}
	// A multi get's answers come to an inbox each goroutine keeps, as the store's do to one
	// subscription for its life: a subscription a request would cost every server of the
	// cluster its interest and then its removal.
	inboxes := make([]*nats.Subscription, workers)
	for w := range inboxes {
		sub, err := ncs[w%2].SubscribeSync(nats.NewInbox())
		if err != nil {
			b.Fatal(err)
		}
		inboxes[w] = sub
	}
	multi := func(n int) func(nc *nats.Conn, w, i int) error {
		return func(nc *nats.Conn, w, i int) error {
			subjs := make([]string, n)
			for j := range subjs {
				subjs[j] = fmt.Sprintf("RCKV.k%d", (i*n+j)%keys)
			}
			req, _ := json.Marshal(map[string][]string{"multi_last": subjs})
			sub := inboxes[w]
			if err := nc.PublishRequest("$JS.API.DIRECT.GET.RCKV", sub.Subject, req); err != nil {
				return err
			}
			for got := 0; ; got++ {
				m, err := sub.NextMsgWithContext(ctx)
				if err != nil {
					return err
				}
				if st := m.Header.Get("Status"); st != "" {
					if st != "204" || got != n {
						return fmt.Errorf("multi get of %d: %d answered, then status %s", n, got, st)
					}
					return nil
				}
			}
		}
	}
	// A commit of 15 blind puts: 16 messages in one atomic batch (the keys and their bucket's
	// version), as the relay's group commits write them; per message.
	st := openOn(b, c, ncs[0], "RCTX")
	if err := st.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		b.Fatal(err)
	}
	commit := func(_ *nats.Conn, w, i int) error {
		return st.Update(ctx, func(tx kv.Tx) error {
			bk := tx.Bucket([]byte("b"))
			for j := range 15 {
				if err := bk.Put(fmt.Appendf(nil, "w%d-%d", w, j), payload); err != nil {
					return err
				}
			}
			return nil
		})
	}
	phase("publish", 1, pub)
	phase("commit-16-message", 16, commit)
	phase("leader-read", 1, leader)
	phase("direct-get", 1, direct)
	for _, n := range []int{8, 32, 128} {
		phase(fmt.Sprintf("multi-get-%d", n), n, multi(n))
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
