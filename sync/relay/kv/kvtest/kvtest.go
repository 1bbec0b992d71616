// Package kvtest is the conformance suite every kv.Store implementation runs: the same
// behaviour the relay relies on from bbolt, checked against each store. It is for tests only;
// no production package imports it (kiosk/layering_test.go guards that).
package kvtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Open returns a new, empty store for one subtest; the opener cleans it up (t.Cleanup).
type Open func(t *testing.T) kv.Store

// Run runs the whole suite, each part on a store of its own.
func Run(t *testing.T, open Open) {
	t.Run("OrderedIteration", func(t *testing.T) { testOrdered(t, open(t)) })
	t.Run("Seek", func(t *testing.T) { testSeek(t, open(t)) })
	t.Run("GetPutDelete", func(t *testing.T) { testGetPutDelete(t, open(t)) })
	t.Run("NestedBuckets", func(t *testing.T) { testNested(t, open(t)) })
	t.Run("NestedNotAKey", func(t *testing.T) { testNestedNotAKey(t, open(t)) })
	t.Run("NestedCursor", func(t *testing.T) { testNestedCursor(t, open(t)) })
	t.Run("NestedFirstWriters", func(t *testing.T) { testNestedFirstWriters(t, open(t)) })
	t.Run("Sequences", func(t *testing.T) { testSequences(t, open(t)) })
	t.Run("ReadYourWrites", func(t *testing.T) { testReadYourWrites(t, open(t)) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, open(t)) })
	t.Run("ViewIsReadOnly", func(t *testing.T) { testViewReadOnly(t, open(t)) })
	t.Run("ConcurrentIncrements", func(t *testing.T) { testIncrements(t, open(t)) })
	t.Run("WriteSkew", func(t *testing.T) { testWriteSkew(t, open(t)) })
	t.Run("TransfersKeepTotal", func(t *testing.T) { testTransfers(t, open(t)) })
	t.Run("Prefetch", func(t *testing.T) { testPrefetch(t, open(t)) })
}

// ctx bounds one test's store calls, so a hung store fails the test instead of hanging it.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func update(t *testing.T, s kv.Store, fn func(kv.Tx) error) {
	t.Helper()
	if err := s.Update(ctx(t), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, s kv.Store, fn func(kv.Tx) error) {
	t.Helper()
	if err := s.View(ctx(t), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

// keys sorted bytewise, with the cases that trip a naive encoding: a key that is a prefix of
// another, bytes 0x00 and 0xff, dots and stars (NATS subject syntax), high bytes, long keys.
var tricky = [][]byte{
	[]byte("a"), []byte("a\x00"), []byte("a\x00\x00"), []byte("a\x01"), []byte("ab"), []byte("b"),
	[]byte("b.c"), []byte("b*>"), []byte("b c"), {0x00}, {0xff}, {0xff, 0xff}, {0x80, 0x00},
	bytes.Repeat([]byte("z"), 200), []byte("Ä"), []byte("terminal/7f3a/0000000000000001"),
}

func sortedTricky() [][]byte {
	s := slices.Clone(tricky)
	slices.SortFunc(s, bytes.Compare)
	return s
}

func val(k []byte) []byte { return append([]byte("v="), k...) }

func fill(t *testing.T, s kv.Store, bucket string) {
	t.Helper()
	order := slices.Clone(tricky)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		for _, k := range order {
			if err := b.Put(k, val(k)); err != nil {
				return fmt.Errorf("put %q: %w", k, err)
			}
		}
		return nil
	})
}

func testOrdered(t *testing.T, s kv.Store) {
	fill(t, s, "items")
	want := sortedTricky()
	view(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("items"))
		if b == nil {
			t.Fatal("bucket items missing after commit")
		}
		var got [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if !bytes.Equal(v, val(k)) {
				t.Errorf("ForEach %q = %q, want %q", k, v, val(k))
			}
			got = append(got, slices.Clone(k))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		assertKeys(t, "ForEach", got, want)

		got = nil
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !bytes.Equal(v, val(k)) {
				t.Errorf("cursor %q = %q", k, v)
			}
			got = append(got, slices.Clone(k))
		}
		assertKeys(t, "First/Next", got, want)

		got = nil
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			got = append(got, slices.Clone(k))
		}
		slices.Reverse(got)
		assertKeys(t, "Last/Prev", got, want)
		if n := b.KeyN(); n != len(want) {
			t.Errorf("KeyN = %d, want %d", n, len(want))
		}
		stop := errors.New("stop")
		n := 0
		if err := b.ForEach(func(_, _ []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("ForEach stopping at the first error: err %v after %d calls", err, n)
		}
		return nil
	})
}

func assertKeys(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys %q, want %d %q", what, len(got), got, len(want), want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: key %d is %q, want %q (all: %q)", what, i, got[i], want[i], got)
		}
	}
}

func testSeek(t *testing.T, s kv.Store) {
	fill(t, s, "items")
	view(t, s, func(tx kv.Tx) error {
		c := tx.Bucket([]byte("items")).Cursor()
		for _, tc := range []struct{ seek, want string }{
			{"a", "a"},                 // exact
			{"a\x00\x00\x00", "a\x01"}, // between
			{"", "\x00"},               // before the first
			{"aa", "ab"},
			{"b.", "b.c"},
			{"\xff\xff\x00", ""}, // past the last
		} {
			k, v := c.Seek([]byte(tc.seek))
			if tc.want == "" {
				if k != nil {
					t.Errorf("Seek(%q) = %q, want the end", tc.seek, k)
				}
				continue
			}
			if string(k) != tc.want || !bytes.Equal(v, val(k)) {
				t.Errorf("Seek(%q) = %q, %q; want %q", tc.seek, k, v, tc.want)
			}
		}
		// Past an end the cursor stays past it: the opposite step finds the key at that end.
		last, first := sortedTricky()[len(tricky)-1], sortedTricky()[0]
		c.Last()
		if k, _ := c.Next(); k != nil {
			t.Errorf("Next after Last = %q", k)
		}
		if k, _ := c.Next(); k != nil {
			t.Errorf("Next twice past the end = %q", k)
		}
		if k, _ := c.Prev(); !bytes.Equal(k, last) {
			t.Errorf("Prev after running off the end = %q, want the last key %q", k, last)
		}
		c.First()
		c.Prev()
		if k, _ := c.Next(); !bytes.Equal(k, first) {
			t.Errorf("Next after running off the start = %q, want the first key %q", k, first)
		}
		if k, _ := c.Seek([]byte("\xff\xff\xff")); k != nil {
			t.Errorf("Seek past the last key = %q", k)
		}
		if k, _ := c.Prev(); !bytes.Equal(k, last) {
			t.Errorf("Prev after Seek past the end = %q, want the last key %q", k, last)
		}
		// Seek then walk on, both ways.
		c.Seek([]byte("b"))
		if k, _ := c.Next(); string(k) != "b c" {
			t.Errorf("Next after Seek(b) = %q, want %q", k, "b c")
		}
		c.Seek([]byte("b"))
		if k, _ := c.Prev(); string(k) != "ab" {
			t.Errorf("Prev after Seek(b) = %q, want ab", k)
		}
		return nil
	})
}

func testGetPutDelete(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("empty"), []byte{}); err != nil {
			return err
		}
		if err := b.Put([]byte("gone"), []byte("x")); err != nil {
			return err
		}
		if err := b.Put(nil, []byte("x")); !errors.Is(err, kv.ErrKeyRequired) {
			t.Errorf("Put with an empty key: %v, want ErrKeyRequired", err)
		}
		return nil
	})
	update(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if err := b.Delete([]byte("gone")); err != nil {
			return err
		}
		return b.Delete([]byte("never-there"))
	})
	view(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if v := b.Get([]byte("empty")); v == nil || len(v) != 0 {
			t.Errorf("empty value read back as %q (nil %v), want present and empty", v, v == nil)
		}
		if v := b.Get([]byte("gone")); v != nil {
			t.Errorf("deleted key reads %q", v)
		}
		if v := b.Get([]byte("never-there")); v != nil {
			t.Errorf("missing key reads %q", v)
		}
		var keys []string
		_ = b.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		if !slices.Equal(keys, []string{"empty"}) {
			t.Errorf("keys after delete: %q, want [empty]", keys)
		}
		if tx.Bucket([]byte("nope")) != nil {
			t.Error("missing root bucket is not nil")
		}
		return nil
	})
}

// testNestedNotAKey: a nested bucket's name is not a key of its parent, for Get, in the
// transaction that made it and in a later one (the relay's records are read with Get from
// buckets that also hold owners' nested buckets).
func testNestedNotAKey(t *testing.T, s kv.Store) {
	check := func(tx kv.Tx) {
		b := tx.Bucket([]byte("parent"))
		if v := b.Get([]byte("owner")); v != nil {
			t.Errorf("Get of a nested bucket's name = %q, want nil", v)
		}
		if v := b.Get([]byte("key")); string(v) != "v" {
			t.Errorf("Get of a key beside a nested bucket = %q, want v", v)
		}
	}
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("parent"))
		if err != nil {
			return err
		}
		nb, err := b.CreateBucket([]byte("owner"))
		if err != nil {
			return err
		}
		if err := nb.Put([]byte("k"), []byte("inside")); err != nil {
			return err
		}
		if err := b.Put([]byte("key"), []byte("v")); err != nil {
			return err
		}
		check(tx)
		return nil
	})
	update(t, s, func(tx kv.Tx) error { check(tx); return nil })
}

func testNested(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		down, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("down")); !errors.Is(err, kv.ErrBucketExists) {
			t.Errorf("CreateBucket twice: %v, want ErrBucketExists", err)
		}
		if err := down.Put([]byte("plain"), []byte("p")); err != nil {
			return err
		}
		for _, term := range []string{"t2", "t1", "t3"} {
			nb, err := down.CreateBucketIfNotExists([]byte(term))
			if err != nil {
				return err
			}
			for i := uint64(1); i <= 3; i++ {
				n, err := nb.NextSequence()
				if err != nil {
					return err
				}
				if err := nb.Put(binary.BigEndian.AppendUint64(nil, n), []byte(term)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	view(t, s, func(tx kv.Tx) error {
		down := tx.Bucket([]byte("down"))
		var names []string
		if err := down.ForEachBucket(func(n []byte) error { names = append(names, string(n)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"t1", "t2", "t3"}) {
			t.Errorf("nested buckets %q, want t1 t2 t3", names)
		}
		var keys []string
		_ = down.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		if !slices.Equal(keys, []string{"plain"}) {
			t.Errorf("parent lists %q, want only its own key [plain]", keys)
		}
		if n := down.KeyN(); n != 1 {
			t.Errorf("parent KeyN %d, want 1", n)
		}
		t2 := down.Bucket([]byte("t2"))
		if t2 == nil || t2.KeyN() != 3 || t2.Sequence() != 3 {
			t.Fatalf("nested t2: %v", t2)
		}
		if v := t2.Get(binary.BigEndian.AppendUint64(nil, 2)); string(v) != "t2" {
			t.Errorf("t2[2] = %q", v)
		}
		if down.Bucket([]byte("t9")) != nil {
			t.Error("missing nested bucket is not nil")
		}
		var roots []string
		_ = tx.ForEachBucket(func(n []byte) error { roots = append(roots, string(n)); return nil })
		if !slices.Equal(roots, []string{"down"}) {
			t.Errorf("root buckets %q, want [down]", roots)
		}
		return nil
	})
	// The relay's revocation: delete a terminal's bucket and make it again with its sequence.
	update(t, s, func(tx kv.Tx) error {
		down := tx.Bucket([]byte("down"))
		seq := down.Bucket([]byte("t2")).Sequence()
		if err := down.DeleteBucket([]byte("t2")); err != nil {
			return err
		}
		if down.Bucket([]byte("t2")) != nil {
			t.Error("deleted bucket still there in its transaction")
		}
		nb, err := down.CreateBucket([]byte("t2"))
		if err != nil {
			return err
		}
		if nb.KeyN() != 0 || nb.Sequence() != 0 {
			t.Errorf("recreated bucket has %d keys, sequence %d; want a fresh bucket", nb.KeyN(), nb.Sequence())
		}
		if err := down.DeleteBucket([]byte("t9")); !errors.Is(err, kv.ErrBucketNotFound) {
			t.Errorf("DeleteBucket of a missing bucket: %v, want ErrBucketNotFound", err)
		}
		return nb.SetSequence(seq)
	})
	view(t, s, func(tx kv.Tx) error {
		t2 := tx.Bucket([]byte("down")).Bucket([]byte("t2"))
		if t2 == nil || t2.KeyN() != 0 || t2.Sequence() != 3 {
			t.Errorf("after revocation t2 = %v, want empty with sequence 3", t2)
		}
		if t1 := tx.Bucket([]byte("down")).Bucket([]byte("t1")); t1 == nil || t1.KeyN() != 3 {
			t.Error("t1 touched by t2's revocation")
		}
		return nil
	})
	update(t, s, func(tx kv.Tx) error { return tx.DeleteBucket([]byte("down")) })
	view(t, s, func(tx kv.Tx) error {
		if tx.Bucket([]byte("down")) != nil {
			t.Error("deleted root bucket still there")
		}
		return nil
	})
	update(t, s, func(tx kv.Tx) error {
		down, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		if down.Bucket([]byte("t1")) != nil || down.KeyN() != 0 {
			t.Error("a recreated root bucket holds what its deleted namesake held")
		}
		return nil
	})
}

// testNestedCursor: the relay keeps an owner's records in a nested bucket of its own (one per
// facility, inmate or terminal) and walks them with a cursor and Seek: a nested bucket's
// cursor lists its keys only, in order, never its parent's or a sibling's.
func testNestedCursor(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		root, err := tx.CreateBucket([]byte("by_owner"))
		if err != nil {
			return err
		}
		if err := root.Put([]byte("a/flat"), []byte("top")); err != nil {
			return err
		}
		for _, owner := range []string{"a", "a-", "b"} {
			nb, err := root.CreateBucketIfNotExists([]byte(owner))
			if err != nil {
				return err
			}
			for _, k := range []string{"c/2", "m/1", "m/2", "m/3", "r/1"} {
				if err := nb.Put([]byte(k), []byte(owner+" "+k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	view(t, s, func(tx kv.Tx) error {
		a := tx.Bucket([]byte("by_owner")).Bucket([]byte("a"))
		c := a.Cursor()
		var got [][]byte
		for k, v := c.Seek([]byte("m/")); k != nil && bytes.HasPrefix(k, []byte("m/")); k, v = c.Next() {
			if string(v) != "a "+string(k) {
				t.Errorf("a[%q] = %q", k, v)
			}
			got = append(got, k)
		}
		assertKeys(t, "Seek(m/) in a", got, [][]byte{[]byte("m/1"), []byte("m/2"), []byte("m/3")})
		// From past the prefix back: the newest first (history's walk).
		k, _ := c.Seek([]byte("m/\xff"))
		if string(k) != "r/1" {
			t.Errorf("Seek(m/\\xff) = %q, want r/1", k)
		}
		if k, _ := c.Prev(); string(k) != "m/3" {
			t.Errorf("Prev after it = %q, want m/3", k)
		}
		if k, _ := c.Last(); string(k) != "r/1" {
			t.Errorf("Last of a = %q, want its own last key r/1", k)
		}
		if k, _ := c.First(); string(k) != "c/2" {
			t.Errorf("First of a = %q, want its own first key c/2", k)
		}
		if n := a.KeyN(); n != 5 {
			t.Errorf("a holds %d keys, want 5", n)
		}
		return nil
	})
}

// testNestedFirstWriters: transactions that each find an owner's nested bucket missing (or
// few keys in it), make it and add a key only while it holds none, race. A serializable store
// lets exactly one add its key, and loses no write: the others, run again, see the bucket and
// its key. (The relay makes an owner's bucket on its first record, from any gateway.)
func testNestedFirstWriters(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("owners")); return err })
	const writers = 4
	for round := range 6 {
		owner := []byte(fmt.Sprintf("o%d", round))
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				<-start
				errs <- s.Update(ctx(t), func(tx kv.Tx) error {
					parent := tx.Bucket([]byte("owners"))
					if nb := parent.Bucket(owner); nb != nil {
						if k, _ := nb.Cursor().First(); k != nil {
							return nil // someone was first
						}
					}
					nb, err := parent.CreateBucketIfNotExists(owner)
					if err != nil {
						return err
					}
					return nb.Put([]byte(fmt.Sprintf("w%d", w)), []byte{1})
				})
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		view(t, s, func(tx kv.Tx) error {
			nb := tx.Bucket([]byte("owners")).Bucket(owner)
			if nb == nil || nb.KeyN() != 1 {
				var keys []string
				if nb != nil {
					_ = nb.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
				}
				t.Fatalf("round %d: owner bucket holds %q, want exactly one first writer", round, keys)
			}
			return nil
		})
	}
}

func testSequences(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("seq"))
		if err != nil {
			return err
		}
		if b.Sequence() != 0 {
			t.Errorf("new bucket sequence %d", b.Sequence())
		}
		for want := uint64(1); want <= 3; want++ {
			if n, err := b.NextSequence(); err != nil || n != want {
				t.Errorf("NextSequence = %d, %v; want %d", n, err, want)
			}
		}
		return nil
	})
	update(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("seq"))
		if b.Sequence() != 3 {
			t.Errorf("sequence after commit %d, want 3", b.Sequence())
		}
		return b.SetSequence(10)
	})
	boom := errors.New("boom")
	err := s.Update(ctx(t), func(tx kv.Tx) error {
		if _, err := tx.Bucket([]byte("seq")).NextSequence(); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed update returned %v", err)
	}
	update(t, s, func(tx kv.Tx) error {
		if n, _ := tx.Bucket([]byte("seq")).NextSequence(); n != 11 {
			t.Errorf("NextSequence after SetSequence(10) and a rolled-back increment = %d, want 11", n)
		}
		return nil
	})
}

func testReadYourWrites(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for _, k := range []string{"a", "c", "e"} {
			if err := b.Put([]byte(k), []byte("old")); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if err := b.Put([]byte("d"), []byte("new")); err != nil {
			return err
		}
		if err := b.Put([]byte("a"), []byte("changed")); err != nil {
			return err
		}
		if err := b.Delete([]byte("c")); err != nil {
			return err
		}
		if v := b.Get([]byte("d")); string(v) != "new" {
			t.Errorf("own put reads %q", v)
		}
		if v := b.Get([]byte("c")); v != nil {
			t.Errorf("own delete reads %q", v)
		}
		var seen []string
		_ = b.ForEach(func(k, v []byte) error { seen = append(seen, string(k)+"="+string(v)); return nil })
		if want := []string{"a=changed", "d=new", "e=old"}; !slices.Equal(seen, want) {
			t.Errorf("cursor in the writing transaction sees %q, want %q", seen, want)
		}
		if k, _ := b.Cursor().Seek([]byte("b")); string(k) != "d" {
			t.Errorf("Seek(b) past a deleted key lands on %q, want d", k)
		}
		if k, _ := b.Cursor().Last(); string(k) != "e" {
			t.Errorf("Last = %q", k)
		}
		if b.KeyN() != 3 {
			t.Errorf("KeyN in the transaction = %d, want 3", b.KeyN())
		}
		// Writes after a scan show in the next one (a store may keep a listing between
		// scans), and a write to another bucket does not.
		if err := b.Put([]byte("b"), []byte("later")); err != nil {
			return err
		}
		if err := b.Delete([]byte("e")); err != nil {
			return err
		}
		if _, err := b.CreateBucket([]byte("sub")); err != nil {
			return err
		}
		seen = seen[:0]
		_ = b.ForEach(func(k, v []byte) error { seen = append(seen, string(k)+"="+string(v)); return nil })
		if want := []string{"a=changed", "b=later", "d=new"}; !slices.Equal(seen, want) {
			t.Errorf("second scan in the writing transaction sees %q, want %q", seen, want)
		}
		var subs []string
		_ = b.ForEachBucket(func(name []byte) error { subs = append(subs, string(name)); return nil })
		if _, err := b.CreateBucket([]byte("sub2")); err != nil {
			return err
		}
		subs = subs[:0]
		_ = b.ForEachBucket(func(name []byte) error { subs = append(subs, string(name)); return nil })
		if want := []string{"sub", "sub2"}; !slices.Equal(subs, want) {
			t.Errorf("nested buckets after a second CreateBucket: %q, want %q", subs, want)
		}
		nb, err := tx.CreateBucket([]byte("fresh"))
		if err != nil {
			return err
		}
		if err := nb.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		if got := tx.Bucket([]byte("fresh")).Get([]byte("k")); string(got) != "v" {
			t.Errorf("bucket made in this transaction reads %q", got)
		}
		return nil
	})
}

func testRollback(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("kept"))
	})
	boom := errors.New("refused")
	err := s.Update(ctx(t), func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if err := b.Put([]byte("k"), []byte("lost")); err != nil {
			return err
		}
		if err := b.Put([]byte("other"), []byte("lost")); err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("never")); err != nil {
			return err
		}
		return fmt.Errorf("the write function: %w", boom)
	})
	if !errors.Is(err, boom) || kv.Retryable(err) {
		t.Fatalf("update returned %v, want fn's error, not retryable", err)
	}
	view(t, s, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if v := b.Get([]byte("k")); string(v) != "kept" {
			t.Errorf("rolled-back write visible: k = %q", v)
		}
		if v := b.Get([]byte("other")); v != nil {
			t.Errorf("rolled-back write visible: other = %q", v)
		}
		if tx.Bucket([]byte("never")) != nil {
			t.Error("rolled-back bucket visible")
		}
		return nil
	})
}

func testViewReadOnly(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	view(t, s, func(tx kv.Tx) error {
		if tx.Writable() {
			t.Error("View transaction says it is writable")
		}
		if err := tx.Bucket([]byte("b")).Put([]byte("k"), []byte("v")); !errors.Is(err, kv.ErrTxNotWritable) {
			t.Errorf("Put in View: %v, want ErrTxNotWritable", err)
		}
		return nil
	})
	view(t, s, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k")); v != nil {
			t.Errorf("a write refused in View is there: %q", v)
		}
		return nil
	})
}

// testIncrements: goroutines read-modify-write one counter and each take sequence numbers
// from one bucket; no increment may be lost and no sequence handed out twice.
func testIncrements(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error {
		if _, err := tx.CreateBucket([]byte("log")); err != nil {
			return err
		}
		_, err := tx.CreateBucket([]byte("ctr"))
		return err
	})
	const workers, each = 6, 15
	Increments(t, s, workers, each)
	view(t, s, func(tx kv.Tx) error {
		got := binary.BigEndian.Uint64(tx.Bucket([]byte("ctr")).Get([]byte("n")))
		if got != workers*each {
			t.Errorf("counter = %d after %d increments: %d lost", got, workers*each, workers*each-int(got))
		}
		log := tx.Bucket([]byte("log"))
		if n := log.KeyN(); n != workers*each {
			t.Errorf("log holds %d entries, want %d (a sequence handed out twice overwrites)", n, workers*each)
		}
		if log.Sequence() != workers*each {
			t.Errorf("log sequence %d, want %d", log.Sequence(), workers*each)
		}
		return nil
	})
}

// Increments runs workers goroutines that each make each increments of ctr/n, each logging
// itself under log's next sequence. Buckets ctr and log must exist. Failure tests reuse it.
func Increments(t *testing.T, s kv.Store, workers, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	c := ctx(t)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := Increment(c, s, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
}

// Increment adds one to ctr/n and logs who did it under the next sequence of log.
func Increment(c context.Context, s kv.Store, who string) error {
	return s.Update(c, func(tx kv.Tx) error { return IncrementTx(tx, who) })
}

// IncrementTx is Increment's write, inside a transaction of the caller's.
func IncrementTx(tx kv.Tx, who string) error {
	b := tx.Bucket([]byte("ctr"))
	var n uint64
	if v := b.Get([]byte("n")); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	if err := b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
		return err
	}
	log := tx.Bucket([]byte("log"))
	seq, err := log.NextSequence()
	if err != nil {
		return err
	}
	return log.Put(binary.BigEndian.AppendUint64(nil, seq), []byte(who))
}

// testWriteSkew: two doctors on call, each may go off call only if the other is still on.
// Each transaction reads both keys and writes one. Under snapshot isolation both can commit
// and nobody is on call; a serializable store lets only one of them.
func testWriteSkew(t *testing.T, s kv.Store) {
	update(t, s, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("oncall")); return err })
	for round := range 8 {
		update(t, s, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("oncall"))
			if err := b.Put([]byte("x"), []byte{1}); err != nil {
				return err
			}
			return b.Put([]byte("y"), []byte{1})
		})
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, me := range []string{"x", "y"} {
			other := map[string]string{"x": "y", "y": "x"}[me]
			wg.Go(func() {
				<-start
				errs <- s.Update(ctx(t), func(tx kv.Tx) error {
					b := tx.Bucket([]byte("oncall"))
					if b.Get([]byte(other))[0] == 1 && b.Get([]byte(me))[0] == 1 {
						return b.Put([]byte(me), []byte{0})
					}
					return nil
				})
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		view(t, s, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("oncall"))
			if b.Get([]byte("x"))[0]+b.Get([]byte("y"))[0] != 1 {
				t.Fatalf("round %d: x=%d y=%d, want exactly one still on call", round, b.Get([]byte("x"))[0], b.Get([]byte("y"))[0])
			}
			return nil
		})
	}
}

// testTransfers: goroutines move cents between accounts while readers sum every account with
// a cursor. Every View must see the same total: no torn transaction, no phantom.
func testTransfers(t *testing.T, s kv.Store) {
	const accounts, start = 5, 1000
	update(t, s, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("acct"))
		if err != nil {
			return err
		}
		for i := range accounts {
			if err := b.Put(fmt.Appendf(nil, "a%d", i), binary.BigEndian.AppendUint64(nil, start)); err != nil {
				return err
			}
		}
		return nil
	})
	total := func(tx kv.Tx) (sum uint64, n int) {
		_ = tx.Bucket([]byte("acct")).ForEach(func(_, v []byte) error {
			sum += binary.BigEndian.Uint64(v)
			n++
			return nil
		})
		return sum, n
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	c := ctx(t)
	for w := range 3 {
		wg.Go(func() {
			for i := range 10 {
				from, to := fmt.Appendf(nil, "a%d", (w+i)%accounts), fmt.Appendf(nil, "a%d", (w+i+1)%accounts)
				err := s.Update(c, func(tx kv.Tx) error {
					b := tx.Bucket([]byte("acct"))
					f, g := binary.BigEndian.Uint64(b.Get(from)), binary.BigEndian.Uint64(b.Get(to))
					if err := b.Put(from, binary.BigEndian.AppendUint64(nil, f-7)); err != nil {
						return err
					}
					return b.Put(to, binary.BigEndian.AppendUint64(nil, g+7))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			err := s.View(c, func(tx kv.Tx) error {
				if sum, n := total(tx); sum != accounts*start || n != accounts {
					return fmt.Errorf("a reader saw %d accounts totalling %d, want %d totalling %d", n, sum, accounts, accounts*start)
				}
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	view(t, s, func(tx kv.Tx) error {
		if sum, _ := total(tx); sum != accounts*start {
			t.Errorf("total after transfers %d, want %d", sum, accounts*start)
		}
		return nil
	})
}
