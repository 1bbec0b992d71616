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
