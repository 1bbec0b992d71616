package jskv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A key read and not written must be found unchanged at commit. The check rides on a write
// that expects nothing itself (the written bucket's version, a key written blind), and only
// checks left over cost a read marker of their own. Whichever message carries it, a key
// another gateway moved between the read and the commit is a conflict, and the re-run sees
// the new value.
func TestReadChecksRideOnBlindWrites(t *testing.T) {
	c := natstest.Start(t)
	a := openOn(t, c, c.Connect(0), "checks")
	b, err := jskv.Open(t.Context(), c.Connect(1), jskv.Options{Stream: "checks", Prefix: "checks"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	makeBuckets(t, a, "limits", "log")
	set := func(s *jskv.Store, key string, v byte) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			return tx.Bucket([]byte("limits")).Put([]byte(key), []byte{v})
		}); err != nil {
			t.Fatal(err)
		}
	}
	read := []string{"r1", "r2", "r3"}
	for _, k := range read {
		set(a, k, 1)
	}

	// Three keys read, one key written blind: the write and its bucket's version carry two
	// checks (the first two in order), a marker the third.
	for round, moved := range append([]string{""}, read...) {
		t.Run(fmt.Sprintf("moved %q", moved), func(t *testing.T) {
			before := a.Stats()
			runs := 0
			var sum int
			if err := a.Update(ctx, func(tx kv.Tx) error {
				runs++
				lim := tx.Bucket([]byte("limits"))
				sum = 0
				for _, k := range read {
					sum += int(lim.Get([]byte(k))[0])
				}
				if runs == 1 && moved != "" {
					set(b, moved, 2) // another gateway changes a limit meanwhile
				}
				return tx.Bucket([]byte("log")).Put(fmt.Appendf(nil, "entry%d", round), fmt.Appendf(nil, "sum %d", sum))
			}); err != nil {
				t.Fatal(err)
			}
			after := a.Stats()
			want := 1
			if moved != "" {
				want = 2
			}
			if runs != want {
				t.Errorf("the transaction ran %d times, want %d", runs, want)
			}
			if n := after.Conflicts - before.Conflicts; n != int64(want-1) {
				t.Errorf("%d conflicts, want %d", n, want-1)
			}
			if n := after.Messages - before.Messages; n != 3 {
				t.Errorf("the commit was %d messages, want 3 (the entry, the log's version, one read marker)", n)
			}
			var got string
			if err := a.View(ctx, func(tx kv.Tx) error {
				got = string(tx.Bucket([]byte("log")).Get(fmt.Appendf(nil, "entry%d", round)))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if wantSum := fmt.Sprintf("sum %d", 3+round); got != wantSum {
				t.Errorf("logged %q, want %q: the entry rests on a limit that had moved", got, wantSum)
			}
		})
	}
}

// What a transaction says it would send (kv.Size) is what its commit sends, whatever mix of
// reads, blind writes, deletes, scans and new buckets it holds: the relay's group commit
// sizes its groups by it.
func TestSizeIsWhatTheCommitSends(t *testing.T) {
	c := natstest.Start(t)
	s := openOn(t, c, c.Connect(0), "sizes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	makeBuckets(t, s, "a", "b")
	if err := s.Update(ctx, func(tx kv.Tx) error {
		for _, k := range []string{"k1", "k2", "k3", "k4"} {
			if err := tx.Bucket([]byte("a")).Put([]byte(k), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	get := func(tx kv.Tx, b, k string) { tx.Bucket([]byte(b)).Get([]byte(k)) }
	put := func(tx kv.Tx, b, k string) error { return tx.Bucket([]byte(b)).Put([]byte(k), []byte("w")) }
	cases := []struct {
		name string
		fn   func(tx kv.Tx) error
	}{
		{"blind writes", func(tx kv.Tx) error {
			if err := put(tx, "b", "x1"); err != nil {
				return err
			}
			return put(tx, "b", "x2")
		}},
		{"more keys read than blind writes to carry them", func(tx kv.Tx) error {
			for _, k := range []string{"k1", "k2", "k3", "k4"} {
				get(tx, "a", k)
			}
			get(tx, "b", "x1")
			return put(tx, "b", "x1") // read, then written: its own check
		}},
		{"a read key deleted", func(tx kv.Tx) error {
			get(tx, "a", "k2")
			get(tx, "a", "k3")
			return tx.Bucket([]byte("a")).Delete([]byte("k4"))
		}},
		{"a scan, then a write in the scanned bucket", func(tx kv.Tx) error {
			cur := tx.Bucket([]byte("a")).Cursor()
			for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			}
			get(tx, "b", "x2")
			return put(tx, "a", "k5")
		}},
		{"a scan of a bucket not written", func(tx kv.Tx) error {
			cur := tx.Bucket([]byte("b")).Cursor()
			for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			}
			return put(tx, "a", "k6")
		}},
		{"a new nested bucket", func(tx kv.Tx) error {
			get(tx, "a", "k1")
			nb, err := tx.Bucket([]byte("b")).CreateBucket([]byte("nested"))
			if err != nil {
				return err
			}
			return nb.Put([]byte("n1"), []byte("v"))
		}},
		{"reads only", func(tx kv.Tx) error {
			get(tx, "a", "k1")
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var said, bound int
			before := s.Stats().Messages
			if err := s.Update(ctx, func(tx kv.Tx) error {
				if err := tc.fn(tx); err != nil {
					return err
				}
				var ok bool
				if said, bound, ok = kv.Size(tx); !ok {
					t.Fatal("a JetStream transaction does not say its size")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if sent := s.Stats().Messages - before; int64(said) != sent {
				t.Errorf("the transaction said it would send %d messages, its commit sent %d", said, sent)
			}
			if bound != 1000 {
				t.Errorf("bound %d, want nats-server's 1,000 messages an atomic batch", bound)
			}
		})
	}
}
