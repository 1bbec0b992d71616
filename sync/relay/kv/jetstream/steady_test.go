package jskv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A CurrentView takes a steady bucket's keys from its gateway's cache while the bucket's
// version, read in their stead, shows no write since they were read, and reads them again
// the moment it does: a revocation made through another gateway is seen by the first view
// that knows of its commit, and a deleted key is gone. Keys of other buckets are read as
// before, and a write there does not make the steady keys be read again.
func TestCurrentViewTakesSteadyKeysByTheirBucketsVersion(t *testing.T) {
	c := natstest.Start(t)
	o := jskv.Options{Stream: "steady", Prefix: "steady", CacheBucketMarkers: true, SteadyRoots: [][]byte{[]byte("terminals")}}
	g1, g2 := openWith(t, c, c.Connect(0), o), openWith(t, c, c.Connect(1), o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = 20
	name := func(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }
	want := make([]string, n)
	write := func(fn func(terms, other kv.Bucket) error) {
		t.Helper()
		if err := g2.Update(ctx, func(tx kv.Tx) error {
			terms, err := tx.CreateBucketIfNotExists([]byte("terminals"))
			if err != nil {
				return err
			}
			other, err := tx.CreateBucketIfNotExists([]byte("other"))
			if err != nil {
				return err
			}
			return fn(terms, other)
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(func(terms, other kv.Bucket) error {
		for i := range n {
			want[i] = "enrolled"
			if err := terms.Put(name(i), []byte(want[i])); err != nil {
				return err
			}
		}
		return other.Put([]byte("o"), []byte("1"))
	})

	keys := []kv.Key{{Path: [][]byte{[]byte("other")}, Key: []byte("o")}}
	for i := range n {
		keys = append(keys, kv.Key{Path: [][]byte{[]byte("terminals")}, Key: name(i)})
	}
	// view reads every key in a CurrentView of g1 no older than g2's last commit, checks what
	// it found, and says how it read them.
	view := func(other string) (replica, hits, leader int64) {
		t.Helper()
		before := g1.KVStats()
		if err := kv.CurrentViewFrom(ctx, g1, g2.Position(), func(tx kv.Tx) error {
			kv.Prefetch(tx, keys)
			terms := tx.Bucket([]byte("terminals"))
			var got []string
			for i := range n {
				got = append(got, string(terms.Get(name(i))))
			}
			if g := strings.Join(got, ","); g != strings.Join(want, ",") {
				t.Fatalf("a CurrentView read the terminals\n%s\nwant\n%s", g, strings.Join(want, ","))
			}
			if g := string(tx.Bucket([]byte("other")).Get([]byte("o"))); g != other {
				t.Fatalf("a CurrentView read other/o = %q, want %q", g, other)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		after := g1.KVStats()
		return after.ReplicaReads - before.ReplicaReads, after.CacheHits - before.CacheHits, after.Reads - before.Reads
	}
	// byVersion waits for a view that read the terminals' version and other/o from a
	// replica and nothing else (a replica behind the view's floor is not taken, and then the
	// keys are read as before), its values checked every time.
	byVersion := func(other string) {
		t.Helper()
		testwait.UntilSaw(t, "a CurrentView that takes the steady keys by their bucket's version", func() (bool, string) {
			replica, hits, leader := view(other)
			return replica == 2 && hits >= n && leader == 0,
				fmt.Sprintf("%d read from replicas, %d from the cache, %d from the leader", replica, hits, leader)
		})
	}
	byVersion("1")

	// Another gateway revokes one terminal and deletes another: the version moves, and the
	// first view that knows of the commit reads both as they are now.
	write(func(terms, _ kv.Bucket) error {
		want[7], want[3] = "revoked", ""
		if err := terms.Put(name(7), []byte(want[7])); err != nil {
			return err
		}
		return terms.Delete(name(3))
	})
	if replica, _, leader := view("1"); replica+leader < n {
		t.Errorf("after the terminals were written, a view read %d subjects, want the %d keys again", replica+leader, n)
	}
	byVersion("1")

	// A write elsewhere leaves the terminals' version where it was.
	write(func(_, other kv.Bucket) error { return other.Put([]byte("o"), []byte("2")) })
	byVersion("2")
}
