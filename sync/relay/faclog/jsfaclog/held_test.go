package jsfaclog

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// A held facility's state behaves as every kv store the relay runs on does, each write
// transaction one entry of the facility's log on a real cluster.
func TestHeldPassesTheKVSuite(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	n := 0
	kvtest.Run(t, func(t *testing.T) kv.Store {
		n++
		return faclog.NewHeld(claim(t, l, fmt.Sprintf("conf%d", n), "gw"))
	})
}

// Random transactions give the held state what they give bbolt, and the kv state projected
// from its log is that state too.
func TestHeldStateIsWhatItsLogProjects(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	for seed := range uint64(3) {
		facility := fmt.Sprintf("f%d", seed)
		w := claim(t, l, facility, "gw")
		held := faclog.NewHeld(w)
		ref, err := boltkv.Open(filepath.Join(t.TempDir(), facility), nil)
		if err != nil {
			t.Fatal(err)
		}
		kvtest.Differential(t, ref, held, seed, 150)
		projected := openKV(t, c, 1, fmt.Sprintf("proj%d", seed))
		if at, err := faclog.CatchUp(ctxFor(t, time.Minute), l, projected, facility, w.Last(), 64); err != nil || at != w.Last() {
			t.Fatalf("seed %d: catch up to %d: %d, %v", seed, w.Last(), at, err)
		}
		if got, want := dumpKV(t, projected), dumpKV(t, held); got != want {
			t.Fatalf("seed %d: projected from the log\n%s\nheld\n%s", seed, got, want)
		}
		// The holder projects what it appended without reading it back, from its claim on.
		own := openKV(t, c, 2, fmt.Sprintf("own%d", seed))
		if _, err := faclog.CatchUp(ctxFor(t, time.Minute), l, own, facility, w.Term(), 64); err != nil {
			t.Fatal(err)
		}
		appended := held.TakeAppended()
		if at, _, err := faclog.ProjectEach(ctxFor(t, time.Minute), own, facility, appended, 64); err != nil || at != w.Last() {
			t.Fatalf("seed %d: project the %d entries appended: at %d, %v; want %d", seed, len(appended), at, err, w.Last())
		}
		if got, want := dumpKV(t, own), dumpKV(t, held); got != want {
			t.Fatalf("seed %d: projected from what the holder appended\n%s\nheld\n%s", seed, got, want)
		}
		if again := held.TakeAppended(); len(again) != 0 {
			t.Fatalf("seed %d: %d entries taken twice", seed, len(again))
		}
		if got, want := dumpKV(t, held), dumpKV(t, ref); got != want {
			t.Fatalf("seed %d: held\n%s\nbbolt\n%s", seed, got, want)
		}
		ref.Close()
	}
}

// A write transaction without quorum fails in doubt and leaves the state as it was; once the
// cluster is back the next one settles it first, so both are held and logged once. A holder
// whose facility was claimed elsewhere writes nothing more.
func TestHeldInDoubtThenDeposed(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{OpTimeout: time.Second})
	w := claim(t, l, "f", "gw-a")
	held := faclog.NewHeld(w)
	put := func(ctxd time.Duration, k string) error {
		return held.Update(ctxFor(t, ctxd), func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("acct"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		})
	}
	keys := func() (ks []string) {
		if err := held.View(ctxFor(t, time.Second), func(tx kv.Tx) error {
			if b := tx.Bucket([]byte("acct")); b != nil {
				return b.ForEach(func(k, _ []byte) error { ks = append(ks, string(k)); return nil })
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if err := put(30*time.Second, "before"); err != nil {
		t.Fatal(err)
	}
	c.StopQuorum(0)
	if err := put(3*time.Second, "cut"); !errors.Is(err, faclog.ErrInDoubt) {
		t.Fatalf("a write without quorum: %v, want ErrInDoubt", err)
	}
	if got := fmt.Sprint(keys()); got != "[before]" {
		t.Fatalf("the state while a write is in doubt: %s, want [before]", got)
	}
	c.Restart(1)
	c.Restart(2)
	if err := put(60*time.Second, "after"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keys()); got != "[after before cut]" {
		t.Fatalf("the state once settled: %s, want [after before cut]", got)
	}
	var logged []string
	if err := l.Read(ctxFor(t, 30*time.Second), "f", 0, func(e faclog.Entry) error {
		if !e.Claim() {
			ws, err := faclog.DecodeWrites(e.Data)
			if err != nil {
				return err
			}
			logged = append(logged, string(ws[len(ws)-1].Key))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(logged); got != "[before cut after]" {
		t.Fatalf("the log's writes: %s, want [before cut after] once each", got)
	}
	var taken []string
	for _, e := range held.TakeAppended() {
		ws, err := faclog.DecodeWrites(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, fmt.Sprintf("%s@%d", ws[len(ws)-1].Key, e.Seq-e.Prev))
	}
	if got := fmt.Sprint(taken); got != "[before@1 cut@1 after@1]" {
		t.Fatalf("the entries taken for the projection: %s, want the three in order, each after the one before", got)
	}

	claim(t, open(t, c, 1, Options{}), "f", "gw-b")
	if err := put(30*time.Second, "deposed"); !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("a write after another gateway claimed the facility: %v, want ErrDeposed", err)
	}
	if got := fmt.Sprint(keys()); got != "[after before cut]" {
		t.Fatalf("the state after a deposed write: %s", got)
	}
}
