package relay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A batch of new charges on JetStream reads what it is known to read (each item's id, each
// charge's record and account) together, before its write runs: not one leader round trip
// after another per item as the write asks (a leader's or, for an Update, a replica's), which is what bounded a gateway's group commits
// (docs/SCALE.md "Where a gateway's time goes"). Every charge still lands once, on the right
// account.
func TestBatchKeysReadTogether(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "prefetch")
	e := newEnv(t, func(cfg *Config) { cfg.Store = st })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	rec, ok, err := e.r.terminal(k.id)
	if err != nil || !ok {
		t.Fatalf("terminal %s: %v, %v", k.id, ok, err)
	}
	// Stored as a connection's reader hands batches over (bodies decoded), without a
	// connection: its downlink reads would count among the store's reads.
	store := func(items ...wire.Item) wire.Ack {
		t.Helper()
		acks, err := e.r.storeBatches(rec.TerminalInfo, []upBatch{{Batch: wire.Batch{Epoch: k.epoch, Items: items},
			bodies: wire.CheckedBodies(items)}}, nil)
		if err != nil || len(acks) != 1 {
			t.Fatalf("store: %v, %v", acks, err)
		}
		return acks[0]
	}
	// A first batch brings the terminal's own records into the gateway's cache, as a
	// connection's first batches do.
	if ack := store(k.item(wire.UpCharge, charge("A1", "warm", 0, 1))); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("first ack = %+v", ack)
	}
	const n = 12
	var items []wire.Item
	for i := range n {
		inmate := []string{"A1", "A2"}[i%2]
		items = append(items, k.item(wire.UpCharge, kiosk.Charge{RecordID: fmt.Sprintf("s%d/0", i), SessionID: fmt.Sprintf("s%d", i),
			InmateID: inmate, Cents: 2, At: t0}))
	}
	before := st.Stats()
	ack := store(items...)
	after := st.Stats()
	if ack.Seq != n+1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v, want seq %d and nothing refused", ack, n+1)
	}
	oneByOne, together := readsAlone(after)-readsAlone(before), readsGrouped(after)-readsGrouped(before)
	t.Logf("a batch of %d new charges: %d reads one by one, %d together", n, oneByOne, together)
	// Each new charge reads its item id's records (those of the second it was made: one or
	// two for the batch) and, on A1 whose charges bucket the first batch made, its usage
	// record, which no cache holds (they are new): n/2+1 one by one without the hint. (A2's
	// bucket is made by this batch: nothing to read in it.)
	if oneByOne != 0 {
		t.Errorf("a batch of %d new charges made %d reads one by one, want none: each is named", n, oneByOne)
	}
	if together < n/2+1 {
		t.Errorf("%d reads made together, want at least A1's usage records and the ids' record (%d)", together, n/2+1)
	}
	for _, id := range []string{"A1", "A2"} {
		b, err := e.r.Balance(id)
		if err != nil {
			t.Fatal(err)
		}
		want := kiosk.Cents(n) // n/2 charges of 2 cents
		if id == "A1" {
			want++ // the first batch's cent
		}
		if b.Charges != want {
			t.Errorf("%s charged %d cents, want %d", id, b.Charges, want)
		}
	}
}

// A prune of a facility's downlink log on JetStream reads the terminals' positions and the
// log's numbers together, not one round trip each, and still deletes everything every
// terminal acknowledged.
func TestPruneReadsTogether(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "pruneread")
	e := newEnv(t, func(cfg *Config) { cfg.Store = st })
	e.seed()
	var ids []string
	for range 3 {
		ids = append(ids, e.enroll(wire.ModeKiosk, "").id)
	}
	const deposits = 40
	for i := range deposits {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	if err := e.r.update("test: every kiosk acknowledged everything", func(tx kv.Tx, _ *fanout) error {
		last = tx.Bucket([]byte(bFacDown)).Bucket([]byte("north")).Sequence()
		for _, id := range ids {
			if err := tx.Bucket([]byte(bDownAcked)).Put([]byte(id), u64(last)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if last < deposits {
		t.Fatalf("the facility's log numbers reach %d, want at least the %d deposits", last, deposits)
	}
	// Another gateway, whose cache holds none of it, prunes from the log's start.
	other := jetStore(t, c, 1, "pruneread")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := other.Stats()
	var upTo uint64
	if err := other.Update(ctx, func(tx kv.Tx) error {
		var err error
		upTo, _, err = pruneFacilityDown(tx, "north", 0, false, DefaultDownLogCap, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after := other.Stats()
	oneByOne := readsAlone(after) - readsAlone(before)
	t.Logf("a prune of %d numbers for %d kiosks: %d reads one by one, %d together", last, len(ids), oneByOne, readsGrouped(after)-readsGrouped(before))
	if upTo != last {
		t.Errorf("pruned up to %d, want %d", upTo, last)
	}
	if oneByOne > 12 {
		t.Errorf("a prune of %d numbers for %d kiosks made %d reads one by one, want a dozen at most", last, len(ids), oneByOne)
	}
	if err := st.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte(bFacDown)).Bucket([]byte("north")).KeyN(); n != 0 {
			t.Errorf("the log holds %d items after the prune, want none", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// readsAlone is how many reads a store made one round trip after another, and readsGrouped
// how many several to a round trip, from the leader or (an Update's) from replicas.
func readsAlone(s jskv.Stats) int64   { return s.Reads - s.Prefetched + s.ReplicaOneByOne }
func readsGrouped(s jskv.Stats) int64 { return s.Prefetched + s.ReplicaReads - s.ReplicaOneByOne }
