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

// An Update reads from replicas (its reads are validated at commit); a View reads its keys
// and its buckets' versions from the leader, and a cursor's values from a replica whose
// version is the one it read there; LeaderReadsOnly keeps both on the leader. The answers are
// the same.
func TestWhichReadsGoToReplicas(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := openWith(t, c, c.Connect(0), jskv.Options{Stream: "OR", Prefix: "or"})
	const n = 40
	if err := w.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("acct"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "a%02d", i), []byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sum := func(tx kv.Tx) (int, int) {
		b := tx.Bucket([]byte("acct"))
		s, seen := 0, 0
		for k, v := b.Cursor().First(); k != nil; k, v = nil, nil { // the first by itself
			s += int(v[0])
			seen++
		}
		c := b.Cursor()
		c.First()
		for k, v := c.Next(); k != nil; k, v = c.Next() { // the rest read ahead
			s += int(v[0])
			seen++
		}
		s += int(b.Get([]byte("a07"))[0]) // and one point read
		return s, seen
	}
	want := n*(n-1)/2 + 7
	for _, tc := range []struct {
		name        string
		o           jskv.Options
		update      bool
		wantReplica bool
	}{
		{"update", jskv.Options{Stream: "OR", Prefix: "or", CacheEntries: -1}, true, true},
		{"view", jskv.Options{Stream: "OR", Prefix: "or", CacheEntries: -1}, false, true},
		{"update, leader reads only", jskv.Options{Stream: "OR", Prefix: "or", CacheEntries: -1, LeaderReadsOnly: true}, true, false},
		{"view, leader reads only", jskv.Options{Stream: "OR", Prefix: "or", CacheEntries: -1, LeaderReadsOnly: true}, false, false},
	} {
		s := openWith(t, c, c.Connect(1), tc.o)
		run := s.View
		if tc.update {
			run = s.Update
		}
		// once runs the sum and says what it read, from the leader and from replicas.
		once := func() (reads, replicaReads int64) {
			t.Helper()
			before := s.Stats()
			var got, seen int
			if err := run(ctx, func(tx kv.Tx) error {
				got, seen = sum(tx)
				if tc.update {
					return tx.Bucket([]byte("acct")).Put([]byte("a00"), []byte{0})
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got != want || seen != n {
				t.Fatalf("%s: sum %d over %d keys, want %d over %d", tc.name, got, seen, want, n)
			}
			after := s.Stats()
			return after.Reads - before.Reads, after.ReplicaReads - before.ReplicaReads
		}
		reads, replicaReads := once()
		if !tc.update && tc.wantReplica {
			// A View takes a replica's values only at the version it read from the leader: a
			// replica yet to apply the writes is refused for the leader, so a try may read
			// none there, never a wrong sum.
			testwait.UntilSaw(t, tc.name+" reading a cursor's values from a replica", func() (bool, string) {
				if replicaReads == 0 {
					reads, replicaReads = once()
				}
				return replicaReads > 0, fmt.Sprintf("%d leader reads, %d from replicas", reads, replicaReads)
			})
		}
		st := struct{ Reads, ReplicaReads int64 }{reads, replicaReads}
		if (st.ReplicaReads > 0) != tc.wantReplica {
			t.Errorf("%s: %d replica reads, %d leader reads; want replica reads: %v", tc.name, st.ReplicaReads, st.Reads, tc.wantReplica)
		}
		if !tc.update && tc.wantReplica && (st.ReplicaReads > n || st.Reads < 3) {
			// The first key (a cursor landing alone), the point read and the version, twice;
			// the replica's answers are the other 39 and the version with them.
			t.Errorf("%s: %d replica reads, %d leader reads; want the first key, the point read and the version from the leader", tc.name, st.ReplicaReads, st.Reads)
		}
		if tc.update && tc.wantReplica && st.Reads > 2 {
			// What may still go to the leader: the bucket's marker (not cached here).
			t.Errorf("%s: %d leader reads besides %d from replicas, want at most the marker's", tc.name, st.Reads, st.ReplicaReads)
		}
	}
}

// A bucket with more keys than one replica answer holds is listed from the leader, and its
// cursor still sees every key; the store remembers not to ask a replica to list it again.
func TestBigBucketListedFromTheLeader(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openWith(t, c, c.Connect(0), jskv.Options{Stream: "BB", Prefix: "bb"})
	const n = 1100 // past the server's 1,024 messages an answer
	for from := 0; from < n; from += 500 {
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			for i := from; i < min(n, from+500); i++ {
				if err := b.Put(fmt.Appendf(nil, "k%04d", i), []byte{1}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		before := s.Stats()
		count := 0
		if err := s.Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("big"))
			count = b.KeyN()
			return b.Put([]byte("k0000"), []byte{2})
		}); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Errorf("round %d: the cursor saw %d keys, want %d", round, count, n)
		}
		misses := s.Stats().ReplicaMisses - before.ReplicaMisses
		if want := int64(1 - round); misses != want {
			t.Errorf("round %d: %d replica listings refused, want %d (the first, then none asked)", round, misses, want)
		}
	}
}

// Keys none of which exists yet (a group commit's new item ids) are answered by a replica as
// absent, not refused and read again from the leader.
func TestAbsentKeysReadFromAReplica(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "AK", Prefix: "ak", CacheBucketMarkers: true}
	w := openWith(t, c, c.Connect(0), o)
	if err := w.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("ids")); return err }); err != nil {
		t.Fatal(err)
	}
	s := openWith(t, c, c.Connect(1), o)
	var keys []kv.Key
	for i := range 10 {
		keys = append(keys, kv.Key{Path: [][]byte{[]byte("ids")}, Key: fmt.Appendf(nil, "new%d", i)})
	}
	if err := s.Update(ctx, func(tx kv.Tx) error {
		kv.Prefetch(tx, keys)
		b := tx.Bucket([]byte("ids"))
		for _, k := range keys {
			if v := b.Get(k.Key); v != nil {
				t.Errorf("%s = %q, want none", k.Key, v)
			}
		}
		return b.Put(keys[0].Key, []byte("first"))
	}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Reads != 0 || st.ReplicaMisses != 0 || st.ReplicaReads < int64(len(keys)) {
		t.Errorf("%d leader reads, %d replica reads, %d refused; want none, at least %d, none", st.Reads, st.ReplicaReads, st.ReplicaMisses, len(keys))
	}
}

// ForEachBucket reads the markers it lists as a cursor reads values, never from the cache or
// a replica: a gateway that once found a nested bucket absent (and cached that, or asked a
// replica not yet told) must still see it once another gateway made it. A migration step
// that copies nested buckets would otherwise skip one.
func TestForEachBucketSeesABucketMadeElsewhere(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "FB", Prefix: "fb", CacheBucketMarkers: true}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	if err := a.Update(ctx, func(tx kv.Tx) error {
		if _, err := tx.CreateBucket([]byte("owners")); err != nil {
			return err
		}
		_, err := tx.CreateBucket([]byte("other"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// a looks for the nested bucket and finds none, writing elsewhere: its cache now holds
	// the marker's absence and not the owners bucket's version.
	if err := a.Update(ctx, func(tx kv.Tx) error {
		if tx.Bucket([]byte("owners")).Bucket([]byte("T1")) != nil {
			t.Error("T1 exists before anyone made it")
		}
		return tx.Bucket([]byte("other")).Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, func(tx kv.Tx) error {
		_, err := tx.Bucket([]byte("owners")).CreateBucket([]byte("T1"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := a.Update(ctx, func(tx kv.Tx) error {
		names = nil
		ob := tx.Bucket([]byte("owners"))
		if err := ob.ForEachBucket(func(n []byte) error { names = append(names, string(n)); return nil }); err != nil {
			return err
		}
		return tx.Bucket([]byte("other")).Put([]byte("k"), []byte("w"))
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "T1" {
		t.Errorf("gateway a lists nested buckets %q, want [T1] (made by gateway b)", names)
	}
}

// A StaleView reads replicas only: bucket markers (without CacheBucketMarkers), a cursor's
// listing and values, a nested bucket's key. It validates nothing, keeps nothing in the
// gateway's cache, and once the replicas have a commit it reads what was committed.
func TestStaleViewReadsOnlyReplicas(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "SV", Prefix: "sv"}
	w := openWith(t, c, c.Connect(0), o)
	const n = 30
	if err := w.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("fleet"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "t%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		nb, err := b.CreateBucket([]byte("dev"))
		if err != nil {
			return err
		}
		return nb.Put([]byte("x"), []byte("y"))
	}); err != nil {
		t.Fatal(err)
	}
	s := openWith(t, c, c.Connect(1), o)
	var got []string
	var nested string
	testwait.UntilSaw(t, "a StaleView to show the commit", func() (bool, string) {
		got, nested = nil, ""
		if err := s.StaleView(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("fleet"))
			if b == nil {
				return nil
			}
			if nb := b.Bucket([]byte("dev")); nb != nil {
				nested = string(nb.Get([]byte("x")))
			}
			return b.ForEach(func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil })
		}); err != nil {
			t.Fatalf("StaleView: %v", err)
		}
		return len(got) == n && nested == "y", fmt.Sprintf("%d keys, nested %q", len(got), nested)
	})
	for i, pair := range got {
		if want := fmt.Sprintf("t%02d=v%d", i, i); pair != want {
			t.Errorf("key %d: %s, want %s", i, pair, want)
		}
	}
	st := s.Stats()
	if st.Reads != 0 || st.ReplicaReads < n || st.StaleViews < 1 || st.Views != 0 || st.CacheHits != 0 {
		t.Errorf("%d leader reads, %d replica reads, %d stale views, %d views, %d cache hits; want none, at least %d, at least 1, none, none",
			st.Reads, st.ReplicaReads, st.StaleViews, st.Views, st.CacheHits, n)
	}
	// Nothing it read was kept: an Update's read of a key it read is not a cache hit.
	if err := s.Update(ctx, func(tx kv.Tx) error { tx.Bucket([]byte("fleet")).Get([]byte("t03")); return nil }); err != nil {
		t.Fatal(err)
	}
	if after := s.Stats(); after.CacheHits != 0 {
		t.Errorf("an Update after the StaleView took %d reads from the cache, want none", after.CacheHits)
	}
}
