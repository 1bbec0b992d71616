package jskv

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A CurrentView takes a replica's answer only from a replica that has applied every commit
// its gateway knows of: with the gateway knowing of more than the stream holds, each read
// goes to the leader, and reads right.
func TestCurrentViewTakesNoReplicaBehindWhatItsGatewayKnows(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, c.Connect(0), Options{Stream: "CV", Prefix: "cv", CacheEntries: -1})
	putK(t, ctx, s)
	if s.known.Load() == 0 {
		t.Fatal("the store knows of no commit after its own")
	}
	s.saw(math.MaxUint64)
	before := s.Stats()
	var got string
	if err := s.CurrentView(ctx, func(tx kv.Tx) error {
		kv.Prefetch(tx, []kv.Key{{Path: [][]byte{[]byte("b")}, Key: []byte("k")}, {Path: [][]byte{[]byte("b")}, Key: []byte("none")}})
		b := tx.Bucket([]byte("b"))
		got = string(b.Get([]byte("k"))) + "," + string(b.Get([]byte("none")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	// The bucket's marker, k and none: each from the leader.
	if got != "v," || after.Reads-before.Reads != 3 || after.ReplicaMisses == before.ReplicaMisses {
		t.Fatalf("read %q with %d leader reads and %d replica answers refused, want \"v,\" from the leader (3 reads), replicas refused",
			got, after.Reads-before.Reads, after.ReplicaMisses-before.ReplicaMisses)
	}
}

// What a gateway knows of the store grows with whatever it reads: a leader's answer of a
// key another gateway wrote, and a replica's position. Its CurrentViews then read no state
// older than those.
func TestAGatewayKnowsWhatItRead(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{Stream: "KN", Prefix: "kn", CacheEntries: -1}
	s, other := openTest(t, c, c.Connect(0), o), openTest(t, c, c.Connect(1), o)
	subj := putK(t, ctx, other)
	if err := other.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("w")) }); err != nil {
		t.Fatal(err)
	}
	e, err := s.fetch(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.known.Load(); string(e.val) != "w" || got < e.seq {
		t.Fatalf("after reading %q at %d from the leader the store knows %d, want at least %d", e.val, e.seq, got, e.seq)
	}
	a, err := s.multiGet(ctx, []string{subj})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.known.Load(); a.upTo == 0 || got < a.upTo {
		t.Fatalf("after a replica at %d answered the store knows %d", a.upTo, got)
	}
}

// A position handed from one gateway to another (kv.Positioner: a note carries it) is the floor
// of the receiver's CurrentViewFrom: it reads the sender's commit though it read nothing of
// it. A position nobody stored sends that view to the leader, and leaves the store's own
// floor as it was.
func TestAPositionHandedOverIsAFloor(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{Stream: "RP", Prefix: "rp", CacheEntries: -1}
	s, other := openTest(t, c, c.Connect(0), o), openTest(t, c, c.Connect(1), o)
	putK(t, ctx, other)
	sent := other.Position()
	if s.Position() >= sent {
		t.Fatalf("the gateway knows %d before it was told of %d", s.Position(), sent)
	}
	read := func(pos uint64) (floor uint64, got string) {
		t.Helper()
		if err := s.CurrentViewFrom(ctx, pos, func(kt kv.Tx) error {
			floor = kt.(*tx).floor
			if b := kt.Bucket([]byte("b")); b != nil {
				got = string(b.Get([]byte("k")))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return floor, got
	}
	if floor, got := read(sent); floor < sent || got != "v" {
		t.Fatalf("a CurrentView from %d read from %d and found %q, want at least %d and v", sent, floor, got, sent)
	}
	if floor, got := read(math.MaxUint64); floor != math.MaxUint64 || got != "v" {
		t.Fatalf("a CurrentView from a position nobody stored read from %d and found %q, want the leader's v", floor, got)
	}
	if known := s.Position(); known == math.MaxUint64 {
		t.Fatal("a position nobody stored became what the store knows")
	}
}
