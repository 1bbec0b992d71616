package jsfaclog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// holdWriteRelease holds facility f on l over s, writes a round of n transactions and lets it
// go (the release projects them).
func holdWriteRelease(t *testing.T, l faclog.Log, s kv.Store, round, n int) error {
	t.Helper()
	h, err := faclog.Hold(ctxFor(t, time.Minute), l, s, "f", "gw", faclog.HoldOptions{Clock: clock.NewFake(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))})
	if err != nil {
		return err
	}
	writeRound(t, h.Store(), round, n)
	if err := h.Release(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	return nil
}

// A facility's log made again (its stream deleted and made anew, or restored from a backup
// older than the kv state's) numbers its entries below the kv state's mark, where each would
// be skipped as projected already: the claim is refused (ErrGap), not served with writes that
// never reach the kv state. Check says the log does not follow; Reset takes the kv state as it
// stands, and the facility is held again, its writes projected on top of it. A log that
// follows is left alone.
func TestALogMadeAgainIsRefusedUntilReset(t *testing.T) {
	c := natstest.Start(t)
	store := openKV(t, c, 1, "relay")
	old := open(t, c, 0, Options{})
	for round := range 3 {
		if err := holdWriteRelease(t, old, store, round, 10); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := faclog.Reset(ctxFor(t, time.Minute), old, store, "f", false); err != nil || !rep.Follows || rep.Reset {
		t.Fatalf("reset of a log that follows: %+v, %v; want it left alone", rep, err)
	}
	before := dumpKV(t, store)

	remade := open(t, c, 0, Options{Stream: "TETHER_FACLOG_AGAIN", Prefix: "tg"})
	err := holdWriteRelease(t, remade, store, 3, 2)
	if !errors.Is(err, faclog.ErrGap) || !strings.Contains(err.Error(), "made again") {
		t.Fatalf("a hold on the log made again: %v, want ErrGap saying the log was made again", err)
	}
	if got := dumpKV(t, store); got != before {
		t.Fatalf("the refused hold changed the kv state:\n%s\nwas\n%s", got, before)
	}
	rep, err := faclog.Reset(ctxFor(t, time.Minute), remade, store, "f", true)
	if err != nil || rep.Follows || rep.Reset || rep.Last >= rep.Mark {
		t.Fatalf("a dry run on the log made again: %+v, %v; want it found behind the mark and nothing changed", rep, err)
	}
	if err := holdWriteRelease(t, remade, store, 3, 2); !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("a hold after the dry run: %v, want ErrGap still", err)
	}
	if rep, err = faclog.Reset(ctxFor(t, time.Minute), remade, store, "f", false); err != nil || !rep.Reset {
		t.Fatalf("reset: %+v, %v", rep, err)
	}
	if err := holdWriteRelease(t, remade, store, 3, 2); err != nil {
		t.Fatalf("a hold after the reset: %v", err)
	}
	got := dumpKV(t, store)
	for _, k := range []string{"r0.00", "r2.09", "r3.01"} {
		if !strings.Contains(got, k) {
			t.Fatalf("the kv state after the reset and a hold lacks %s:\n%s", k, got)
		}
	}
}

// A kv state restored from a backup older than the log's trimmed entries: the claim is
// refused, Check counts the entries past the kv state's mark that will not be applied, and
// after Reset the facility is held on the restored state, what the entries wrote since the
// backup gone (as a restore's is) rather than half written over it.
func TestAKVStateRestoredFromBeforeIsHeldAfterReset(t *testing.T) {
	c := natstest.Start(t)
	store := openKV(t, c, 1, "relay")
	l := open(t, c, 0, Options{})
	if err := holdWriteRelease(t, l, store, 0, 4); err != nil {
		t.Fatal(err)
	}
	restoreFromBefore(t, c)
	if err := holdWriteRelease(t, l, store, 1, 2); !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("a hold on the restored kv state: %v, want ErrGap", err)
	}
	rep, err := faclog.Check(ctxFor(t, time.Minute), l, store, "f")
	if err != nil || rep.Follows || rep.Mark != 0 || rep.Dropped == 0 {
		t.Fatalf("check: %+v, %v; want the log not following a mark of 0, with entries dropped", rep, err)
	}
	if rep, err := faclog.Reset(ctxFor(t, time.Minute), l, store, "f", false); err != nil || !rep.Reset {
		t.Fatalf("reset: %+v, %v", rep, err)
	}
	if err := holdWriteRelease(t, l, store, 1, 2); err != nil {
		t.Fatalf("a hold after the reset: %v", err)
	}
	got := dumpKV(t, store)
	if strings.Contains(got, "r0.00") || !strings.Contains(got, "r1.01") {
		t.Fatalf("the kv state after the reset and a hold:\n%s\nwant round 1 on the restored state, round 0 not written over it", got)
	}
}
