package jskv_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// keysOf is the keys a cursor over tx's bucket name finds, in order.
func keysOf(tx kv.Tx, name string) []string {
	var keys []string
	c := tx.Bucket([]byte(name)).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, string(k))
	}
	return keys
}

// A group commit scans one facility's route list once per queued item: the transaction lists
// the bucket from the leader once, sees its own writes in every later scan, and a key another
// gateway adds between two scans neither shows in the second nor commits unnoticed.
func TestOneListingPerTransaction(t *testing.T) {
	c := natstest.Start(t)
	a := openOn(t, c, c.Connect(0), "lists")
	o := jskv.Options{Stream: "lists", Prefix: "lists"}
	b, err := jskv.Open(t.Context(), c.Connect(1), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	makeBuckets(t, a, "routes")
	put := func(s *jskv.Store, key string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			return tx.Bucket([]byte("routes")).Put([]byte(key), []byte("r"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		put(a, k)
	}

	lists := a.Stats().Lists
	runs := 0
	var first, second, third []string
	if err := a.Update(ctx, func(tx kv.Tx) error {
		runs++
		first = keysOf(tx, "routes")
		if runs == 1 {
			put(b, "k5") // another gateway enrols a terminal meanwhile
		}
		rb := tx.Bucket([]byte("routes"))
		if err := rb.Put([]byte("k4"), []byte("r")); err != nil {
			return err
		}
		if err := rb.Delete([]byte("k2")); err != nil {
			return err
		}
		second = keysOf(tx, "routes")
		third = keysOf(tx, "routes")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("the transaction ran %d times, want 2 (the other gateway's key is a conflict)", runs)
	}
	if want := []string{"k1", "k2", "k3", "k5"}; !slices.Equal(first, want) {
		t.Errorf("the re-run's first scan found %v, want %v", first, want)
	}
	if want := []string{"k1", "k3", "k4", "k5"}; !slices.Equal(second, want) || !slices.Equal(third, want) {
		t.Errorf("scans after the transaction's own writes found %v and %v, want %v", second, third, want)
	}
	// One listing per run: the first found k1-k3, the re-run k1-k3 and k5.
	if n := a.Stats().Lists - lists; n != 2 {
		t.Errorf("two runs of three scans each listed the bucket %d times, want 2", n)
	}
	if err := a.View(ctx, func(tx kv.Tx) error {
		if got, want := keysOf(tx, "routes"), []string{"k1", "k3", "k4", "k5"}; !slices.Equal(got, want) {
			t.Errorf("committed: %v, want %v", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
