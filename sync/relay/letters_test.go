package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// rawRecord reads one stored record as it is on disk.
func rawRecord(t *testing.T, r *Relay, bucket, key string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := r.db.View(context.Background(), func(tx kv.Tx) error {
		return json.Unmarshal(getRaw(tx, bucket, key), &out)
	}); err != nil {
		t.Fatalf("%s %s: %v", bucket, key, err)
	}
	return out
}

// A letter's text is stored once, in the item that carried it; staff see it all the same.
func TestLetterTextStoredOnce(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.letterContact("A1", "pal")
	c := k.connect(t, 0)
	text := "my tooth <hurts> & \"more\"\nline \u2028 two"
	ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: text}),
		k.item(wire.UpPREA, kiosk.Message{ID: "p1", InmateID: "A1", Peer: kiosk.PREAChannel, Body: "report"}))
	if ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	for _, l := range []struct{ bucket, id string }{{bLetters, "north/m1"}, {bPREA, "p1"}} {
		rec := rawRecord(t, e.r, l.bucket, l.id)
		if rec["body"] != "" || rec["body_item"] == nil {
			t.Fatalf("%s %s record holds %v (body_item %v): the text is stored twice", l.bucket, l.id, rec["body"], rec["body_item"])
		}
	}
	var ol struct{ Messages []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/outbound", nil, &ol)
	if len(ol.Messages) != 1 || ol.Messages[0].Body != text {
		t.Fatalf("outbound = %+v", ol)
	}
	var pl struct{ Reports []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/prea", nil, &pl)
	if len(pl.Reports) != 1 || pl.Reports[0].Body != "report" {
		t.Fatalf("prea = %+v", pl)
	}
	// The same message id with other text is still told apart from a resend.
	ack = c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "other"}),
		k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: text}))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Seq != 3 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("ack = %+v, want item 3 refused %s and item 4 taken as a duplicate", ack, wire.RefuseIDConflict)
	}
	var o Outbound
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m1/reject", map[string]string{"reason": "content_policy"}, &o)
	if o.Body != text || o.Status != kiosk.MsgRejected {
		t.Fatalf("rejected = %+v", o)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
}

// A relay file of schema 2 (each letter's record holding its text) opens, is migrated, and
// every admin answer stays what it was.
func TestSchema2LettersMigrate(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.letterContact("A1", "pal")
	c := k.connect(t, 0)
	msg := func(id, text string) kiosk.Message {
		return kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: text, State: kiosk.MsgQueued, CreatedAt: t0}
	}
	ack := c.batch(k.item(wire.UpMessage, msg("m1", "first <letter>")), k.item(wire.UpMessage, msg("m2", "second")),
		k.item(wire.UpPREA, kiosk.Message{ID: "p1", InmateID: "A1", Peer: kiosk.PREAChannel, Body: "report"}),
		k.item(wire.UpMessage, msg("m3", "third")))
	if ack.Seq != 4 {
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

	// Write the letters back as schema 2 kept them: the whole Outbound, text included.
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]string{}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := oldLetters(tx); err != nil {
			return err
		}
		for _, bucket := range []string{bOutbound, bPREA} {
			var recs []letterRec
			if err := forEachJSON(tx, bucket, "", func(k string, rec letterRec) bool {
				if err := fillBody(tx, bucket, k, &rec); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
				return true
			}); err != nil {
				return err
			}
			for _, rec := range recs {
				raw, _ := json.Marshal(rec.Outbound)
				old[rec.ID] = string(raw)
				if err := tx.Bucket([]byte(bucket)).Put([]byte(rec.ID), raw); err != nil {
					return err
				}
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(2))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 4 {
		t.Fatalf("letters written in the old layout: %v", old)
	}

	e.open()
	for _, l := range []struct{ bucket, id string }{{bLetters, "north/m1"}, {bLetters, "north/m2"}, {bLetters, "north/m3"}, {bPREA, "p1"}} {
		if rec := rawRecord(t, e.r, l.bucket, l.id); rec["body"] != "" || rec["body_item"] == nil {
			t.Fatalf("%s %s not migrated: %v", l.bucket, l.id, rec)
		}
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
	// Migrated letters behave as before: a resend is a duplicate, a review shows the text.
	k.epoch += "-2"
	k.seq = 0
	c = k.connect(t, 0)
	defer c.c.Close(websocket.StatusNormalClosure, "")
	ack = c.batch(k.item(wire.UpMessage, msg("m1", "first <letter>")), k.item(wire.UpMessage, msg("m1", "changed")))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Seq != 2 || ack.Rejected[0].Reason != wire.RefuseIDConflict {
		t.Fatalf("ack = %+v", ack)
	}
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m1/approve", nil, &o)
	if o.Body != "first <letter>" || o.Status != kiosk.MsgDelivered {
		t.Fatalf("approved = %+v", o)
	}
}

// A schema 2 letter that no stored item carries (its item record lost, say) keeps its text in
// its own record through the migration, and is shown with it.
func TestSchema2LetterWithoutItemKeepsText(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	lone := Outbound{Message: kiosk.Message{ID: "m9", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Body: "kept",
		State: kiosk.MsgHeld}, FacilityID: "north", TerminalID: "t-gone", Status: kiosk.MsgHeld, ReceivedAt: t0}
	raw, _ := json.Marshal(lone)
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := tx.Bucket([]byte(bOutbound)).Put([]byte("m9"), raw); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(2))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	var ol struct{ Messages []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/outbound", nil, &ol)
	if len(ol.Messages) != 1 || ol.Messages[0].Body != "kept" {
		t.Fatalf("outbound = %+v", ol)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
