package jskv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A conflict says how far the stream had got: the sequence the subject read had moved to,
// whether the leader refused the commit ("wrong last sequence: N") or validation found it.
func TestConflictSaysWhereTheStreamWas(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, c.Connect(0), Options{Stream: "CS", Prefix: "cs", CacheEntries: -1})
	put := func(k, v string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte(v))
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("x", "1")
	put("z", "1")
	for _, writable := range []bool{true, false} {
		tx := newTx(ctx, s, writable)
		b := tx.Bucket([]byte("b"))
		b.Get([]byte("x"))
		b.Get([]byte("z"))
		put("x", "2") // another commit moves x
		xs, err := s.fetch(ctx, s.subj('k', b.(*bucket).gen, tok([]byte("x"))))
		if err != nil {
			t.Fatal(err)
		}
		if writable {
			if err := b.Put([]byte("y"), []byte("1")); err != nil {
				t.Fatal(err)
			}
			err = tx.commit()
		} else {
			err = tx.validate()
		}
		if !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("writable %v: %v, want a conflict", writable, err)
		}
		if got := conflictSeq(err); got != xs.seq {
			t.Errorf("writable %v: the conflict %q says sequence %d, want %d (where x moved)", writable, err, got, xs.seq)
		}
	}
	if got := conflictSeq(kv.ErrConflict); got != 0 {
		t.Errorf("a conflict that says nothing gives %d, want 0", got)
	}
}

// After a conflict a replica's answer counts only from a replica that has applied the
// conflicting commit: one asked for more than the stream holds is refused whole, its
// subjects left to the leader, and a point read goes to the leader. The floor a conflict that
// names no sequence takes, the leader's last sequence, is at least the last commit's.
func TestReplicaBehindTheFloorIsNotTaken(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, c.Connect(0), Options{Stream: "RF", Prefix: "rf", CacheEntries: -1})
	subj := putK(t, ctx, s)
	tx := newTx(ctx, s, true)
	tx.floor = math.MaxUint64
	if got, missed := tx.readReplicas([]string{subj}, "", 0); len(got) != 0 || len(missed) != 1 {
		t.Errorf("beyond the stream: %v answered, %v left to the leader; want none and the subject", got, missed)
	}
	before := s.Stats().Reads
	if e, ok := tx.fetch(subj); !ok || string(e.val) != "v" || s.Stats().Reads != before+1 {
		t.Errorf("a point read after a conflict: %q, %v, %d leader reads; want v from the leader", e.val, ok, s.Stats().Reads-before)
	}
	last, err := s.fetch(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	// Where the leader says the stream is, asked after a conflict that named no sequence.
	if got := s.streamLast(ctx); got < last.seq {
		t.Errorf("streamLast = %d, want at least %d (the key's commit)", got, last.seq)
	}
	testwait.UntilSaw(t, "a replica at the key's commit to answer", func() (bool, string) {
		tx := newTx(ctx, s, true)
		tx.floor = last.seq
		got, missed := tx.readReplicas([]string{subj}, "", 0)
		return len(missed) == 0 && string(got[subj].val) == "v", fmt.Sprintf("%d missed", len(missed))
	})
}

// A transaction that ran into another gateway's commit runs again once, on replicas that have
// that commit: it does not run into it a second time however far behind a replica is.
func TestRunAgainSeesTheCommitItRanInto(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{Stream: "RA", Prefix: "ra"}
	a := openTest(t, c, c.Connect(0), o)
	b := openTest(t, c, c.Connect(1), o)
	add := func(s *Store, during func()) {
		t.Helper()
		first := true
		if err := s.Update(ctx, func(tx kv.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("n"))
			if err != nil {
				return err
			}
			n := 0
			if v := bk.Get([]byte("count")); v != nil {
				n = int(v[0])
			}
			if first && during != nil {
				first = false
				during()
			}
			return bk.Put([]byte("count"), []byte{byte(n + 1)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	add(a, nil)
	add(b, nil) // b knows the bucket and the count now
	before := b.Stats().Conflicts
	add(b, func() { add(a, nil) })
	if n := b.Stats().Conflicts - before; n != 1 {
		t.Errorf("%d conflicts, want 1", n)
	}
	if err := a.View(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("n")).Get([]byte("count")); len(v) != 1 || v[0] != 4 {
			t.Errorf("count = %v, want 4", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// putK makes bucket b with key k = v and returns k's subject.
func putK(t *testing.T, ctx context.Context, s *Store) string {
	t.Helper()
	var gen string
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		gen = b.(*bucket).gen
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	return s.subj('k', gen, tok([]byte("k")))
}
