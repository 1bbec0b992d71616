package kiosk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func (r *mbRig) down(tb testing.TB, kind string, body any) {
	tb.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	applied, err := r.t.DownlinkApplied()
	if err != nil {
		tb.Fatal(err)
	}
	refused, err := r.t.ApplyDownlink(applied+1, kind, raw)
	if err != nil || refused != "" {
		tb.Fatalf("apply %s: refused %q, %v", kind, refused, err)
	}
}

func elsewhere(id, inmate, body string, at time.Time) Message {
	return Message{ID: id, InmateID: inmate, Box: BoxOutbox, Peer: "dept-medical", PeerName: "Medical",
		Body: body, State: MsgDelivered, CreatedAt: at, UpdatedAt: at}
}

func sentBodies(tb testing.TB, r *mbRig, inmate string) []string {
	tb.Helper()
	ms, err := r.t.Sent(inmate)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Body)
	}
	return out
}

// TestHistoryWipedAtLogout: the letters fetched for a session are in Sent while it lasts, next
// to those written here; when the session ends they are gone from Sent and from the file, and
// the letter written here stays. A history for a session not open here is dropped.
func TestHistoryWipedAtLogout(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	r.login(t, "i1")
	info, _ := r.t.Active()
	if r.t.HistoryFetched("i1") {
		t.Fatal("history reads fetched before it came")
	}
	mine, err := r.t.Send("i1", "dept-medical", "", "Written here")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Written on the tablet: my sister's address is 12 Elm"
	r.down(t, DownHistory, History{InmateID: "i1", SessionID: "another-session",
		Letters: []Message{elsewhere("h-0", "i1", "late history", mbStart)}})
	if got := sentBodies(t, r, "i1"); len(got) != 1 {
		t.Fatalf("a history for another session was kept: %q", got)
	}
	r.down(t, DownHistory, History{InmateID: "i1", SessionID: info.SessionID, Letters: []Message{
		elsewhere("h-1", "i1", secret, mbStart.Add(-time.Hour)), {ID: mine.ID, InmateID: "i1", Peer: "dept-medical",
			Body: "Written here", State: MsgDelivered}}})
	if got := sentBodies(t, r, "i1"); len(got) != 2 || !strings.Contains(strings.Join(got, "|"), secret) {
		t.Fatalf("Sent during the session = %q", got)
	}
	if !r.t.HistoryFetched("i1") {
		t.Error("history does not read fetched")
	}
	// A copy's state may change while the session lasts; it stays a copy.
	if err := r.t.SetMessageState("h-1", MsgRejected, "content_policy"); err != nil {
		t.Fatal(err)
	}
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	if got := sentBodies(t, r, "i1"); len(got) != 1 || got[0] != "Written here" {
		t.Fatalf("Sent after logout = %q, want only the letter written here", got)
	}
	r.login(t, "i2")
	if got := sentBodies(t, r, "i1"); len(got) != 1 {
		t.Fatalf("the next person's session sees %q", got)
	}
	if r.t.HistoryFetched("i1") || r.t.HistoryFetched("i2") {
		t.Error("history reads fetched for a session it did not come for")
	}
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after the wipe: %+v %v", rep.Problems, err)
	}
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	// The text is scrubbed from the file's free pages at logout too, as a PREA report's is.
	if scrubPending(t, r.store) || fileHolds(t, r.dir, secret) {
		t.Fatal("the fetched letter's text is still in the store file after logout")
	}
}

// TestSentCopyOnTabletStays: a letter written on a kiosk comes to the tablet whole, stays
// after the session ends, and its state follows; a copy of an id already held changes nothing.
func TestSentCopyOnTabletStays(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	held := elsewhere("k-1", "i1", "Written at the kiosk", mbStart)
	held.State = MsgHeld
	r.down(t, DownSentMessage, held)
	r.down(t, DownSentMessage, elsewhere("k-1", "i1", "changed", mbStart))
	r.down(t, DownMessageStatus, MessageStatus{MessageID: "k-1", InmateID: "i1", State: MsgRejected, Reason: "content_policy", At: mbStart})
	r.login(t, "i1")
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	sent, err := r.t.Sent("i1")
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent[0].Body != "Written at the kiosk" || sent[0].State != MsgRejected {
		t.Fatalf("Sent = %+v", sent)
	}
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep.Problems, err)
	}
}

// TestReadStateFollowsThePerson: reading a letter queues message_read for the relay; a letter
// read elsewhere reads as read here, and that is not forwarded back.
func TestReadStateFollowsThePerson(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	for _, id := range []string{"in-1", "in-2"} {
		if _, err := r.t.DeliverInbound(Message{ID: id, InmateID: "i1", Peer: "dept-medical", PeerName: "Medical", Body: "Tuesday"}); err != nil {
			t.Fatal(err)
		}
	}
	r.login(t, "i1")
	if err := r.t.MarkRead("i1", "in-1"); err != nil {
		t.Fatal(err)
	}
	q := r.queued(t, ItemMessageRead)
	if len(q) != 1 || !strings.Contains(string(q[0].Body), `"message_id":"in-1"`) {
		t.Fatalf("queued reads = %+v", q)
	}
	r.down(t, DownMessageRead, MessageRead{MessageID: "in-2", InmateID: "i1", At: mbStart})
	r.down(t, DownMessageRead, MessageRead{MessageID: "in-unknown", InmateID: "i1", At: mbStart})
	if n := r.t.Unread("i1"); n != 0 {
		t.Errorf("unread = %d after a read elsewhere", n)
	}
	if q := r.queued(t, ItemMessageRead); len(q) != 1 {
		t.Errorf("a read from the relay was forwarded back: %d queued", len(q))
	}
}

// TestKioskKeepsNoSentCopy: an enrolled kiosk keeps no one's letter from elsewhere outside a
// session's history, even if the relay sends one as it sends a tablet.
func TestKioskKeepsNoSentCopy(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-1", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	r.down(t, DownSentMessage, elsewhere("k-1", "i1", "Written on the tablet", mbStart))
	if got := sentBodies(t, r, "i1"); len(got) != 0 {
		t.Fatalf("the kiosk kept %q", got)
	}
}
