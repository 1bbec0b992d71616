package jsfaclog

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// A gateway's hold on a facility projects its writes every interval of its clock, not
// before; the gateway that claims the facility next serves on the state the first one left,
// the first one's writes are refused from then on, and what each released is in the kv state.
func TestHoldingProjectsAndHandsOver(t *testing.T) {
	c := natstest.Start(t)
	la, lb := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	kva, kvb := openKV(t, c, 1, "relay"), openKV(t, c, 2, "relay")
	fake := clock.NewFake(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	opts := faclog.HoldOptions{Clock: fake, Every: time.Second, PerTx: 4, ForgetEvery: 1}

	a, err := faclog.Hold(ctxFor(t, time.Minute), la, kva, "f", "gw-a", opts)
	if err != nil {
		t.Fatal(err)
	}
	writeRound(t, a.Store(), 0, 10)
	if got := a.Behind(); got != 10 {
		t.Fatalf("%d entries behind before the interval passed, want 10", got)
	}
	if got := dumpKV(t, kva); got != "" {
		t.Fatalf("the kv state before the interval passed:\n%s", got)
	}
	fake.Advance(time.Second)
	testwait.Until(t, "the projector's step", func() bool { return a.Behind() == 0 })
	if got, want := dumpKV(t, kva), dumpKV(t, a.Store()); got != want {
		t.Fatalf("the kv state after a step\n%s\nthe held state\n%s", got, want)
	}
	if n := logLength(t, la, "f"); n != 1 {
		t.Fatalf("the log holds %d entries after a step, want its last alone", n)
	}
	writeRound(t, a.Store(), 1, 3) // not projected: gw-a is about to lose the facility

	b, err := faclog.Hold(ctxFor(t, time.Minute), lb, kvb, "f", "gw-b", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, b.Store()), dumpKV(t, a.Store()); got != want {
		t.Fatalf("the state gw-b took over\n%s\ngw-a's\n%s", got, want)
	}
	select {
	case <-a.Store().Deposed():
		t.Fatal("deposed before it wrote again")
	default:
	}
	before := dumpKV(t, a.Store())
	if err := writeErr(t, a.Store(), "late"); !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("gw-a's write after gw-b's claim: %v, want ErrDeposed", err)
	}
	<-a.Store().Deposed()
	if got := dumpKV(t, a.Store()); got != before {
		t.Fatalf("a deposed write changed gw-a's state:\n%s", got)
	}
	if err := a.Release(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("gw-a lets go: %v", err)
	}

	writeRound(t, b.Store(), 2, 5)
	if err := b.Release(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("gw-b lets go: %v", err)
	}
	if got, want := dumpKV(t, kva), dumpKV(t, b.Store()); got != want {
		t.Fatalf("the kv state once both let go\n%s\ngw-b's state\n%s", got, want)
	}
	var keys int
	if err := b.Store().View(ctxFor(t, time.Second), func(tx kv.Tx) error {
		keys = tx.Bucket([]byte("acct")).KeyN()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := 1 + 10 + 3 + 5; keys != want { // the balance and each round's keys
		t.Fatalf("gw-b's state holds %d keys, want %d", keys, want)
	}
}

func writeErr(t *testing.T, held *faclog.Held, key string) error {
	t.Helper()
	return held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("acct"))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), fmt.Appendf(nil, "x"))
	})
}

// A deposed holder may still project what it appended while the gateway that claimed the
// facility catches the kv state up over the same entries. Run at once, each skips what the
// other applied: the kv state is every group commit applied once, neither finds a gap, and
// the new holder goes on from there. The random transactions delete buckets and make them
// again, so each gateway's store, caching bucket markers as relayd's does, sees buckets the
// other made: the new hold drops its cached markers once caught up (without that, 5 runs of
// 20 lost a bucket).
func TestDeposedProjectionRacesTheCatchUp(t *testing.T) {
	c := natstest.Start(t)
	la, lb := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	fake := clock.NewFake(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)) // never moved: no step but at release
	for round := range 4 {
		facility := fmt.Sprintf("f%d", round)
		// The random transactions name the same buckets each round: a kv state each.
		stream := fmt.Sprintf("relay%d", round)
		kva, kvb := openKV(t, c, 1, stream), openKV(t, c, 2, stream)
		ref := openBase(t)
		_, a := heldOn(t, la, kva, facility, "gw-a")
		kvtest.Differential(t, ref, a, uint64(40+round), 30)
		pa := faclog.NewProjector(a, 1+round*3) // from one entry a transaction to ten

		errs := make(chan error, 2)
		var b *faclog.Holding
		go func() { _, err := pa.Step(ctxFor(t, time.Minute)); errs <- err }()
		go func() {
			var err error
			b, err = faclog.Hold(ctxFor(t, time.Minute), lb, kvb, facility, "gw-b",
				faclog.HoldOptions{Clock: fake, PerTx: 1 + round*2})
			errs <- err
		}()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		kvtest.Differential(t, ref, b.Store(), uint64(50+round), 20)
		if err := b.Release(ctxFor(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, want := dumpKV(t, kvb), dumpKV(t, ref); got != want {
			t.Fatalf("round %d: the kv state\n%s\nbbolt's\n%s", round, got, want)
		}
	}
}
