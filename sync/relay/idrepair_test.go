package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// idMadeAt is a UUIDv7 that says it was made at ms (Unix milliseconds).
func idMadeAt(ms uint64) string {
	u := uuid.Must(uuid.NewV7())
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ms)
	copy(u[:6], b[2:])
	return u.String()
}

// A facility's id record damaged behind the relay's back: one whose entries stop decoding
// stops every batch carrying an id of its second; one renumbered past a gap hides its ids, so
// a queue resent would be stored again. Verify names both, and RepairItemIDs rebuilds the
// span: what the records still hold, then what the items log holds of the span's ids, the
// first stored of each. Afterwards the kiosk's queue resent under a new epoch is neither
// stored nor charged twice, an id of the span reused with other content is refused, a new
// item of the span is stored, verify is clean, and a second repair finds nothing.
func TestRepairRebuildsADamagedIDSpan(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the span's first record, v at key, in b.
		damage          func(t *testing.T, b kv.Bucket, key, v []byte) error
		blocks          bool // a new item of the span is refused until the repair
		kept, recovered int
	}{
		{"an entry that does not decode", func(t *testing.T, b kv.Bucket, key, v []byte) error {
			// Everything after the first entry is lost behind a byte no entry starts with.
			var ref idrecs.Ref
			if err := idrecs.Each(v, func(r idrecs.Ref) bool { ref = r; return false }); err != nil {
				t.Fatalf("record %s: %v", key, err)
			}
			first := len(idrecs.Entry(ref))
			damaged := append(append([]byte(nil), v[:first]...), 0xff)
			return b.Put(key, append(damaged, v[first:]...))
		}, true, 1, 2},
		{"a record renumbered past a gap", func(t *testing.T, b kv.Bucket, key, v []byte) error {
			span, _, _ := strings.Cut(string(key), ".")
			if err := b.Delete(key); err != nil {
				return err
			}
			return b.Put([]byte(idrecs.Key(span, 1)), bytes.Clone(v))
		}, false, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repairADamagedSpan(t, tc.damage, tc.blocks, tc.kept, tc.recovered)
		})
	}
}

func repairADamagedSpan(t *testing.T, damage func(t *testing.T, b kv.Bucket, key, v []byte) error, blocks bool, kept, recovered int) {
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	const second = 1_796_000_000_000 // the millisecond the span starts at
	inSpan := func(it wire.Item, i int) wire.Item {
		it.ID = idMadeAt(second + uint64(i))
		return it
	}
	queue := []wire.Item{
		inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}), 1),
		inSpan(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), 2),
		inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "note <&> \"quoted\"", Actor: "A1"}), 3),
		k.item(wire.UpCharge, charge("A2", "s2", 0, 7)), // another span, left alone
	}
	// A body as a terminal other than ours may write it: <, > and & not escaped.
	queue[2].Body = json.RawMessage(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(queue[2].Body)))
	if !strings.Contains(string(queue[2].Body), "<&>") {
		t.Fatalf("body %s", queue[2].Body)
	}
	c := k.connect(t, 0)
	if ack := c.batch(queue...); ack.Seq != k.seq || len(ack.Rejected) != 0 {
		t.Fatalf("the queue: ack %+v", ack)
	}
	// The charge's id sent again with other content: refused, and in the items log after it.
	dup := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev8", At: t0, Kind: "a reuse", Actor: "A1"})
	dup.ID = queue[1].ID
	if ack := c.batch(dup); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("the charge's id reused: ack %+v, want id_conflict", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	a1, a2 := e.balanceOf("A1"), e.balanceOf("A2")

	span := idrecs.Span(queue[0].ID)
	key := []byte(idrecs.Key(span, 0))
	err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bFacIDs)).Bucket([]byte("north"))
		return damage(t, b, key, b.Get(key))
	})
	if err != nil {
		t.Fatal(err)
	}
	blocked := inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev3", At: t0, Kind: "logout", Actor: "A1"}), 4)
	if blocks {
		// A new item of the span is not acknowledged while the record is damaged.
		c = k.connect(t, 0)
		send(t, c.c, wire.Batch{Epoch: k.epoch, Items: []wire.Item{blocked}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, b, err := c.c.Read(ctx); err == nil {
			if f, derr := wire.DecodeFrame(b); derr == nil && f.Type == wire.TypeAck && f.Ack.Seq == blocked.Seq {
				t.Fatalf("a new item of the damaged span was acknowledged: %+v", f.Ack)
			}
		}
		cancel()
		c.c.CloseNow()
	}
	if rep, err := e.r.Verify(); err != nil || rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Detail, "span "+span) {
		t.Fatalf("verify of the damaged span = %+v, %v; want one problem naming span %s", rep, err, span)
	}

	// Held by a gateway (its record in the kv state), the facility's records are its holder's:
	// the repair is refused, naming the holder, and the span stays as it was.
	if err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bHolds)); err != nil {
			return err
		}
		return putJSON(tx, bHolds, "north", holdRecord{Holder: "http://gw-b.example:8080", Term: 3})
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.r.RepairItemIDs(); err == nil || !strings.Contains(err.Error(), `facility north is held by gateway "http://gw-b.example:8080"`) || len(rep.Spans) != 0 {
		t.Fatalf("repair of a held facility = %+v, %v; want it refused, naming the holder", rep, err)
	}
	if rep, err := e.r.Verify(); err != nil || rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Detail, "span "+span) {
		t.Fatalf("verify after the refused repair = %+v, %v; want the span still damaged", rep, err)
	}
	if err := e.r.db.Update(context.Background(), func(tx kv.Tx) error { return deleteKey(tx, bHolds, "north") }); err != nil {
		t.Fatal(err)
	}

	rep, err := e.r.RepairItemIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.ByFacility || len(rep.Spans) != 1 || rep.Spans[0].Facility != "north" || rep.Spans[0].Span != span || rep.Spans[0].Kept != kept || rep.Spans[0].Recovered != recovered {
		t.Fatalf("repair = %+v, want span %s of north rebuilt: %d entries kept, %d recovered", rep, span, kept, recovered)
	}
	if vr, err := e.r.Verify(); err != nil || !vr.OK {
		t.Fatalf("verify after the repair = %+v, %v", vr, err)
	}
	if again, err := e.r.RepairItemIDs(); err != nil || len(again.Spans) != 0 {
		t.Fatalf("a second repair = %+v, %v; want nothing to do", again, err)
	}

	// The blocked item goes through (it was never stored), then the queue is resent under a
	// new epoch, as from a restored backup.
	c = k.connect(t, 0)
	if ack := c.batch(blocked); ack.Seq != blocked.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the item blocked before the repair: ack %+v", ack)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	k.epoch, k.seq = newEpoch(), 0
	again := make([]wire.Item, len(queue))
	for i, it := range queue {
		k.seq++
		it.Seq = k.seq
		again[i] = it
	}
	reused := inSpan(k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev9", At: t0, Kind: "other content", Actor: "A1"}), 0)
	reused.ID = queue[2].ID
	c = k.connect(t, 0)
	ack := c.batch(append(again, reused)...)
	c.c.Close(websocket.StatusNormalClosure, "")
	if ack.Seq != k.seq || len(ack.Rejected) != 1 || ack.Rejected[0].Seq != reused.Seq || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("the queue resent with a reused id: ack %+v, want only seq %d refused id_conflict", ack, reused.Seq)
	}
	if b1, b2 := e.balanceOf("A1"), e.balanceOf("A2"); b1 != a1 || b2 != a2 {
		t.Fatalf("balances after the resend %d and %d, want %d and %d", b1, b2, a1, a2)
	}
	if stored, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(stored) != len(queue)+3 {
		t.Fatalf("%d items stored (%v), want %d: the queue, the two refused reuses and the blocked item", len(stored), err, len(queue)+3)
	}
	if vr, err := e.r.Verify(); err != nil || !vr.OK {
		t.Fatalf("verify at the end = %+v, %v", vr, err)
	}
}

// Whatever bytes a span's records hold, the check does not panic, and the span rebuilt from
// what they hold is found sound: every record decodes, holds only its span's ids, and none
// is missing before the last.
func FuzzRebuildSpan(f *testing.F) {
	const span = "s001796000000"
	good := idrecs.Entry(idrecs.Ref{ID: idMadeAt(1_796_000_000_001), Terminal: "t1", Epoch: "e", Seq: 1, Hash: "h"})
	other := idrecs.Entry(idrecs.Ref{ID: idMadeAt(1_796_000_005_000), Terminal: "t1", Epoch: "e", Seq: 2})
	f.Add(good, []byte(nil), false)
	f.Add(append(bytes.Clone(good), 0xff, 1, 2), good, true)
	f.Add(append(bytes.Clone(good), other...), []byte{}, false)
	f.Add(good[:len(good)-3], good, false)
	f.Fuzz(func(t *testing.T, first, later []byte, gap bool) {
		ctx := context.Background()
		db, err := boltkv.Open(filepath.Join(t.TempDir(), "ids.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(ctx, func(tx kv.Tx) error {
			root, err := tx.CreateBucketIfNotExists([]byte(bFacIDs))
			if err != nil {
				return err
			}
			b, err := root.CreateBucketIfNotExists([]byte("north"))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(idrecs.Key(span, 0)), first); err != nil {
				return err
			}
			if later == nil {
				return nil
			}
			n := 1
			if gap {
				n = 2
			}
			return b.Put([]byte(idrecs.Key(span, n)), later)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(ctx, func(tx kv.Tx) error {
			for _, d := range findDamagedSpans(tx) {
				if _, err := rebuildSpan(tx, d, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(ctx, func(tx kv.Tx) error {
			if left := findDamagedSpans(tx); len(left) != 0 {
				t.Fatalf("after the rebuild: %+v", left)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
