package jskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A key guessed absent is answered without a round trip and validated at commit: where it is
// absent the commit goes through; where another gateway wrote it, the commit is a conflict and
// the run again reads the value, so fn never acts on the wrong guess. A View guesses nothing.
func TestGuessedAbsentIsValidatedAtCommit(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "GA", Prefix: "ga", CacheBucketMarkers: true}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	if err := a.Update(ctx, func(tx kv.Tx) error {
		_, err := tx.CreateBucket([]byte("ids"))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// claim stores id in gateway a unless it is held, and says what fn saw on each run.
	claim := func(id string) (runs []string) {
		t.Helper()
		if err := a.Update(ctx, func(tx kv.Tx) error {
			ids := tx.Bucket([]byte("ids"))
			kv.GuessAbsent(ids, []byte(id))
			v := ids.Get([]byte(id))
			runs = append(runs, string(v))
			if v != nil {
				return nil
			}
			return ids.Put([]byte(id), []byte("a"))
		}); err != nil {
			t.Fatal(err)
		}
		return runs
	}

	before := a.Stats()
	if runs := claim("new"); len(runs) != 1 || runs[0] != "" {
		t.Fatalf("a new id: runs saw %q, want one run seeing nothing", runs)
	}
	after := a.Stats()
	if g, r := after.Guessed-before.Guessed, after.Reads+after.ReplicaReads-before.Reads-before.ReplicaReads; g != 1 || r != 0 {
		t.Errorf("a new id: %d guessed, %d read; want 1 and 0", g, r)
	}

	// Gateway b holds "taken"; a has never read it, so it guesses.
	if err := b.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("ids")).Put([]byte("taken"), []byte("b")) }); err != nil {
		t.Fatal(err)
	}
	before = a.Stats()
	if runs := claim("taken"); len(runs) != 2 || runs[0] != "" || runs[1] != "b" {
		t.Fatalf("an id held elsewhere: runs saw %q, want the guess and then b's value", runs)
	}
	if n := a.Stats().Conflicts - before.Conflicts; n != 1 {
		t.Errorf("an id held elsewhere: %d conflicts, want 1", n)
	}
	if err := b.View(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("ids")).Get([]byte("taken")); string(v) != "b" {
			t.Errorf("after a's wrong guess, taken = %q, want b's", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A View reads: "taken" is there, whatever it is told, and nothing was guessed (a View
	// that guessed would still end right, run again after validating, so the count says it).
	before = a.Stats()
	if err := a.View(ctx, func(tx kv.Tx) error {
		ids := tx.Bucket([]byte("ids"))
		kv.GuessAbsent(ids, []byte("taken"))
		if v := ids.Get([]byte("taken")); string(v) != "b" {
			t.Errorf("a View told to guess read %q, want b", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := a.Stats().Guessed - before.Guessed; n != 0 {
		t.Errorf("a View guessed %d reads, want none", n)
	}
}
