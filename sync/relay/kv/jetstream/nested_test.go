package jskv_test

import (
	"context"
	"testing"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A transaction that scans one owner's nested bucket conflicts with a write in that bucket
// and with none in a sibling's: the relay keeps each facility's, inmate's and terminal's
// records in a bucket of its own so that its scans collide only with its owner's writes.
// Two gateways: a scans owner x, and b commits between a's scan and a's commit.
func TestScanOfANestedBucketIgnoresItsSiblings(t *testing.T) {
	c := natstest.Start(t)
	a, b := openOn(t, c, c.Connect(0), "nest"), openOn(t, c, c.Connect(1), "nest")
	ctx := context.Background()
	if err := a.Update(ctx, func(tx kv.Tx) error {
		root, err := tx.CreateBucket([]byte("charges"))
		if err != nil {
			return err
		}
		for _, owner := range []string{"x", "y"} {
			nb, err := root.CreateBucket([]byte(owner))
			if err != nil {
				return err
			}
			if err := nb.Put([]byte("r0"), []byte("1")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// scanThenWrite sums x's records on gateway a, lets gateway b write key in owner's bucket
	// before a commits (once), and returns how often a ran again.
	scanThenWrite := func(owner, key string) int64 {
		before := a.Stats().Conflicts
		first := true
		if err := a.Update(ctx, func(tx kv.Tx) error {
			x := tx.Bucket([]byte("charges")).Bucket([]byte("x"))
			n := 0
			_ = x.ForEach(func(_, _ []byte) error { n++; return nil })
			if first {
				first = false
				if err := b.Update(ctx, func(tx kv.Tx) error {
					return tx.Bucket([]byte("charges")).Bucket([]byte(owner)).Put([]byte(key), []byte("1"))
				}); err != nil {
					t.Fatal(err)
				}
			}
			return tx.Bucket([]byte("totals")).Put([]byte("x"), []byte{byte(n)})
		}); err != nil {
			t.Fatal(err)
		}
		return a.Stats().Conflicts - before
	}
	if err := a.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("totals")); return err }); err != nil {
		t.Fatal(err)
	}
	if n := scanThenWrite("y", "r1"); n != 0 {
		t.Errorf("a write in y's bucket made the scan of x's run again %d times", n)
	}
	if n := scanThenWrite("x", "r1"); n != 1 {
		t.Errorf("a write in x's bucket made the scan of x's run again %d times, want once", n)
	}
}

// A View that a commit overtook runs again, and is counted apart from the Updates that ran
// again (Stats.ViewConflicts): a busy bucket's readers re-read, which costs reads and no
// commit, and the relay's metrics tell the two apart.
func TestViewRunAgainIsCountedApart(t *testing.T) {
	c := natstest.Start(t)
	a, b := openOn(t, c, c.Connect(0), "views"), openOn(t, c, c.Connect(1), "views")
	ctx := context.Background()
	if err := a.Update(ctx, func(tx kv.Tx) error {
		bk, err := tx.CreateBucket([]byte("log"))
		if err != nil {
			return err
		}
		return bk.Put([]byte("1"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	before := a.Stats()
	runs, first := 0, true
	var seen int
	if err := a.View(ctx, func(tx kv.Tx) error {
		runs++
		seen = 0
		_ = tx.Bucket([]byte("log")).ForEach(func(_, _ []byte) error { seen++; return nil })
		if first {
			first = false
			if err := b.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("log")).Put([]byte("2"), []byte("y")) }); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := a.Stats()
	if runs != 2 || seen != 2 {
		t.Fatalf("view ran %d times and saw %d records, want twice and 2", runs, seen)
	}
	if got := after.ViewConflicts - before.ViewConflicts; got != 1 {
		t.Errorf("ViewConflicts moved by %d, want 1", got)
	}
	if got := after.Conflicts - before.Conflicts; got != 0 {
		t.Errorf("Conflicts moved by %d for a View, want 0", got)
	}
}
