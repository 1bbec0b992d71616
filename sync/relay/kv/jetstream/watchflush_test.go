package jskv

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// overcount raises the pending count in a delivered message's metadata by one, as the
// consumer's running estimate (nats-server consumer.npc) stays when a message is removed while
// the consumer passes it: on this stream every commit removes the messages it supersedes.
func overcount(t *testing.T, m *nats.Msg) {
	t.Helper()
	toks := strings.Split(m.Reply, ".")
	n, err := strconv.ParseUint(toks[len(toks)-1], 10, 64)
	if err != nil {
		t.Fatalf("reply %q: no pending count: %v", m.Reply, err)
	}
	toks[len(toks)-1] = strconv.FormatUint(n+1, 10)
	m.Reply = strings.Join(toks, ".")
}

// A transaction's changes reach the feed's reader when its last watched message arrives,
// even if the server's pending count says more is coming and nothing else is committed: a
// gateway whose feed held another gateway's last commit until the next one left that
// facility's terminals without it (TestIdleTabletOnAnotherGatewayKeepsItsPlaceInTheLog,
// stop 22's CI run). A transaction whose messages carry no end mark (written before the mark
// existed) is handed over at the next idle heartbeat that accounts for everything sent.
//
// The messages are the server's own, delivered by a real push consumer with the feed's
// filters from the feed's start; only their pending counts are raised.
func TestWatchHandsOverATransactionAtItsEndWhateverThePendingCount(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc := c.Connect(0)
	s := openTest(t, c, nc, Options{Stream: "WF", Prefix: "wf"})
	if err := s.Update(ctx, func(tx kv.Tx) error {
		d, err := tx.CreateBucketIfNotExists([]byte("down"))
		if err != nil {
			return err
		}
		_, err = d.CreateBucketIfNotExists([]byte("t1"))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	got := make(chan kv.Changes, 10)
	w := &watcher{s: s, roots: [][]byte{[]byte("down")}, fn: func(cs kv.Changes) { got <- cs }, done: make(chan struct{})}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	// The feed's own consumer goes; this test hands it the messages instead.
	w.mu.Lock()
	w.dropConsumerLocked()
	run, from := w.run, w.from
	w.mu.Unlock()

	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	cons, err := s.js.CreatePushConsumer(ctx, "WF", jetstream.ConsumerConfig{
		DeliverSubject: inbox,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		AckPolicy:      jetstream.AckNonePolicy,
		FilterSubjects: []string{"wf.b.>", "wf.k.>", "wf.s.>"},
		IdleHeartbeat:  100 * time.Millisecond,
		MemoryStorage:  true,
		Replicas:       1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.st.DeleteConsumer(context.Background(), cons.CachedInfo().Name)

	// next is the consumer's next message that is not a heartbeat.
	next := func() *nats.Msg {
		t.Helper()
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("the consumer delivered nothing: %v", err)
			}
			if m.Header.Get("Status") == "" {
				return m
			}
		}
	}
	nothingYet := func(when string) {
		t.Helper()
		select {
		case cs := <-got:
			t.Fatalf("%s: the feed handed over %+v", when, cs)
		default:
		}
	}
	commit := func(key, val string, seq uint64) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("down")).Bucket([]byte("t1"))
			if err := b.Put([]byte(key), []byte(val)); err != nil {
				return err
			}
			return b.SetSequence(seq)
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(when, key, val string, seq uint64) {
		t.Helper()
		select {
		case cs := <-got:
			if cs.Lost || len(cs.List) != 2 || string(cs.List[0].Key) != key || string(cs.List[0].Value) != val || cs.List[1].Sequence != seq {
				t.Fatalf("%s: the feed handed over %+v, want %s=%s and sequence %d", when, cs, key, val, seq)
			}
		default:
			t.Fatalf("%s: the feed holds the transaction (%s=%s, sequence %d) back", when, key, val, seq)
		}
	}

	// A record and the bucket's sequence, the way the relay numbers a downlink item.
	commit("1", "one", 1)
	m := next()
	overcount(t, m)
	w.handle(run, m)
	nothingYet("after the record, before the sequence")
	m = next()
	if m.Header.Get(hdrTxEnd) == "" {
		t.Fatalf("the transaction's last watched message (%s) carries no %s", m.Subject, hdrTxEnd)
	}
	overcount(t, m)
	w.handle(run, m)
	want("at the transaction's last message", "1", "one", 1)

	// Without the end mark, the idle heartbeat after it hands the transaction over.
	commit("2", "two", 2)
	for range 2 {
		m := next()
		m.Header.Del(hdrTxEnd)
		overcount(t, m)
		w.handle(run, m)
	}
	nothingYet("before the heartbeat")
	for {
		hb, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no idle heartbeat came: %v", err)
		}
		if hb.Header.Get("Status") == "100" && hb.Header.Get("Nats-Last-Consumer") != "" {
			w.handle(run, hb)
			break
		}
		t.Fatalf("a message %s came where the idle heartbeat was due", hb.Subject)
	}
	want("at the idle heartbeat", "2", "two", 2)
}
