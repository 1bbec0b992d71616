package relay

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// statusesFor lists the message_status and sent_message items queued for a terminal as
// "message/state".
func statusesFor(t *testing.T, r *Relay, id string) []string {
	t.Helper()
	items, _ := downCount(t, r, id)
	var out []string
	for _, it := range items {
		switch it.Kind {
		case wire.DownMessageStatus:
			st := decodeAs[wire.MessageStatus](t, it.Body)
			out = append(out, st.MessageID+"/"+st.State)
		case wire.DownSentMessage: // a tablet gets a letter written elsewhere whole, with its state
			m := decodeAs[kiosk.Message](t, it.Body)
			out = append(out, m.ID+"/"+m.State)
		}
	}
	return out
}

// A letter's status (held when it arrives, then the review) reaches the kiosk that sent it and
// the inmate's tablet, not the facility's other kiosks nor another inmate's tablet; after the
// sending kiosk enrolled again with the same key and store, the review reaches its successor.
func TestMessageStatusGoesToTheSenderAndTheInmatesTablet(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.letterContact("A1", "pal")
	sender := e.enroll(wire.ModeKiosk, "")
	other := e.enroll(wire.ModeKiosk, "")
	tablet := e.enroll(wire.ModeTablet, "A1")
	otherTablet := e.enroll(wire.ModeTablet, "A2")
	c := sender.connect(t, 0)
	msg := func(id string) wire.Item {
		return sender.item(wire.UpMessage, kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "my tooth"})
	}
	if ack := c.batch(msg("m1"), msg("m2")); ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	if _, err := e.r.ApproveOutbound("m1"); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		sender.id:      {"m1/held", "m2/held", "m1/delivered"},
		tablet.id:      {"m1/held", "m2/held", "m1/delivered"},
		other.id:       nil,
		otherTablet.id: nil,
	}
	for id, w := range want {
		if got := statusesFor(t, e.r, id); !equalStrings(got, w) {
			t.Errorf("terminal %s got statuses %q, want %q", id, got, w)
		}
	}

	// The sending kiosk's store enrolls again (same key): the review of m2 goes to the new id.
	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
	if err != nil {
		t.Fatal(err)
	}
	raw, status := e.postEnroll(en.Code, sender.priv)
	if status != http.StatusOK {
		t.Fatalf("enroll again: %d %s", status, raw)
	}
	var er wire.EnrollResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		t.Fatal(err)
	}
	before := statusesFor(t, e.r, er.TerminalID) // its snapshot
	if _, err := e.r.RejectOutbound("m2", "content_policy"); err != nil {
		t.Fatal(err)
	}
	if got := statusesFor(t, e.r, er.TerminalID); !equalStrings(got, append(before, "m2/rejected")) {
		t.Errorf("the successor of the sending kiosk got %q, want %q", got, append(before, "m2/rejected"))
	}
	if got := statusesFor(t, e.r, other.id); len(got) != 0 {
		t.Errorf("another kiosk got %q", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A terminal connecting costs the store no write transaction for what it says: its last seen,
// software and queue length are shown at once from memory and written with its first batch,
// or when the connection ends. On a store gateways share the hello claims the terminal's
// connection (owner.go), its one write.
func TestHandshakeTakesNoWriteTransaction(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	k.waiting = 9
	want := uint64(0)
	if e.cfg.Store != nil {
		want = 1 // the owner claim
	}
	before := e.r.writeTxs.Load()
	c := k.connect(t, 0)
	if n := e.r.writeTxs.Load() - before; n != want {
		t.Fatalf("connecting took %d write transactions, want %d", n, want)
	}
	if ti := e.terminalInfo(k.id); !ti.Connected || ti.LastSeen.IsZero() || ti.Software != "test" || ti.ItemsWaiting != 9 {
		t.Fatalf("while connected: %+v", ti)
	}
	// A device status in the first batch comes after the hello: its queue length stands.
	c.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 3}))
	c.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the terminal is gone", func() bool { return !e.r.hub.connected(k.id) })
	if ti := e.terminalInfo(k.id); ti.Connected || ti.LastSeen.IsZero() || ti.Software != "test" || ti.ItemsWaiting != 3 {
		t.Fatalf("after the connection: %+v", ti)
	}
	// Connected and gone without a batch: the hello is written when the connection ends.
	k.waiting = 5
	c = k.connect(t, 0)
	c.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the terminal is gone", func() bool { return !e.r.hub.connected(k.id) })
	e.restart()
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 5 {
		t.Fatalf("after a connection without batches and a restart: %+v", ti)
	}
}
