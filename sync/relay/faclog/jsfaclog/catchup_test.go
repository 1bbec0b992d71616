package jsfaclog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// openKV opens a kv store through node i as relayd does (bucket markers cached), or with
// options changed.
func openKV(t testing.TB, c *natstest.Cluster, i int, name string, change ...func(*jskv.Options)) kv.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := c.Connect(i)
	o := jskv.Options{Stream: name, Prefix: name, CacheBucketMarkers: true}
	for _, f := range change {
		f(&o)
	}
	s, err := natstest.Placed(ctx, func() (*jskv.Store, error) {
		return jskv.Open(ctx, nc, o)
	})
	if err != nil {
		t.Fatalf("open the kv store through node %d: %v", i, err)
	}
	c.WaitStream(nc, name)
	return s
}

func dumpKV(t *testing.T, s kv.Store) string {
	t.Helper()
	return kvtest.DumpStore(t, s, "faclog_projected") // the mark is compared on its own
}

// group is the writes of group commit i: 50 keys of its own (so forty of them are more than
// one kv transaction takes), a balance rewritten by every one, a key it deletes, and now and
// then a bucket dropped or a sequence set.
func group(i int) []faclog.Write {
	acct := [][]byte{[]byte("acct")}
	ws := []faclog.Write{{Op: faclog.OpPut, Path: acct, Key: []byte("balance"), Value: fmt.Appendf(nil, "%d", 1000-i)}}
	for j := range 50 {
		ws = append(ws, faclog.Write{Op: faclog.OpPut, Path: [][]byte{[]byte("items"), fmt.Appendf(nil, "t%d", i%3)},
			Key: fmt.Appendf(nil, "i%03d.%02d", i, j), Value: fmt.Appendf(nil, "item %d.%d", i, j)})
	}
	ws = append(ws, faclog.Write{Op: faclog.OpDelete, Path: [][]byte{[]byte("items"), fmt.Appendf(nil, "t%d", (i+1)%3)}, Key: fmt.Appendf(nil, "i%03d.%02d", i-1, 7)})
	if i%7 == 6 {
		ws = append(ws, faclog.Write{Op: faclog.OpDeleteBucket, Path: [][]byte{[]byte("items"), fmt.Appendf(nil, "t%d", (i+2)%3)}})
	}
	if i%5 == 0 {
		ws = append(ws, faclog.Write{Op: faclog.OpSequence, Path: acct, Seq: uint64(100 + i)})
	}
	return ws
}

// A gateway that claims a facility whose holder died having projected part of its log
// catches the kv state up to its claim: the state is what applying every group commit of the
// dead holder leaves, in transactions the store takes. Once the log is trimmed, a kv state
// from before (restored from a backup) is refused, not silently caught up past the gap.
func TestCatchUpAfterTheHolderDied(t *testing.T) {
	c := natstest.Start(t)
	la, lb := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	kva, kvb := openKV(t, c, 0, "relay"), openKV(t, c, 1, "relay")
	ref, err := boltkv.Open(filepath.Join(t.TempDir(), "ref"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ctx := ctxFor(t, 3*time.Minute)

	wa := claim(t, la, "f", "gw-a")
	for i := range 40 {
		ws := group(i)
		appendOK(t, wa, string(faclog.EncodeWrites(ws)))
		if err := ref.Update(ctx, func(tx kv.Tx) error { return faclog.Apply(tx, ws) }); err != nil {
			t.Fatal(err)
		}
	}
	// gw-a projected its first 15 group commits (and its claim), then died.
	var first []faclog.Entry
	if err := la.Read(ctx, "f", 0, func(e faclog.Entry) error {
		if len(first) < 16 {
			first = append(first, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := faclog.Project(ctx, kva, "f", first); err != nil {
		t.Fatal(err)
	}

	wb := claim(t, lb, "f", "gw-b")
	at, err := faclog.CatchUp(ctx, lb, kvb, "f", wb.Term(), 64)
	if err != nil || at != wb.Term() {
		t.Fatalf("catch up to gw-b's claim at %d: at %d, %v", wb.Term(), at, err)
	}
	if got, want := dumpKV(t, kvb), dumpKV(t, ref); got != want {
		t.Fatalf("the kv state after catching up differs from every group commit applied:\n%s\nwant\n%s", got, want)
	}
	if at, err := faclog.CatchUp(ctx, lb, kvb, "f", wb.Term(), 64); err != nil || at != wb.Term() {
		t.Fatalf("catching up again: at %d, %v", at, err)
	}

	// gw-b goes on; its group commits are projected as it appends them, and it trims.
	for i := 40; i < 43; i++ {
		ws := group(i)
		seq := appendOK(t, wb, string(faclog.EncodeWrites(ws)))
		if err := ref.Update(ctx, func(tx kv.Tx) error { return faclog.Apply(tx, ws) }); err != nil {
			t.Fatal(err)
		}
		if at, err := faclog.CatchUp(ctx, lb, kvb, "f", seq, 64); err != nil || at != seq {
			t.Fatalf("project gw-b's entry %d: at %d, %v", seq, at, err)
		}
	}
	if got, want := dumpKV(t, kvb), dumpKV(t, ref); got != want {
		t.Fatalf("the kv state after gw-b's commits:\n%s\nwant\n%s", got, want)
	}
	if err := wb.Trim(ctx, wb.Last()); err != nil {
		t.Fatal(err)
	}

	// A kv state restored from before the trim sees the log's first entry name one it lacks.
	restored := openKV(t, c, 2, "restored")
	if _, err := faclog.Project(ctx, restored, "f", first[:5]); err != nil {
		t.Fatal(err)
	}
	before := dumpKV(t, restored)
	_, err = faclog.CatchUp(ctx, lb, restored, "f", wb.Last(), 64)
	if !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("catching up a kv state from before the trim: %v, want ErrGap", err)
	}
	if after := dumpKV(t, restored); after != before {
		t.Fatal("a refused catch-up changed the restored state")
	}
}
