package jskv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A CurrentView reads its gateway's own commits and whatever that gateway has seen of the
// store since, never an older state: a commit made through another gateway is seen once this
// one read it, though its Updates cached the keys before. It reads from replicas, the keys fn
// names ahead in one request, and nothing a second time at the end (a View reads the leader,
// twice).
func TestCurrentViewReadsWhatItsGatewayKnowsFromReplicas(t *testing.T) {
	c := natstest.Start(t)
	// As relayd opens it: a bucket's marker comes from the gateway's cache.
	o := jskv.Options{Stream: "current", Prefix: "current", CacheBucketMarkers: true}
	g1, g2 := openWith(t, c, c.Connect(0), o), openWith(t, c, c.Connect(0), o)
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
	keys := []kv.Key{{Path: [][]byte{[]byte("b")}, Key: []byte("k1")}, {Path: [][]byte{[]byte("b")}, Key: []byte("k2")}}
	read := func(view func(context.Context, kv.Store, func(kv.Tx) error) error) (got string, leader, replica int64) {
		t.Helper()
		before := g1.KVStats()
		if err := view(ctx, g1, func(tx kv.Tx) error {
			kv.Prefetch(tx, keys)
			b := tx.Bucket([]byte("b"))
			got = string(b.Get([]byte("k1"))) + "," + string(b.Get([]byte("k2")))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		after := g1.KVStats()
		return got, after.Reads - before.Reads, after.ReplicaReads - before.ReplicaReads
	}
	current := func(want string) {
		t.Helper()
		// Every try reads what the gateway knows; a replica behind it is not asked, or its
		// answer not taken, so a try may read the leader, never an older state.
		testwait.UntilSaw(t, "a CurrentView read from a replica", func() (bool, string) {
			got, leader, replica := read(kv.CurrentView)
			if got != want {
				t.Fatalf("a CurrentView read %s, want %s", got, want)
			}
			return leader == 0 && replica > 0, fmt.Sprintf("%d leader reads, %d from replicas", leader, replica)
		})
	}
	put(g1, "old") // g1's cache holds k1 and k2 as "old" now
	current("old,old")
	put(g2, "new")
	got, viewReads, _ := read(func(ctx context.Context, s kv.Store, fn func(kv.Tx) error) error { return s.View(ctx, fn) })
	if got != "new,new" || viewReads < 4 {
		t.Fatalf("a View read %s with %d leader reads, want new,new read twice", got, viewReads)
	}
	current("new,new")
}
