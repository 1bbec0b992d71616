package jskv_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// feedConsumer is the stream's one consumer (a Watch's): its filters, and how many messages it
// has delivered.
//
// It waits for the one: a consumer whose creation returned may not be listed yet by the server
// that answers the listing (CI once saw none right after Watch returned).
func feedConsumer(t *testing.T, nc *nats.Conn, stream string) (filters []string, delivered uint64) {
	t.Helper()
	testwait.UntilSaw(t, "the feed's consumer, and no other, listed on the stream", func() (bool, string) {
		var n int
		filters, delivered, n = feedConsumers(t, nc, stream)
		return n == 1, fmt.Sprintf("%d consumers", n)
	})
	return filters, delivered
}

// feedConsumers is feedConsumer's answer and how many consumers the stream has (while a
// consumer is replaced there may be two: the old one is deleted after the new one is made).
func feedConsumers(t *testing.T, nc *nats.Conn, stream string) (filters []string, delivered uint64, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var infos []*jetstream.ConsumerInfo
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		infos = append(infos, ci)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		return nil, 0, len(infos)
	}
	f := slices.Clone(infos[0].Config.FilterSubjects)
	if infos[0].Config.FilterSubject != "" {
		f = append(f, infos[0].Config.FilterSubject)
	}
	slices.Sort(f)
	return f, infos[0].Delivered.Consumer, 1
}

// feedOf starts a Watch of root on s, and returns the next Changes it delivers, described.
func feedOf(t *testing.T, s *jskv.Store, root string) (next func() string) {
	t.Helper()
	got := make(chan string, 100)
	stop, err := s.Watch([][]byte{[]byte(root)}, func(cs kv.Changes) { got <- describe(cs) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("the feed delivered nothing in 10 s")
			return ""
		}
	}
}

func mustUpdate(t *testing.T, s *jskv.Store, fn func(tx kv.Tx) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// Before Options.WatchRoots the feed's consumer took every bucket marker, key and sequence
// message of the stream, and a gateway threw away nearly all of it: under load it was most of
// the cluster's work a status report, and each gateway's feed fell 30 s behind. A bucket made
// in a watched root now lives under the root's generation, and the consumer takes that root's
// nested buckets and nothing else: a commit of 20 keys elsewhere is not delivered at all.
func TestWatchedRootTakesOnlyItsBuckets(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	s := openWith(t, c, nc, jskv.Options{Stream: "WR", Prefix: "wr", WatchRoots: [][]byte{[]byte("down")}})
	mustUpdate(t, s, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		if _, err := d.CreateBucket([]byte("t1")); err != nil {
			return err
		}
		o, err := tx.CreateBucket([]byte("other"))
		if err != nil {
			return err
		}
		_, err = o.CreateBucket([]byte("o1"))
		return err
	})
	next := feedOf(t, s, "down")
	filters, _ := feedConsumer(t, nc, "WR")
	if len(filters) != 3 || slices.Contains(filters, "wr.k.>") {
		t.Fatalf("the feed's consumer takes %q, want the watched root's three filters", filters)
	}
	mustUpdate(t, s, func(tx kv.Tx) error {
		o := tx.Bucket([]byte("other")).Bucket([]byte("o1"))
		for i := range 20 {
			if err := o.Put(fmt.Appendf(nil, "k%d", i), []byte("status")); err != nil {
				return err
			}
		}
		// The root's own keys were never part of the feed either.
		return tx.Bucket([]byte("down")).Put([]byte("own"), []byte("root key"))
	})
	mustUpdate(t, s, func(tx kv.Tx) error {
		t1 := tx.Bucket([]byte("down")).Bucket([]byte("t1"))
		if err := t1.Put([]byte("1"), []byte("letter")); err != nil {
			return err
		}
		_, err := t1.NextSequence()
		return err
	})
	if g, want := next(), "down/t1 1=letter, down/t1 seq=1"; g != want {
		t.Fatalf("the feed delivered %q, want %q", g, want)
	}
	if _, delivered := feedConsumer(t, nc, "WR"); delivered != 2 {
		t.Errorf("the feed's consumer delivered %d messages, want 2 (the watched key and sequence)", delivered)
	}
	// A bucket made in the watched root after the feed started is followed too.
	mustUpdate(t, s, func(tx kv.Tx) error {
		t2, err := tx.Bucket([]byte("down")).CreateBucket([]byte("t2"))
		if err != nil {
			return err
		}
		return t2.Put([]byte("1"), []byte("new"))
	})
	if g, want := next(), "down/t2 1=new"; g != want {
		t.Fatalf("the feed delivered %q, want %q", g, want)
	}
	if n := s.Stats().FeedRefollows; n != 0 {
		t.Errorf("FeedRefollows = %d, want 0: every bucket is under its root", n)
	}
}

// A stream written before Options.WatchRoots (or by a store opened without it: a gateway of an
// older build) has watched buckets of a generation of their own. The feed takes each with a
// filter of its own; one made after the feed started makes the consumer be made again from
// the message after its marker, so what the same commit wrote into it is delivered too.
func TestFeedFollowsBucketsOfTheirOwnGeneration(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	older := openWith(t, c, c.Connect(1), jskv.Options{Stream: "WO", Prefix: "wo"})
	s := openWith(t, c, nc, jskv.Options{Stream: "WO", Prefix: "wo", WatchRoots: [][]byte{[]byte("down")}})
	mustUpdate(t, older, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		t1, err := d.CreateBucket([]byte("t1"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("other")); err != nil {
			return err
		}
		return t1.Put([]byte("1"), []byte("before"))
	})
	next := feedOf(t, s, "down")
	expect := func(want string) {
		t.Helper()
		if g := next(); g != want {
			t.Fatalf("the feed delivered %q, want %q", g, want)
		}
	}
	if filters, _ := feedConsumer(t, nc, "WO"); len(filters) != 5 {
		t.Fatalf("the feed's consumer takes %q, want the root's three filters and two for t1", filters)
	}
	mustUpdate(t, older, func(tx kv.Tx) error {
		return tx.Bucket([]byte("down")).Bucket([]byte("t1")).Put([]byte("2"), []byte("two"))
	})
	expect("down/t1 2=two")
	mustUpdate(t, older, func(tx kv.Tx) error {
		t2, err := tx.Bucket([]byte("down")).CreateBucket([]byte("t2"))
		if err != nil {
			return err
		}
		if err := t2.Put([]byte("1"), []byte("same commit")); err != nil {
			return err
		}
		return tx.Bucket([]byte("other")).Put([]byte("x"), []byte("not watched"))
	})
	// The marker came from the old consumer, the key from the new one.
	expect("down/t2 1=same commit")
	testwait.Until(t, "one consumer, taking t2 too", func() bool {
		filters, _, n := feedConsumers(t, nc, "WO")
		return n == 1 && len(filters) == 7
	})
	if n := s.Stats().FeedRefollows; n != 1 {
		t.Errorf("FeedRefollows = %d, want 1", n)
	}
	mustUpdate(t, older, func(tx kv.Tx) error {
		return tx.Bucket([]byte("down")).Bucket([]byte("t2")).Put([]byte("2"), []byte("later"))
	})
	expect("down/t2 2=later")
	mustUpdate(t, s, func(tx kv.Tx) error {
		t3, err := tx.Bucket([]byte("down")).CreateBucket([]byte("t3"))
		if err != nil {
			return err
		}
		return t3.Put([]byte("1"), []byte("under the root"))
	})
	expect("down/t3 1=under the root")
	if n := s.Stats().FeedLosses; n != 0 {
		t.Errorf("FeedLosses = %d, want 0", n)
	}
}

// Past maxOwnGenFilters (256) buckets of their own the consumer takes the whole stream's
// markers, keys and sequences, as before; once enough of them are gone it takes the roots'
// and theirs again, missing nothing.
func TestFeedWidensAndNarrows(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	older := openWith(t, c, c.Connect(1), jskv.Options{Stream: "WW", Prefix: "ww"})
	var logMu sync.Mutex
	var logged []string
	s := openWith(t, c, nc, jskv.Options{Stream: "WW", Prefix: "ww", WatchRoots: [][]byte{[]byte("down")},
		Logf: func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			logged = append(logged, fmt.Sprintf(format, args...))
		}})
	saidOnce := func(what string) {
		t.Helper()
		logMu.Lock()
		defer logMu.Unlock()
		n := 0
		for _, l := range logged {
			if strings.Contains(l, what) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the store logged %q %d times, want once; it logged %q", what, n, logged)
		}
	}
	mustUpdate(t, older, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		for i := range 257 {
			if _, err := d.CreateBucket(fmt.Appendf(nil, "o%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	next := feedOf(t, s, "down")
	if filters, _ := feedConsumer(t, nc, "WW"); !slices.Equal(filters, []string{"ww.b.>", "ww.k.>", "ww.s.>"}) {
		t.Fatalf("with 257 buckets of their own the consumer takes %d filters (%.80q…), want the whole stream's", len(filters), strings.Join(filters, " "))
	}
	saidOnce("jskv: watch feed takes every key of the stream: 257 buckets in its roots have a generation of their own")
	mustUpdate(t, older, func(tx kv.Tx) error {
		d := tx.Bucket([]byte("down"))
		if err := d.DeleteBucket([]byte("o0")); err != nil {
			return err
		}
		return d.Bucket([]byte("o7")).Put([]byte("1"), []byte("same commit"))
	})
	// The consumer is made again right after the marker: what the commit wrote after it
	// comes from the new one, as a Changes of its own.
	for _, want := range []string{"down/o0 gone", "down/o7 1=same commit"} {
		if g := next(); g != want {
			t.Fatalf("the feed delivered %q, want %q", g, want)
		}
	}
	testwait.Until(t, "one consumer, taking the root's filters and 256 buckets'", func() bool {
		filters, _, n := feedConsumers(t, nc, "WW")
		return n == 1 && len(filters) == 3+2*256
	})
	mustUpdate(t, older, func(tx kv.Tx) error {
		return tx.Bucket([]byte("down")).Bucket([]byte("o200")).Put([]byte("1"), []byte("after"))
	})
	if g, want := next(), "down/o200 1=after"; g != want {
		t.Fatalf("the feed delivered %q, want %q", g, want)
	}
	saidOnce("to take its roots' buckets and 256 of a generation of their own")
	if st := s.Stats(); st.FeedRefollows != 1 || st.FeedLosses != 0 {
		t.Errorf("FeedRefollows, FeedLosses = %d, %d; want 1, 0", st.FeedRefollows, st.FeedLosses)
	}
}
