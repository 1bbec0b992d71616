package relay

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// lingerBench is a held facility's committer with a linger, on a real bbolt file and a fake
// clock, and the calls it was given.
type lingerBench struct {
	t     *testing.T
	cm    *committer
	clock *clock.Fake
	db    kv.Store
	txs   atomic.Int64 // transactions run
}

func newLingerBench(t *testing.T) *lingerBench {
	t.Helper()
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "held.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := db.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("items")); return err }); err != nil {
		t.Fatal(err)
	}
	lb := &lingerBench{t: t, clock: clock.NewFake(t0), db: db}
	lb.cm = &committer{facility: "north", db: db, ctx: ctx, txs: func() { lb.txs.Add(1) },
		linger: 10 * time.Millisecond, clock: lb.clock}
	return lb
}

// send queues a write of one item named name, as a terminal's batch would, and returns where
// its answer comes; gate, if not nil, holds the write inside its transaction until closed.
func (lb *lingerBench) send(name string, gate chan struct{}, entered chan<- struct{}) <-chan error {
	answer := make(chan error, 1)
	go func() {
		answer <- lb.cm.do(&writeCall{f: &fanout{}, fn: func(tx kv.Tx, _ *fanout) error {
			if gate != nil {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-gate
			}
			return tx.Bucket([]byte("items")).Put([]byte(name), []byte("stored"))
		}})
	}()
	return answer
}

// queued waits until n calls wait in the committer's queue.
func (lb *lingerBench) queued(n int) {
	lb.t.Helper()
	waitUntil(lb.t, fmt.Sprintf("%d calls queued", n), func() bool {
		lb.cm.mu.Lock()
		defer lb.cm.mu.Unlock()
		return len(lb.cm.queue) == n
	})
}

// lingering waits until the committer waits for company (its timer armed).
func (lb *lingerBench) lingering() {
	lb.t.Helper()
	waitUntil(lb.t, "the group commit waits for company", func() bool { return lb.clock.Timers() == 1 })
}

// stored reports which of names the file holds.
func (lb *lingerBench) stored(names ...string) (have []string) {
	lb.t.Helper()
	if err := lb.db.View(context.Background(), func(tx kv.Tx) error {
		for _, n := range names {
			if tx.Bucket([]byte("items")).Get([]byte(n)) != nil {
				have = append(have, n)
			}
		}
		return nil
	}); err != nil {
		lb.t.Fatal(err)
	}
	return have
}

func answered(t *testing.T, what string, answer <-chan error) {
	t.Helper()
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
}

func unanswered(t *testing.T, what string, answer <-chan error) {
	t.Helper()
	select {
	case err := <-answer:
		t.Fatalf("%s answered (%v) while its facility's group commit should still wait for company", what, err)
	default:
	}
}

// busy makes the facility busy: a batch held inside its transaction with two more queued
// behind it, so the next group takes both; while that group is held too, next is sent. It
// returns once the group of two is answered, with next queued for the group after it. If
// stillBusy (the last group took more than one call), the first batch waits the linger alone.
func (lb *lingerBench) busy(prefix, next string, stillBusy bool) <-chan error {
	t := lb.t
	t.Helper()
	gate1, entered := make(chan struct{}), make(chan struct{}, 1)
	first := lb.send(prefix+"first", gate1, entered)
	if stillBusy {
		lb.lingering()
		select {
		case <-entered:
			t.Fatalf("%sfirst batch ran at once after a group of two", prefix)
		default:
		}
		lb.clock.Advance(lb.cm.linger)
	}
	<-entered
	gate2 := make(chan struct{})
	second := lb.send(prefix+"second", gate2, entered)
	lb.queued(1)
	third := lb.send(prefix+"third", nil, nil)
	lb.queued(2)
	close(gate1)
	answered(t, prefix+"first batch", first)
	<-entered // the group of the second and third runs
	answer := lb.send(next, nil, nil)
	lb.queued(1)
	close(gate2)
	answered(t, prefix+"second batch", second)
	answered(t, prefix+"third batch", third)
	return answer
}

// A busy held facility's group commit waits for company: after a group of two, the next batch
// waits the linger on the relay's clock, and the batches that come meanwhile share its
// transaction. A queue that reaches lingerTarget ends the wait with the clock standing still,
// and a batch on a quiet facility (its last group one call) is not held. Each batch is stored once and answered.
func TestABusyFacilitysGroupCommitWaitsForCompany(t *testing.T) {
	lb := newLingerBench(t)

	// Quiet: one batch commits at once, the clock untouched.
	answered(t, "a lone batch on a quiet facility", lb.send("lone", nil, nil))
	if lb.clock.Timers() != 0 {
		t.Fatalf("a quiet facility armed %d timers", lb.clock.Timers())
	}

	// Busy: the last group took two calls, so the next batch waits the linger, and one sent
	// meanwhile joins it.
	waiting := lb.busy("a ", "waiting", false)
	lb.lingering()
	joining := lb.send("joining", nil, nil)
	lb.queued(2)
	unanswered(t, "the waiting batch", waiting)
	if got := lb.stored("waiting", "joining"); len(got) != 0 {
		t.Fatalf("stored %v before the linger was over", got)
	}
	before := lb.txs.Load()
	lb.clock.Advance(10 * time.Millisecond)
	answered(t, "the waiting batch", waiting)
	answered(t, "the joining batch", joining)
	if n := lb.txs.Load() - before; n != 1 {
		t.Errorf("the waiting and joining batches took %d transactions, want one", n)
	}

	// Busy again (the first batch after a busy spell waits once too): lingerTarget batches
	// queued end the wait, the clock standing still.
	crowd := []<-chan error{lb.busy("b ", "crowd-00", true)}
	lb.lingering()
	before = lb.txs.Load()
	for i := 1; i < lingerTarget; i++ {
		crowd = append(crowd, lb.send(fmt.Sprintf("crowd-%02d", i), nil, nil))
		if i < lingerTarget-1 {
			lb.queued(i + 1)
		}
	}
	for i, a := range crowd {
		answered(t, fmt.Sprintf("crowd batch %d", i), a)
	}
	if n := lb.txs.Load() - before; n != 1 {
		t.Errorf("the %d crowd batches took %d transactions, want one", lingerTarget, n)
	}
	if n := lb.clock.Timers(); n != 0 {
		t.Errorf("%d timers left armed after the crowd ended the wait", n)
	}

	want := []string{"lone", "waiting", "joining"}
	for _, p := range []string{"a ", "b "} {
		want = append(want, p+"first", p+"second", p+"third")
	}
	for i := range lingerTarget {
		want = append(want, fmt.Sprintf("crowd-%02d", i))
	}
	if got := lb.stored(want...); len(got) != len(want) {
		t.Errorf("stored %d of the %d batches: %v", len(got), len(want), got)
	}
}

// A committer with no linger (Config.GroupLinger zero, as in every relay but relayd's) takes a
// busy facility's next group at once.
func TestNoLingerTakesTheNextGroupAtOnce(t *testing.T) {
	lb := newLingerBench(t)
	lb.cm.linger = 0
	answered(t, "a batch after a group of two", lb.busy("", "next", false))
	if n := lb.clock.Timers(); n != 0 {
		t.Errorf("a committer with no linger armed %d timers", n)
	}
}
