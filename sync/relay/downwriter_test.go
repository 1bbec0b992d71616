package relay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// connectCounting is tm.connect over a connection that counts the bytes it reads (n).
func (tm *term) connectCounting(t testing.TB, downApplied uint64, n *atomic.Int64) *tconn {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countConn{Conn: c, n: n}, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, tm.e.wsURL(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr},
		Subprotocols: []string{wire.Subprotocol}, CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(wire.MaxFrameBytes)
	t.Cleanup(func() { c.CloseNow() })
	send(t, c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch, DownApplied: downApplied, Software: "test"})
	if f := read(t, c); f.Type != wire.TypeChallenge {
		t.Fatalf("got %s, want challenge", f.Type)
	} else {
		send(t, c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)})
	}
	f := read(t, c)
	if f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	return &tconn{t: t, c: c, term: tm, w: *f.Welcome}
}

// readCharges reads down frames until n items have come, and returns the frames' length and
// the bytes the connection read meanwhile (wire, counted by connectCounting's n).
func readCharges(t *testing.T, tc *tconn, n int, counted *atomic.Int64) (frames, onWire int64) {
	t.Helper()
	before := counted.Load()
	got := 0
	for got < n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, b, err := tc.c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		f, err := wire.DecodeFrame(b)
		if err != nil || f.Type != wire.TypeDown {
			t.Fatalf("want a down frame, got %q (%v)", f.Type, err)
		}
		for _, it := range f.Down.Items {
			if it.Kind != wire.DownRemoteCharge {
				t.Fatalf("unexpected %s item", it.Kind)
			}
		}
		got += len(f.Down.Items)
		frames += int64(len(b))
		tc.down = append(tc.down, f.Down.Items...)
	}
	if got != n {
		t.Fatalf("got %d remote charges, want %d", got, n)
	}
	return frames, counted.Load() - before
}

// A kiosk's live trickle of other kiosks' charges comes down as it is, not deflated: a
// deflated message costs the relay a Huffman table each, once per kiosk, for bytes the
// facility's link does not notice. A backlog (a kiosk back after a cut) still comes deflated:
// that is where the link's bytes are.
func TestSmallDownFramesGoUncompressed(t *testing.T) {
	e := newEnv(t)
	e.seed()
	listener, sender := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	sc := sender.connect(t, 0)
	minute := 0
	charges := func(n int) {
		items := make([]wire.Item, n)
		for i := range items {
			rec := fmt.Sprintf("s1/%06d", minute)
			items[i] = sender.item(wire.UpCharge, kiosk.Charge{RecordID: rec, SessionID: "s1", InmateID: "A1", Minute: minute, Cents: 5, At: t0})
			minute++
		}
		if ack := sc.batch(items...); len(ack.Rejected) != 0 {
			t.Fatalf("charges refused: %+v", ack.Rejected)
		}
	}

	// The listener takes what was queued before it (the facility's snapshot) and leaves.
	lc := listener.connect(t, 0)
	charges(1)
	lc.waitDown(wire.DownRemoteCharge, nil)
	applied := lc.lastSeq()
	lc.c.Close(websocket.StatusNormalClosure, "")

	var n atomic.Int64
	lc = listener.connectCounting(t, applied, &n)
	// Ten charges in one batch: one frame of some 2-3 KB, above the library's own threshold
	// (512 bytes), below the relay's.
	charges(10)
	frames, onWire := readCharges(t, lc, 10, &n)
	if frames <= 512 || frames >= deflateFrom {
		t.Fatalf("the ten charges came in %d bytes of frames: the test wants them between 512 and %d", frames, deflateFrom)
	}
	if onWire < frames {
		t.Fatalf("%d bytes of down frames took %d bytes on the wire: they were deflated", frames, onWire)
	}
	lc.ackDown(lc.lastSeq())
	applied = lc.lastSeq()
	lc.c.Close(websocket.StatusNormalClosure, "")

	// 300 charges while the listener is away: it comes back to a backlog, deflated.
	for range 3 {
		charges(100)
	}
	lc = listener.connectCounting(t, applied, &n)
	frames, onWire = readCharges(t, lc, 300, &n)
	if frames < deflateFrom || onWire > frames/3 {
		t.Fatalf("a backlog of %d bytes of down frames took %d bytes on the wire: want it deflated", frames, onWire)
	}
}

// The writer takes a facility's new log records from memory (tailDown) only when they fill the
// numbers above its position whole: a number missing from the log is an item of some
// terminal's own bucket (here the snapshot a kiosk's enrollment queued for it), which only a
// read of the store finds. Were the tail read anyway, the kiosk would be sent the charge after
// its snapshot, move past the snapshot's numbers and never get it.
func TestTailReadLeavesNoOwnItemBehind(t *testing.T) {
	e := newEnv(t)
	e.seed()
	sender := e.enroll(wire.ModeKiosk, "")
	sc := sender.connect(t, 0)
	minute := 0
	charge := func() {
		rec := fmt.Sprintf("s1/%06d", minute)
		it := sender.item(wire.UpCharge, kiosk.Charge{RecordID: rec, SessionID: "s1", InmateID: "A1", Minute: minute, Cents: 5, At: t0})
		minute++
		if ack := sc.batch(it); len(ack.Rejected) != 0 {
			t.Fatalf("charge refused: %+v", ack.Rejected)
		}
	}
	charge()
	log := facilityLog(t, e.r, "north")
	before := log[len(log)-1] // a position the tail holds: the first charge's number

	k := e.enroll(wire.ModeKiosk, "")
	snap := ownDown(t, e.r, k.id)
	if len(snap) == 0 || snap[0] <= before {
		t.Fatalf("the new kiosk's snapshot is numbered %v, want items above %d", snap, before)
	}
	charge()
	log = facilityLog(t, e.r, "north")
	second := log[len(log)-1]
	rd := downReader{id: k.id, facility: "north", mode: wire.ModeKiosk}
	senderRd := downReader{id: sender.id, facility: "north", mode: wire.ModeKiosk}
	// On a shared store the tail takes a record from the watch feed, a moment after its commit:
	// what follows is about a tail that holds it.
	tailHolds := func(n uint64) {
		t.Helper()
		testwait.UntilSaw(t, fmt.Sprintf("the facility's tail to hold %d", n), func() (bool, string) {
			_, _, upTo, _, ok := e.r.tailDown(senderRd, snap[len(snap)-1], 100, wire.MaxBatchBytes)
			return ok && upTo >= n, fmt.Sprintf("up to %d, ok %v", upTo, ok)
		})
	}
	tailHolds(second)

	if items, _, _, _, ok := e.r.tailDown(rd, before, 100, wire.MaxBatchBytes); ok {
		t.Fatalf("the tail answered for the numbers above %d with %d items, though the kiosk's snapshot (%v) is not in it", before, len(items), snap)
	}
	// What the store holds above the same position: the snapshot, then the charge.
	raw, last, more, err := e.r.pendingDownRaw(rd, before, 1000, wire.MaxBatchBytes)
	if err != nil || more || last != second || len(raw) != len(snap)+1 {
		t.Fatalf("the store gave %d items up to %d (more %v, %v), want the %d of the snapshot and the charge %d", len(raw), last, more, err, len(snap), second)
	}

	// Above the snapshot the log fills the numbers whole: the charge, from memory.
	items, last, upTo, more, ok := e.r.tailDown(rd, snap[len(snap)-1], 100, wire.MaxBatchBytes)
	if !ok || len(items) != 1 || last != second || upTo != second || more {
		t.Fatalf("tail above the snapshot: %d items, last %d, up to %d, more %v, ok %v; want the charge %d", len(items), last, upTo, more, ok, second)
	}
	// The sender is not sent its own charge, and has read past it.
	items, _, upTo, _, ok = e.r.tailDown(senderRd, snap[len(snap)-1], 100, wire.MaxBatchBytes)
	if !ok || len(items) != 0 || upTo != second {
		t.Fatalf("the sender's tail read: %d items, up to %d, ok %v; want none, up to %d", len(items), upTo, ok, second)
	}
	// A limit stops it below the record it did not take.
	charge()
	log = facilityLog(t, e.r, "north")
	third := log[len(log)-1]
	tailHolds(third)
	items, last, upTo, more, ok = e.r.tailDown(rd, snap[len(snap)-1], 1, wire.MaxBatchBytes)
	if !ok || len(items) != 1 || last != second || upTo != third-1 || !more {
		t.Fatalf("tail read of one item: %d items, last %d, up to %d, more %v, ok %v; want the charge %d, up to %d, more", len(items), last, upTo, more, ok, second, third-1)
	}
}
