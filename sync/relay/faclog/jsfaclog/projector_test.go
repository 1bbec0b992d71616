package jsfaclog

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// writeRound makes n write transactions on held, each a key of its own and a balance every
// one rewrites.
func writeRound(t *testing.T, held *faclog.Held, round, n int) {
	t.Helper()
	for i := range n {
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("acct"))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("balance"), fmt.Appendf(nil, "%d", round*100+i)); err != nil {
				return err
			}
			return b.Put(fmt.Appendf(nil, "r%d.%02d", round, i), []byte("x"))
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func logLength(t *testing.T, l *Log, facility string) int {
	t.Helper()
	n := 0
	if err := l.Read(ctxFor(t, 30*time.Second), facility, 0, func(faclog.Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// restoreFromBefore puts the kv state "relay" back, through another gateway, to one from
// before any projection (a restore of an old backup), and returns that gateway's store.
func restoreFromBefore(t *testing.T, c *natstest.Cluster) kv.Store {
	t.Helper()
	restored := openKV(t, c, 2, "relay")
	if err := restored.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		for _, root := range []string{"acct", "faclog_projected"} {
			if err := tx.DeleteBucket([]byte(root)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return restored
}

// The projector keeps the kv state behind the held one and the log short: after each step
// the kv state is the held state and the log holds its last entry alone.
func TestProjectorKeepsTheKVStateBehindAndTrims(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	store := openKV(t, c, 1, "relay")
	w, held := heldOn(t, l, store, "f", "gw")
	p := faclog.NewProjector(held, 4)
	for round := range 3 {
		writeRound(t, held, round, 10)
		if got := p.Behind(); got != 10 {
			t.Fatalf("round %d: %d entries behind before the step, want 10", round, got)
		}
		mark, err := p.Step(ctxFor(t, time.Minute))
		if err != nil || mark != w.Last() {
			t.Fatalf("round %d: step: mark %d, %v; want %d", round, mark, err, w.Last())
		}
		if got := p.Behind(); got != 0 {
			t.Fatalf("round %d: %d entries behind after the step", round, got)
		}
		if got, want := dumpKV(t, store), dumpKV(t, held); got != want {
			t.Fatalf("round %d: the kv state\n%s\nthe held state\n%s", round, got, want)
		}
		if n := logLength(t, l, "f"); n != 1 {
			t.Fatalf("round %d: the log holds %d entries after the step, want its last alone", round, n)
		}
	}
	if mark, err := p.Step(ctxFor(t, time.Minute)); err != nil || mark != w.Last() {
		t.Fatalf("a step with nothing new: %d, %v", mark, err)
	}
}

// A kv state that is not the one the log follows (restored from before the holder's last
// projection) stops the projector: it says so, applies nothing, trims nothing, and what the
// holder appends waits in the log.
func TestProjectorStopsAtAGap(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	store := openKV(t, c, 1, "relay")
	w, held := heldOn(t, l, store, "f", "gw")
	p := faclog.NewProjector(held, 8)
	writeRound(t, held, 0, 5)
	projected, err := p.Step(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	restored := restoreFromBefore(t, c)
	writeRound(t, held, 1, 5)
	before := dumpKV(t, restored)
	mark, err := p.Step(ctxFor(t, time.Minute))
	if !errors.Is(err, faclog.ErrGap) || mark != projected {
		t.Fatalf("a step onto a kv state from before: mark %d, %v; want ErrGap and the mark it reached before, %d", mark, err, projected)
	}
	if got := p.Behind(); got != 5 {
		t.Fatalf("%d entries behind, want the 5 appended since", got)
	}
	if after := dumpKV(t, restored); after != before {
		t.Fatal("a step that found a gap changed the kv state")
	}
	if n := logLength(t, l, "f"); n != 6 {
		t.Fatalf("the log holds %d entries, want the last projected one and the 5 since", n)
	}
	if _, err := p.Step(ctxFor(t, time.Minute)); !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("the next step: %v, want ErrGap again until someone looks", err)
	}
	// The held state would read what it has not loaded from that kv state (a balance from
	// before, charged again): it serves nothing more, reading or writing.
	last := w.Last()
	if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("other"))
		return err
	}); !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("a write after the gap: %v, want ErrGap", err)
	}
	if err := held.View(ctxFor(t, 30*time.Second), func(kv.Tx) error { return nil }); !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("a read after the gap: %v, want ErrGap", err)
	}
	if w.Last() != last {
		t.Fatal("a write after the gap was appended")
	}
}
