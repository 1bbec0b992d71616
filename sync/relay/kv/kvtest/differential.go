package kvtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Differential runs the same random transactions (from seed) on ref, the reference store
// (boltkv: bbolt is what the relay was written against), and on sut, and fails at the first
// thing a transaction sees or returns differently: a value, a cursor walk, a sequence, a
// bucket's presence, an error's kind. One transaction in five is rolled back by its function.
// Half the read-only ones run in sut's whole view (kv.WholeView) where it has one.
func Differential(t *testing.T, ref, sut kv.Store, seed uint64, txs int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range txs {
		prog := randomProgram(rng)
		writable := rng.IntN(4) != 0
		var logs [2]string
		var errs [2]error
		for j, s := range []kv.Store{ref, sut} {
			run := s.View
			switch {
			case writable:
				run = s.Update
			case j == 1 && i%2 == 0:
				// Every other read-only one in sut's whole view, where it has one
				// (kv.WholeViewer): the same answers from a copy of the whole store.
				run = func(ctx context.Context, fn func(kv.Tx) error) error { return kv.WholeView(ctx, s, fn) }
			}
			errs[j] = run(ctx, func(tx kv.Tx) error {
				var log strings.Builder // reset on every run: a store may run fn again
				err := prog(tx, &log)
				logs[j] = log.String()
				return err
			})
		}
		if logs[0] != logs[1] || kind(errs[0]) != kind(errs[1]) {
			t.Fatalf("transaction %d (writable %v) differs:\nreference: %s -> %v\nstore:     %s -> %v", i, writable, logs[0], errs[0], logs[1], errs[1])
		}
	}
}

var errRollback = errors.New("rolled back on purpose")

func kind(err error) string {
	for _, k := range []error{errRollback, kv.ErrBucketExists, kv.ErrBucketNotFound, kv.ErrKeyRequired, kv.ErrTxNotWritable, kv.ErrNameRequired} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "nil"
}

var (
	diffKeys    = []string{"a", "a\x00", "ab", "b", "b.c", "\xff", "\x00", "zz", "m"}
	diffBuckets = []string{"x", "y"}
	diffNested  = []string{"n1", "n2"}
)

// randomProgram makes one transaction's function: a few operations on random buckets and
// keys, each writing what it saw into the log.
func randomProgram(rng *rand.Rand) func(kv.Tx, *strings.Builder) error {
	type op func(kv.Tx, *strings.Builder) error
	pick := func(s []string) []byte { return []byte(s[rng.IntN(len(s))]) }
	var ops []op
	for range 1 + rng.IntN(12) {
		root, nested := pick(diffBuckets), pick(diffNested)
		useNested := rng.IntN(3) == 0
		k, v := pick(diffKeys), fmt.Appendf(nil, "v%d", rng.IntN(1000))
		n := rng.Uint64N(50)
		which := rng.IntN(15)
		// What a prefetch names (which == 14): keys of this bucket, its nested one, one that
		// may not exist, and another root's.
		hint := []kv.Key{
			{Path: [][]byte{root}, Key: k},
			{Path: [][]byte{root}, Key: pick(diffKeys)},
			{Path: [][]byte{root, nested}, Key: pick(diffKeys)},
			{Path: [][]byte{pick(diffBuckets), []byte("none")}, Key: k},
			{Path: [][]byte{pick(diffBuckets)}, Key: pick(diffKeys)},
		}
		life := rng.IntN(3) // decided now: both stores must run the same program
		ops = append(ops, func(tx kv.Tx, log *strings.Builder) error {
			if which == 14 { // a hint only: it must change nothing either store shows
				kv.Prefetch(tx, hint)
				log.WriteString("prefetch; ")
				return nil
			}
			if which == 0 { // root bucket life
				var err error
				switch life {
				case 0:
					_, err = tx.CreateBucket(root)
				case 1:
					_, err = tx.CreateBucketIfNotExists(root)
				default:
					err = tx.DeleteBucket(root)
				}
				fmt.Fprintf(log, "root %s: %s; ", root, kind(err))
				return nil
			}
			b := tx.Bucket(root)
			if b == nil {
				fmt.Fprintf(log, "no %s; ", root)
				return nil
			}
			if which == 1 { // nested bucket life
				var err error
				switch life {
				case 0:
					_, err = b.CreateBucket(nested)
				case 1:
					_, err = b.CreateBucketIfNotExists(nested)
				default:
					err = b.DeleteBucket(nested)
				}
				fmt.Fprintf(log, "nested %s/%s: %s; ", root, nested, kind(err))
				return nil
			}
			if useNested {
				if b = b.Bucket(nested); b == nil {
					fmt.Fprintf(log, "no %s/%s; ", root, nested)
					return nil
				}
			}
			switch which {
			case 2, 3, 4:
				fmt.Fprintf(log, "put %q: %s; ", k, kind(b.Put(k, v)))
			case 5:
				fmt.Fprintf(log, "del %q: %s; ", k, kind(b.Delete(k)))
			case 6, 7:
				fmt.Fprintf(log, "get %q = %q; ", k, b.Get(k))
			case 8:
				c := b.Cursor()
				log.WriteString("walk")
				for k, v := c.First(); k != nil; k, v = c.Next() {
					fmt.Fprintf(log, " %q=%q", k, v)
				}
				log.WriteString("; back")
				for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
					fmt.Fprintf(log, " %q", k)
				}
				log.WriteString("; ")
			case 9:
				c := b.Cursor()
				sk, _ := c.Seek(k)
				nk, _ := c.Next()
				pk, _ := c.Prev()
				fmt.Fprintf(log, "seek %q -> %q next %q prev %q; ", k, sk, nk, pk)
			case 10:
				fmt.Fprintf(log, "keys %d; ", b.KeyN())
			case 11:
				s, err := b.NextSequence()
				fmt.Fprintf(log, "next %d %s seq %d; ", s, kind(err), b.Sequence())
			case 12:
				fmt.Fprintf(log, "setseq %d: %s; ", n, kind(b.SetSequence(n)))
			default:
				log.WriteString("buckets")
				_ = b.ForEachBucket(func(name []byte) error { fmt.Fprintf(log, " %q", name); return nil })
				log.WriteString("; ")
			}
			return nil
		})
	}
	rollback := rng.IntN(5) == 0
	return func(tx kv.Tx, log *strings.Builder) error {
		for _, o := range ops {
			if err := o(tx, log); err != nil {
				return err
			}
		}
		if rollback {
			return errRollback
		}
		return nil
	}
}
