package relay

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// jetStore opens a kv store on a stream of its own (name) on cluster c, as a gateway would,
// and waits until the stream's three replicas are ready.
func jetStore(t testing.TB, c *natstest.Cluster, node int, name string) *jskv.Store {
	t.Helper()
	nc := c.Connect(node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := jskv.Open(ctx, nc, jskv.Options{Stream: name, Prefix: name})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, name)
	return s
}

// A group of writes that together exceed what JetStream commits at once (1,000 messages) is
// split and committed in parts: every caller's write lands, and only a write too large on its
// own fails, alone, with kv.ErrTxTooLarge.
func TestGroupCommitSplitsWhatIsTooLarge(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "split")
	ctx := context.Background()
	if err := st.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	var txs int
	cm := &committer{db: st, ctx: ctx, txs: func() { txs++ }}
	write := func(name string, keys int) *writeCall {
		return &writeCall{f: &fanout{}, done: make(chan error, 1), fn: func(tx kv.Tx, _ *fanout) error {
			b := tx.Bucket([]byte("b"))
			for i := range keys {
				if err := b.Put(fmt.Appendf(nil, "%s/%04d", name, i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}}
	}
	// Four writes of 300 keys (1,200 together) and one of 1,200 on its own, queued as one group.
	calls := []*writeCall{write("a", 300), write("b", 300), write("huge", 1200), write("c", 300), write("d", 300)}
	cm.queue, cm.running = append([]*writeCall(nil), calls...), true
	cm.run()
	for i, call := range calls {
		err := <-call.done
		if i == 2 {
			if !errors.Is(err, kv.ErrTxTooLarge) {
				t.Errorf("the write of 1,200 keys: %v, want kv.ErrTxTooLarge", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := st.View(ctx, func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("b")).KeyN(); n != 4*300 {
			t.Errorf("the bucket holds %d keys, want the 1,200 of the four writes that fit", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if cm.limit >= len(calls) || cm.limit < 1 {
		t.Errorf("group limit after a split: %d, want between 1 and %d", cm.limit, len(calls)-1)
	}
	t.Logf("%d transactions, group limit now %d", txs, cm.limit)
}
