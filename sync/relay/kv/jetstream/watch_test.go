package jskv_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// describe writes a transaction's changes as sorted text: root/bucket key=value, key deleted,
// seq, bucket deleted.
func describe(cs kv.Changes) string {
	if cs.Lost {
		return "lost"
	}
	var out []string
	for _, c := range cs.List {
		p := string(c.Root) + "/" + string(c.Bucket)
		switch {
		case c.BucketDeleted:
			out = append(out, p+" gone")
		case c.Key == nil:
			out = append(out, fmt.Sprintf("%s seq=%d", p, c.Sequence))
		case c.Deleted:
			out = append(out, p+" "+string(c.Key)+" deleted")
		default:
			out = append(out, p+" "+string(c.Key)+"="+string(c.Value))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// A gateway's feed shows every transaction another gateway (through another node) or it
// itself commits in the watched buckets, once each, in commit order, a transaction's changes
// together, and nothing of other buckets. A consumer the server loses is reported as a loss,
// and the feed goes on afterwards.
func TestWatchFollowsEveryGatewaysCommits(t *testing.T) {
	c := natstest.Start(t)
	nc0, nc1 := c.Connect(0), c.Connect(1)
	var logMu sync.Mutex
	var logged []string
	o := jskv.Options{Stream: "watch", Prefix: "w", WatchHeartbeat: 200 * time.Millisecond, Logf: func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	}}
	a, b := openWith(t, c, nc0, o), openWith(t, c, nc1, o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	update := func(s *jskv.Store, fn func(tx kv.Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(a, func(tx kv.Tx) error {
		d, err := tx.CreateBucketIfNotExists([]byte("down"))
		if err != nil {
			return err
		}
		t1, err := d.CreateBucketIfNotExists([]byte("t1"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists([]byte("other")); err != nil {
			return err
		}
		return t1.Put([]byte("1"), []byte("before the watch"))
	})
	got := make(chan string, 100)
	stop, err := a.Watch([][]byte{[]byte("down")}, func(cs kv.Changes) { got <- describe(cs) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("the feed delivered nothing in 10 s")
			return ""
		}
	}
	update(b, func(tx kv.Tx) error {
		d := tx.Bucket([]byte("down"))
		t1 := d.Bucket([]byte("t1"))
		if err := t1.Put([]byte("2"), []byte("two")); err != nil {
			return err
		}
		if err := t1.SetSequence(7); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("other")).Put([]byte("x"), []byte("not watched")); err != nil {
			return err
		}
		t2, err := d.CreateBucket([]byte("t2"))
		if err != nil {
			return err
		}
		return t2.Put([]byte("1"), []byte("new bucket"))
	})
	// Each commit's changes are read before the next commit: deleting t2 purges its keys, and
	// a feed that had not yet reached the key written into it (a loaded machine) would skip it.
	expect := func(want string) {
		t.Helper()
		if g := next(); g != want {
			t.Fatalf("the feed delivered %q, want %q", g, want)
		}
	}
	expect("down/t1 2=two, down/t1 seq=7, down/t2 1=new bucket")
	update(b, func(tx kv.Tx) error { return tx.Bucket([]byte("other")).Put([]byte("y"), []byte("nothing watched")) })
	update(a, func(tx kv.Tx) error { return tx.Bucket([]byte("down")).Bucket([]byte("t1")).Delete([]byte("1")) })
	expect("down/t1 1 deleted")
	update(b, func(tx kv.Tx) error { return tx.Bucket([]byte("down")).DeleteBucket([]byte("t2")) })
	expect("down/t2 gone")
	// The server loses the consumer (as when its node goes away): a loss, then the feed
	// follows what commits after it.
	js, err := jetstream.New(nc1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "watch")
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	n := 0
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("the feed uses %d consumers, want 1", n)
	}
	if g := next(); g != "lost" {
		t.Fatalf("after its consumer was deleted the feed delivered %q, want a loss", g)
	}
	if n := a.Stats().FeedLosses; n < 1 {
		t.Errorf("FeedLosses after a loss = %d, want at least 1", n)
	}
	logMu.Lock()
	if !slices.ContainsFunc(logged, func(l string) bool {
		return strings.HasPrefix(l, "jskv: watch feed lost (") && strings.Contains(l, "); its watchers read the store again")
	}) {
		t.Errorf("after the loss the store logged %q, want the loss and why", logged)
	}
	logMu.Unlock()
	i := 0
	testwait.Until(t, "the feed to follow commits again", func() bool {
		i++
		key := fmt.Sprint("again", i)
		update(b, func(tx kv.Tx) error {
			return tx.Bucket([]byte("down")).Bucket([]byte("t1")).Put([]byte(key), []byte("v"))
		})
		for {
			select {
			case g := <-got:
				if g == "down/t1 "+key+"=v" {
					return true
				}
			case <-time.After(300 * time.Millisecond):
				return false
			}
		}
	})
}
