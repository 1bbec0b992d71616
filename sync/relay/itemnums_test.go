package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Two gateways storing batches of terminals of two facilities, one after the other, do not
// make each other's group commits run again: each numbers its items from a block of its own,
// taken in a kv transaction of its own before the group that needs it (itemnums.go). Taken
// inside the group's transaction, a block read the sequence the other gateway just moved,
// from the cache, and the whole group ran again: with a block of 2 that was every other
// commit. Numbered one at a time (a block of 1, bbolt's numbering), every commit does. Every
// item is stored once, listed in the order it came, and a gateway that restarts goes on from
// a new block.
func TestItemNumbersOfTwoGatewaysDoNotConflict(t *testing.T) {
	for _, tc := range []struct {
		block      uint64
		wantReruns bool
	}{{0, false}, {2, false}, {1, true}} {
		t.Run(fmt.Sprintf("block %d", tc.block), func(t *testing.T) {
			c := natstest.Start(t)
			st1, st2 := jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")
			e1 := newEnv(t, func(cfg *Config) { cfg.Store, cfg.ItemNumberBlock = st1, tc.block })
			e2 := newEnv(t, func(cfg *Config) { cfg.Store, cfg.ItemNumberBlock = st2, tc.block })
			// A run of a group's transaction beyond its first is a run again.
			var runs atomic.Int64
			for _, e := range []*env{e1, e2} {
				began := e.r.writes.began
				e.r.writes.began = func() { runs.Add(1); began() }
			}
			groups := func() int64 { return int64(e1.r.writeTxs.Load() + e2.r.writeTxs.Load()) }
			e1.seed()
			e1.seedSouth()
			north, south := e1.enroll(wire.ModeKiosk, ""), e2.enrollAt("south", wire.ModeKiosk, "")
			c1, c2 := north.connect(t, 0), south.connect(t, 0)
			var sent []string
			store := func(c *tconn, inmate string, i int) {
				t.Helper()
				it := c.term.item(wire.UpCharge, charge(inmate, fmt.Sprintf("s%d", i), i, 5))
				if ack := c.batch(it); ack.Seq != it.Seq || len(ack.Rejected) != 0 {
					t.Fatalf("ack = %+v", ack)
				}
				sent = append(sent, it.ID)
				// Each gateway's clock, a second on: the list orders by arrival time.
				e1.clock.Advance(time.Second)
				e2.clock.Advance(time.Second)
			}
			// The first round makes each owner's buckets; the later ones are the steady state.
			store(c1, "A1", 0)
			store(c2, "S1", 0)
			before := runs.Load() - groups()
			for i := 1; i <= 5; i++ {
				store(c1, "A1", i)
				store(c2, "S1", i)
			}
			reruns := runs.Load() - groups() - before
			if tc.wantReruns != (reruns > 0) {
				t.Errorf("%d group commits ran again over 10 batches on two gateways, block %d", reruns, tc.block)
			}
			c1.c.CloseNow()
			e1.restart()
			c1 = north.connect(t, 0)
			store(c1, "A1", 6)
			items, err := e2.r.Items(ItemFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(sent) {
				t.Fatalf("%d items listed, %d sent", len(items), len(sent))
			}
			for i, it := range items {
				if it.ID != sent[i] {
					t.Fatalf("item %d listed is %s (terminal %s), want %s: not in the order they came", i, it.ID, it.TerminalID, sent[i])
				}
			}
			if rep, err := e1.r.Verify(); err != nil || !rep.OK {
				t.Fatalf("verify = %+v, %v", rep, err)
			}
		})
	}
}

// A number handed out is never handed out again once its transaction may have landed: a
// group whose commit got no answer leaves the numbers it took unused, and a block it took in
// its own transaction is dropped whole. Only a group that failed by its own error (nothing
// was written) gives its numbers back.
func TestArrivalNumbersAreNotReusedAfterALostCommit(t *testing.T) {
	ctx := context.Background()
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "nums.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte(bItems)); return err }); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("commit: no answer")
	run := func(in *itemNumbers, takes int, end error, fnFailed bool) []uint64 {
		t.Helper()
		var got []uint64
		err := db.Update(ctx, func(tx kv.Tx) error {
			in.began()
			for range takes {
				n, err := in.take(tx)
				if err != nil {
					return err
				}
				got = append(got, n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		in.ended(end, fnFailed)
		return got
	}
	in := &itemNumbers{block: 8}
	if err := in.reserve(ctx, db, 4); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		what     string
		takes    int
		end      error
		fnFailed bool
		want     []uint64
	}{
		{"a group that failed by its own error", 2, errors.New("refused"), true, []uint64{1, 2}},
		{"the next group, given them back", 2, lost, false, []uint64{1, 2}},
		{"after a lost commit", 2, nil, false, []uint64{3, 4}},
		// The reserved block (1..8) runs short: the group takes 9..16 itself, and loses it.
		{"a group running past its block", 6, lost, false, []uint64{5, 6, 7, 8, 9, 10}},
		{"after the lost block", 1, nil, false, []uint64{17}},
	}
	for _, s := range steps {
		if got := run(in, s.takes, s.end, s.fnFailed); !slices.Equal(got, s.want) {
			t.Errorf("%s took %v, want %v", s.what, got, s.want)
		}
	}
}

// The facilities a gateway holds take their blocks of arrival numbers one at a time
// (itemNumbers.gate): sixteen facilities taking their first block at once, as they do when
// relayd starts, make no transaction run again, and each gets numbers of its own. Taken at
// once, each read the sequence another had just moved and ran again.
func TestHeldFacilitiesTakeTheirFirstBlocksWithoutConflicts(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "relay")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Update(ctx, func(tx kv.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bItems)) // as the relay's schema makes it
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{}, 1)
	nums := make([]*itemNumbers, 16)
	for i := range nums {
		nums[i] = &itemNumbers{block: 64, keep: true, gate: gate}
	}
	before := st.Stats().Conflicts
	var wg sync.WaitGroup
	errs := make(chan error, len(nums))
	for _, in := range nums {
		wg.Go(func() { errs <- in.reserve(ctx, st, 1) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := st.Stats().Conflicts - before; n != 0 {
		t.Errorf("sixteen first blocks taken at once: %d transactions ran again, want none", n)
	}
	var blocks []numberBlock
	for _, in := range nums {
		if len(in.blocks) != 1 || in.end-in.next != 64 {
			t.Fatalf("a facility's numbers: blocks %v, [%d, %d); want one block of 64", in.blocks, in.next, in.end)
		}
		blocks = append(blocks, in.blocks[0])
	}
	slices.SortFunc(blocks, func(a, b numberBlock) int { return cmp.Compare(a.first, b.first) })
	for i := 1; i < len(blocks); i++ {
		if blocks[i].first < blocks[i-1].end {
			t.Fatalf("blocks %v and %v share numbers", blocks[i-1], blocks[i])
		}
	}
	// A take that waits for the gate gives up with its context, and takes nothing.
	gate <- struct{}{}
	late := &itemNumbers{block: 64, keep: true, gate: gate}
	gone, stop := context.WithCancel(ctx)
	stop()
	if err := late.reserve(gone, st, 1); !errors.Is(err, context.Canceled) || len(late.blocks) != 0 {
		t.Fatalf("a take behind another's, its context ended: %v, blocks %v; want the context's end and none", err, late.blocks)
	}
	<-gate
}
