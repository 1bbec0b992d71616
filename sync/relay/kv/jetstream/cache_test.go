package jskv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// The cache holds what a gateway's Updates read and wrote, not what its Views read: a
// handshake's and a downlink writer's reads of every connected terminal's records made it
// grow with the terminals (docs/SCALE.md, memory per idle terminal). A second gateway that
// only views 50 keys caches none; an Update reading one caches it, and its next Update
// finds it there.
func TestViewsDoNotFillTheCache(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{Stream: "VC", Prefix: "vc"}
	a := openTest(t, c, c.Connect(0), o)
	const n = 50
	if err := a.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("terminals"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "t%02d", i), []byte("record")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, c.Connect(1), o)
	if err != nil {
		t.Fatal(err)
	}
	cached := func() int {
		b.cache.mu.Lock()
		defer b.cache.mu.Unlock()
		return len(b.cache.m)
	}
	get := func(tx kv.Tx, key string) {
		t.Helper()
		if v := tx.Bucket([]byte("terminals")).Get([]byte(key)); string(v) != "record" {
			t.Fatalf("%s = %q, want the record", key, v)
		}
	}
	if err := b.View(ctx, func(tx kv.Tx) error {
		for i := range n {
			get(tx, fmt.Sprintf("t%02d", i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := cached(); got != 0 {
		t.Fatalf("after a View of %d keys the gateway caches %d entries, want 0", n, got)
	}
	for range 2 {
		if err := b.Update(ctx, func(tx kv.Tx) error { get(tx, "t07"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if got := cached(); got != 1 {
		t.Fatalf("after Updates reading one key the gateway caches %d entries, want 1", got)
	}
}

// The cache stays within its byte bound whatever it is given, counts its bytes exactly, keeps
// a later state over an earlier one, and takes no value too large to be worth its room.
func TestReadCacheByteBound(t *testing.T) {
	c := newReadCache(100_000)
	c.maxBytes = 64 << 10
	sum := func() int {
		n := 0
		for k, e := range c.m {
			n += entrySize(k, e)
		}
		return n
	}
	val := make([]byte, 200)
	for i := range 2000 {
		subj := fmt.Sprintf("p.k.terminals.t%05d", i%700) // rewrites too
		c.put(subj, entry{seq: uint64(i + 1), val: val[:i%200], present: true})
		if c.bytes > c.maxBytes {
			t.Fatalf("after %d puts the cache holds %d bytes, bound %d", i+1, c.bytes, c.maxBytes)
		}
		if got := sum(); got != c.bytes {
			t.Fatalf("after %d puts the cache counts %d bytes, its entries hold %d", i+1, c.bytes, got)
		}
	}
	if len(c.m) < 100 {
		t.Fatalf("the bound left %d entries, want the cache still in use", len(c.m))
	}
	c.put("p.k.x", entry{seq: 10, val: []byte("new"), present: true})
	c.put("p.k.x", entry{seq: 9, val: []byte("old"), present: true})
	if e, _ := c.get("p.k.x"); string(e.val) != "new" {
		t.Fatalf("p.k.x = %q after an earlier state came late, want the later one", e.val)
	}
	c.put("p.k.x", entry{seq: 11, val: make([]byte, c.maxBytes/32), present: true})
	if _, ok := c.get("p.k.x"); ok {
		t.Fatal("a value of a 32nd of the bound was cached")
	}
	c.drop("p.k.terminals.t00001", "p.k.terminals.t00699")
	if got := sum(); got != c.bytes {
		t.Fatalf("after drop the cache counts %d bytes, its entries hold %d", c.bytes, got)
	}
}

// Reading a state again (a prefetch, a replica's answer) keeps what the cache knew of the
// version it is current at: a cursor then takes it without a read. A later state replaces
// it whole, and an earlier one changes nothing.
func TestReadCacheKeepsTheVersionOfAStateReadAgain(t *testing.T) {
	c := newReadCache(100)
	c.put("k", entry{seq: 5, val: []byte("v"), present: true, ver: 9})
	c.put("k", entry{seq: 5, val: []byte("v"), present: true})
	if e, _ := c.get("k"); e.ver != 9 {
		t.Errorf("the same state read again: ver %d, want 9 kept", e.ver)
	}
	c.put("k", entry{seq: 4, val: []byte("old"), present: true})
	if e, _ := c.get("k"); e.seq != 5 || e.ver != 9 {
		t.Errorf("an earlier state: %+v, want seq 5 at ver 9 unchanged", e)
	}
	c.put("k", entry{seq: 7, val: []byte("new"), present: true})
	if e, _ := c.get("k"); e.seq != 7 || e.ver != 0 {
		t.Errorf("a later state: %+v, want seq 7 known current at no version", e)
	}
}

// The cache keeps its own copy of a value: a value read from a replica is a slice of the
// reply's buffer, whose headers before it would stay alive with it, uncounted.
func TestTheCacheKeepsItsOwnCopyOfAValue(t *testing.T) {
	c := newReadCache(100)
	reply := []byte("NATS/1.0\r\nNats-Subject: s\r\nNats-Sequence: 7\r\n\r\nrecord")
	val := reply[len(reply)-len("record"):]
	c.put("s", entry{seq: 7, val: val, present: true})
	copy(reply[len(reply)-len("record"):], "XXXXXX") // the reply's buffer used again
	got, ok := c.get("s")
	if !ok || string(got.val) != "record" {
		t.Fatalf("the cache holds %q (%v) after the reply's buffer changed, want its own %q", got.val, ok, "record")
	}
	if c.bytes != entrySize("s", got) {
		t.Errorf("the cache counts %d bytes, its entry is %d", c.bytes, entrySize("s", got))
	}
	// An absent key's state (no value) stays one without.
	c.put("gone", entry{seq: 8})
	if e, _ := c.get("gone"); e.val != nil || e.present {
		t.Errorf("a deleted key's state came back as %+v", e)
	}
}
