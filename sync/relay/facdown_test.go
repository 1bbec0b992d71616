package relay

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// downRecords counts every stored downlink record: terminals' own buckets and facility logs.
func downRecords(t testing.TB, r *Relay) int {
	t.Helper()
	n := 0
	if err := r.view("count downlink", func(tx kv.Tx) error {
		n = 0
		for _, name := range []string{bDown, bFacDown} {
			root := tx.Bucket([]byte(name))
			if root == nil {
				continue
			}
			if err := root.ForEachBucket(func(b []byte) error {
				n += root.Bucket(b).KeyN()
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// count is how many of items are of kind with a body naming record id (field "record_id" or "ref").
func count(t testing.TB, items []wire.DownItem, kind, id string) int {
	t.Helper()
	n := 0
	for _, it := range items {
		if it.Kind != kind {
			continue
		}
		var b struct {
			RecordID string `json:"record_id"`
			Ref      string `json:"ref"`
		}
		if err := json.Unmarshal(it.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.RecordID == id || b.Ref == id {
			n++
		}
	}
	return n
}

// isDeposit matches the deposit of ref.
func isDeposit(t testing.TB, ref string) func(json.RawMessage) bool {
	return func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == ref }
}

// A charge at one of a facility's 20 kiosks is stored as one downlink record, not 19; each of
// the 19 others applies it exactly once across a link cut (whether it acknowledged it before
// the cut or not), and the kiosk that sent it never gets it back.
func TestChargeStoredOnceForTheFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	var kiosks []*term
	var conns []*tconn
	for range 20 {
		k := e.enroll(wire.ModeKiosk, "")
		kiosks = append(kiosks, k)
		conns = append(conns, k.connect(t, 0))
	}
	if conns[0].w.DownSparse != true {
		t.Fatalf("welcome = %+v, want down_sparse", conns[0].w)
	}
	before := downRecords(t, e.r)
	ch := charge("A1", "s1", 0, 5)
	if ack := conns[0].batch(kiosks[0].item(wire.UpCharge, ch)); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	if got := downRecords(t, e.r) - before; got != 1 {
		t.Fatalf("one charge stored %d downlink records, want 1", got)
	}
	// A deposit after it, for every kiosk: downlink is in order, so a kiosk that has the deposit
	// had the charge too if it was to have it.
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "mark1"}); err != nil {
		t.Fatal(err)
	}
	charged := make([]uint64, len(conns)) // the charge's seq as each kiosk got it
	for i, c := range conns {
		c.waitDown(wire.DownDeposit, isDeposit(t, "mark1"))
		n := count(t, c.down, wire.DownRemoteCharge, ch.RecordID)
		if i == 0 {
			if n != 0 {
				t.Fatalf("the kiosk that sent the charge got it back %d times", n)
			}
			continue
		}
		if n != 1 {
			t.Fatalf("kiosk %d got the charge %d times", i, n)
		}
		for _, it := range c.down {
			if it.Kind == wire.DownRemoteCharge {
				charged[i] = it.Seq
			}
		}
	}
	// The link is cut: the odd kiosks had applied (and acknowledged) the charge, the even ones
	// had not (their store stands before it).
	applied := make([]uint64, len(conns))
	for i := 1; i < len(conns); i++ {
		if i%2 == 1 {
			applied[i] = charged[i]
			conns[i].ackDown(applied[i])
		}
		conns[i].c.Close(websocket.StatusNormalClosure, "")
	}
	for i := 1; i < len(conns); i++ {
		waitUntil(t, "the kiosk has left", func() bool { return !e.r.hub.connected(kiosks[i].id) })
	}
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "mark2"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(conns); i++ {
		c := kiosks[i].connect(t, applied[i])
		c.waitDown(wire.DownDeposit, isDeposit(t, "mark2"))
		want := 0
		if applied[i] == 0 {
			want = 1
		}
		if n := count(t, c.down, wire.DownRemoteCharge, ch.RecordID); n != want {
			t.Fatalf("kiosk %d (applied %d) got the charge %d times after the cut, want %d", i, applied[i], n, want)
		}
		for j := 1; j < len(c.down); j++ {
			if c.down[j].Seq <= c.down[j-1].Seq {
				t.Fatalf("kiosk %d: downlink seqs %d then %d", i, c.down[j-1].Seq, c.down[j].Seq)
			}
		}
		c.c.CloseNow()
	}
}

// closeAcked acknowledges seq and leaves, so the relay writes the position.
func closeAcked(t *testing.T, e *env, c *tconn, seq uint64) {
	t.Helper()
	c.ackDown(seq)
	c.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the terminal has left", func() bool { return !e.r.hub.connected(c.term.id) })
}

// A facility's log keeps an item until every terminal it is for has passed it: a kiosk-only
// item waits for the kiosks but not for a tablet nor for the kiosk that caused it; an item for
// every terminal waits for the tablet too.
func TestFacilityLogPrunedOnceEveryReaderPassed(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1, k2, k3 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A1")
	prune := func() {
		t.Helper()
		if err := e.r.pruneFacility("north", &prunedLog{}); err != nil {
			t.Fatal(err)
		}
	}
	has := func(seq uint64) bool {
		for _, s := range facilityLog(t, e.r, "north") {
			if s == seq {
				return true
			}
		}
		return false
	}
	c1 := k1.connect(t, 0)
	ch := charge("A1", "s1", 0, 5)
	c1.batch(k1.item(wire.UpCharge, ch))
	c2 := k2.connect(t, 0)
	got := c2.waitDown(wire.DownRemoteCharge, nil)
	closeAcked(t, e, c2, got.Seq)
	prune()
	if !has(got.Seq) {
		t.Fatalf("the charge left the log before kiosk 3 read it: %v", facilityLog(t, e.r, "north"))
	}
	c3 := k3.connect(t, 0)
	if again := c3.waitDown(wire.DownRemoteCharge, nil); again.Seq != got.Seq {
		t.Fatalf("kiosk 3 got the charge as %d, kiosk 2 as %d", again.Seq, got.Seq)
	}
	closeAcked(t, e, c3, got.Seq)
	prune()
	if has(got.Seq) {
		t.Fatalf("the charge stayed in the log after every kiosk but its sender passed it (the tablet never connected): %v",
			facilityLog(t, e.r, "north"))
	}
	n, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "count at nine"})
	if err != nil {
		t.Fatal(err)
	}
	var noticeSeq uint64
	for _, k := range []*term{k1, k2, k3} {
		c := k.connect(t, 0)
		it := c.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).ID == n.ID })
		noticeSeq = it.Seq
		closeAcked(t, e, c, it.Seq)
	}
	prune()
	if !has(noticeSeq) {
		t.Fatal("a notice for every terminal left the log before the tablet read it")
	}
	ct := tab.connect(t, 0)
	it := ct.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).ID == n.ID })
	if count(t, ct.down, wire.DownRemoteCharge, ch.RecordID) != 1 {
		t.Fatal("the tablet bound to A1 did not get the charge once")
	}
	closeAcked(t, e, ct, it.Seq)
	prune()
	if left := facilityLog(t, e.r, "north"); len(left) != 0 {
		t.Fatalf("log after every terminal passed everything: %v", left)
	}
}

// A kiosk enrolled after a charge gets it once, in its snapshot, and not again from its
// facility's log, which still holds it for a kiosk that has not read it.
func TestNewKioskGetsAnOlderItemOnce(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1 := e.enroll(wire.ModeKiosk, "")
	e.enroll(wire.ModeKiosk, "") // offline: the log keeps the charge for it
	c1 := k1.connect(t, 0)
	ch := charge("A1", "s1", 0, 5)
	c1.batch(k1.item(wire.UpCharge, ch))
	k3 := e.enroll(wire.ModeKiosk, "")
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "mark"}); err != nil {
		t.Fatal(err)
	}
	c3 := k3.connect(t, 0)
	c3.waitDown(wire.DownDeposit, isDeposit(t, "mark"))
	if n := count(t, c3.down, wire.DownRemoteCharge, ch.RecordID); n != 1 {
		t.Fatalf("the new kiosk got the older charge %d times, want once (its snapshot)", n)
	}
}

// A relay file of schema 10 (each terminal numbering its own downlink) opens with each
// facility's counter above every seq its terminals were given: a terminal's next item comes
// after what it holds, and what was queued before is still delivered.
func TestDownlinkMigratesSchema10(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	// Schema 10 numbered each terminal's items from 1 in its own bucket: k2's pending items
	// are rewritten so, and numbered high, as a busy terminal's would be.
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	const high = 500
	var queued int
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bDown)).Bucket([]byte(k2.id))
		var vals [][]byte
		if err := b.ForEach(func(_, v []byte) error { vals = append(vals, append([]byte(nil), v...)); return nil }); err != nil {
			return err
		}
		queued = len(vals)
		for _, name := range []string{bDown, bFacDown, bDownFrom} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		down, err := tx.CreateBucket([]byte(bDown))
		if err != nil {
			return err
		}
		nb, err := down.CreateBucket([]byte(k2.id))
		if err != nil {
			return err
		}
		for i, v := range vals {
			var it wire.DownItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			seq := uint64(high - len(vals) + 1 + i)
			if err := nb.Put(u64(seq), encodeDownItem(nil, seq, it.Kind, it.Body)); err != nil {
				return err
			}
		}
		if err := nb.SetSequence(high); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(10))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "after"}); err != nil {
		t.Fatal(err)
	}
	c2 := k2.connect(t, 0)
	dep := c2.waitDown(wire.DownDeposit, isDeposit(t, "after"))
	if dep.Seq <= high {
		t.Fatalf("after the migration the deposit is seq %d, not above the %d kiosk 2 was given", dep.Seq, high)
	}
	if queued == 0 || len(c2.down) != queued+1 || c2.down[0].Seq != uint64(high-queued+1) {
		t.Fatalf("kiosk 2 had %d items queued before the migration up to %d; got %d items from seq %d",
			queued, high, len(c2.down), c2.down[0].Seq)
	}
	// Kiosk 1 lost its own bucket in the rewrite; it reads the deposit from the log.
	c1 := k1.connect(t, 0)
	if got := c1.waitDown(wire.DownDeposit, isDeposit(t, "after")); got.Seq != dep.Seq {
		t.Fatalf("kiosk 1 got the deposit as %d, kiosk 2 as %d", got.Seq, dep.Seq)
	}
}

// The terminal list's down_queued is the last item queued for each terminal, not its facility's
// last number: the kiosk that caused the newest items and a tablet bound to another inmate are
// caught up once they applied what they were sent.
func TestTerminalsQueuedIsEachOnesLastItem(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A2")
	c1 := k1.connect(t, 0)
	c1.waitDown(wire.DownInmate, nil)
	for i := range logTailLen + 2 { // more kiosk-only items than the list keeps of a log's end
		c1.batch(k1.item(wire.UpCharge, charge("A1", "s1", i, 5)))
	}
	queued := func(id string) (uint64, uint64) {
		t.Helper()
		ts, err := e.r.Terminals()
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range ts {
			if ti.ID == id {
				return ti.DownQueued, ti.DownAcked
			}
		}
		t.Fatalf("terminal %s not listed", id)
		return 0, 0
	}
	for _, c := range []*tconn{c1, k2.connect(t, 0), tab.connect(t, 0)} {
		if c != c1 {
			c.waitDown(wire.DownInmate, nil)
		}
		// Everything queued for it has come once it has the item of the list's down_queued.
		q, _ := queued(c.term.id)
		for c.lastSeq() < q {
			f := read(t, c.c)
			if f.Down != nil {
				c.down = append(c.down, f.Down.Items...)
			}
		}
		if c.lastSeq() != q {
			t.Fatalf("%s: last item received %d, listed down_queued %d", c.term.mode, c.lastSeq(), q)
		}
		closeAcked(t, e, c, q)
		if q2, a := queued(c.term.id); q2 != a {
			t.Fatalf("%s: after applying everything down_queued %d, down_acked %d", c.term.mode, q2, a)
		}
	}
}

// A facility log record is split into its tag, the terminal it is not for and the item, or
// refused: a damaged record never panics, and what is split off is exactly what was stored.
func FuzzLogItem(f *testing.F) {
	f.Add([]byte{logKiosks, 4, 't', '-', '0', '1', '{', '}'})
	f.Add([]byte{logAll, 0, '{', '"', 's', 'e', 'q', '"', ':', '1', '}'})
	f.Add([]byte{logAll, 200, 'x'})
	f.Add([]byte{'x', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		tag, except, item, ok := logItem(v)
		if !ok {
			return
		}
		if tag != logAll && tag != logKiosks {
			t.Fatalf("tag %q accepted", tag)
		}
		if len(except) != int(v[1]) || 2+len(except)+len(item) != len(v) || string(item) != string(v[2+len(except):]) {
			t.Fatalf("split %q into %q and %q", v, except, item)
		}
		// What appendFacility writes splits back into what it was given.
		enc := append([]byte{tag, byte(len(except))}, except...)
		enc = encodeDownItem(enc, 7, wire.DownDeposit, json.RawMessage(`{}`))
		tag2, except2, item2, ok := logItem(enc)
		if !ok || tag2 != tag || string(except2) != string(except) || string(item2) != `{"seq":7,"kind":"deposit","body":{}}` {
			t.Fatalf("round trip of %q: %q %q %q %v", enc, tag2, except2, item2, ok)
		}
	})
}
