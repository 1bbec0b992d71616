package jsfaclog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
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
		return faclog.NewHeld(claim(t, l, fmt.Sprintf("conf%d", n), "gw"), openBase(t), nil)
	})
}

// heldOn claims facility through l for holder, catches store up to the claim and holds the
// facility's state over it: faclog.Hold without the projector's loop.
func heldOn(t *testing.T, l *Log, store kv.Store, facility, holder string) (faclog.Writer, *faclog.Held) {
	t.Helper()
	w := claim(t, l, facility, holder)
	if _, err := faclog.CatchUp(ctxFor(t, time.Minute), l, store, facility, w.Term(), 64); err != nil {
		t.Fatal(err)
	}
	return w, faclog.NewHeld(w, store, nil)
}

// claimOnBase claims facility on a new cluster and catches an empty bbolt kv state up to the
// claim, for a held state over it.
func claimOnBase(t *testing.T, facility string) (*Log, faclog.Writer, kv.Store) {
	t.Helper()
	l := open(t, natstest.Start(t), 0, Options{})
	w := claim(t, l, facility, "gw")
	base := openBase(t)
	if _, err := faclog.CatchUp(ctxFor(t, time.Minute), l, base, facility, w.Term(), 64); err != nil {
		t.Fatal(err)
	}
	return l, w, base
}

// openBase is an empty kv state for a held one to read through to.
func openBase(t *testing.T) kv.Store {
	t.Helper()
	s, err := boltkv.Open(filepath.Join(t.TempDir(), "base"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Random transactions give the held state what they give bbolt, and the kv state projected
// from its log is that state too.
func TestHeldStateIsWhatItsLogProjects(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	for seed := range uint64(3) {
		facility := fmt.Sprintf("f%d", seed)
		own := openKV(t, c, 2, fmt.Sprintf("own%d", seed))
		w, held := heldOn(t, l, own, facility, "gw")
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
	// The kv state under the held one has a bucket of its own, read through to.
	base := openBase(t)
	if err := base.Update(ctxFor(t, time.Second), func(tx kv.Tx) error {
		_, err := tx.CreateBucket([]byte("other"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	held := faclog.NewHeld(w, base, nil)
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
	if err := held.View(ctxFor(t, time.Second), func(tx kv.Tx) error {
		if tx.Bucket([]byte("other")) == nil {
			return errors.New("the kv state's bucket is gone from the settled state")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
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

// A failover: the gateway that claims a facility from a holder that died catches the kv state
// up to its claim and serves at once, reading through to it; its held state is then the dead
// holder's, and its own writes follow on in the log and in the projection.
func TestHeldFailoverReadsTheStateItTakesOver(t *testing.T) {
	c := natstest.Start(t)
	la, lb := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	kva, kvb := openKV(t, c, 0, "relay"), openKV(t, c, 1, "relay")
	wa := claim(t, la, "f", "gw-a")
	a := faclog.NewHeld(wa, kva, nil)
	ref, err := boltkv.Open(filepath.Join(t.TempDir(), "ref"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	kvtest.Differential(t, ref, a, 11, 80)
	var roots []string
	if err := a.View(ctxFor(t, time.Second), func(tx kv.Tx) error {
		return tx.ForEachBucket(func(name []byte) error { roots = append(roots, string(name)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(roots) == 0 {
		t.Fatal("the random transactions made no bucket: nothing to take over")
	}
	// gw-a dies without projecting anything: the kv state holds none of it.
	if got := dumpKV(t, kvb); got != "" {
		t.Fatalf("the kv state before the catch-up: %q", got)
	}

	_, b := heldOn(t, lb, kvb, "f", "gw-b")
	if got, want := dumpKV(t, b), dumpKV(t, a); got != want {
		t.Fatalf("the state gw-b took over\n%s\ngw-a's\n%s", got, want)
	}
	// gw-a, deposed, changes nothing; gw-b's writes reach the log and the projection.
	if err := a.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("late"))
		return err
	}); !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("the old holder's write: %v, want ErrDeposed", err)
	}
	kvtest.Differential(t, ref, b, 12, 40)
	if _, err := faclog.NewProjector(b, 64).Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, kvb), dumpKV(t, b); got != want {
		t.Fatalf("the kv state after gw-b's writes\n%s\ngw-b's state\n%s", got, want)
	}
	if got, want := dumpKV(t, b), dumpKV(t, ref); got != want {
		t.Fatalf("gw-b's state\n%s\nbbolt's\n%s", got, want)
	}
}

// A transaction tells its size against what one entry holds, as the relay's group commit
// asks of a store; one that would not fit is refused as too large, appending nothing and
// changing nothing.
func TestHeldRefusesAnEntryTooLarge(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	w := claim(t, l, "f", "gw")
	held := faclog.NewHeld(w, openBase(t), nil)
	if w.MaxEntry() < 64<<10 || w.MaxEntry() >= int(1<<20) {
		t.Fatalf("an entry holds %d bytes: want the connection's largest message (1 MiB here) less its headers", w.MaxEntry())
	}
	value := make([]byte, w.MaxEntry()/4)
	write := func(n int) (size, bound int, err error) {
		err = held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("big"))
			if err != nil {
				return err
			}
			for i := range n {
				if err := b.Put(fmt.Appendf(nil, "k%d", i), value); err != nil {
					return err
				}
			}
			var ok bool
			if size, bound, ok = kv.Size(tx); !ok {
				return errors.New("a held transaction does not tell its size")
			}
			return nil
		})
		return size, bound, err
	}
	size, bound, err := write(2)
	if err != nil || size < 2*len(value) || size > 2*len(value)+200 || bound != w.MaxEntry() {
		t.Fatalf("two quarters of an entry: size %d of %d, %v", size, bound, err)
	}
	last := w.Last()
	if _, _, err := write(5); !errors.Is(err, kv.ErrTxTooLarge) {
		t.Fatalf("five quarters of an entry: %v, want ErrTxTooLarge", err)
	}
	if w.Last() != last {
		t.Fatalf("a refused transaction appended: the log's last moved from %d to %d", last, w.Last())
	}
	if err := held.View(ctxFor(t, time.Second), func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("big")).KeyN(); n != 2 {
			return fmt.Errorf("the state holds %d keys after the refusal, want 2", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A cursor made before a transaction's first write to its bucket sees that transaction's
// writes to the keys it walks: deleting behind it as it goes, and a value changed ahead of it.
func TestHeldCursorSeesItsTransactionsWrites(t *testing.T) {
	c := natstest.Start(t)
	held := faclog.NewHeld(claim(t, open(t, c, 0, Options{}), "f", "gw"), openBase(t), nil)
	if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for _, k := range []string{"a", "b", "c", "d"} {
			if err := b.Put([]byte(k), []byte("old")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var walked []string
	if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			walked = append(walked, string(k)+"="+string(v))
			if string(k) == "a" {
				if err := b.Put([]byte("c"), []byte("new")); err != nil {
					return err
				}
				if err := b.Delete([]byte("b")); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(walked), "[a=old c=new d=old]"; got != want {
		t.Fatalf("the cursor walked %s, want %s", got, want)
	}
}

// A held state starts over a kv state that already holds what it holds (as after a catch-up)
// and loads nothing ahead: random transactions on it give what they give bbolt holding the
// same, while its projector writes its entries back under it; a second holder over the
// projected state, as after a failover, goes on from there.
func TestHeldReadsThroughToItsKVState(t *testing.T) {
	c := natstest.Start(t)
	la, lb := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	kva, kvb := openKV(t, c, 1, "relay"), openKV(t, c, 2, "relay")
	ref, err := boltkv.Open(filepath.Join(t.TempDir(), "ref"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	kvtest.Differential(t, ref, kva, 21, 120) // the same state in both
	before := dumpKV(t, kva)
	if before == "" {
		t.Fatal("the random transactions left the kv state empty")
	}

	wa, a := heldOn(t, la, kva, "f", "gw-a")
	pa := faclog.NewProjector(a, 16)
	forgotten, mark := 0, wa.Term()
	for round := range 6 {
		kvtest.Differential(t, ref, a, uint64(22+round), 20)
		// The held state forgets what the kv state holds, not what it wrote since, and goes
		// on reading the rest from there.
		forgotten += a.Forget(mark)
		kvtest.Differential(t, ref, a, uint64(122+round), 20)
		var err error
		if mark, err = pa.Step(ctxFor(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, want := dumpKV(t, kva), dumpKV(t, ref); got != want {
			t.Fatalf("round %d: the kv state projected\n%s\nbbolt's\n%s", round, got, want)
		}
		if round%3 == 2 { // and now and then all of it
			forgotten += a.Forget(mark)
		}
	}
	if forgotten == 0 {
		t.Fatal("the held state forgot nothing the kv state holds")
	}

	_, b := heldOn(t, lb, kvb, "f", "gw-b")
	kvtest.Differential(t, ref, b, 30, 60)
	if _, err := faclog.NewProjector(b, 16).Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, kvb), dumpKV(t, ref); got != want {
		t.Fatalf("after the failover: the kv state projected\n%s\nbbolt's\n%s", got, want)
	}
}

// A View reads what its state has not loaded from the kv state, which the projector writes
// meanwhile; it must never see there an entry its state does not hold. Transfers walk along
// accounts the state has not loaded yet, each moving one from an account to the next, while
// Views add up every account and the projector runs: each sum is the total.
func TestHeldViewsDuringProjectionSeeOneState(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	base := openKV(t, c, 1, "relay")
	// A View that sees a later entry meets one often but not always: three facilities.
	for _, f := range []string{"f1", "f2", "f3"} {
		viewsDuringProjection(t, l, base, f)
	}
}

func viewsDuringProjection(t *testing.T, l *Log, base kv.Store, facility string) {
	const accounts, each = 150, 100
	name := func(i int) []byte { return fmt.Appendf(nil, "%03d", i) }
	if err := base.Update(ctxFor(t, time.Minute), func(tx kv.Tx) error {
		root, err := tx.CreateBucket([]byte(facility))
		if err != nil {
			return err
		}
		for i := range accounts {
			b, err := root.CreateBucket(name(i))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("bal"), fmt.Appendf(nil, "%d", each)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, held := heldOn(t, l, base, facility, "gw")
	p := faclog.NewProjector(held, 4)
	balance := func(b kv.Bucket) (n int) {
		fmt.Sscan(string(b.Get([]byte("bal"))), &n)
		return n
	}

	done := make(chan struct{})
	errs := make(chan error, 3)
	go func() { // the transfers
		defer close(done)
		for i := range accounts - 1 {
			if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
				root := tx.Bucket([]byte(facility))
				from, to := root.Bucket(name(i)), root.Bucket(name(i+1))
				if err := from.Put([]byte("bal"), fmt.Appendf(nil, "%d", balance(from)-1)); err != nil {
					return err
				}
				return to.Put([]byte("bal"), fmt.Appendf(nil, "%d", balance(to)+1))
			}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() { // the projector
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			mark, err := p.Step(ctxFor(t, time.Minute))
			if err != nil {
				errs <- err
				return
			}
			held.Forget(mark) // the Views read base for what it dropped, too
		}
	}()
	views := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		var sum int
		if err := held.View(ctxFor(t, time.Minute), func(tx kv.Tx) error {
			sum = 0
			root := tx.Bucket([]byte(facility))
			for i := range accounts {
				sum += balance(root.Bucket(name(i)))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if sum != accounts*each {
			t.Fatalf("%s: view %d added up to %d, want %d", facility, views, sum, accounts*each)
		}
		views++
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, base), dumpKV(t, held); got != want {
		t.Fatalf("%s: the kv state\n%s\nthe held state\n%s", facility, got, want)
	}
	t.Logf("%s: %d views during %d transfers", facility, views, accounts-1)
}

// A root that every facility writes keys into (a terminal's record under its id) is read a
// key at a time: what the holder deleted stays deleted though base still has it, a key it
// never touched is read from base, and a cursor or a count sees the keys of both.
func TestHeldReadsKeysOneAtATime(t *testing.T) {
	_, w, base := claimOnBase(t, "f")
	put := func(s kv.Store, fn func(b kv.Bucket) error) {
		t.Helper()
		if err := s.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("devices"))
			if err != nil {
				return err
			}
			return fn(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(base, func(b kv.Bucket) error {
		for _, k := range []string{"t1", "t2", "t3", "t4", "t5"} {
			if err := b.Put([]byte(k), []byte("v"+k[1:])); err != nil {
				return err
			}
		}
		return b.SetSequence(7)
	})
	held := faclog.NewHeld(w, base, nil)
	var got2 string
	put(held, func(b kv.Bucket) error {
		got2 = string(b.Get([]byte("t2")))
		if err := b.Delete([]byte("t3")); err != nil {
			return err
		}
		return b.Put([]byte("t6"), []byte("v6"))
	})
	if got2 != "v2" {
		t.Fatalf("t2 read through: %q", got2)
	}
	var got3 []byte
	last := w.Last()
	put(held, func(b kv.Bucket) error {
		got3 = b.Get([]byte("t3"))
		return b.Delete([]byte("t3"))
	})
	if got3 != nil {
		t.Fatalf("t3, deleted by the holder, read %q", got3)
	}
	if w.Last() != last {
		t.Fatal("deleting what is gone appended an entry")
	}
	// Another facility's holder writes its own terminal's key into base meanwhile.
	put(base, func(b kv.Bucket) error { return b.Put([]byte("t9"), []byte("v9")) })
	view := func() string {
		var out strings.Builder
		if err := held.View(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b := tx.Bucket([]byte("devices"))
			fmt.Fprintf(&out, "t3=%q t4=%q t9=%q keys=%d seq=%d walk", b.Get([]byte("t3")), b.Get([]byte("t4")),
				b.Get([]byte("t9")), b.KeyN(), b.Sequence())
			return b.ForEach(func(k, v []byte) error { fmt.Fprintf(&out, " %s=%s", k, v); return nil })
		}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	want := `t3="" t4="v4" t9="v9" keys=6 seq=7 walk t1=v1 t2=v2 t4=v4 t5=v5 t6=v6 t9=v9`
	if got := view(); got != want {
		t.Fatalf("the held state:\n%s\nwant\n%s", got, want)
	}
	put(held, func(b kv.Bucket) error { _, err := b.NextSequence(); return err })
	if _, err := faclog.NewProjector(held, 8).Step(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, "seq=7", "seq=8", 1)
	if got := view(); got != want {
		t.Fatalf("the held state after the projection:\n%s\nwant\n%s", got, want)
	}
	if got, want := dumpKV(t, base), dumpKV(t, held); got != want {
		t.Fatalf("base after the projection\n%s\nheld\n%s", got, want)
	}
}

// A held facility writes only what its scope gives it, and reads the rest as the kv state has
// it now: another facility's key in a shared root, a record of the whole state. A walk over a
// root it holds only part of is refused, since the kv state's copy of its part is behind.
func TestHeldKeepsToItsScope(t *testing.T) {
	_, w, base := claimOnBase(t, "f1")
	write := func(s kv.Store, root, key, value string) error {
		return s.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b := tx.Bucket([]byte(root))
			if b == nil {
				return fmt.Errorf("no root %s", root)
			}
			return b.Put([]byte(key), []byte(value))
		})
	}
	if err := base.Update(ctxFor(t, time.Second), func(tx kv.Tx) error {
		for _, root := range []string{"devices", "dedupe", "terminals", "acct"} {
			if _, err := tx.CreateBucket([]byte(root)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][3]string{{"devices", "f2-a", "theirs"}, {"terminals", "f1-a", "enrolled"}} {
		if err := write(base, kv[0], kv[1], kv[2]); err != nil {
			t.Fatal(err)
		}
	}
	// f1 holds its terminals' keys in devices and their buckets in dedupe, and all of acct.
	scope := func(path [][]byte) faclog.Reach {
		switch {
		case string(path[0]) == "acct":
			return faclog.Inside
		case string(path[0]) == "terminals":
			return faclog.Outside
		case len(path) == 1:
			return faclog.Partly
		case strings.HasPrefix(string(path[1]), "f1-"):
			return faclog.Inside
		}
		return faclog.Outside
	}
	held := faclog.NewHeld(w, base, scope)

	if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		if err := tx.Bucket([]byte("devices")).Put([]byte("f1-a"), []byte("mine")); err != nil {
			return err
		}
		b, err := tx.Bucket([]byte("dedupe")).CreateBucketIfNotExists([]byte("f1-a"))
		if err != nil {
			return err
		}
		return b.Put([]byte("e1"), []byte("7"))
	}); err != nil {
		t.Fatal(err)
	}
	last := w.Last()
	refused := map[string]func(tx kv.Tx) error{
		"another facility's key": func(tx kv.Tx) error {
			return tx.Bucket([]byte("devices")).Put([]byte("f2-a"), []byte("stolen"))
		},
		"a record of the state": func(tx kv.Tx) error {
			return tx.Bucket([]byte("terminals")).Put([]byte("f1-a"), []byte("revoked"))
		},
		"another facility's bucket": func(tx kv.Tx) error {
			_, err := tx.Bucket([]byte("dedupe")).CreateBucket([]byte("f2-a"))
			return err
		},
		"a root's sequence": func(tx kv.Tx) error {
			_, err := tx.Bucket([]byte("devices")).NextSequence()
			return err
		},
		"a walk over a root held in part": func(tx kv.Tx) error {
			// a write first: the walk's refusal must fail the whole transaction
			if err := tx.Bucket([]byte("acct")).Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
			return tx.Bucket([]byte("devices")).ForEach(func(_, _ []byte) error { return nil })
		},
	}
	for what, fn := range refused {
		if err := held.Update(ctxFor(t, 30*time.Second), fn); !errors.Is(err, faclog.ErrNotHeld) {
			t.Errorf("%s: %v, want ErrNotHeld", what, err)
		}
	}
	if w.Last() != last {
		t.Fatal("a refused write appended an entry")
	}
	// What is outside is read as base has it now, not as it was when first read.
	read := func() string {
		var out string
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			var walk []string
			if err := tx.Bucket([]byte("terminals")).ForEach(func(k, v []byte) error {
				walk = append(walk, string(k)+"="+string(v))
				return nil
			}); err != nil {
				return err
			}
			d := tx.Bucket([]byte("devices"))
			out = fmt.Sprintf("devices f1-a=%s f2-a=%s; terminals %v; acct k=%q", d.Get([]byte("f1-a")), d.Get([]byte("f2-a")),
				walk, tx.Bucket([]byte("acct")).Get([]byte("k")))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := read(), `devices f1-a=mine f2-a=theirs; terminals [f1-a=enrolled]; acct k=""`; got != want {
		t.Fatalf("read: %s\nwant %s", got, want)
	}
	for _, kv := range [][3]string{{"devices", "f2-a", "theirs, later"}, {"terminals", "f1-a", "revoked"}} {
		if err := write(base, kv[0], kv[1], kv[2]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := read(), `devices f1-a=mine f2-a=theirs, later; terminals [f1-a=revoked]; acct k=""`; got != want {
		t.Fatalf("read after others wrote: %s\nwant %s", got, want)
	}
}

// A record that group commits add to costs each entry only what was added: the held state and
// its projection hold what Gets and Puts on bbolt hold, and an entry that adds a few bytes
// to a long record carries a few bytes.
func TestHeldAppendsCarryOnlyTheTail(t *testing.T) {
	l, w, base := claimOnBase(t, "f")
	held := faclog.NewHeld(w, base, nil)
	ref := openBase(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 120 {
		ops := make([]func(b kv.Bucket) error, 1+rng.IntN(4))
		for j := range ops {
			k := fmt.Appendf(nil, "m%d", rng.IntN(4))
			v := fmt.Appendf(nil, "[%d.%d]", i, j)
			switch rng.IntN(10) {
			case 0:
				ops[j] = func(b kv.Bucket) error { return b.Put(k, v) }
			case 1:
				ops[j] = func(b kv.Bucket) error { return b.Delete(k) }
			default:
				ops[j] = func(b kv.Bucket) error { return kv.Append(b, k, v) }
			}
		}
		for _, s := range []kv.Store{held, ref} {
			if err := s.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("ids"))
				if err != nil {
					return err
				}
				for _, op := range ops {
					if err := op(b); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatalf("transaction %d: %v", i, err)
			}
		}
	}
	if got, want := dumpKV(t, held), dumpKV(t, ref); got != want {
		t.Fatalf("held\n%s\nbbolt\n%s", got, want)
	}
	if _, err := faclog.NewProjector(held, 16).Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, base), dumpKV(t, ref); got != want {
		t.Fatalf("projected\n%s\nbbolt\n%s", got, want)
	}

	long := bytes.Repeat([]byte("x"), 8<<10)
	for _, tail := range [][]byte{long, []byte("+1")} {
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			return kv.Append(tx.Bucket([]byte("ids")), []byte("long"), tail)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var last faclog.Entry
	if err := l.Read(ctxFor(t, 30*time.Second), "f", w.Last()-1, func(e faclog.Entry) error { last = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if last.Seq != w.Last() || len(last.Data) > 64 {
		t.Fatalf("the entry that added 2 bytes to an 8 KiB record: entry %d of %d, %d bytes", last.Seq, w.Last(), len(last.Data))
	}
}

// A held state forgets the buckets the kv state holds all of, keeping those written since,
// and reads what it forgot from the kv state again: an account's nested buckets are dropped
// while the account itself, written after the projection, stays.
func TestHeldForgetsWhatTheKVStateHolds(t *testing.T) {
	_, w, base := claimOnBase(t, "f")
	held := faclog.NewHeld(w, base, nil)
	p := faclog.NewProjector(held, 8)
	update := func(fn func(acct kv.Bucket) error) {
		t.Helper()
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			acct, err := tx.CreateBucketIfNotExists([]byte("acct"))
			if err != nil {
				return err
			}
			return fn(acct)
		}); err != nil {
			t.Fatal(err)
		}
	}
	update(func(acct kv.Bucket) error {
		for _, n := range []string{"a1", "a2"} {
			b, err := acct.CreateBucket([]byte(n))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
	mark, err := p.Step(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	update(func(acct kv.Bucket) error { return acct.Put([]byte("total"), []byte("2")) })
	if n := held.Forget(mark); n != 2 {
		t.Fatalf("forgot %d buckets, want a1 and a2 (acct was written since)", n)
	}
	read := func() string {
		var out strings.Builder
		if err := held.View(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			acct := tx.Bucket([]byte("acct"))
			fmt.Fprintf(&out, "total=%s", acct.Get([]byte("total")))
			return acct.ForEachBucket(func(n []byte) error {
				fmt.Fprintf(&out, " %s:k=%s", n, acct.Bucket(n).Get([]byte("k")))
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	const want = "total=2 a1:k=a1 a2:k=a2"
	if got := read(); got != want {
		t.Fatalf("after forgetting: %s, want %s", got, want)
	}
	update(func(acct kv.Bucket) error { return acct.Bucket([]byte("a2")).Put([]byte("k"), []byte("a2")) })
	if mark, err = p.Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := held.Forget(mark); n == 0 {
		t.Fatal("forgot nothing once all of it was projected")
	}
	if got := read(); got != want {
		t.Fatalf("after forgetting all: %s, want %s", got, want)
	}
}

// A bucket written by every group commit (the items log's root, a terminal-keyed root) always
// has a write after the projector's mark, so it is never forgotten whole; its keys the kv
// state holds are forgotten one by one, and read from there again. Without it the state held
// every key written to it for as long as the facility was held.
func TestHeldForgetsTheKeysOfABucketWrittenEachTime(t *testing.T) {
	_, w, base := claimOnBase(t, "f")
	if err := base.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		_, err := tx.CreateBucket([]byte("items"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	held := faclog.NewHeld(w, base, nil)
	p := faclog.NewProjector(held, 64)
	put := func(k string) {
		t.Helper()
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			return tx.Bucket([]byte("items")).Put([]byte(k), []byte("v"+k))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 5 {
		for i := range 20 {
			put(fmt.Sprintf("r%d-%02d", round, i))
		}
		mark, err := p.Step(ctxFor(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		put(fmt.Sprintf("r%d-after", round)) // the bucket is written after the mark again
		held.Forget(mark)
		if _, keys := held.Size(); keys != 1 {
			t.Fatalf("round %d: the held state keeps %d keys, want 1 (the one written after the projection)", round, keys)
		}
	}
	var got []string
	if err := held.View(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		b := tx.Bucket([]byte("items"))
		for _, k := range []string{"r0-00", "r2-19", "r4-after", "r3-after"} {
			got = append(got, k+"="+string(b.Get([]byte(k))))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"r0-00=vr0-00", "r2-19=vr2-19", "r4-after=vr4-after", "r3-after=vr3-after"}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if _, err := p.Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpKV(t, base), dumpKV(t, held); got != want {
		t.Fatalf("base\n%s\nheld\n%s", got, want)
	}
}

// A group commit on a held state names the keys it will read (kv.Prefetch): those the state
// does not hold are fetched from base together, and those it holds are not fetched at all.
// Without it each key the state lacks is a round trip to the cluster of its own; read in a
// View, each was read a second time at the end, one after another.
func TestHeldPrefetchesWhatItLacks(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	base := openKV(t, c, 1, "prefetch")
	ctx := ctxFor(t, time.Minute)
	if err := base.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("devices"))
		if err != nil {
			return err
		}
		for _, k := range []string{"t1", "t2", "t3", "t4", "t5"} {
			if err := b.Put([]byte(k), []byte("v"+k[1:])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, held := heldOn(t, l, base, "f", "gw")
	stats := func() kv.Stats { return base.(kv.StatsReporter).KVStats() }
	if err := held.Update(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("devices")).Get([]byte("t1")); string(v) != "v1" {
			return fmt.Errorf("t1 = %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := stats()
	var got []string
	if err := held.Update(ctx, func(tx kv.Tx) error {
		got = got[:0]
		keys := []kv.Key{{Path: [][]byte{[]byte("devices")}}}
		for _, k := range []string{"t1", "t2", "t3", "t9"} {
			keys = append(keys, kv.Key{Path: [][]byte{[]byte("devices")}, Key: []byte(k)})
		}
		if !kv.Prefetches(tx) {
			return errors.New("a held transaction takes no prefetch")
		}
		kv.Prefetch(tx, keys)
		b := tx.Bucket([]byte("devices"))
		for _, k := range []string{"t1", "t2", "t3", "t9"} {
			got = append(got, k+"="+string(b.Get([]byte(k))))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := stats()
	if want := []string{"t1=v1", "t2=v2", "t3=v3", "t9="}; !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	// t2, t3 and t9 together (from a replica, or the leader where none had applied what the
	// gateway knows), nothing read again to hold them to one moment (kv.CurrentView); t1,
	// which the state holds, not at all; the bucket's marker from the gateway's cache, where
	// the first Update's read put it.
	together := after.Prefetched - before.Prefetched + after.ReplicaReads - before.ReplicaReads
	alone := after.Reads - after.Prefetched - (before.Reads - before.Prefetched)
	if together != 3 || alone != 0 || after.CacheHits == before.CacheHits {
		t.Fatalf("%d keys read from base together, %d one by one and %d from the cache, want 3, 0 and the marker",
			together, alone, after.CacheHits-before.CacheHits)
	}
	// A View (a hello's positions) reads what its state lacks once too: t4 and t5, nothing
	// again at its end (a View of base read t4 and t5 twice).
	before = stats()
	var seen string
	if err := held.View(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("devices"))
		seen = string(b.Get([]byte("t4"))) + string(b.Get([]byte("t5"))) + string(b.Get([]byte("t2")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	now := stats()
	if reads := now.Reads - before.Reads + now.ReplicaReads - before.ReplicaReads; seen != "v4v5v2" || reads != 2 {
		t.Fatalf("a View read %q with %d reads of base, want v4v5v2 with 2", seen, reads)
	}
}

// ForgetRoots forgets what is projected of the roots named alone (a holder's write-once
// records, HoldOptions.WriteOnce): their keys leave memory and read back from the kv state,
// while another root's keys, projected as well, stay held.
func TestHeldForgetsWriteOnceRootsAlone(t *testing.T) {
	_, w, base := claimOnBase(t, "f")
	if err := base.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		for _, root := range []string{"items", "seen"} {
			if _, err := tx.CreateBucket([]byte(root)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	held := faclog.NewHeld(w, base, nil)
	p := faclog.NewProjector(held, 8)
	put := func(i int) {
		t.Helper()
		if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			if err := tx.Bucket([]byte("items")).Put(fmt.Appendf(nil, "i%02d", i), fmt.Appendf(nil, "item %d", i)); err != nil {
				return err
			}
			return tx.Bucket([]byte("seen")).Put(fmt.Appendf(nil, "t%d", i%3), fmt.Appendf(nil, "at %d", i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		put(i)
	}
	mark, err := p.Step(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	put(10)
	_, before := held.Size()
	if n := held.ForgetRoots(mark, []byte("items")); n != 10 {
		t.Fatalf("forgot %d keys, want the 10 projected items", n)
	}
	if _, after := held.Size(); after != before-10 {
		t.Fatalf("the state holds %d keys after, %d before: want the items alone gone", after, before)
	}
	var got strings.Builder
	if err := held.View(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		for _, k := range []string{"i00", "i09", "i10"} {
			fmt.Fprintf(&got, "%s=%s ", k, tx.Bucket([]byte("items")).Get([]byte(k)))
		}
		fmt.Fprintf(&got, "t1=%s", tx.Bucket([]byte("seen")).Get([]byte("t1")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := "i00=item 0 i09=item 9 i10=item 10 t1=at 10"; got.String() != want {
		t.Fatalf("read after: %s, want %s", got.String(), want)
	}
}

// A key a group commit writes again is carried once in its entry, as its last write left it:
// three calls of one group, each writing a kiosk's device report and adding to a record, make
// an entry with one report and one addition of all three, and the kv state projected from it
// is what the calls left.
func TestHeldEntryCarriesAKeysLastWrite(t *testing.T) {
	l, w, base := claimOnBase(t, "f")
	held := faclog.NewHeld(w, base, nil)
	if err := held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
		dev, err := tx.CreateBucketIfNotExists([]byte("devices"))
		if err != nil {
			return err
		}
		ids, err := tx.CreateBucketIfNotExists([]byte("ids"))
		if err != nil {
			return err
		}
		for i := range 3 {
			if err := dev.Put([]byte("t1"), fmt.Appendf(nil, `{"waiting":%d}`, i)); err != nil {
				return err
			}
			if err := kv.Append(ids, []byte("r1"), fmt.Appendf(nil, "[%d]", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var last faclog.Entry
	if err := l.Read(ctxFor(t, 30*time.Second), "f", w.Last()-1, func(e faclog.Entry) error { last = e; return nil }); err != nil {
		t.Fatal(err)
	}
	ws, err := faclog.DecodeWrites(last.Data)
	if err != nil {
		t.Fatal(err)
	}
	var reports, adds []string
	for _, x := range ws {
		switch {
		case x.Op == faclog.OpPut && string(x.Key) == "t1":
			reports = append(reports, string(x.Value))
		case x.Op == faclog.OpAppend && string(x.Key) == "r1":
			adds = append(adds, string(x.Value))
		}
	}
	if !slices.Equal(reports, []string{`{"waiting":2}`}) || !slices.Equal(adds, []string{"[0][1][2]"}) {
		t.Fatalf("the entry carries device reports %q and additions %q; want the last report alone and one addition of all three", reports, adds)
	}
	if _, err := faclog.NewProjector(held, 16).Step(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := dumpKV(t, base); !strings.Contains(got, `devices/t1="{\"waiting\":2}"`) || !strings.Contains(got, `ids/r1="[0][1][2]"`) {
		t.Fatalf("projected:\n%s", got)
	}
}

// An entry must project into the kv state in one of its transactions, which JetStream bounds
// at 1,000 messages however few bytes they carry: one that would not was appended, and then
// no projection, release or new holder's catch-up could get past it, and its facility refused
// every batch for good. Such a transaction is refused as too large before it is appended (the
// relay's group commit then splits its group), and tells its size in messages once they are
// nearer their bound than its bytes are (nine tenths of JetStream's, for what a projection adds
// beyond the entry's writes); what is appended projects.
func TestHeldRefusesAnEntryThatWouldNotProjectAtOnce(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	w := claim(t, l, "f", "gw")
	base := openKV(t, c, 1, "one_at_once")
	if _, err := faclog.CatchUp(ctxFor(t, 30*time.Second), l, base, "f", w.Term(), 64); err != nil {
		t.Fatalf("catch the kv state up to the claim: %v", err)
	}
	held := faclog.NewHeld(w, base, nil)
	write := func(prefix string, n int) (size, bound int, err error) {
		err = held.Update(ctxFor(t, 30*time.Second), func(tx kv.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("many"))
			if err != nil {
				return err
			}
			for i := range n {
				if err := b.Put(fmt.Appendf(nil, "%s%04d", prefix, i), []byte("v")); err != nil {
					return err
				}
			}
			size, bound, _ = kv.Size(tx)
			return nil
		})
		return size, bound, err
	}
	size, bound, err := write("a", 600)
	if err != nil || bound != 900 || size < 600 || size > 610 {
		t.Fatalf("600 small keys: size %d of %d, %v; want about 600 messages of 900 (a tenth of JetStream's 1,000 kept)", size, bound, err)
	}
	last := w.Last()
	if _, _, err := write("b", 1200); !errors.Is(err, kv.ErrTxTooLarge) {
		t.Fatalf("1,200 small keys in one entry: %v, want ErrTxTooLarge", err)
	}
	if w.Last() != last {
		t.Fatalf("a refused transaction appended: the log's last moved from %d to %d", last, w.Last())
	}
	if _, _, err := write("c", 300); err != nil {
		t.Fatalf("300 keys after the refusal: %v", err)
	}
	entries := held.TakeAppended()
	if _, _, err := faclog.ProjectEach(ctxFor(t, 30*time.Second), base, "f", entries, 64); err != nil {
		t.Fatalf("projecting the %d entries appended: %v", len(entries), err)
	}
	if err := base.View(ctxFor(t, 10*time.Second), func(tx kv.Tx) error {
		if n := tx.Bucket([]byte("many")).KeyN(); n != 900 {
			return fmt.Errorf("the kv state holds %d keys, want the 900 of the two entries appended", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
