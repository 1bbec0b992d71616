package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// asSchema20 takes the store back to what schema 20 left: every item id in item_ids (moved
// there from the facilities' records, where this relay keeps them), no record of what
// item_ids holds, and a store that will keep ids by facility once it is migrated again (a
// shared store always does; a bbolt file is marked).
func asSchema20(t *testing.T, e *env) {
	t.Helper()
	err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		if root := tx.Bucket([]byte(bFacIDs)); root != nil {
			var moved []idrecs.Ref
			if err := root.ForEachBucket(func(fac []byte) error {
				return root.Bucket(fac).ForEach(func(_, v []byte) error {
					return idrecs.Each(v, func(r idrecs.Ref) bool { moved = append(moved, r); return true })
				})
			}); err != nil {
				return err
			}
			for _, r := range moved {
				ref := itemRef{Hash: r.Hash, TerminalID: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, Refused: r.Refused}
				if err := tx.Bucket([]byte(bItemIDs)).Put([]byte(r.ID), encodeItemRef(ref)); err != nil {
					return err
				}
			}
			if err := tx.DeleteBucket([]byte(bFacIDs)); err != nil {
				return err
			}
		}
		m := tx.Bucket([]byte(bMeta))
		for _, k := range []string{kIDsBefore, kIDsOther} {
			if err := m.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if err := m.Put([]byte(kIDLayout), []byte("facility")); err != nil {
			return err
		}
		return m.Put([]byte(kSchema), u64(20))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newEpoch() string {
	ep := make([]byte, 16)
	rand.Read(ep)
	return hex.EncodeToString(ep)
}

// A store that kept its item ids in item_ids goes on knowing them once it keeps new ones by
// facility (schema 21: a shared store's switch): a queue resent under a new epoch after the
// switch is not stored or charged twice, and an id reused with other content is refused.
// What is stored after the switch is found in the facility's records.
func TestIDsStoredBeforeTheSwitchAreStillKnown(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	queue := []wire.Item{
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
		k.item(wire.UpCharge, charge("A2", "s2", 0, 7)),
	}
	// An id that is not a UUIDv7, as an older terminal might send (kIDsOther).
	odd := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "logout", Actor: "A1"})
	odd.ID = "older-terminal-item-1"
	queue = append(queue, odd)
	if ack := c.batch(queue...); ack.Seq != uint64(len(queue)) || len(ack.Rejected) != 0 {
		t.Fatalf("the queue: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	balances := func() (a1, a2 kiosk.Cents) {
		t.Helper()
		b1, err1 := e.r.Balance("A1")
		b2, err2 := e.r.Balance("A2")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return b1.BalanceCents, b2.BalanceCents
	}
	a1, a2 := balances()

	asSchema20(t, e)
	e.restart()
	if !e.r.ids.on || e.r.ids.before == 0 || !e.r.ids.other {
		t.Fatalf("after the migration: %+v, want ids by facility, knowing what item_ids holds", e.r.ids)
	}

	// Restored from a backup: the same queue under a new epoch.
	k.epoch, k.seq = newEpoch(), 0
	resend := func(items []wire.Item) {
		t.Helper()
		again := make([]wire.Item, len(items))
		for i, it := range items {
			k.seq++
			it.Seq = k.seq
			again[i] = it
		}
		c := k.connect(t, 0)
		defer c.c.Close(websocket.StatusNormalClosure, "")
		if ack := c.batch(again...); ack.Seq != k.seq || len(ack.Rejected) != 0 {
			t.Fatalf("resent: ack %+v, want seq %d and nothing refused", ack, k.seq)
		}
	}
	resend(queue)
	if stored, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != len(queue) {
		t.Fatalf("%d items stored (%v), want the queue's %d once", len(stored), err, len(queue))
	}
	if b1, b2 := balances(); b1 != a1 || b2 != a2 {
		t.Fatalf("balances after the resend %d and %d, want %d and %d", b1, b2, a1, a2)
	}

	// An id stored before the switch, reused with other content.
	c = k.connect(t, 0)
	reuse := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev9", At: t0, Kind: "login_ok", Actor: "A2"})
	reuse.ID = queue[1].ID
	if ack := c.batch(reuse); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("an id of before the switch reused: ack %+v, want id_conflict", ack)
	}
	// New items, kept in the facility's records, and found there when resent.
	fresh := []wire.Item{k.item(wire.UpCharge, charge("A1", "s3", 0, 11)), k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev3", At: t0, Kind: "logout", Actor: "A2"})}
	if ack := c.batch(fresh...); ack.Seq != k.seq || len(ack.Rejected) != 0 {
		t.Fatalf("new items: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		if v := tx.Bucket([]byte(bItemIDs)).Get([]byte(fresh[0].ID)); v != nil {
			t.Errorf("a new id went to %s", bItemIDs)
		}
		b := tx.Bucket([]byte(bFacIDs)).Bucket([]byte("north"))
		if b == nil {
			t.Fatal("no id records for facility north")
		}
		for _, it := range fresh {
			v := b.Get([]byte(idrecs.Key(idrecs.Span(it.ID), 0)))
			if _, ok, err := idrecs.Find(v, it.ID); !ok || err != nil {
				t.Errorf("new item %s not in its span's first record (%v)", it.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 = balances()
	k.epoch, k.seq = newEpoch(), 0
	resend(fresh)
	if b1, b2 := balances(); b1 != a1 || b2 != a2 {
		t.Fatalf("balances after the second resend %d and %d, want %d and %d", b1, b2, a1, a2)
	}
	if stored, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != len(queue)+1+len(fresh) {
		t.Fatalf("%d items stored (%v), want %d", len(stored), err, len(queue)+1+len(fresh))
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// Where ids are kept by facility, a facility's ids are its own: another facility's kiosk
// reusing an id gets an item of its own, while a kiosk of the same facility reusing it is
// refused. Verify names an id record that does not decode, and a store keeps the layout it
// has: a bbolt file holding ids in item_ids is not moved off it.
func TestAFacilitysItemIDsAreItsOwn(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true })
	e.seed()
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	north, north2, south := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	first := north.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"})
	c := north.connect(t, 0)
	if ack := c.batch(first); len(ack.Rejected) != 0 {
		t.Fatalf("first: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	there := south.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev5", At: t0, Kind: "logout", Actor: "S1"})
	there.ID = first.ID
	c = south.connect(t, 0)
	if ack := c.batch(there); ack.Seq != there.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the id in another facility: ack %+v, want it stored", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	here := north2.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev6", At: t0, Kind: "logout", Actor: "A2"})
	here.ID = first.ID
	c = north2.connect(t, 0)
	if ack := c.batch(here); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("the id in its own facility again: ack %+v, want id_conflict", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	if stored, err := e.r.Items(ItemFilter{TerminalID: south.id}); err != nil || len(stored) != 1 || stored[0].Refused != "" {
		t.Fatalf("south's items %+v (%v), want its own stored", stored, err)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}

	// A record damaged behind the relay's back.
	err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bFacIDs)).Bucket([]byte("south"))
		k := []byte(idrecs.Key(idrecs.Span(first.ID), 0))
		return b.Put(k, append(bytes.Clone(b.Get(k)), 0xff, 0x07))
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) == 0 || rep.Problems[0].Check != "id_records" || !strings.Contains(rep.Problems[0].Detail, "facility south") {
		t.Fatalf("verify of a damaged id record = %+v, %v; want an id_records problem naming facility south", rep, err)
	}

	if os.Getenv(storeEnv) == "jetstream" {
		return // a shared store always keeps ids by facility
	}
	plain := newEnv(t, func(c *Config) { c.FacilityIDs = false })
	plain.seed()
	k := plain.enroll(wire.ModeKiosk, "")
	c = k.connect(t, 0)
	c.batch(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}))
	c.c.Close(websocket.StatusNormalClosure, "")
	plain.cfg.FacilityIDs = true
	plain.restart()
	if plain.r.ids.on {
		t.Fatal("a bbolt file holding ids in item_ids was moved to facility records")
	}
}

// onFacilityIDsToo are the tests that run again, in every `go test` of this package, on a
// bbolt file that keeps item ids by facility as a shared store does: exactly-once under
// resends, re-enrollment, restores and reused ids, where the layout matters.
var onFacilityIDsToo = append([]string{"TestIDsStoredBeforeTheSwitchAreStillKnown"}, onJetStreamToo...)

// TestOnFacilityIDsToo runs onFacilityIDsToo with idsEnv set, in a child process of this test
// binary (newEnv reads it deep inside each test).
func TestOnFacilityIDsToo(t *testing.T) {
	if os.Getenv(storeEnv) != "" || os.Getenv(idsEnv) != "" {
		t.Skip("already running on another layout")
	}
	runAgainWith(t, idsEnv+"=facility", onFacilityIDsToo)
}

// runAgainWith runs tests in a child process of this test binary with env set, and fails
// unless each passed.
func runAgainWith(t *testing.T, env string, tests []string) {
	t.Helper()
	args := []string{"-test.run=^(" + strings.Join(tests, "|") + ")$", "-test.count=1", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	ran := len(topPass.FindAll(out, -1)) // the tests, not their subtests (indented)
	if testing.Short() {
		ran += len(topSkip.FindAll(out, -1)) // -short skips the long ones
	}
	if err != nil || ran != len(tests) {
		t.Fatalf("with %s: %v, %d of %d passed:\n%s", env, err, ran, len(tests), out)
	}
}

// entryV1 is an id record's entry as schema 27 wrote it (idrecs' version 1): a version byte,
// id, terminal and epoch as length and text, the seq, then hash and refused the same way.
func entryV1(r idrecs.Ref) []byte {
	rec := []byte{1}
	for _, s := range []string{r.ID, r.Terminal, r.Epoch} {
		rec = append(binary.AppendUvarint(rec, uint64(len(s))), s...)
	}
	rec = binary.AppendUvarint(rec, r.Seq)
	for _, s := range []string{r.Hash, r.Refused} {
		rec = append(binary.AppendUvarint(rec, uint64(len(s))), s...)
	}
	return rec
}

// A facility's id records written before schema 28 hold version 1 entries, and the records a
// relay writes now version 2 ones, about half the size. Resent under a new epoch (a restored
// backup), the items the old entries name are found: no charge counted twice, an id reused
// with other content refused; a new item of the same span is added beside them, and verify
// finds the records sound.
func TestIDsRecordedBeforeSchema28AreFound(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	const second = 1_796_000_000_000
	inSpan := func(it wire.Item, i int) wire.Item {
		it.ID = idMadeAt(second + uint64(i))
		return it
	}
	queue := []wire.Item{
		inSpan(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), 1),
		inSpan(k.item(wire.UpCharge, charge("A1", "s1", 1, 7)), 2),
		inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "logout", Actor: "A1"}), 3),
	}
	c := k.connect(t, 0)
	if ack := c.batch(queue...); ack.Seq != k.seq || len(ack.Rejected) != 0 {
		t.Fatalf("the queue: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	balance := e.balanceOf("A1")

	// The span's record as schema 27 would have written it.
	key := []byte(idrecs.Key(idrecs.Span(queue[0].ID), 0))
	var v2, v1 int
	if err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bFacIDs)).Bucket([]byte("north"))
		rec := b.Get(key)
		var old []byte
		n := 0
		if err := idrecs.Each(rec, func(r idrecs.Ref) bool { old = append(old, entryV1(r)...); n++; return true }); err != nil {
			return err
		}
		if n != len(queue) {
			return fmt.Errorf("the record holds %d entries, want %d", n, len(queue))
		}
		v2, v1 = len(rec), len(old)
		return b.Put(key, old)
	}); err != nil {
		t.Fatal(err)
	}
	if 3*v2 > 2*v1 {
		t.Errorf("the record took %d bytes in version 2 entries and %d in version 1: want well under", v2, v1)
	}

	k.epoch, k.seq = newEpoch(), 0
	var again []wire.Item
	for _, it := range queue {
		k.seq++
		it.Seq = k.seq
		again = append(again, it)
	}
	reused := inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev9", At: t0, Kind: "other content", Actor: "A1"}), 0)
	reused.ID = queue[2].ID
	fresh := inSpan(k.item(wire.UpCharge, charge("A1", "s2", 0, 11)), 4)
	c = k.connect(t, 0)
	ack := c.batch(append(again, reused, fresh)...)
	c.c.Close(websocket.StatusNormalClosure, "")
	if ack.Seq != k.seq || len(ack.Rejected) != 1 || ack.Rejected[0].Seq != reused.Seq || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("the queue resent with a reused id and a new charge: ack %+v, want only seq %d refused id_conflict", ack, reused.Seq)
	}
	if got := e.balanceOf("A1"); got != balance-11 {
		t.Fatalf("A1's balance %d after the resend, want %d: the new charge alone", got, balance-11)
	}
	var entries int
	if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		return idrecs.Each(tx.Bucket([]byte(bFacIDs)).Bucket([]byte("north")).Get(key), func(idrecs.Ref) bool { entries++; return true })
	}); err != nil {
		t.Fatal(err)
	}
	if entries != len(queue)+1 {
		t.Errorf("the span's record holds %d entries, want %d: the old ones and the new charge's", entries, len(queue)+1)
	}
	// The new charge, its entry of version 2, resent in its turn: found too.
	k.epoch, k.seq = newEpoch(), 1
	fresh.Seq = 1
	c = k.connect(t, 0)
	if ack := c.batch(fresh); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("the new charge resent: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	if got := e.balanceOf("A1"); got != balance-11 {
		t.Fatalf("A1's balance %d after the new charge was resent, want %d", got, balance-11)
	}
	if vr, err := e.r.Verify(); err != nil || !vr.OK {
		t.Fatalf("verify = %+v, %v", vr, err)
	}
}
