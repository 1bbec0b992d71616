package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Two gateways storing batches of terminals of two facilities, one after the other, do not
// make each other's commits run again: each numbers its items from a block of its own
// (itemnums.go). Numbered one at a time (a block of 1, the old numbering), every commit reads
// the one sequence the other gateway just moved, from its cache, and runs again. Every item
// is stored once, listed in the order it came, and a gateway that restarts goes on from a
// new block.
func TestItemNumbersOfTwoGatewaysDoNotConflict(t *testing.T) {
	for _, tc := range []struct {
		block         uint64
		wantConflicts bool
	}{{0, false}, {1, true}} {
		t.Run(fmt.Sprintf("block %d", tc.block), func(t *testing.T) {
			c := natstest.Start(t)
			st1, st2 := jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")
			e1 := newEnv(t, func(cfg *Config) { cfg.Store, cfg.ItemNumberBlock = st1, tc.block })
			e2 := newEnv(t, func(cfg *Config) { cfg.Store, cfg.ItemNumberBlock = st2, tc.block })
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
			before := st1.Stats().Conflicts + st2.Stats().Conflicts
			for i := 1; i <= 5; i++ {
				store(c1, "A1", i)
				store(c2, "S1", i)
			}
			conflicts := st1.Stats().Conflicts + st2.Stats().Conflicts - before
			if tc.wantConflicts != (conflicts > 0) {
				t.Errorf("%d commits ran again over 10 batches on two gateways, block %d", conflicts, tc.block)
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
