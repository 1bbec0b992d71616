package relay

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// twoGatewaysCap is two gateways on one R3 stream of a 3-node cluster (as twoGateways), each
// with the downlink cap logCap.
func twoGatewaysCap(t *testing.T, logCap uint64) (a, b *env) {
	t.Helper()
	c := natstest.Start(t)
	stA, stB := jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")
	a = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval, cfg.DownLogCap = stA, time.Hour, logCap })
	b = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval, cfg.DownLogCap = stB, time.Hour, logCap })
	a.seed()
	return a, b
}

// twoRelaysOneFile is two relays on one boltkv store (gateways of a shared store without a
// watch feed: a relay's writers hear nothing of the other's commits), each with the downlink
// cap logCap.
func twoRelaysOneFile(t *testing.T, logCap uint64) (a, b *env) {
	t.Helper()
	st, err := boltkv.Open(filepath.Join(t.TempDir(), "shared.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval, cfg.DownLogCap = st, time.Hour, logCap })
	b = newEnv(t, func(cfg *Config) { cfg.Store, cfg.PingInterval, cfg.DownLogCap = st, time.Hour, logCap })
	a.seed()
	return a, b
}

// storedPosition is a terminal's position as pruning and hello see it (the higher of what it
// acknowledged and its down_from) and its facility's counter.
func storedPosition(t *testing.T, e *env, id, facility string) (pos, counter uint64) {
	t.Helper()
	if err := e.r.view("read position", func(tx kv.Tx) error {
		pos = max(readU64(tx.Bucket([]byte(bDownAcked)).Get([]byte(id))), downFrom(tx, id))
		if fb := tx.Bucket([]byte(bFacDown)).Bucket([]byte(facility)); fb != nil {
			counter = fb.Sequence()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return pos, counter
}

// waitPruned waits until e's relay pruned facility's log once and is not pruning it now.
func waitPruned(t *testing.T, e *env, facility string) {
	t.Helper()
	waitUntil(t, "a prune of the facility's log, finished", func() bool {
		v, ok := e.r.downPruned.Load(facility)
		if !ok {
			return false
		}
		pl := v.(*prunedLog)
		if !pl.mu.TryLock() {
			return false
		}
		defer pl.mu.Unlock()
		return pl.known
	})
}

// readUpTo reads a connection's downlink until it got seq.
func (tc *tconn) readUpTo(seq uint64) {
	tc.t.Helper()
	for tc.lastSeq() < seq {
		f := read(tc.t, tc.c)
		if f.Type != wire.TypeDown {
			tc.t.Fatalf("unexpected %s frame while reading up to %d", f.Type, seq)
		}
		tc.down = append(tc.down, f.Down.Items...)
	}
}

// A tablet connected to gateway A whose inmate gets nothing while its facility queues more
// kiosk-only numbers than the cap (deposits for another inmate) is not behind: nothing in
// between was for it. Gateway B, which it is not connected to, must not prune past it a notice
// for every terminal that it has not acknowledged; and when its link drops and it comes back
// through B, it reads that notice from the log, not a complete snapshot of what it holds.
func TestIdleTabletOnAnotherGatewayKeepsItsPlaceInTheLog(t *testing.T) {
	const logCap = 40
	a, b := twoGatewaysCap(t, logCap)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway A:\n%s\ngateway B:\n%s", a.logText(), b.logText())
		}
	})
	tab := a.enroll(wire.ModeTablet, "A1")
	k := a.enroll(wire.ModeKiosk, "")

	// The tablet reads its enrollment's snapshot on A and acknowledges it.
	ctab := tab.connect(t, 0)
	stored := downSeqs(t, a.r, tab, 0)
	var tabPos uint64
	if _, err := fmt.Sscanf(stored[len(stored)-1], "%d:", &tabPos); err != nil {
		t.Fatal(err)
	}
	ctab.readUpTo(tabPos)
	ctab.ackDown(tabPos)
	a.waitDownAcked(tab.id, tabPos)
	// The acknowledgement's write prunes the facility's log on A just after it commits. A
	// prune still running (re-run after conflicts with the deposits below) would see the
	// kiosk, which acknowledges nothing and is connected to B, not A, more than the cap behind
	// and prune the deposits before B's writer read them: a gateway cuts off only terminals
	// that are not connected to it, as pruneFacilityDown says. A's clock stands still, so
	// this is its last prune in the test.
	waitPruned(t, a, "north")

	// The facility's kiosks are sent three caps' worth of deposits for another inmate: nothing
	// for the tablet. The kiosk, on B, reads and acknowledges them.
	ck := k.via(b).connect(t, 0)
	for i := range 3 * logCap {
		if _, _, err := a.r.Deposit(DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprint("a2-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ck.waitDown(wire.DownDeposit, isDeposit(t, fmt.Sprint("a2-", 3*logCap-1)))
	// Its connection on A moves its stored position along (on its own, nothing would: it has
	// nothing to acknowledge).
	testwait.UntilSaw(t, "the idle tablet's stored position within the cap of its facility's counter", func() (bool, string) {
		pos, counter := storedPosition(t, b, tab.id, "north")
		return !lapsedBehind(counter, pos, logCap), fmt.Sprintf("position %d, counter %d", pos, counter)
	})
	n, err := b.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "visits cancelled today"})
	if err != nil {
		t.Fatal(err)
	}
	isNotice := func(raw json.RawMessage) bool { return decodeAs[wire.Notice](t, raw).ID == n.ID }
	notice := ck.waitDown(wire.DownNotice, isNotice)
	// The tablet's writer on A was sent the notice too, and the tablet leaves it unacknowledged
	// for now (its screen is busy).
	ctab.waitDown(wire.DownNotice, isNotice)
	closeAcked(t, b, ck, notice.Seq)

	// B prunes its facility's log: the kiosk has passed everything.
	if err := b.r.pruneFacility("north", &prunedLog{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(facilityLog(t, b.r, "north"), notice.Seq) {
		t.Errorf("gateway B pruned the notice (seq %d) that the tablet connected to A has not acknowledged; log holds %v",
			notice.Seq, facilityLog(t, b.r, "north"))
	}

	// The tablet's link drops before it acknowledged the notice; it comes back through B.
	ctab.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the tablet has left A", func() bool { return !a.r.hub.connected(tab.id) })
	back := tab.via(b).connect(t, tabPos)
	back.waitDown(wire.DownNotice, isNotice)
	var kinds []string
	for _, it := range back.down {
		kinds = append(kinds, it.Kind)
	}
	if len(back.down) != 1 || back.down[0].Seq != notice.Seq {
		t.Errorf("the tablet came back and got %v, want only the notice it missed (seq %d), not a snapshot", kinds, notice.Seq)
	}
	if log := b.logText(); strings.Contains(log, "complete snapshot queued instead of the log") {
		t.Errorf("gateway B took the idle tablet for lapsed:\n%s", log)
	}
}

// A tablet that was told nothing while its facility's kiosks were sent more than the cap's
// numbers, and is then sent an item for it, is not behind either: its connection moves its
// stored position to just below that item, so a gateway that prunes before the tablet
// acknowledges it keeps it. On one boltkv store shared by two relays (no watch feed: the
// tablet's writer on A hears nothing of the kiosks' numbers, and wakes only for the notice).
func TestTabletWokenAfterABurstIsNotBehind(t *testing.T) {
	const logCap = 40
	a, b := twoRelaysOneFile(t, logCap)
	tab, k := a.enroll(wire.ModeTablet, "A1"), a.enroll(wire.ModeKiosk, "")
	ctab := tab.connect(t, 0)
	stored := downSeqs(t, a.r, tab, 0)
	var tabPos uint64
	if _, err := fmt.Sscanf(stored[len(stored)-1], "%d:", &tabPos); err != nil {
		t.Fatal(err)
	}
	ctab.readUpTo(tabPos)
	ctab.ackDown(tabPos)
	a.waitDownAcked(tab.id, tabPos)

	ck := k.connect(t, 0)
	for i := range 3 * logCap {
		if _, _, err := a.r.Deposit(DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprint("a2-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := a.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "visits cancelled today"})
	if err != nil {
		t.Fatal(err)
	}
	isNotice := func(raw json.RawMessage) bool { return decodeAs[wire.Notice](t, raw).ID == n.ID }
	notice := ctab.waitDown(wire.DownNotice, isNotice)
	testwait.UntilSaw(t, "the tablet's stored position just below the notice", func() (bool, string) {
		pos, counter := storedPosition(t, b, tab.id, "north")
		return pos == notice.Seq-1, fmt.Sprintf("position %d, counter %d, notice %d", pos, counter, notice.Seq)
	})
	ck.waitDown(wire.DownNotice, isNotice)
	closeAcked(t, a, ck, notice.Seq)
	if err := b.r.pruneFacility("north", &prunedLog{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(facilityLog(t, b.r, "north"), notice.Seq) {
		t.Errorf("relay B pruned the notice (seq %d) that the tablet on A has not acknowledged; log holds %v",
			notice.Seq, facilityLog(t, b.r, "north"))
	}
}

// A kiosk connected to gateway B that falls more than the cap behind while online (it reads
// its snapshot and acknowledges nothing) is passed by gateway A's prune, which counts only its
// own connections as online: the deposits it has not read leave the log. B's writer, reading
// the store at the next wake-up, finds the prune's mark and queues the complete snapshot a
// hello would; the kiosk gets every deposit from it (itemised) and the notice that woke it,
// instead of the notice alone. On one boltkv store shared by two relays (no watch feed: B's
// writer hears nothing of A's deposits, so it reads them only from the store, after the prune).
func TestKioskPassedByAnotherGatewaysPruneGetsASnapshot(t *testing.T) {
	const logCap = 40
	a, b := twoRelaysOneFile(t, logCap)
	k := a.enroll(wire.ModeKiosk, "")
	ck := k.via(b).connect(t, 0)
	stored := downSeqs(t, b.r, k, 0)
	var snapPos uint64
	if _, err := fmt.Sscanf(stored[len(stored)-1], "%d:", &snapPos); err != nil {
		t.Fatal(err)
	}
	ck.readUpTo(snapPos)

	const deposits = 3 * logCap
	for i := range deposits {
		if _, _, err := a.r.Deposit(DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprint("a2-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.r.pruneFacility("north", &prunedLog{}); err != nil {
		t.Fatal(err)
	}
	if log := facilityLog(t, a.r, "north"); len(log) >= deposits {
		t.Fatalf("A's prune kept the log (%d records): the kiosk on B was not passed, nothing to test", len(log))
	}

	n, err := b.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "visits cancelled today"})
	if err != nil {
		t.Fatal(err)
	}
	ck.waitDown(wire.DownNotice, func(raw json.RawMessage) bool { return decodeAs[wire.Notice](t, raw).ID == n.ID })
	ck.waitDown(wire.DownDeposit, isDeposit(t, fmt.Sprint("a2-", deposits-1)))
	got := map[string]bool{}
	for _, it := range ck.down {
		if it.Kind == wire.DownDeposit {
			got[decodeAs[kiosk.Deposit](t, it.Body).Ref] = true
		}
	}
	for i := range deposits {
		if ref := fmt.Sprint("a2-", i); !got[ref] {
			t.Errorf("the kiosk never got deposit %s", ref)
		}
	}
	if log := b.logText(); !strings.Contains(log, "passed by a prune of its facility's log while connected here") {
		t.Errorf("gateway B did not say why it sent a snapshot:\n%s", log)
	}
}
