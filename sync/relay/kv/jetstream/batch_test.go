package jskv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// TestAtomicBatchHonoursExpectedSequences proves what the store's isolation rests on, against
// nats-server v2.15.2 with an R3 stream: in an atomic batch, a wrong
// Nats-Expected-Last-Subject-Sequence on any one message (first, middle or last, on a written
// key or on a read marker naming another subject) rejects the whole batch, nothing of it is
// stored, and of two batches racing on one key exactly one commits.
func TestAtomicBatchHonoursExpectedSequences(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, nc, Options{Stream: "EX", Prefix: "ex"})
	js, _ := jetstream.New(nc)
	seqOf := func(subj string) uint64 {
		t.Helper()
		e, err := s.fetch(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		return e.seq
	}
	put := func(subj string) uint64 {
		t.Helper()
		a, err := js.Publish(ctx, subj, []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		return a.Sequence
	}
	a, b := put("ex.a"), put("ex.b")

	type spec struct {
		subj, expectSubj string // expectSubj set: a read marker checking that subject
		expect           uint64
	}
	build := func(specs []spec) []*nats.Msg {
		var msgs []*nats.Msg
		for _, sp := range specs {
			m := nats.NewMsg(sp.subj)
			m.Data = []byte("new")
			m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(sp.expect, 10))
			if sp.expectSubj != "" {
				m.Header.Set(hdrExpectSubj, sp.expectSubj)
			}
			msgs = append(msgs, m)
		}
		return msgs
	}
	right := []spec{
		{subj: "ex.a", expect: a},
		{subj: "ex.r", expectSubj: "ex.b", expect: b},
		{subj: "ex.c", expect: 0},
		{subj: "ex.d", expect: 0},
	}
	for wrong := range right {
		t.Run(fmt.Sprintf("wrong at %d of %d", wrong+1, len(right)), func(t *testing.T) {
			specs := append([]spec(nil), right...)
			specs[wrong].expect += 5
			_, err := s.publishBatch(ctx, build(specs))
			if !errors.Is(err, kv.ErrConflict) {
				t.Fatalf("batch with a wrong expectation at message %d: %v, want a conflict", wrong+1, err)
			}
			if seqOf("ex.a") != a || seqOf("ex.b") != b || seqOf("ex.c") != 0 || seqOf("ex.d") != 0 || seqOf("ex.r") != 0 {
				t.Fatalf("a rejected batch left something: a %d b %d c %d d %d r %d", seqOf("ex.a"), seqOf("ex.b"), seqOf("ex.c"), seqOf("ex.d"), seqOf("ex.r"))
			}
		})
	}
	sent := build(right)
	ack, err := s.publishBatch(ctx, sent)
	if err != nil {
		t.Fatalf("batch with every expectation right: %v", err)
	}
	// What a commit whose answer was lost looks at: is its id on what it wrote?
	if !s.landed(ctx, ack.BatchID, sent) {
		t.Error("a committed batch is not found by its id")
	}
	if s.landed(ctx, "not-"+ack.BatchID, sent) {
		t.Error("a batch never sent is found")
	}
	if seqOf("ex.a") <= b || seqOf("ex.c") == 0 || seqOf("ex.d") != ack.Sequence || seqOf("ex.b") != b {
		t.Fatalf("committed batch not stored as sent: a %d b %d c %d d %d (ack %d)", seqOf("ex.a"), seqOf("ex.b"), seqOf("ex.c"), seqOf("ex.d"), ack.Sequence)
	}

	// Two gateways on different nodes race for one key, each expecting its current sequence.
	other := c.Connect(1)
	s2, err := Open(ctx, other, Options{Stream: "EX", Prefix: "ex"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		cur := seqOf("ex.hot")
		sides := []uint64{seqOf("ex.side0"), seqOf("ex.side1")}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, st := range []*Store{s, s2} {
			wg.Go(func() {
				_, errs[i] = st.publishBatch(ctx, build([]spec{
					{subj: fmt.Sprintf("ex.side%d", i), expect: sides[i]},
					{subj: "ex.hot", expect: cur},
				}))
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, kv.ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of 2 racing batches committed on one expected sequence, want exactly 1", round, won)
		}
	}
}

// TestDeleteBigBucket: deleting a bucket is one message however much it holds (a bucket of
// 1,500 keys could not be tombstoned key by key in one batch of at most 1,000), the bucket made
// again under its name is empty, and the purge after the commit leaves nothing of the old one.
func TestDeleteBigBucket(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, nc, Options{Stream: "BIG", Prefix: "big"})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, "BIG")
	var gen string
	for part := range 2 {
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("down"))
			if err != nil {
				return err
			}
			nb, err := b.CreateBucketIfNotExists([]byte("t1"))
			if err != nil {
				return err
			}
			gen = nb.(*bucket).gen
			for i := range 750 {
				if err := nb.Put(fmt.Appendf(nil, "%d-%04d", part, i), []byte("item")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.list(ctx, s.subj('k', gen, "*"))
	if err != nil || len(held) != 1500 {
		t.Fatalf("bucket holds %d keys (%v), want 1500", len(held), err)
	}
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("down"))
		if err := b.DeleteBucket([]byte("t1")); err != nil {
			return err
		}
		_, err := b.CreateBucket([]byte("t1"))
		return err
	}); err != nil {
		t.Fatalf("delete and make again a bucket of 1500 keys: %v", err)
	}
	if err := s.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("down")).Bucket([]byte("t1")).KeyN(); n != 0 {
			t.Errorf("bucket made again holds %d keys", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	left, err := s.list(ctx, s.subj('k', gen, "*"))
	if err != nil || len(left) != 0 || s.Stats().PurgeFailures != 0 {
		t.Fatalf("after the purge %d keys of the deleted bucket are left (%v, %d purge failures)", len(left), err, s.Stats().PurgeFailures)
	}
}
