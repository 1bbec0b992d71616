package jskv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// gatewayOptions are a relayd gateway's: the downlink root watched, bucket markers cached.
func gatewayOptions(stream string) jskv.Options {
	return jskv.Options{Stream: stream, Prefix: stream, CacheBucketMarkers: true, WatchRoots: [][]byte{[]byte("down")}}
}

// A stream written before Options.WatchRoots keeps its downlink buckets under generations of
// their own, and a feed follows each with a filter of its own (or the whole stream). Moving
// them under the root keeps every key, value and sequence, leaves a bucket too large for one
// commit and one holding buckets where they are, and the feed goes on with nothing lost.
func TestMoveUnderRootsKeepsEverything(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	older := openWith(t, c, c.Connect(1), jskv.Options{Stream: "mv", Prefix: "mv"})
	mustUpdate(t, older, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		for i := range 3 {
			b, err := d.CreateBucket(fmt.Appendf(nil, "t%d", i))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("1"), []byte("a")); err != nil {
				return err
			}
			if err := b.Put([]byte("2"), []byte("b")); err != nil {
				return err
			}
			if err := b.SetSequence(uint64(7 * i)); err != nil {
				return err
			}
		}
		nest, err := d.CreateBucket([]byte("nest"))
		if err != nil {
			return err
		}
		if _, err := nest.CreateBucket([]byte("inner")); err != nil {
			return err
		}
		if _, err := d.CreateBucket([]byte("big")); err != nil {
			return err
		}
		o, err := tx.CreateBucket([]byte("other"))
		if err != nil {
			return err
		}
		return o.Put([]byte("x"), []byte("elsewhere"))
	})
	for part := range 3 {
		mustUpdate(t, older, func(tx kv.Tx) error {
			big := tx.Bucket([]byte("down")).Bucket([]byte("big"))
			for i := range 400 {
				if err := big.Put(fmt.Appendf(nil, "%d-%03d", part, i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
	}
	s := openWith(t, c, nc, gatewayOptions("mv"))
	next := feedOf(t, s, "down")
	if filters, _ := feedConsumer(t, nc, "mv"); len(filters) != 3+2*5 {
		t.Fatalf("before the move the feed's consumer takes %d filters, want the root's 3 and 2 for each of 5 buckets", len(filters))
	}

	moved, left, err := s.MoveUnderRoots(ctx)
	if err != nil || moved != 3 || left != 2 {
		t.Fatalf("MoveUnderRoots = %d moved, %d left, %v; want 3, 2 (big, nest), nil", moved, left, err)
	}
	// The feed delivers what the moves wrote: every key and sequence, again.
	var got []string
	for range 3 {
		got = append(got, next())
	}
	slices.Sort(got)
	want := []string{"down/t0 1=a, down/t0 2=b", "down/t1 1=a, down/t1 2=b, down/t1 seq=7", "down/t2 1=a, down/t2 2=b, down/t2 seq=14"}
	if !slices.Equal(got, want) {
		t.Fatalf("the feed delivered %q for the moves, want %q", got, want)
	}

	err = older.View(ctx, func(tx kv.Tx) error {
		d := tx.Bucket([]byte("down"))
		for i := range 3 {
			b := d.Bucket(fmt.Appendf(nil, "t%d", i))
			if b == nil || string(b.Get([]byte("1"))) != "a" || string(b.Get([]byte("2"))) != "b" || b.KeyN() != 2 || b.Sequence() != uint64(7*i) {
				return fmt.Errorf("t%d after the move is not what it held", i)
			}
		}
		if n := d.Bucket([]byte("big")).KeyN(); n != 1200 {
			return fmt.Errorf("big holds %d keys after the move, want its 1,200", n)
		}
		if d.Bucket([]byte("nest")).Bucket([]byte("inner")) == nil {
			return fmt.Errorf("nest lost its bucket")
		}
		if v := tx.Bucket([]byte("other")).Get([]byte("x")); string(v) != "elsewhere" {
			return fmt.Errorf("another root's key is %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Moved again: nothing left to move but the two that stay.
	if moved, left, err := s.MoveUnderRoots(ctx); err != nil || moved != 0 || left != 2 {
		t.Fatalf("MoveUnderRoots again = %d moved, %d left, %v; want 0, 2, nil", moved, left, err)
	}
	mustUpdate(t, s, func(tx kv.Tx) error {
		return tx.Bucket([]byte("down")).Bucket([]byte("t1")).Put([]byte("3"), []byte("after"))
	})
	if g, want := next(), "down/t1 3=after"; g != want {
		t.Fatalf("after the move the feed delivered %q, want %q", g, want)
	}
	if n := s.Stats().FeedLosses; n != 0 {
		t.Errorf("FeedLosses = %d, want 0", n)
	}
}

// The danger in moving a bucket while gateways serve: another gateway holds the old marker in
// its cache (CacheBucketMarkers: a marker seen present is not validated) and writes into the
// old generation, which the move purged and nobody reads: a downlink item lost. A marker of a
// watched bucket with a generation of its own is validated, so that write runs again and
// lands in the moved bucket.
func TestMoveUnderRootsWithTheMarkerCachedElsewhere(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	older := openWith(t, c, c.Connect(2), jskv.Options{Stream: "mc", Prefix: "mc"})
	mustUpdate(t, older, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		t1, err := d.CreateBucket([]byte("t1"))
		if err != nil {
			return err
		}
		return t1.Put([]byte("1"), []byte("before"))
	})
	g1 := openWith(t, c, c.Connect(0), gatewayOptions("mc"))
	g2 := openWith(t, c, c.Connect(1), gatewayOptions("mc"))
	// g2 reads the bucket in an Update: its marker, old generation and all, is now cached.
	mustUpdate(t, g2, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("down")).Bucket([]byte("t1")).Get([]byte("1")); string(v) != "before" {
			return fmt.Errorf("t1's key is %q", v)
		}
		return nil
	})
	if moved, left, err := g1.MoveUnderRoots(ctx); err != nil || moved != 1 || left != 0 {
		t.Fatalf("MoveUnderRoots = %d moved, %d left, %v; want 1, 0, nil", moved, left, err)
	}
	mustUpdate(t, g2, func(tx kv.Tx) error {
		return tx.Bucket([]byte("down")).Bucket([]byte("t1")).Put([]byte("2"), []byte("queued after the move"))
	})
	err := g1.View(ctx, func(tx kv.Tx) error {
		t1 := tx.Bucket([]byte("down")).Bucket([]byte("t1"))
		if v := t1.Get([]byte("2")); string(v) != "queued after the move" {
			return fmt.Errorf("the item another gateway queued after the move reads %q: it went to the old generation", v)
		}
		if v := t1.Get([]byte("1")); string(v) != "before" {
			return fmt.Errorf("the item queued before the move reads %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
