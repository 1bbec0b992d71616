package jskv_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// dump writes out everything tx sees (kvtest.Dump): two reads of one state give the same text.
func dump(tx kv.Tx) (string, error) { return kvtest.Dump(tx) }

// A whole view sees what a View sees: nested buckets, values (empty ones too), sequences, and
// neither a deleted key nor a deleted bucket's keys; and it asks the leader for no key.
func TestWholeViewSeesWhatAViewSees(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openOn(t, c, c.Connect(0), "WV")
	// An empty store reads as one.
	if err := s.WholeView(ctx, func(tx kv.Tx) error {
		if got, err := dump(tx); err != nil || got != "" {
			return fmt.Errorf("empty store dumps %q, %v", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// 1,200 keys, read whole in pages of 100.
	s.SetWholePage(100)
	for _, name := range []string{"items", "accounts", "gone"} {
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for i := range 400 {
				if err := b.Put(fmt.Appendf(nil, "k%03d", i), fmt.Appendf(nil, "%s-%d", name, i)); err != nil {
					return err
				}
			}
			return b.SetSequence(uint64(100 + len(name)))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx kv.Tx) error {
		nb, err := tx.Bucket([]byte("accounts")).CreateBucket([]byte("north"))
		if err != nil {
			return err
		}
		return nb.Put([]byte("empty"), []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("items"))
		for i := 0; i < 40; i += 3 {
			if err := b.Delete(fmt.Appendf(nil, "k%03d", i)); err != nil {
				return err
			}
		}
		if err := b.Put([]byte("k001"), []byte("rewritten")); err != nil {
			return err
		}
		if _, err := tx.Bucket([]byte("accounts")).NextSequence(); err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("gone"))
	}); err != nil {
		t.Fatal(err)
	}
	// A bucket made again under a deleted one's name starts empty.
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("gone"))
		if err != nil {
			return err
		}
		return b.Put([]byte("new"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	var want string
	if err := s.View(ctx, func(tx kv.Tx) (err error) { want, err = dump(tx); return err }); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	var got string
	if err := s.WholeView(ctx, func(tx kv.Tx) (err error) { got, err = dump(tx); return err }); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if got != want {
		t.Fatalf("a whole view saw:\n%s\na View saw:\n%s", got, want)
	}
	for _, must := range []string{"items/k001=\"rewritten\"", "accounts/north/empty=\"\"", "gone/new=\"1\"", "accounts seq=109"} {
		if !strings.Contains(got, must) {
			t.Errorf("the dump lacks %s:\n%s", must, got)
		}
	}
	for _, mustNot := range []string{"items/k000=", "gone/k005="} {
		if strings.Contains(got, mustNot) {
			t.Errorf("the dump holds %s, which was deleted:\n%s", mustNot, got)
		}
	}
	// The leader is asked where the stream ends, not for the keys.
	if d := after.Reads - before.Reads; d > 3 {
		t.Errorf("a whole view made %d leader reads, want at most 3 (its start and end), not one a key", d)
	}
	if d := after.ReplicaReads - before.ReplicaReads; d != 0 {
		t.Errorf("a whole view made %d replica reads, want none", d)
	}
	if after.WholeViews != before.WholeViews+1 || after.WholeMessages == before.WholeMessages {
		t.Errorf("stats: whole views %d -> %d, messages %d -> %d", before.WholeViews, after.WholeViews, before.WholeMessages, after.WholeMessages)
	}
	// A whole view is read-only, as a View is.
	err := s.WholeView(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("items")).Put([]byte("x"), []byte("y")) })
	if err == nil {
		t.Error("a write in a whole view was taken")
	}
}

// A whole view is one moment of a store that writers keep changing: accounts whose sum the
// writers keep constant, and one token that moves between buckets (deleted from one, put in
// another), are read whole at any time. A copy cut at the sequence the stream had when the read
// began, or read key by key, would see money made or lost and tokens doubled or gone.
func TestWholeViewIsOneMomentUnderWrites(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const accounts, each, holders = 30, 100, 4
	s := openOn(t, c, c.Connect(0), "WM")
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("acct"))
		if err != nil {
			return err
		}
		for i := range accounts {
			if err := b.Put(fmt.Appendf(nil, "a%02d", i), []byte(strconv.Itoa(each))); err != nil {
				return err
			}
		}
		for h := range holders {
			if _, err := tx.CreateBucket(fmt.Appendf(nil, "holder%d", h)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("holder0")).Put([]byte("token"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	writerCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var writes sync.Map
	for w := range 3 {
		ws := openOn(t, c, c.Connect(w), "WM")
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			n := 0
			for writerCtx.Err() == nil {
				from, to := r.IntN(accounts), r.IntN(accounts)
				amount := r.IntN(10)
				err := ws.Update(writerCtx, func(tx kv.Tx) error {
					b := tx.Bucket([]byte("acct"))
					fk, tk := fmt.Appendf(nil, "a%02d", from), fmt.Appendf(nil, "a%02d", to)
					fv, _ := strconv.Atoi(string(b.Get(fk)))
					if err := b.Put(fk, []byte(strconv.Itoa(fv-amount))); err != nil {
						return err
					}
					tv, _ := strconv.Atoi(string(b.Get(tk)))
					if err := b.Put(tk, []byte(strconv.Itoa(tv+amount))); err != nil {
						return err
					}
					for h := range holders {
						hb := tx.Bucket(fmt.Appendf(nil, "holder%d", h))
						if hb.Get([]byte("token")) != nil {
							if err := hb.Delete([]byte("token")); err != nil {
								return err
							}
							return tx.Bucket(fmt.Appendf(nil, "holder%d", (h+1)%holders)).Put([]byte("token"), []byte("1"))
						}
					}
					return errors.New("no holder has the token")
				})
				if err != nil && writerCtx.Err() == nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				n++
			}
			writes.Store(w, n)
		})
	}
	reader := openOn(t, c, c.Connect(1), "WM")
	reader.SetWholePage(4) // each read many pages, each of its own moment
	check := func(round int) {
		t.Helper()
		if err := reader.WholeView(ctx, func(tx kv.Tx) error {
			sum, n := 0, 0
			if err := tx.Bucket([]byte("acct")).ForEach(func(k, v []byte) error {
				x, err := strconv.Atoi(string(v))
				sum, n = sum+x, n+1
				return err
			}); err != nil {
				return err
			}
			var tokens []int
			for h := range holders {
				if tx.Bucket(fmt.Appendf(nil, "holder%d", h)).Get([]byte("token")) != nil {
					tokens = append(tokens, h)
				}
			}
			if sum != accounts*each || n != accounts || len(tokens) != 1 {
				return fmt.Errorf("round %d: %d accounts summing to %d (want %d summing to %d), tokens in holders %v (want one)",
					round, n, sum, accounts, accounts*each, tokens)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	// Let the writers get going, so each read meets commits landing.
	var before uint64
	for round := range 40 {
		check(round)
		if round == 0 {
			before = streamLast(t, ctx, reader)
		}
	}
	after := streamLast(t, ctx, reader)
	stop()
	wg.Wait()
	var total int
	writes.Range(func(_, v any) bool { total += v.(int); return true })
	if after <= before {
		t.Fatalf("no commit landed during the whole views (stream at %d, then %d): the test proved nothing", before, after)
	}
	t.Logf("%d commits by the writers; the stream moved from %d to %d during 39 whole views", total, before, after)
	check(-1) // and at rest
}

// streamLast is the stream's last sequence now.
func streamLast(t *testing.T, ctx context.Context, s *jskv.Store) uint64 {
	t.Helper()
	n, err := s.StreamLastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A store whose newest message went (one with a TTL that expired) still reads whole: the
// stream's last sequence stays on the message that went, which no page returns, so a read that
// waited to reach it would wait until its bound. The store's own commits end with a
// bucket's version, which does not expire; the message here is published on the store's read
// marker subject, which no read looks at, to make the case.
func TestWholeViewEndsWhenTheNewestMessageExpired(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc := c.Connect(0)
	s := openOn(t, c, nc, "WX")
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("kept"), []byte("1")); err != nil {
			return err
		}
		return b.Put([]byte("gone"), []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Delete([]byte("gone")) }); err != nil {
		t.Fatal(err)
	}
	held, err := s.StreamMsgs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("WX.r")
	m.Header.Set("Nats-TTL", "1")
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the message with a TTL to expire", func() bool {
		n, err := s.StreamMsgs(ctx)
		return err == nil && n == held
	})
	if last, err := s.StreamLastSeq(ctx); err != nil || last != ack.Sequence {
		t.Fatalf("the stream's last sequence is %d (%v), want the expired message's %d", last, err, ack.Sequence)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	read := func(how string) {
		t.Helper()
		var got string
		if err := s.WholeView(rctx, func(tx kv.Tx) (err error) { got, err = dump(tx); return err }); err != nil {
			t.Fatalf("%s: a whole view of a store whose newest message (seq %d) expired: %v", how, ack.Sequence, err)
		}
		if !strings.Contains(got, `b/kept="1"`) || strings.Contains(got, "b/gone") {
			t.Fatalf("%s: a whole view saw:\n%s\nwant b/kept and no b/gone", how, got)
		}
	}
	read("once")
}

// The copy's listing answers only what bucket listings ask (a last-token wildcard).
func TestWholeViewListsOneLevel(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openOn(t, c, c.Connect(0), "WL")
	if err := s.Update(ctx, func(tx kv.Tx) error {
		a, err := tx.CreateBucket([]byte("a"))
		if err != nil {
			return err
		}
		for _, k := range []string{"1", "2", "3"} {
			if err := a.Put([]byte(k), []byte(k)); err != nil {
				return err
			}
		}
		ab, err := a.CreateBucket([]byte("inner"))
		if err != nil {
			return err
		}
		return ab.Put([]byte("deep"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	var keys, inner []string
	if err := s.WholeView(ctx, func(tx kv.Tx) error {
		a := tx.Bucket([]byte("a"))
		if err := a.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
			return err
		}
		return a.ForEachBucket(func(name []byte) error { inner = append(inner, string(name)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"1", "2", "3"}) || !slices.Equal(inner, []string{"inner"}) {
		t.Fatalf("keys %v, nested buckets %v; want [1 2 3] and [inner]", keys, inner)
	}
}

// BenchmarkWholeView reads a store of 20 buckets of 500 keys whole, in a View (each key from
// the leader, then again to validate) and in a whole view (the stream once, in sequence order, in pages), the two
// alternating in one run, and reports their ratio and the leader requests of each.
//
//	go test ./sync/relay/kv/jetstream/ -run '^$' -bench WholeView -benchtime 5x
func BenchmarkWholeView(b *testing.B) {
	c := natstest.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := openOn(b, c, c.Connect(0), "WB")
	const buckets, keys = 20, 500
	for i := range buckets {
		if err := s.Update(ctx, func(tx kv.Tx) error {
			bk, err := tx.CreateBucket(fmt.Appendf(nil, "b%02d", i))
			if err != nil {
				return err
			}
			for k := range keys {
				if err := bk.Put(fmt.Appendf(nil, "k%04d", k), fmt.Appendf(nil, "a value of a record, %d/%d", i, k)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	readAll := func(tx kv.Tx) error {
		n := 0
		err := tx.ForEachBucket(func(name []byte) error {
			return tx.Bucket(name).ForEach(func(_, _ []byte) error { n++; return nil })
		})
		if err == nil && n != buckets*keys {
			err = fmt.Errorf("read %d keys, want %d", n, buckets*keys)
		}
		return err
	}
	var view, whole time.Duration
	var viewReads, wholeReads int64
	b.ResetTimer()
	for range b.N {
		st := s.Stats()
		t0 := time.Now()
		if err := s.View(ctx, readAll); err != nil {
			b.Fatal(err)
		}
		view += time.Since(t0)
		mid := s.Stats()
		t0 = time.Now()
		if err := s.WholeView(ctx, readAll); err != nil {
			b.Fatal(err)
		}
		whole += time.Since(t0)
		end := s.Stats()
		viewReads += mid.Reads - st.Reads
		wholeReads += end.Reads - mid.Reads
	}
	n := float64(b.N)
	b.ReportMetric(float64(view.Milliseconds())/n, "view-ms")
	b.ReportMetric(float64(whole.Milliseconds())/n, "whole-ms")
	b.ReportMetric(float64(view)/float64(whole), "view/whole")
	b.ReportMetric(float64(viewReads)/n, "view-leader-reads")
	b.ReportMetric(float64(wholeReads)/n, "whole-leader-reads")
}
