package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
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

// onJetStream puts the relay of a test env on a stream of its own on a fresh 3-node cluster
// (natstest), through node 0: newEnv(t, onJetStream(t)). The store outlives env.restart, as
// the stream outlives a gateway.
func onJetStream(t testing.TB) func(*Config) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "relay")
	return func(cfg *Config) { cfg.Store = st }
}

// A relay on JetStream keeps what it stored across a restart (a gateway going away and
// coming back), and refuses a file backup it cannot make, saying why, before sending a byte.
func TestRelayOnJetStreamKeepsItsState(t *testing.T) {
	e := newEnv(t, onJetStream(t))
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	it := k.item(wire.UpCharge, charge("A1", "s1", 0, 5))
	if ack := c.batch(it); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	before, err := e.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	e.restart()
	if b, err := e.r.Balance("A1"); err != nil || b != before {
		t.Fatalf("balance after restart = %+v, %v; before %+v", b, err, before)
	}
	if stored, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != 1 {
		t.Fatalf("items after restart: %d, %v", len(stored), err)
	}
	// The resend after the restart is recognised: nothing is stored or charged twice.
	c = k.connect(t, 0)
	if ack := c.batch(it); ack.Seq != 1 {
		t.Fatalf("ack of the resend = %+v", ack)
	}
	if b, _ := e.r.Balance("A1"); b != before {
		t.Fatalf("balance after the resend = %+v, want %+v", b, before)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	status, body := e.call("GET", PathBackup, nil)
	if status != http.StatusNotImplemented || !strings.Contains(string(body), "not a bbolt file") {
		t.Fatalf("backup on JetStream: %d %s", status, body)
	}
	if _, err := e.r.Backup(io.Discard); !errors.Is(err, ErrNoFileBackup) {
		t.Fatalf("Backup on JetStream = %v, want ErrNoFileBackup", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, DBFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a relay on JetStream made %s (%v)", DBFile, err)
	}
}
