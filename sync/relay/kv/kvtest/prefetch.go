package kvtest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// testPrefetch: a transaction that names keys before reading them (kv.Prefetch) reads what it
// would have read without the hint: present keys, absent keys, keys of nested buckets and of
// buckets that are not there, its own writes over what was fetched, and a bucket it makes
// after naming keys in it while it was absent. In an Update and in a View alike.
func testPrefetch(t *testing.T, s kv.Store) {
	fill(t, s, "p")
	update(t, s, func(tx kv.Tx) error {
		n, err := tx.Bucket([]byte("p")).CreateBucket([]byte("nested"))
		if err != nil {
			return err
		}
		return n.Put([]byte("deep"), []byte("down"))
	})
	keys := func() []kv.Key {
		var ks []kv.Key
		for _, k := range tricky {
			ks = append(ks, kv.Key{Path: [][]byte{[]byte("p")}, Key: k})
		}
		return append(ks,
			kv.Key{Path: [][]byte{[]byte("p")}, Key: []byte("absent")},
			kv.Key{Path: [][]byte{[]byte("p"), []byte("nested")}, Key: []byte("deep")},
			kv.Key{Path: [][]byte{[]byte("p"), []byte("nested")}, Key: []byte("shallow")},
			kv.Key{Path: [][]byte{[]byte("p"), []byte("none")}, Key: []byte("x")},
			kv.Key{Path: [][]byte{[]byte("missing")}, Key: []byte("x")},
			kv.Key{Path: [][]byte{[]byte("later")}, Key: []byte("k")},
			kv.Key{Path: [][]byte{[]byte("p")}, Key: nil},
			kv.Key{Key: []byte("no path")},
		)
	}
	check := func(tx kv.Tx) {
		t.Helper()
		b := tx.Bucket([]byte("p"))
		for _, k := range tricky {
			if v := b.Get(k); !bytes.Equal(v, val(k)) {
				t.Errorf("writable %v: prefetched %q reads %q, want %q", tx.Writable(), k, v, val(k))
			}
		}
		if v := b.Get([]byte("absent")); v != nil {
			t.Errorf("writable %v: prefetched absent key reads %q", tx.Writable(), v)
		}
		n := b.Bucket([]byte("nested"))
		if n == nil {
			t.Fatalf("writable %v: nested bucket gone after a prefetch", tx.Writable())
		}
		if v := n.Get([]byte("deep")); string(v) != "down" {
			t.Errorf("writable %v: prefetched nested key reads %q", tx.Writable(), v)
		}
		if v := n.Get([]byte("shallow")); v != nil {
			t.Errorf("writable %v: prefetched absent nested key reads %q", tx.Writable(), v)
		}
		if b.Bucket([]byte("none")) != nil || tx.Bucket([]byte("missing")) != nil {
			t.Errorf("writable %v: a bucket that is not there is found after a prefetch in it", tx.Writable())
		}
		var walked int
		_ = b.ForEach(func(k, v []byte) error {
			walked++
			if !bytes.Equal(v, val(k)) {
				t.Errorf("writable %v: cursor after a prefetch: %q = %q", tx.Writable(), k, v)
			}
			return nil
		})
		if walked != len(tricky) {
			t.Errorf("writable %v: cursor after a prefetch walks %d keys, want %d", tx.Writable(), walked, len(tricky))
		}
	}
	view(t, s, func(tx kv.Tx) error {
		kv.Prefetch(tx, keys())
		check(tx)
		return nil
	})
	update(t, s, func(tx kv.Tx) error {
		kv.Prefetch(tx, keys())
		check(tx)
		b := tx.Bucket([]byte("p"))
		// Writes over what was fetched: the transaction reads its own.
		if err := b.Put([]byte("a"), []byte("mine")); err != nil {
			return err
		}
		if err := b.Delete([]byte("b")); err != nil {
			return err
		}
		if err := b.Put([]byte("absent"), []byte("now here")); err != nil {
			return err
		}
		if v := b.Get([]byte("a")); string(v) != "mine" {
			t.Errorf("own put over a prefetched key reads %q", v)
		}
		if v := b.Get([]byte("b")); v != nil {
			t.Errorf("own delete of a prefetched key reads %q", v)
		}
		if v := b.Get([]byte("absent")); string(v) != "now here" {
			t.Errorf("own put of a prefetched absent key reads %q", v)
		}
		// A bucket named while absent, made now: it is empty, then holds what is put.
		later, err := tx.CreateBucket([]byte("later"))
		if err != nil {
			return fmt.Errorf("create a bucket prefetched while absent: %w", err)
		}
		if v := later.Get([]byte("k")); v != nil {
			t.Errorf("new bucket reads %q", v)
		}
		return later.Put([]byte("k"), []byte("v"))
	})
	view(t, s, func(tx kv.Tx) error {
		kv.Prefetch(tx, keys())
		b := tx.Bucket([]byte("p"))
		for k, want := range map[string]string{"a": "mine", "b": "", "absent": "now here"} {
			if v := b.Get([]byte(k)); string(v) != want || (want == "") != (v == nil) {
				t.Errorf("after the commit %q reads %q, want %q", k, v, want)
			}
		}
		if v := tx.Bucket([]byte("later")).Get([]byte("k")); string(v) != "v" {
			t.Errorf("bucket made after a prefetch reads %q after the commit", v)
		}
		return nil
	})
}

// PrefetchRaces checks, on two handles a and b of one store (two gateways of a shared
// store), that a prefetched key is validated like any read: another transaction (on b) that
// writes a key between a transaction's prefetch of it and its commit (on a) makes that
// commit conflict when the transaction read the key, whether it wrote it too, only decided
// from it, or found it absent; and costs nothing when the transaction never read it. Each
// case's first run sees either the value from before b's write (the prefetch answered it)
// or the one after (the store reads at Get): both are serializable, and the end state must
// be the one running a's transaction after b's gives.
func PrefetchRaces(t *testing.T, a, b kv.Store) {
	update(t, a, func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("race")); return err })
	key := func(k string) []kv.Key { return []kv.Key{{Path: [][]byte{[]byte("race")}, Key: []byte(k)}} }
	set := func(s kv.Store, k, v string) {
		t.Helper()
		update(t, s, func(tx kv.Tx) error { return tx.Bucket([]byte("race")).Put([]byte(k), []byte(v)) })
	}
	get := func(k string) string {
		t.Helper()
		var v string
		view(t, b, func(tx kv.Tx) error { v = string(tx.Bucket([]byte("race")).Get([]byte(k))); return nil })
		return v
	}

	// A read-modify-write: a adds "+a" to what it read; b set the key in between.
	set(b, "rmw", "0")
	runs := 0
	update(t, a, func(tx kv.Tx) error {
		runs++
		kv.Prefetch(tx, key("rmw"))
		if runs == 1 {
			set(b, "rmw", "1")
		}
		bk := tx.Bucket([]byte("race"))
		return bk.Put([]byte("rmw"), append(bytes.Clone(bk.Get([]byte("rmw"))), "+a"...))
	})
	if v := get("rmw"); v != "1+a" {
		t.Errorf("read-modify-write of a prefetched key that another writer changed: %q, want 1+a (runs %d)", v, runs)
	}

	// Read one key, write another from it (write skew's shape): validated without being
	// written.
	set(b, "src", "x")
	runs = 0
	update(t, a, func(tx kv.Tx) error {
		runs++
		kv.Prefetch(tx, append(key("src"), key("dst")...))
		if runs == 1 {
			set(b, "src", "y")
		}
		bk := tx.Bucket([]byte("race"))
		return bk.Put([]byte("dst"), append([]byte("from "), bk.Get([]byte("src"))...))
	})
	if v := get("dst"); v != "from y" {
		t.Errorf("a key written from a prefetched key another writer changed: %q, want \"from y\" (runs %d)", v, runs)
	}

	// Absent when prefetched, made by b before a reads it: a must not take it for absent.
	runs = 0
	update(t, a, func(tx kv.Tx) error {
		runs++
		kv.Prefetch(tx, key("fresh"))
		if runs == 1 {
			set(b, "fresh", "b's")
		}
		bk := tx.Bucket([]byte("race"))
		if bk.Get([]byte("fresh")) == nil {
			return bk.Put([]byte("fresh"), []byte("a's"))
		}
		return nil
	})
	if v := get("fresh"); v != "b's" {
		t.Errorf("a key prefetched absent and made by another writer before the read: %q, want b's (runs %d)", v, runs)
	}

	// Absent when prefetched, made by b, then deleted blind by a (without reading it): a's
	// delete comes after b's put, so the key is gone. A store that took the prefetch's
	// "absent" as known would skip the delete.
	runs = 0
	update(t, a, func(tx kv.Tx) error {
		runs++
		kv.Prefetch(tx, key("ghost"))
		if runs == 1 {
			set(b, "ghost", "b's")
		}
		return tx.Bucket([]byte("race")).Delete([]byte("ghost"))
	})
	if v := get("ghost"); v != "" {
		t.Errorf("a blind delete of a key prefetched absent and made meanwhile left %q", v)
	}

	// A cursor over a key prefetched before another writer moved cents between it and another:
	// the walk must see the total (the store may run the reader again), never half a move.
	for _, writable := range []bool{false, true} {
		update(t, b, func(tx kv.Tx) error {
			bk := tx.Bucket([]byte("race"))
			for _, k := range []string{"acct1", "acct2", "acct3"} {
				if err := bk.Put([]byte(k), []byte{10}); err != nil {
					return err
				}
			}
			return nil
		})
		// One of the two named: a walk that took it from the prefetch and the other from
		// after the move would see 37.
		keys := key("acct1")
		run := a.View
		if writable {
			run = a.Update
		}
		runs, sum := 0, 0
		if err := run(ctx(t), func(tx kv.Tx) error {
			runs++
			kv.Prefetch(tx, keys)
			if runs == 1 {
				update(t, b, func(tx kv.Tx) error {
					bk := tx.Bucket([]byte("race"))
					if err := bk.Put([]byte("acct1"), []byte{3}); err != nil {
						return err
					}
					return bk.Put([]byte("acct3"), []byte{17})
				})
			}
			sum = 0
			return tx.Bucket([]byte("race")).ForEach(func(k, v []byte) error {
				if bytes.HasPrefix(k, []byte("acct")) {
					sum += int(v[0])
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if sum != 30 {
			t.Errorf("writable %v: a walk over accounts prefetched before a transfer summed %d, want 30 (runs %d)", writable, sum, runs)
		}
	}

	// Named but never read: b's write to it is no conflict, and a runs once.
	set(b, "unread", "0")
	runs = 0
	update(t, a, func(tx kv.Tx) error {
		runs++
		kv.Prefetch(tx, append(key("unread"), key("other")...))
		if runs == 1 {
			set(b, "unread", "1")
		}
		return tx.Bucket([]byte("race")).Put([]byte("other"), []byte("a's"))
	})
	if runs != 1 {
		t.Errorf("a key named in a prefetch and never read made the transaction run %d times, want 1", runs)
	}
	if v, w := get("unread"), get("other"); v != "1" || w != "a's" {
		t.Errorf("after a prefetch of a key never read: unread=%q other=%q, want 1 and a's", v, w)
	}
}
