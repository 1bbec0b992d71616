package relay

import (
	"context"
	"encoding/json"
	"fmt"
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

// sessionStarted is the audit event a kiosk queues when an inmate's session starts on it.
func sessionStarted(inmate, session string) kiosk.AuditEvent {
	return kiosk.AuditEvent{ID: "ev-" + session, At: t0, Kind: "notice_accepted", Actor: inmate,
		Detail: map[string]string{"kind": kiosk.PersonInmate, "session": session, "language": "en"}}
}

// histories lists the history items queued for a terminal.
func histories(t *testing.T, r *Relay, id string) []wire.History {
	t.Helper()
	items, _ := downCount(t, r, id)
	var out []wire.History
	for _, it := range items {
		if it.Kind == wire.DownHistory {
			out = append(out, decodeAs[wire.History](t, it.Body))
		}
	}
	return out
}

// holdRequests makes facility north hold requests to staff for review (their own setting),
// so the letters to Medical below wait, as a letter to a contact would under the email hold.
func holdRequests(t *testing.T, e *env) {
	t.Helper()
	if err := e.r.SetMonitoring("north", Monitoring{HoldOutbound: true, RequestReview: RequestReviewHold}); err != nil {
		t.Fatal(err)
	}
}

// letter is an outbound letter of inmate to Medical, the n-th in time.
func letter(tm *term, inmate string, n int, body string) wire.Item {
	at := t0.Add(time.Duration(n) * time.Minute)
	return tm.item(wire.UpMessage, kiosk.Message{ID: fmt.Sprintf("m-%s-%03d", inmate, n), InmateID: inmate, Box: kiosk.BoxOutbox,
		Peer: "dept-medical", PeerName: "Medical", Body: body, CreatedAt: at, UpdatedAt: at})
}

// A session starting on a kiosk brings that kiosk, and no other terminal, the inmate's newest
// letters, whichever terminal wrote them, newest first and at most wire.MaxHistoryLetters; a
// tablet's session, another facility's inmate or a session already over bring nothing.
func TestHistoryGoesToTheKioskOfTheSession(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	writer := e.enroll(wire.ModeKiosk, "")
	reader := e.enroll(wire.ModeKiosk, "")
	bystander := e.enroll(wire.ModeKiosk, "")
	tablet := e.enroll(wire.ModeTablet, "A1")
	w := writer.connect(t, 0)
	var items []wire.Item
	for n := range wire.MaxHistoryLetters + 5 {
		items = append(items, letter(writer, "A1", n, fmt.Sprintf("letter %d", n)))
	}
	items = append(items, letter(writer, "A2", 0, "Bo's letter"))
	if ack := w.batch(items...); len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	rc := reader.connect(t, 0)
	rc.batch(reader.item(wire.UpAudit, sessionStarted("A1", "s-1")))
	hs := histories(t, e.r, reader.id)
	if len(hs) != 1 {
		t.Fatalf("reader got %d histories, want 1", len(hs))
	}
	h := hs[0]
	if h.InmateID != "A1" || h.SessionID != "s-1" || !h.Truncated || len(h.Letters) != wire.MaxHistoryLetters {
		t.Fatalf("history = %s %s truncated=%v with %d letters", h.InmateID, h.SessionID, h.Truncated, len(h.Letters))
	}
	newest := wire.MaxHistoryLetters + 4
	if first, last := h.Letters[0], h.Letters[len(h.Letters)-1]; first.Body != fmt.Sprintf("letter %d", newest) ||
		last.Body != fmt.Sprintf("letter %d", newest-wire.MaxHistoryLetters+1) || first.State != kiosk.MsgHeld || first.Box != kiosk.BoxOutbox {
		t.Fatalf("history runs from %+v to %+v", first, last)
	}
	for _, m := range h.Letters {
		if m.InmateID != "A1" {
			t.Fatalf("A1's history holds %+v", m)
		}
	}
	for _, id := range []string{bystander.id, writer.id, tablet.id} {
		if hs := histories(t, e.r, id); len(hs) != 0 {
			t.Errorf("terminal %s got a history it did not ask for by a session", id)
		}
	}

	// A tablet's session start brings it no history (it holds its letters by sent_message).
	tc := tablet.connect(t, 0)
	tc.batch(tablet.item(wire.UpAudit, sessionStarted("A1", "s-2")))
	if hs := histories(t, e.r, tablet.id); len(hs) != 0 {
		t.Errorf("a tablet got %d histories", len(hs))
	}
	// A session reported after its end (the kiosk was offline) brings nothing.
	end := kiosk.Session{ID: "s-3", InmateID: "A1", Start: t0, End: t0.Add(time.Minute), EndReason: kiosk.EndLogout}
	rc.batch(reader.item(wire.UpSessionEnd, end), reader.item(wire.UpAudit, sessionStarted("A1", "s-3")))
	// A suspended inmate, or one the kiosk does not serve, brings nothing either.
	rc.batch(reader.item(wire.UpAudit, sessionStarted("A3", "s-4")), reader.item(wire.UpAudit, sessionStarted("Z9", "s-5")))
	if hs := histories(t, e.r, reader.id); len(hs) != 1 {
		t.Errorf("reader got %d histories after sessions it may not fetch for, want still 1", len(hs))
	}
}

// The history stays within wire.MaxHistoryBytes, so it fits one downlink item, however long
// the letters are.
func TestHistoryBoundedInBytes(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	p, err := e.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.MaxMessageChars = 13000
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	long := strings.Repeat("<long & escaped> ", 12000/17)
	for n := range 30 {
		c.batch(letter(k, "A1", n, long))
	}
	c.batch(k.item(wire.UpAudit, sessionStarted("A1", "s-1")))
	hs := histories(t, e.r, k.id)
	if len(hs) != 1 {
		t.Fatalf("%d histories", len(hs))
	}
	raw, err := json.Marshal(hs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > wire.MaxItemBytes || !hs[0].Truncated || len(hs[0].Letters) == 0 || len(hs[0].Letters) >= 30 {
		t.Fatalf("history of %d bytes (item limit %d), truncated %v, %d letters", len(raw), wire.MaxItemBytes, hs[0].Truncated, len(hs[0].Letters))
	}
	if got := hs[0].Letters[0].ID; got != "m-A1-029" {
		t.Errorf("newest letter kept is %s, want m-A1-029", got)
	}
}

// A letter read on one terminal is read on the inmate's others; a terminal may not mark
// another inmate's letter read.
func TestMessageReadFollowsThePerson(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	kiosk1 := e.enroll(wire.ModeKiosk, "")
	kiosk2 := e.enroll(wire.ModeKiosk, "")
	tablet := e.enroll(wire.ModeTablet, "A1")
	otherTablet := e.enroll(wire.ModeTablet, "A2")
	k1 := kiosk1.connect(t, 0)
	k1.batch(letter(kiosk1, "A1", 0, "my tooth"))
	if _, err := e.r.ApproveOutbound("m-A1-000"); err != nil {
		t.Fatal(err)
	}
	ans, _, err := e.r.ReplyToRequest("m-A1-000", ReplyRequest{From: "dept-medical", Body: "Tuesday."})
	if err != nil {
		t.Fatal(err)
	}
	reads := func(id string) []string {
		items, _ := downCount(t, e.r, id)
		var out []string
		for _, it := range items {
			if it.Kind == wire.DownMessageRead {
				out = append(out, decodeAs[wire.MessageRead](t, it.Body).MessageID)
			}
		}
		return out
	}
	ot := otherTablet.connect(t, 0)
	if ack := ot.batch(otherTablet.item(wire.UpMessageRead, kiosk.MessageRead{MessageID: ans.ID, InmateID: "A1", At: t0})); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseNotYours {
		t.Fatalf("another inmate's tablet marking A1's letter: ack %+v", ack)
	}
	if ack := ot.batch(otherTablet.item(wire.UpMessageRead, kiosk.MessageRead{MessageID: ans.ID, InmateID: "A2", At: t0})); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseNotYours {
		t.Fatalf("A2's tablet naming A2 for A1's letter: ack %+v", ack)
	}
	k1.batch(kiosk1.item(wire.UpMessageRead, kiosk.MessageRead{MessageID: ans.ID, InmateID: "A1", At: t0}))
	k1.batch(kiosk1.item(wire.UpMessageRead, kiosk.MessageRead{MessageID: ans.ID, InmateID: "A1", At: t0.Add(time.Minute)}))
	for id, want := range map[string]int{tablet.id: 1, kiosk2.id: 1, kiosk1.id: 0, otherTablet.id: 0} {
		if got := reads(id); len(got) != want {
			t.Errorf("terminal %s got message_read %v, want %d", id, got, want)
		}
	}
}

// A relay file of schema 4 (letters not yet listed by inmate) is migrated: a session started
// after the upgrade brings the letters stored before it.
func TestSchema4LettersIndexedForHistory(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(letter(k, "A1", 0, "before the upgrade"), letter(k, "A2", 0, "Bo's"))
	c.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := flattenLayout(tx); err != nil { // schema 4 kept by_inmate flat
			return err
		}
		b := tx.Bucket([]byte(bByInmate))
		var keys [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if strings.Contains(string(k), "/m/") {
				keys = append(keys, k)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(keys) != 2 {
			t.Fatalf("%d letters indexed, want 2", len(keys))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(4))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	c = k.connect(t, 0)
	defer c.c.Close(websocket.StatusNormalClosure, "")
	c.batch(k.item(wire.UpAudit, sessionStarted("A1", "s-1")))
	hs := histories(t, e.r, k.id)
	if len(hs) != 1 || len(hs[0].Letters) != 1 || hs[0].Letters[0].Body != "before the upgrade" {
		t.Fatalf("history after the upgrade = %+v", hs)
	}
}

// A tablet enrolled (or wiped) after its inmate wrote on kiosks gets every letter of its
// inmate in its snapshot, and none of another inmate's.
func TestTabletSnapshotHoldsItsInmatesLetters(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(letter(k, "A1", 0, "first"), letter(k, "A1", 1, "second"), letter(k, "A2", 0, "Bo's"))
	tablet := e.enroll(wire.ModeTablet, "A1")
	items, _ := downCount(t, e.r, tablet.id)
	var got []string
	for _, it := range items {
		if it.Kind == wire.DownSentMessage {
			m := decodeAs[kiosk.Message](t, it.Body)
			got = append(got, m.InmateID+":"+m.Body+":"+m.State)
		}
	}
	if want := []string{"A1:first:held", "A1:second:held"}; !equalStrings(got, want) {
		t.Fatalf("tablet snapshot letters = %q, want %q", got, want)
	}
}

// A kiosk that reports session after session gets at most maxHistoriesPerHour histories an
// hour: each is up to wire.MaxHistoryBytes, and a hostile kiosk must not make the relay write
// that much per small audit event it sends.
func TestHistoriesPerKioskBounded(t *testing.T) {
	e := newEnv(t)
	e.seed()
	holdRequests(t, e)
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(letter(k, "A1", 0, "a letter"))
	var starts []wire.Item
	for n := range maxHistoriesPerHour + 10 {
		starts = append(starts, k.item(wire.UpAudit, sessionStarted("A1", fmt.Sprintf("s-%d", n))))
	}
	c.batch(starts...)
	if got := len(histories(t, e.r, k.id)); got != maxHistoriesPerHour {
		t.Fatalf("%d histories in an hour, want %d", got, maxHistoriesPerHour)
	}
	if !strings.Contains(e.logText(), "no history for session s-") {
		t.Error("the refused histories are not logged")
	}
	e.clock.Advance(time.Hour)
	c.batch(k.item(wire.UpAudit, sessionStarted("A1", "s-next-hour")))
	if got := len(histories(t, e.r, k.id)); got != maxHistoriesPerHour+1 {
		t.Fatalf("%d histories after an hour, want %d", got, maxHistoriesPerHour+1)
	}
}

// A held facility's kiosk starting a session gets its history from the holder, which counts
// it in the kiosk's own record: the count was the state's (meta) until schema 27, which a held
// transaction may not write, and the kiosk's batch failed every time it was sent. Nothing of
// north's moves in the kv state.
func TestAHeldFacilitysKioskGetsItsHistory(t *testing.T) {
	var k *term
	e, _ := heldNorth(t, func(e *env) {
		holdRequests(t, e)
		k = e.enroll(wire.ModeKiosk, "")
	})
	c := k.connect(t, 0)
	wrote := secondWrites(t, e, "north", func() {
		if ack := c.batch(letter(k, "A1", 0, "a letter")); len(ack.Rejected) != 0 {
			t.Fatalf("the letter: ack %+v", ack)
		}
		start := k.item(wire.UpAudit, sessionStarted("A1", "s-held"))
		if ack := c.batch(start); ack.Seq != start.Seq || len(ack.Rejected) != 0 {
			t.Fatalf("the session's start: ack %+v", ack)
		}
		h := decodeAs[wire.History](t, c.waitDown(wire.DownHistory, nil).Body)
		if h.SessionID != "s-held" || len(h.Letters) != 1 || h.Letters[0].Body != "a letter" {
			t.Fatalf("history %+v", h)
		}
	})
	noSecondWrites(t, wrote)
}

// A store of schema 26 gets the history_rate root: its kiosks' counts start again.
func TestSchema26GetsTheHistoryRateRoot(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := tx.DeleteBucket([]byte(bHistoryRate)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(26))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	c := k.connect(t, 0)
	holdRequests(t, e)
	c.batch(letter(k, "A1", 0, "a letter"))
	if ack := c.batch(k.item(wire.UpAudit, sessionStarted("A1", "s-1"))); len(ack.Rejected) != 0 {
		t.Fatalf("ack %+v", ack)
	}
	if got := len(histories(t, e.r, k.id)); got != 1 {
		t.Fatalf("%d histories after the migration, want 1", got)
	}
}
