package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// itemRecords lists the bItems records as they are on disk: key, and whether each is a log
// record.
func itemRecords(t *testing.T, db kv.Store) (keys []uint64, logs int) {
	t.Helper()
	if err := db.View(context.Background(), func(tx kv.Tx) error {
		return tx.Bucket([]byte(bItems)).ForEach(func(k, v []byte) error {
			keys = append(keys, readU64(k))
			if len(v) > 0 && v[0] == logMagic {
				logs++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return keys, logs
}

// A batch is stored as one item log record, not one record per item; every item is listed
// and every letter's text is read from it, including a letter whose stamp came in the same
// batch.
func TestItemLogOneRecordPerBatch(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.letterContact("A1", "pal")
	c := k.connect(t, 0)
	defer c.c.Close(websocket.StatusNormalClosure, "")
	held, _ := itemRecords(t, e.r.db) // the contact's request
	var items []wire.Item
	for i := range 20 {
		items = append(items, k.item(wire.UpMessage, kiosk.Message{ID: fmt.Sprintf("m%02d", i), InmateID: "A1",
			Box: kiosk.BoxOutbox, Peer: "pal", Body: fmt.Sprintf("letter %d <%s>", i, strings.Repeat("x", i))}))
	}
	if ack := c.batch(items...); ack.Seq != 20 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	keys, logs := itemRecords(t, e.r.db)
	if len(keys) != len(held)+1 || logs != len(keys) {
		t.Fatalf("20 items of one batch are %d records (%d log records), want one log record", len(keys)-len(held), logs)
	}
	list, err := e.r.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(list) != 20 {
		t.Fatalf("items: %d, %v", len(list), err)
	}
	for i, it := range list {
		if it.Seq != uint64(i+1) || it.ID != items[i].ID || it.TerminalID != k.id {
			t.Fatalf("item %d = %+v, want seq %d id %s", i, it, i+1, items[i].ID)
		}
	}
	var ol struct{ Messages []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/outbound", nil, &ol)
	if len(ol.Messages) != 20 {
		t.Fatalf("outbound = %d letters", len(ol.Messages))
	}
	for i, m := range ol.Messages {
		if want := fmt.Sprintf("letter %d <%s>", i, strings.Repeat("x", i)); m.ID != fmt.Sprintf("m%02d", i) || m.Body != want {
			t.Fatalf("letter %d = %s %q, want %q", i, m.ID, m.Body, want)
		}
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// An item is found by its arrival number in records of any size, cut at logRecordMax, and a
// number no record holds is not found.
func TestItemLogRecordsCut(t *testing.T) {
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "items.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	big := bytes.Repeat([]byte("a"), logRecordMax/3)
	item := func(n uint64) []byte {
		if n%4 == 0 {
			return append([]byte(fmt.Sprintf(`{"n":%d,"pad":"`, n)), append(big, `"}`...)...)
		}
		return []byte(fmt.Sprintf(`{"n":%d}`, n))
	}
	var cut int
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bItems)); err != nil {
			return err
		}
		l := &itemLog{}
		ltx := &logTx{Tx: tx, log: l}
		for n := uint64(5); n <= 30; n++ { // 1-4 are not stored
			if n == 20 {
				continue // a gap starts a new record
			}
			l.add(n, item(n))
		}
		for n := uint64(5); n <= 30; n++ { // readable before they are written
			if got := storedItemRaw(ltx, n); (n == 20) != (got == nil) || (got != nil && !bytes.Equal(got, item(n))) {
				return fmt.Errorf("pending item %d = %.40q", n, got)
			}
		}
		cut = len(l.recs) + 1
		return l.flush(tx, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, logs := itemRecords(t, db)
	if len(keys) != cut || logs != cut || cut != 3 {
		t.Fatalf("records %v (%d log records), want %d log records cut at %d bytes and at the gap", keys, logs, cut, logRecordMax)
	}
	err = db.View(context.Background(), func(tx kv.Tx) error {
		for n := uint64(0); n <= 35; n++ {
			got := storedItemRaw(tx, n)
			stored := n >= 5 && n <= 30 && n != 20
			if stored != (got != nil) || (got != nil && !bytes.Equal(got, item(n))) {
				return fmt.Errorf("item %d = %.40q, stored %v", n, got, stored)
			}
		}
		var seen []uint64
		if err := forEachItemRaw(tx, nil, func(n uint64, raw []byte) bool {
			if !bytes.Equal(raw, item(n)) {
				t.Errorf("item %d listed as %.40q", n, raw)
			}
			seen = append(seen, n)
			return true
		}); err != nil {
			return err
		}
		if len(seen) != 25 || seen[0] != 5 || seen[24] != 30 {
			return fmt.Errorf("listed %v", seen)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A relay file of schema 8 (one record per item) opens, is migrated to item log records, and
// every admin answer stays what it was; resends of what it held are still recognised.
func TestItemLogMigratesSchema8(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.letterContact("A1", "pal")
	c := k.connect(t, 0)
	msg := func(id, text string) kiosk.Message {
		return kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: text, State: kiosk.MsgQueued, CreatedAt: t0}
	}
	if ack := c.batch(k.item(wire.UpMessage, msg("m1", "first <letter>")), k.item(wire.UpMessage, msg("m2", "second")),
		k.item(wire.UpPREA, kiosk.Message{ID: "p1", InmateID: "A1", Peer: kiosk.PREAChannel, Body: "report"})); ack.Seq != 3 {
		t.Fatalf("ack = %+v", ack)
	}
	e.clock.Advance(time.Second)
	// A second batch, one item refused (a letter id already held with other text).
	ack := c.batch(k.item(wire.UpMessage, msg("m3", "third")), k.item(wire.UpMessage, msg("m1", "changed")))
	if ack.Seq != 5 || len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("ack = %+v", ack)
	}
	var o Outbound
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m2/reject", map[string]string{"reason": "content_policy"}, &o)
	c.c.Close(websocket.StatusNormalClosure, "")
	answers := func() map[string]string {
		out := map[string]string{}
		for _, path := range []string{"/admin/v1/outbound", "/admin/v1/prea", "/admin/v1/items", "/admin/v1/refusals",
			"/admin/v1/usage?inmate_id=A1"} {
			code, body := e.call("GET", path, nil)
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			out[path] = string(body)
		}
		return out
	}
	before := answers()
	e.close()

	// Write the items back as schema 8 kept them: one record per item, under its number.
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		old := map[uint64][]byte{}
		if err := forEachItemRaw(tx, nil, func(n uint64, raw []byte) bool {
			old[n] = append([]byte(nil), raw...)
			return true
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte(bItems)); err != nil {
			return err
		}
		b, err := tx.CreateBucket([]byte(bItems))
		if err != nil {
			return err
		}
		for n, raw := range old {
			if err := b.Put(u64(n), raw); err != nil {
				return err
			}
		}
		if err := b.SetSequence(uint64(len(old))); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(8))
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys, logs := itemRecords(t, db); len(keys) != 6 || logs != 0 { // the contact's request, then the letters
		t.Fatalf("schema 8 layout: records %v, %d log records", keys, logs)
	}
	db.Close()

	e.open()
	// The contact's request and the two batches, one record each (the items of a batch share
	// terminal, epoch and time).
	if keys, logs := itemRecords(t, e.r.db); len(keys) != 3 || logs != 3 || keys[1] != 2 || keys[2] != 5 {
		t.Fatalf("after the migration: records %v, %d log records, want log records 1, 2 and 5", keys, logs)
	}
	after := answers()
	for path, want := range before {
		if after[path] != want {
			t.Errorf("GET %s after the migration:\n got %s\nwant %s", path, after[path], want)
		}
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// What the old records held is recognised: a resend is a duplicate, a changed letter
	// conflicts, a review shows the text; new items go on from the numbers held.
	k.epoch += "-2"
	k.seq = 0
	c = k.connect(t, 0)
	defer c.c.Close(websocket.StatusNormalClosure, "")
	ack = c.batch(k.item(wire.UpMessage, msg("m1", "first <letter>")), k.item(wire.UpMessage, msg("m1", "again changed")),
		k.item(wire.UpMessage, msg("m4", "fourth")))
	if ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0].Seq != 2 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("ack = %+v", ack)
	}
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m1/approve", nil, &o)
	if o.Body != "first <letter>" || o.Status != kiosk.MsgDelivered {
		t.Fatalf("approved = %+v", o)
	}
	list, err := e.r.Items(ItemFilter{})
	if err != nil || len(list) != 9 || list[8].Seq != 3 || list[8].Epoch != k.epoch || list[7].Refused != wire.RefuseIDConflict {
		t.Fatalf("items after the migration: %+v %v", list, err)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// FuzzItemLogRecord: any bytes read as a record yield items that lie inside it, and items
// written to a record read back as written.
func FuzzItemLogRecord(f *testing.F) {
	f.Add([]byte(`{"seq":1}`), []byte("x"), uint8(2))
	f.Add([]byte{logMagic, 0, 0, 0, 2, '{', '}'}, []byte(""), uint8(0))
	f.Add([]byte{logMagic, 0, 0, 0, 9, '{'}, []byte("{}"), uint8(5))
	f.Fuzz(func(t *testing.T, raw, item []byte, count uint8) {
		eachLogEntry(raw, func(i uint64, it []byte) bool {
			if len(it) > len(raw) {
				t.Fatalf("entry %d is %d bytes of a %d-byte record", i, len(it), len(raw))
			}
			return true
		})
		var l itemLog
		for n := range uint64(count) {
			l.add(n+1, append(append([]byte(nil), item...), byte(n)))
		}
		l.cut()
		var got uint64
		for _, r := range l.recs {
			if !eachLogEntry(r.raw, func(i uint64, it []byte) bool {
				if want := append(append([]byte(nil), item...), byte(r.key+i-1)); !bytes.Equal(it, want) {
					t.Fatalf("item %d read %q, want %q", r.key+i, it, want)
				}
				got++
				return true
			}) {
				t.Fatalf("record %d cannot be read", r.key)
			}
			if binary.BigEndian.Uint32(r.raw[1:]) != uint32(len(item)+1) {
				t.Fatalf("record %d: first length %d", r.key, binary.BigEndian.Uint32(r.raw[1:]))
			}
		}
		if got != uint64(count) {
			t.Fatalf("read %d items of %d", got, count)
		}
	})
}
