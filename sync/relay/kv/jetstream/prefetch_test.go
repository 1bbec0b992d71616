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
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// Two gateways of one stream, each with its read cache: a key one of them prefetched and the
// other wrote before the first read it is validated at the first's commit (kvtest).
func TestPrefetchRacesTwoGateways(t *testing.T) {
	c := natstest.Start(t)
	o := jskv.Options{Stream: "PR", Prefix: "pr", CacheBucketMarkers: true}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	kvtest.PrefetchRaces(t, a, b)
	// The prefetch answered the first runs (it is what made them conflict): the stale value
	// came from it, not from a read at Get.
	if st := a.Stats(); st.Prefetched == 0 || st.Conflicts < 3 {
		t.Errorf("gateway a: %d reads prefetched, %d conflicts; want prefetched reads and a conflict in each of the three cases that read", st.Prefetched, st.Conflicts)
	}
}

// oneByOne is how many reads s made one round trip after another, from the leader or a replica.
func oneByOne(s *jskv.Store) int64 {
	st := s.Stats()
	return st.Reads - st.Prefetched + st.ReplicaOneByOne
}

// together is how many reads s made several to a round trip, from the leader or replicas.
func together(s *jskv.Store) int64 {
	st := s.Stats()
	return st.Prefetched + st.ReplicaReads - st.ReplicaOneByOne
}

// A transaction that names its keys first reads them together: of 200 keys no gateway has in
// its cache, none is read one round trip after another.
func TestPrefetchReadsTogether(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "PT", Prefix: "pt", CacheBucketMarkers: true}
	w := openWith(t, c, c.Connect(0), o)
	const n = 200
	var keys []kv.Key
	if err := w.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("items"))
		if err != nil {
			return err
		}
		for i := range n {
			k := fmt.Appendf(nil, "k%03d", i)
			keys = append(keys, kv.Key{Path: [][]byte{[]byte("items")}, Key: k})
			if i%2 == 0 { // half of them absent
				if err := b.Put(k, []byte("v")); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := openWith(t, c, c.Connect(1), o) // a gateway whose cache holds none of them
	before := oneByOne(r)
	if err := r.Update(ctx, func(tx kv.Tx) error {
		kv.Prefetch(tx, keys)
		b := tx.Bucket([]byte("items"))
		for i, k := range keys {
			if v := b.Get(k.Key); (v != nil) != (i%2 == 0) {
				t.Errorf("%s reads %q", k.Key, v)
			}
		}
		return b.Put([]byte("k000"), []byte("w"))
	}); err != nil {
		t.Fatal(err)
	}
	if got := oneByOne(r) - before; got != 0 {
		t.Errorf("%d of %d prefetched keys were read one by one, want none", got, n)
	}
	if got := together(r); got < n {
		t.Errorf("%d reads made together, want at least the %d keys", got, n)
	}
}

// A transaction run again after a conflict reads again, together (from replicas, then the
// leader if it conflicts again), what its run before read: with no cache (as after a conflict, which drops what a run took from
// it) the re-run makes no read one by one.
func TestRunAgainReadsTogether(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "RA", Prefix: "ra", CacheEntries: -1}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	const n = 100
	if err := b.Update(ctx, func(tx kv.Tx) error {
		bk, err := tx.CreateBucket([]byte("acct"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := bk.Put(fmt.Appendf(nil, "a%03d", i), []byte{1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runs := 0
	var first int64
	start := oneByOne(a)
	if err := a.Update(ctx, func(tx kv.Tx) error {
		runs++
		bk := tx.Bucket([]byte("acct"))
		sum := 0
		for i := range n {
			sum += int(bk.Get(fmt.Appendf(nil, "a%03d", i))[0])
		}
		if runs == 1 {
			first = oneByOne(a) - start
			if err := b.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("acct")).Put([]byte("a050"), []byte{2}) }); err != nil {
				return err
			}
		}
		return bk.Put([]byte("sum"), []byte{byte(sum)})
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("the transaction ran %d times, want 2 (one conflict)", runs)
	}
	if first < n {
		t.Fatalf("the first run read %d keys one by one, want at least %d (no cache)", first, n)
	}
	if again := oneByOne(a) - start - first; again != 0 {
		t.Errorf("the run after the conflict read %d keys one by one, want none (all %d together)", again, n)
	}
	if err := a.View(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("acct")).Get([]byte("sum")); len(v) != 1 || v[0] != n+1 {
			t.Errorf("sum = %v, want %d (the re-run saw the other gateway's write)", v, n+1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A bucket made in the transaction holds only what the transaction put in it: its keys,
// sequence and listing are known without a round trip (a relay group commit makes an
// inmate's nested buckets with the inmate's first charge, then looks each new charge up).
func TestBucketMadeHereIsReadWithoutRoundTrips(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openWith(t, c, c.Connect(0), jskv.Options{Stream: "BH", Prefix: "bh"})
	if err := s.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("charges")); return err }); err != nil {
		t.Fatal(err)
	}
	var made, read jskv.Stats
	if err := s.Update(ctx, func(tx kv.Tx) error {
		nb, err := tx.Bucket([]byte("charges")).CreateBucket([]byte("A1"))
		if err != nil {
			return err
		}
		made = s.Stats()
		for i := range 20 {
			k := fmt.Appendf(nil, "r%02d", i)
			if v := nb.Get(k); v != nil {
				t.Errorf("%s in a new bucket reads %q", k, v)
			}
			if err := nb.Put(k, []byte("c")); err != nil {
				return err
			}
		}
		if nb.Sequence() != 0 || nb.Bucket([]byte("nested")) != nil || nb.KeyN() != 20 {
			t.Errorf("new bucket: sequence %d, keys %d", nb.Sequence(), nb.KeyN())
		}
		read = s.Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := read.Reads - made.Reads; n != 0 {
		t.Errorf("reads in a bucket made in the transaction made %d round trips, want none", n)
	}
	if n := read.Lists - made.Lists; n != 0 {
		t.Errorf("a cursor over a bucket made in the transaction made %d listings, want none", n)
	}
	if err := s.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("charges")).Bucket([]byte("A1")).KeyN(); n != 20 {
			t.Errorf("after the commit the new bucket holds %d keys, want 20", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A cursor that walks a bucket reads its values a window at a time, not one round trip a
// key: ForEach over 50 keys no gateway has cached reads the bucket's version and the first
// key alone, and the other 49 together; Last and Prev read one key each way as well.
func TestCursorWalkReadsAhead(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "CW", Prefix: "cw", CacheBucketMarkers: true}
	w := openWith(t, c, c.Connect(0), o)
	const n = 50
	if err := w.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("routes"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "t%02d", i), fmt.Appendf(nil, "r%02d", i)); err != nil {
				return err
			}
		}
		// A deleted key among them: the walk steps over its tombstone.
		return b.Delete([]byte("t25"))
	}); err != nil {
		t.Fatal(err)
	}
	for _, writable := range []bool{false, true} {
		r := openWith(t, c, c.Connect(1), o)
		run := r.View
		if writable {
			run = r.Update
		}
		var walk, back, total int64
		if err := run(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("routes"))
			start := oneByOne(r)
			seen := 0
			if err := b.ForEach(func(k, v []byte) error {
				if string(v) != "r"+string(k[1:]) {
					t.Errorf("%s = %q", k, v)
				}
				seen++
				return nil
			}); err != nil {
				return err
			}
			if seen != n-1 {
				t.Errorf("the walk saw %d keys, want %d", seen, n-1)
			}
			walk = oneByOne(r) - start
			total = r.Stats().Reads
			// Backwards over what the walk read: no read at all.
			cur := b.Cursor()
			for k, _ := cur.Last(); k != nil; k, _ = cur.Prev() {
			}
			back = r.Stats().Reads - total
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if walk > 2 {
			t.Errorf("writable %v: a walk over %d keys made %d reads one by one, want 2 (the version and the first key)", writable, n, walk)
		}
		if back != 0 {
			t.Errorf("writable %v: walking back over keys read made %d reads", writable, back)
		}
	}
}

// A bucket used as a queue (records due, drained from the front) lists its drained keys until
// their tombstones expire. A View's First or Seek steps over them a window at a time: over
// 200 tombstones before the first live key it makes the version's read and the first key's
// alone, and reads the rest from replicas (once one has applied the deletes), none from the
// leader.
func TestCursorStepsOverTombstonesAWindowAtATime(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "CQ", Prefix: "cq", CacheBucketMarkers: true}
	w := openWith(t, c, c.Connect(0), o)
	const drained, live = 200, 3
	if err := w.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("due"))
		if err != nil {
			return err
		}
		for i := range drained + live {
			if err := b.Put(fmt.Appendf(nil, "r%03d", i), []byte("record")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, func(tx kv.Tx) error {
		for i := range drained {
			if err := tx.Bucket([]byte("due")).Delete(fmt.Appendf(nil, "r%03d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, seek := range []bool{false, true} {
		r := openWith(t, c, c.Connect(1), o)
		// A replica that has not applied the deletes yet shows another version, and its
		// answer is refused for the leader's: each try must land right and step over the
		// tombstones together, and one must read them from a replica.
		testwait.UntilSaw(t, "a View stepping over tombstones from a replica", func() (bool, string) {
			leader, replica := landOverTombstones(t, ctx, r, seek, drained)
			return leader == 0 && replica >= drained, fmt.Sprintf("%d read together from the leader, %d from replicas", leader, replica)
		})
	}
}

// landOverTombstones lands a View's cursor on the first live key of bucket "due", past drained
// tombstones (First, or Seek), and says how many keys it read together from the leader and
// from replicas.
func landOverTombstones(t *testing.T, ctx context.Context, r *jskv.Store, seek bool, drained int) (leader, replica int64) {
	t.Helper()
	var first []byte
	var reads int64
	if err := r.View(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("due"))
		start, before := oneByOne(r), r.Stats()
		cur := b.Cursor()
		if seek {
			first, _ = cur.Seek([]byte("r"))
		} else {
			first, _ = cur.First()
		}
		reads = oneByOne(r) - start
		after := r.Stats()
		leader, replica = after.Prefetched-before.Prefetched, after.ReplicaReads-before.ReplicaReads
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("r%03d", drained); string(first) != want {
		t.Fatalf("seek %v: the cursor landed on %q, want %s", seek, first, want)
	}
	if reads > 2 {
		t.Fatalf("seek %v: stepping over %d tombstones made %d reads one by one, want 2 (the version and the first key)", seek, drained, reads)
	}
	return leader, replica
}

// The values a cursor lands on rest on the bucket's version, read from the leader before them
// and validated at commit; a value the gateway's cache held from before another gateway's
// commit must not be among them. Gateway a caches one account by reading it; b moves cents
// from it to another; a's walk over the accounts (the version now read fresh, as a never
// wrote the bucket) must see the total, not the stale account beside the fresh one.
func TestCursorDoesNotTakeStaleCachedValues(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "CS", Prefix: "cs", CacheBucketMarkers: true}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	update := func(s *jskv.Store, fn func(kv.Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(b, func(tx kv.Tx) error {
		bk, err := tx.CreateBucket([]byte("acct"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("totals")); err != nil {
			return err
		}
		for _, k := range []string{"a1", "a2", "a3"} {
			if err := bk.Put([]byte(k), []byte{10}); err != nil {
				return err
			}
		}
		return nil
	})
	update(a, func(tx kv.Tx) error { tx.Bucket([]byte("acct")).Get([]byte("a1")); return nil })
	update(b, func(tx kv.Tx) error {
		bk := tx.Bucket([]byte("acct"))
		if err := bk.Put([]byte("a1"), []byte{3}); err != nil {
			return err
		}
		return bk.Put([]byte("a2"), []byte{17})
	})
	var sum int
	update(a, func(tx kv.Tx) error {
		sum = 0
		if err := tx.Bucket([]byte("acct")).ForEach(func(_, v []byte) error { sum += int(v[0]); return nil }); err != nil {
			return err
		}
		return tx.Bucket([]byte("totals")).Put([]byte("sum"), []byte{byte(sum)})
	})
	if sum != 30 {
		t.Errorf("a walk over the accounts summed %d, want 30: a value cached before another gateway's commit was taken as current", sum)
	}
}

// What a gateway's own commit wrote in a bucket is current as long as the bucket's version is
// the one that commit left: a walk over it takes the values from the cache, with no round
// trip. Once another gateway wrote in the bucket, the walk sees that write.
func TestCursorTakesCurrentCachedValues(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := jskv.Options{Stream: "CC", Prefix: "cc", CacheBucketMarkers: true}
	a := openWith(t, c, c.Connect(0), o)
	b := openWith(t, c, c.Connect(1), o)
	const n = 20
	if err := a.Update(ctx, func(tx kv.Tx) error {
		bk, err := tx.CreateBucket([]byte("routes"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := bk.Put(fmt.Appendf(nil, "t%02d", i), []byte{1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	walk := func() (sum int, reads int64) {
		t.Helper()
		if err := a.Update(ctx, func(tx kv.Tx) error {
			start := a.Stats().Reads
			sum = 0
			err := tx.Bucket([]byte("routes")).ForEach(func(_, v []byte) error { sum += int(v[0]); return nil })
			reads = a.Stats().Reads - start
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return sum, reads
	}
	if sum, reads := walk(); sum != n || reads != 0 {
		t.Errorf("a walk over what this gateway wrote: sum %d, %d leader reads; want %d and none", sum, reads, n)
	}
	if err := b.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("routes")).Put([]byte("t07"), []byte{5}) }); err != nil {
		t.Fatal(err)
	}
	if sum, _ := walk(); sum != n+4 {
		t.Errorf("a walk after another gateway's write sums %d, want %d", sum, n+4)
	}
	if sum, reads := walk(); sum != n+4 || reads != 0 {
		t.Errorf("a walk after a walk that validated the version: sum %d, %d leader reads; want %d and none", sum, reads, n+4)
	}
}
