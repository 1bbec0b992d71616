package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/testwait"

	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// noticeText is a notice item's text.
func noticeText(t testing.TB, b json.RawMessage) string { return decodeAs[wire.Notice](t, b).Text }

// checkOnceInOrder fails unless a connection's downlink seqs increase strictly (nothing
// repeated, nothing out of order) and are, above after (what it acknowledged), exactly what the
// store holds for the terminal.
func checkOnceInOrder(t *testing.T, e *env, tm *term, c *tconn, after uint64) {
	t.Helper()
	var got []string
	for i, it := range c.down {
		if i > 0 && it.Seq <= c.down[i-1].Seq {
			t.Fatalf("%s got seq %d after %d", tm.mode, it.Seq, c.down[i-1].Seq)
		}
		if it.Seq > after {
			got = append(got, fmt.Sprintf("%d:%s", it.Seq, it.Kind))
		}
	}
	if want := downSeqs(t, e.r, tm, after); !slices.Equal(got, want) {
		t.Fatalf("%s got %v, the store holds %v for it", tm.mode, got, want)
	}
}

// A kiosk and a tablet connected to gateway B get what gateway A queues for them (a notice for
// every terminal, a deposit: the kiosks' part in the facility's log and the tablet's own copy,
// an item for the tablet alone), each once and in order, without B reading the store for it:
// B follows the store's downlink buckets through its watch feed. When B's feed is lost, the
// writers read the store again and miss nothing.
func TestDownlinkFeedAcrossGateways(t *testing.T) {
	a, b := twoGateways(t, nil)
	k1, k2 := a.enroll(wire.ModeKiosk, ""), a.enroll(wire.ModeKiosk, "")
	tab := a.enroll(wire.ModeTablet, "A1")
	c2, ctab := k2.via(b).connect(t, 0), tab.via(b).connect(t, 0)
	post := func(text string) {
		t.Helper()
		if _, err := a.r.PostNotice(NoticeRequest{FacilityID: "north", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	isText := func(text string) func(json.RawMessage) bool {
		return func(raw json.RawMessage) bool { return noticeText(t, raw) == text }
	}
	// Nothing but A's commit wakes B's writers for this.
	post("first")
	c2.waitDown(wire.DownNotice, isText("first"))
	ctab.waitDown(wire.DownNotice, isText("first"))
	// The tablet acknowledges what it has (its enrollment's snapshot among it).
	tabAcked := ctab.lastSeq()
	ctab.ackDown(tabAcked)
	testwait.Until(t, "the tablet's first acknowledgement written", func() bool { return len(ownDown(t, a.r, tab.id)) == 0 })

	stB := b.cfg.Store.(*jskv.Store)
	views, losses := stB.Stats().Views, stB.Stats().FeedLosses
	for i := range 5 {
		post(fmt.Sprint("notice ", i))
		if _, _, err := a.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: fmt.Sprint("feed", i)}); err != nil {
			t.Fatal(err)
		}
		queueOwn(t, a.r, tab.id)
	}
	post("last")
	c2.waitDown(wire.DownNotice, isText("last"))
	ctab.waitDown(wire.DownNotice, isText("last"))
	// A feed that went silent for three heartbeats (a machine starved of CPU) is reported
	// lost, and then B reads the store, by design: only then may it.
	if n, lost := stB.Stats().Views-views, stB.Stats().FeedLosses-losses; n != 0 && lost == 0 {
		t.Errorf("gateway B read the store %d times to send what its feed delivered, want 0", n)
	} else if n != 0 {
		t.Logf("gateway B's feed was lost %d times and B read the store %d times", lost, n)
	}
	checkOnceInOrder(t, a, k2, c2, 0)
	checkOnceInOrder(t, a, tab, ctab, tabAcked)
	deposits := 0
	for _, it := range ctab.down {
		if it.Kind == wire.DownDeposit {
			deposits++
		}
	}
	if deposits != 6 { // twoGateways deposited once before
		t.Errorf("the tablet got %d deposits, want 6", deposits)
	}

	// The tablet acknowledges the rest: its own items leave the store (B deletes what its
	// feed says the bucket holds, without listing it).
	if len(ownDown(t, a.r, tab.id)) == 0 {
		t.Fatal("the tablet's own items are not in the store before it acknowledged them")
	}
	ctab.ackDown(ctab.lastSeq())
	testwait.Until(t, "the tablet's acknowledged own items pruned", func() bool { return len(ownDown(t, a.r, tab.id)) == 0 })

	// The server drops every gateway's consumer (as when their node goes away): B's feed is
	// lost, and what A queues meanwhile still reaches B's terminals, once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(stB.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "relay")
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	post("after the loss")
	c2.waitDown(wire.DownNotice, isText("after the loss"))
	ctab.waitDown(wire.DownNotice, isText("after the loss"))
	post("after the restart")
	c2.waitDown(wire.DownNotice, isText("after the restart"))
	checkOnceInOrder(t, a, k2, c2, 0)
	_ = k1
}

// ownHeld is what gateway e's feed keeps of terminal id's own items: how many, and the floor
// at or below which its writer reads the store.
func ownHeld(e *env, id string) (items int, floor uint64) {
	e.r.feed.mu.Lock()
	defer e.r.feed.mu.Unlock()
	if o := e.r.feed.own[id]; o != nil {
		return len(o.recs), o.floor
	}
	return 0, 0
}

// A gateway's feed keeps the own items of the terminals connected to it, not every terminal's:
// each gateway sees them all, and 10,000 kiosks enrolled before they connected filled every
// gateway's feed with their snapshots. A terminal that connects later still gets each of its
// items once, in order, read from the store, and its acknowledgement prunes them.
func TestAGatewayKeepsOwnItemsOfItsConnectionsAlone(t *testing.T) {
	a, b := twoGateways(t, nil)
	here := a.enroll(wire.ModeTablet, "A1")
	later := a.enroll(wire.ModeTablet, "A1")
	chere := here.via(b).connect(t, 0)
	for range 3 {
		queueOwn(t, a.r, here.id)
		queueOwn(t, a.r, later.id)
	}
	if _, err := a.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "after the own items"}); err != nil {
		t.Fatal(err)
	}
	isLast := func(raw json.RawMessage) bool { return noticeText(t, raw) == "after the own items" }
	chere.waitDown(wire.DownNotice, isLast)
	ownLater := ownDown(t, a.r, later.id)
	if len(ownLater) < 3 {
		t.Fatalf("the unconnected tablet has %v own items in the store, want its snapshot and 3 more", ownLater)
	}
	lastLater := ownLater[len(ownLater)-1]
	// B's feed keeps the connected tablet's items, and only a floor for the other's.
	testwait.UntilSaw(t, "gateway B's feed to hold the connected tablet's items and a floor for the other's", func() (bool, string) {
		nHere, _ := ownHeld(b, here.id)
		nLater, floor := ownHeld(b, later.id)
		return nHere >= 3 && nLater == 0 && floor >= lastLater,
			fmt.Sprintf("%d items of the connected tablet; %d of the other, floor %d (its last item %d)", nHere, nLater, floor, lastLater)
	})
	for _, tm := range []*term{here, later} {
		if n, _ := ownHeld(a, tm.id); n != 0 {
			t.Errorf("gateway A, with no connection, keeps %d own items of %s", n, tm.mode)
		}
	}
	// The second tablet connects to B: its items come from the store, each once, in order.
	clater := later.via(b).connect(t, 0)
	clater.waitDown(wire.DownNotice, isLast)
	checkOnceInOrder(t, a, later, clater, 0)
	notes := 0
	for _, it := range clater.down {
		if it.Kind == wire.DownNotice && noticeText(t, it.Body) == "for you" {
			notes++
		}
	}
	if notes != 3 {
		t.Errorf("the tablet that connected later got %d of its 3 own notices", notes)
	}
	// Items queued now are kept for it, and its acknowledgement prunes them all.
	prev := clater.lastSeq()
	queueOwn(t, a.r, later.id)
	clater.waitDown(wire.DownNotice, func(json.RawMessage) bool { return clater.lastSeq() > prev })
	testwait.Until(t, "gateway B's feed to keep the newly connected tablet's next item", func() bool {
		n, _ := ownHeld(b, later.id)
		return n == 1
	})
	clater.ackDown(clater.lastSeq())
	testwait.Until(t, "the later tablet's acknowledged own items pruned", func() bool { return len(ownDown(t, a.r, later.id)) == 0 })
}
