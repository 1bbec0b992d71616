package jskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A CurrentView reads each key as the leader has it when read: a commit made through another
// gateway just before is seen, though this gateway's Updates cached the key before it, and
// nothing is read a second time at the end (a View reads its keys twice).
func TestCurrentViewReadsTheLeaderOnce(t *testing.T) {
	c := natstest.Start(t)
	g1, g2 := openOn(t, c, c.Connect(0), "current"), openOn(t, c, c.Connect(0), "current")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(s kv.Store, v string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for _, k := range []string{"k1", "k2"} {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(g1, "old") // g1's cache holds k1 and k2 as "old" now
	put(g2, "new")
	read := func(view func(context.Context, kv.Store, func(kv.Tx) error) error) (string, int64) {
		t.Helper()
		before := g1.KVStats().Reads
		var got string
		if err := view(ctx, g1, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("b"))
			got = string(b.Get([]byte("k1"))) + "," + string(b.Get([]byte("k2")))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got, g1.KVStats().Reads - before
	}
	got, reads := read(kv.CurrentView)
	if got != "new,new" {
		t.Fatalf("a CurrentView read %s, want new,new", got)
	}
	_, viewReads := read(func(ctx context.Context, s kv.Store, fn func(kv.Tx) error) error { return s.View(ctx, fn) })
	if reads >= viewReads {
		t.Fatalf("a CurrentView made %d reads and a View %d: want fewer, nothing read twice", reads, viewReads)
	}
}
