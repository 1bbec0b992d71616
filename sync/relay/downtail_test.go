package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// downSeqs is what terminal tm reads after position `after`: the seqs and kinds, in order.
func downSeqs(t testing.TB, r *Relay, tm *term, after uint64) []string {
	t.Helper()
	items, err := r.pendingDown(tm.id, after, 10_000, wire.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%d:%s", it.Seq, it.Kind))
	}
	return out
}

// queueOwn queues one item in terminal id's own bucket, as a message's status for its holder.
func queueOwn(t testing.TB, r *Relay, id string) {
	t.Helper()
	if err := r.update("queue own item", func(_ kv.Tx, f *fanout) error {
		return f.toTerminal(id, wire.DownNotice, wire.Notice{ID: "own-" + id, Text: "for you"})
	}); err != nil {
		t.Fatal(err)
	}
}

// Every terminal of a facility reads, from every position, the same items whether its
// writer takes the facility's log from the relay's in-memory tail or from the store: the
// kiosk that caused an item does not get it back, a tablet gets what is for every terminal
// and its inmate but not what is for kiosks only, and its own items come in their place.
func TestFacilityTailReadsWhatTheStoreHolds(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A1")
	c1 := k1.connect(t, 0)
	for i := range 3 {
		c1.batch(k1.item(wire.UpCharge, charge("A1", fmt.Sprintf("s%d", i), i, 5)))
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "count"}); err != nil {
			t.Fatal(err)
		}
		queueOwn(t, e.r, k2.id)
		queueOwn(t, e.r, tab.id)
	}
	var last uint64
	for _, s := range facilityLog(t, e.r, "north") {
		last = max(last, s)
	}
	// On bbolt the relay's own commits feed the tail, from the first. On a shared store the
	// watch feed does, a moment after each commit, for a facility with a terminal connected
	// here, from the counter of the first commit it delivers after that (downfeed.go): the
	// tail must then hold the rest of the three rounds, not nothing.
	var first uint64
	if e.cfg.Store != nil {
		testwait.Until(t, "the watch feed started the facility's tail", func() bool {
			var known bool
			first, _, known = e.r.downTails.get("north").bounds()
			return known
		})
		if first >= last {
			t.Fatalf("the tail starts at %d, at or past the log's last record %d", first, last)
		}
	}
	testwait.Until(t, "the tail of a relay that wrote every record of the log holds them all", func() bool {
		_, whole := e.r.downTails.get("north").since(first, last)
		return whole
	})
	fromTail := map[string][]string{}
	for _, tm := range []*term{k1, k2, tab} {
		for after := range last + 1 {
			fromTail[fmt.Sprint(tm.id, after)] = downSeqs(t, e.r, tm, after)
		}
	}
	e.r.downTails.m.Clear() // the same reads from the store
	for _, tm := range []*term{k1, k2, tab} {
		for after := range last + 1 {
			got, want := fromTail[fmt.Sprint(tm.id, after)], downSeqs(t, e.r, tm, after)
			if !slices.Equal(got, want) {
				t.Fatalf("%s after %d: from the tail %v, from the store %v", tm.mode, after, got, want)
			}
		}
	}
	// And it is what each should get: kiosk 2 the three charges, the deposits, the notices
	// and its own items; kiosk 1 no charge it made.
	kinds := func(tm *term) map[string]int {
		n := map[string]int{}
		for _, it := range fromTail[fmt.Sprint(tm.id, 0)] {
			_, kind, _ := strings.Cut(it, ":")
			n[kind]++
		}
		return n
	}
	if n := kinds(k2); n[wire.DownRemoteCharge] != 3 || n[wire.DownDeposit] != 3 || n[wire.DownNotice] != 6 {
		t.Fatalf("kiosk 2 reads %v", fromTail[fmt.Sprint(k2.id, 0)])
	}
	if n := kinds(k1); n[wire.DownRemoteCharge] != 0 || n[wire.DownNotice] != 3 {
		t.Fatalf("kiosk 1 reads %v", fromTail[fmt.Sprint(k1.id, 0)])
	}
}

// A record another gateway of a shared store writes to the facility's log (a write this relay
// never committed itself) is read by every kiosk once, before and after this relay writes to
// the log again: the tail never stands in for numbers it did not see.
func TestFacilityTailSkipsNothingAnotherGatewayWrote(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	notice := func(text string) {
		t.Helper()
		if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	notice("first")
	start := lastOf(facilityLog(t, e.r, "north"))
	// Another gateway's write: the same store, not this relay's group commit.
	foreign := &fanout{r: e.r}
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	if err := e.r.db.Update(ctx, func(tx kv.Tx) error {
		foreign.reset(tx)
		return foreign.toFacility("north", "", wire.DownNotice, wire.Notice{ID: "foreign", Text: "from the other gateway"})
	}); err != nil {
		t.Fatal(err)
	}
	foreignSeq := lastOf(facilityLog(t, e.r, "north"))
	want := []string{fmt.Sprintf("%d:%s", foreignSeq, wire.DownNotice)}
	for _, k := range []*term{k1, k2} {
		if got := downSeqs(t, e.r, k, start); !slices.Equal(got, want) {
			t.Fatalf("kiosk reads %v after the other gateway's write, want %v", got, want)
		}
	}
	notice("second") // this relay writes again, after the number it did not see
	want = append(want, fmt.Sprintf("%d:%s", lastOf(facilityLog(t, e.r, "north")), wire.DownNotice))
	for _, k := range []*term{k1, k2} {
		if got := downSeqs(t, e.r, k, start); !slices.Equal(got, want) {
			t.Fatalf("kiosk reads %v after this relay wrote again, want %v", got, want)
		}
	}
	// And over a connection, as a kiosk sees it: each once, in order.
	c := k2.connect(t, start)
	c.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).Text == "second" })
	var seqs []uint64
	for _, it := range c.down {
		seqs = append(seqs, it.Seq)
	}
	if len(seqs) != 2 || seqs[0] != foreignSeq {
		t.Fatalf("the kiosk got seqs %v, want the other gateway's %d then this relay's", seqs, foreignSeq)
	}
}

func lastOf(seqs []uint64) uint64 {
	if len(seqs) == 0 {
		return 0
	}
	return slices.Max(seqs)
}

// A tail trimmed past a reader's position sends it to the store, and one that holds it serves
// exactly the records above it.
func TestDownTailBounds(t *testing.T) {
	var tl downTail
	run := &facRun{start: 10}
	for s := uint64(11); s <= 10+downTailMax+5; s++ {
		run.recs = append(run.recs, tailRec{seq: s, tag: logKiosks, item: []byte(`{}`)})
		run.end = s
	}
	tl.add(&facRun{start: 7, end: 10}) // own items only: no record, but the numbers are seen
	tl.add(run)
	if _, whole := tl.since(7, run.end); whole {
		t.Fatal("a trimmed tail claims the records below what it keeps")
	}
	if len(tl.recs) > downTailMax {
		t.Fatalf("tail holds %d records, bound %d", len(tl.recs), downTailMax)
	}
	recs, whole := tl.since(run.end-3, run.end-1)
	if !whole || len(recs) != 2 || recs[0].seq != run.end-2 || recs[1].seq != run.end-1 {
		t.Fatalf("since(%d, %d) = %v, %v", run.end-3, run.end-1, recs, whole)
	}
	if _, whole := tl.since(run.end-3, run.end+1); whole {
		t.Fatal("the tail claims a number it never saw")
	}
	tl.add(&facRun{start: run.end + 1, end: run.end + 2}) // a number taken elsewhere between
	if _, whole := tl.since(run.end-3, run.end+2); whole {
		t.Fatal("the tail kept going over a number it never saw")
	}
}

// A kiosk that comes back to a backlog longer than its window gets every item once and in
// order, acknowledging as it goes, and then what is queued next: a writer that stopped at the
// window reads the store again at the acknowledgement, though no commit woke it.
func TestBacklogBeyondTheWindowArrivesWhole(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	base := lastOf(facilityLog(t, e.r, "north"))
	const backlog = downWindow*2 + 100
	// In transactions of 200: JetStream commits at most 1,000 messages at once.
	for from := 0; from < backlog; from += 200 {
		if err := e.r.update("queue notices", func(_ kv.Tx, f *fanout) error {
			for i := from; i < min(from+200, backlog); i++ {
				if err := f.toFacility("north", "", wire.DownNotice, wire.Notice{ID: fmt.Sprint("n", i), Text: "count"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := k.connect(t, base)
	var got []wire.DownItem
	seen := map[string]bool{}
	notices, extra := 0, false
	for notices < backlog+1 {
		f := read(t, c.c)
		if f.Type != wire.TypeDown {
			t.Fatalf("unexpected %s frame", f.Type)
		}
		for _, it := range f.Down.Items {
			if len(got) > 0 && it.Seq <= got[len(got)-1].Seq {
				t.Fatalf("seq %d after %d", it.Seq, got[len(got)-1].Seq)
			}
			got = append(got, it)
			if it.Kind != wire.DownNotice {
				continue
			}
			n := decodeAs[wire.Notice](t, it.Body)
			if seen[n.ID] {
				t.Fatalf("notice %s (seq %d) came twice", n.ID, it.Seq)
			}
			seen[n.ID] = true
			notices++
		}
		if !extra && notices == backlog {
			extra = true
			if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "meanwhile"}); err != nil {
				t.Fatal(err)
			}
		}
		c.ackDown(got[len(got)-1].Seq)
	}
}
