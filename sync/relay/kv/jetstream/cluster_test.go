package jskv_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

func makeBuckets(t *testing.T, s kv.Store, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Update(ctx, func(tx kv.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// incrementOnce is the relay's kind of write: it does operation op at most once however often
// it runs (a done/<op> record, as the relay keeps item ids), so a commit whose answer was lost
// can be sent again.
func incrementOnce(ctx context.Context, s kv.Store, op string) error {
	return s.Update(ctx, func(tx kv.Tx) error {
		done := tx.Bucket([]byte("done"))
		if done.Get([]byte(op)) != nil {
			return nil
		}
		if err := done.Put([]byte(op), []byte{1}); err != nil {
			return err
		}
		return kvtest.IncrementTx(tx, op)
	})
}

// untilDone runs incrementOnce for op until it succeeds, as a gateway retries a terminal's
// batch: a retryable error is tried again, anything else is returned.
func untilDone(ctx context.Context, s kv.Store, op string) (retries int, err error) {
	for {
		err := incrementOnce(ctx, s, op)
		if err == nil || !kv.Retryable(err) || ctx.Err() != nil {
			return retries, err
		}
		retries++
	}
}

type counts struct {
	counter   uint64
	log, done int
}

func readCounts(ctx context.Context, s kv.Store) (c counts, err error) {
	err = s.View(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("ctr")).Get([]byte("n")); v != nil {
			c.counter = binary.BigEndian.Uint64(v)
		}
		c.log = tx.Bucket([]byte("log")).KeyN()
		c.done = tx.Bucket([]byte("done")).KeyN()
		return nil
	})
	return c, err
}

func assertCounts(t *testing.T, s kv.Store, ops int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c counts
	testwait.UntilSaw(t, "the counts readable", func() (bool, string) {
		var err error
		c, err = readCounts(ctx, s)
		if err != nil && !kv.Retryable(err) {
			t.Fatal(err)
		}
		return err == nil, fmt.Sprint(err)
	})
	if c.counter != uint64(ops) || c.log != ops || c.done != ops {
		t.Fatalf("after %d operations: counter %d, %d log entries, %d done records; want %d of each (lost or doubled)", ops, c.counter, c.log, c.done, ops)
	}
}

// TestTwoGatewaysOneCounter: two gateways, each on its own node of the cluster, increment one
// counter at once; every increment counts.
func TestTwoGatewaysOneCounter(t *testing.T) {
	c := natstest.Start(t)
	a := openOn(t, c, c.Connect(0), "two")
	b, err := jskv.Open(t.Context(), c.Connect(1), jskv.Options{Stream: "two", Prefix: "two"})
	if err != nil {
		t.Fatal(err)
	}
	makeBuckets(t, a, "ctr", "log")
	const each = 25
	var wg sync.WaitGroup
	for _, g := range []*jskv.Store{a, b} {
		wg.Go(func() { kvtest.Increments(t, g, 2, each) })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = b.View(ctx, func(tx kv.Tx) error {
		got := binary.BigEndian.Uint64(tx.Bucket([]byte("ctr")).Get([]byte("n")))
		if got != 4*each || tx.Bucket([]byte("log")).KeyN() != 4*each {
			t.Errorf("counter %d with %d log entries after %d increments from two gateways", got, tx.Bucket([]byte("log")).KeyN(), 4*each)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("conflicts re-run: gateway a %d, gateway b %d", a.Stats().Conflicts, b.Stats().Conflicts)
	if a.Stats().Conflicts+b.Stats().Conflicts == 0 {
		t.Error("no transaction ever conflicted: the test did not make the gateways race")
	}
}

// streamLeader is the index of the node leading stream name.
func streamLeader(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var i int
	if _, err := fmt.Sscanf(st.CachedInfo().Cluster.Leader, "n%d", &i); err != nil {
		t.Fatalf("leader %q: %v", st.CachedInfo().Cluster.Leader, err)
	}
	return i - 1
}

// TestNodeKilledMidWrites: the stream's leader dies while two gateways write; the writes go
// on on the two nodes left, nothing is lost or doubled, and the node comes back.
func TestNodeKilledMidWrites(t *testing.T) {
	c := natstest.Start(t)
	nc0 := c.Connect(0)
	openOn(t, c, nc0, "kill")
	// Gateway a is on the leader's node, so the kill also cuts its connection; b is on another.
	leader := streamLeader(t, nc0, "kill")
	a, err := jskv.Open(t.Context(), c.Connect(leader), jskv.Options{Stream: "kill", Prefix: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := jskv.Open(t.Context(), c.Connect((leader+1)%natstest.Size), jskv.Options{Stream: "kill", Prefix: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	makeBuckets(t, a, "ctr", "log", "done")
	const workers, each = 4, 30
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var retried sync.Map
	for w := range workers {
		g := []*jskv.Store{a, b}[w%2]
		wg.Go(func() {
			for i := range each {
				op := fmt.Sprintf("w%d-%d", w, i)
				n, err := untilDone(ctx, g, op)
				if n > 0 {
					retried.Store(op, n)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", op, err)
					return
				}
			}
		})
	}
	// Kill the leader once the writes are under way.
	testwait.Until(t, "some writes committed", func() bool {
		got, err := readCounts(ctx, a)
		return err == nil && got.counter >= workers*each/4
	})
	if l := streamLeader(t, nc0, "kill"); l != leader {
		t.Fatalf("leader moved from node %d to %d before the kill", leader+1, l+1)
	}
	c.Stop(leader)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	retried.Range(func(_, _ any) bool { n++; return true })
	t.Logf("killed node %d mid-writes; %d operations had to be sent again", leader+1, n)
	assertCounts(t, b, workers*each)
	c.Restart(leader)
	c.WaitStream(b.Conn(), "kill")
	if _, err := untilDone(ctx, a, "after-restart"); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, b, workers*each+1)
}

// TestQuorumLost: with two of three nodes down, a write fails with the retryable no-quorum
// kind before its deadline (no hang), reads fail the same way (they go to the stream leader,
// and there is none), and once the nodes are back what was committed is all there and the
// refused write goes through once.
func TestQuorumLost(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx0, cancel0 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel0()
	s, err := jskv.Open(ctx0, nc, jskv.Options{Stream: "quorum", Prefix: "quorum", OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, "quorum")
	makeBuckets(t, s, "ctr", "log", "done")
	for i := range 5 {
		if _, err := untilDone(ctx0, s, fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	c.StopQuorum(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = incrementOnce(ctx, s, "during")
	if err == nil || !errors.Is(err, kv.ErrNoQuorum) {
		t.Fatalf("write without quorum: %v, want kv.ErrNoQuorum", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("write without quorum ran to its context's deadline: %v", err)
	}
	t.Logf("without quorum, write: %v", err)
	// Reads go to the stream leader. The one left may go on answering from what it holds
	// until it notices it lost its peers; then reads fail, retryably. Either way a reader
	// never sees the refused write, and never waits past its deadline.
	got, err := readCounts(ctx, s)
	switch {
	case err == nil && got != (counts{counter: 5, log: 5, done: 5}):
		t.Fatalf("read without quorum answered %+v, want the 5 committed operations", got)
	case err != nil && !kv.Retryable(err):
		t.Fatalf("read without quorum: %v, want a retryable error", err)
	case ctx.Err() != nil:
		t.Fatalf("read without quorum ran to its context's deadline: %v", err)
	}
	t.Logf("without quorum, read: %+v, %v", got, err)

	c.Restart(1)
	c.Restart(2)
	c.WaitStream(nc, "quorum")
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	// The write refused above may yet have been applied (its answer was lost): sending it
	// again under the same operation id applies it once either way.
	if _, err := untilDone(ctx2, s, "during"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	assertCounts(t, s, 6)
}

// With CacheBucketMarkers a gateway's Update finds its buckets in its cache: writing one key
// of a nested bucket it wrote before costs no leader read. A nested bucket it saw absent and
// another gateway made meanwhile is found on the run again (an absent marker is validated),
// so the two gateways' first writes land in one bucket; and two gateways writing at once in
// one bucket lose nothing.
func TestCachedBucketMarkers(t *testing.T) {
	c := natstest.Start(t)
	o := jskv.Options{Stream: "marks", Prefix: "marks", CacheBucketMarkers: true}
	a := openOn(t, c, c.Connect(0), "marks")
	a2, err := jskv.Open(t.Context(), c.Connect(0), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jskv.Open(t.Context(), c.Connect(1), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	makeBuckets(t, a, "down")
	put := func(s *jskv.Store, owner, key string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			nb, err := tx.Bucket([]byte("down")).CreateBucketIfNotExists([]byte(owner))
			if err != nil {
				return err
			}
			return nb.Put([]byte(key), []byte(owner+key))
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Gateway b sees owner t1 absent (and caches it), then a makes it; b's first write still
	// lands in a's bucket.
	if err := b.View(ctx, func(tx kv.Tx) error {
		if tx.Bucket([]byte("down")).Bucket([]byte("t1")) != nil {
			t.Error("t1 exists before anyone made it")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	put(b, "t0", "warm") // b's cache holds the root bucket's marker
	put(a2, "t1", "1")
	put(b, "t1", "2")
	reads := a2.Stats().Reads
	put(a2, "t1", "3")
	if n := a2.Stats().Reads - reads; n != 0 {
		t.Errorf("a write into a bucket the gateway wrote before read the leader %d times, want 0", n)
	}
	var wg sync.WaitGroup
	for g, s := range []*jskv.Store{a2, b} {
		wg.Go(func() {
			for i := range 10 {
				put(s, "t1", fmt.Sprintf("g%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	if err := a.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("down")).Bucket([]byte("t1")).KeyN(); n != 23 {
			t.Errorf("t1 holds %d keys, want 23", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A marker cached present is not validated: after another gateway deletes the bucket and
// makes it again, a gateway that cached it writes into the deleted generation, where no one
// reads. DropCachedMarkers (kv.MarkerCache), which a gateway taking over another's buckets
// calls, sends its next write to the bucket that is there.
func TestDroppedMarkersFindABucketMadeAgain(t *testing.T) {
	c := natstest.Start(t)
	o := jskv.Options{Stream: "again", Prefix: "again", CacheBucketMarkers: true}
	a := openOn(t, c, c.Connect(0), "again")
	b, err := jskv.Open(t.Context(), c.Connect(1), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	makeBuckets(t, a, "down")
	put := func(s kv.Store, key string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			nb, err := tx.Bucket([]byte("down")).CreateBucketIfNotExists([]byte("t1"))
			if err != nil {
				return err
			}
			return nb.Put([]byte(key), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() (ks []string) {
		t.Helper()
		if err := a.View(ctx, func(tx kv.Tx) error {
			if nb := tx.Bucket([]byte("down")).Bucket([]byte("t1")); nb != nil {
				return nb.ForEach(func(k, _ []byte) error { ks = append(ks, string(k)); return nil })
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	again := func() {
		t.Helper()
		if err := a.Update(ctx, func(tx kv.Tx) error {
			if err := tx.Bucket([]byte("down")).DeleteBucket([]byte("t1")); err != nil {
				return err
			}
			_, err := tx.Bucket([]byte("down")).CreateBucket([]byte("t1"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(b, "first") // b caches t1's marker
	again()
	put(b, "lost")
	if got := fmt.Sprint(keys()); got != "[]" {
		t.Fatalf("a write through a stale marker landed: %s (the hazard this test stands for is gone: revisit DropCachedMarkers)", got)
	}
	again()
	kv.DropCachedMarkers(b)
	put(b, "found")
	if got := fmt.Sprint(keys()); got != "[found]" {
		t.Fatalf("after dropping the cached markers: %s, want [found]", got)
	}
}
