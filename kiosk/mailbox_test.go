package kiosk

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

func TestValidateMessageBody(t *testing.T) {
	// 13,000 code points of one-, two-, three- and four-byte characters.
	mixed := strings.Repeat("añ中😀", 3250)
	if utf8.RuneCountInString(mixed) != 13000 || len(mixed) != 3250*10 {
		t.Fatalf("test text is %d code points, %d bytes", utf8.RuneCountInString(mixed), len(mixed))
	}
	cases := []struct {
		name, body string
		says       string // "" means accepted
	}{
		{"plain", "Hello mom,\n\tI am fine.\n", ""},
		{"13000 multibyte", mixed, ""},
		{"13001 multibyte", mixed + "é", "message is 13001 characters; the limit is 13000 (1 too many)"},
		{"13000 emoji", strings.Repeat("😀", 13000), ""},
		{"13001 emoji", strings.Repeat("😀", 13001), "13001 characters"},
		{"bell", "Hello world\a", "character U+0007 at position 12 is not allowed"},
		{"bell after multibyte", "ñññ\a", "character U+0007 at position 4 is not allowed"},
		{"carriage return", "line\r\nline", "character U+000D at position 5"},
		{"NUL", "\x00", "character U+0000 at position 1"},
		{"escape", "text \x1b[2J", "character U+001B at position 6"},
		{"DEL", "a\x7f", "character U+007F at position 2"},
		{"C1 next line", "a\u0085b", "character U+0085 at position 2"},
		{"empty", "", "message is empty"},
		{"only spaces", " \n\t ", "message is empty"},
		{"broken UTF-8", "ok \xff\xfe", "not text (at byte 3)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateMessageBody(tc.body, 13000)
			if tc.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || KindOf(err) != KindInvalid || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error = %v, want KindInvalid saying %q", err, tc.says)
			}
		})
	}
}

func FuzzValidateMessageBody(f *testing.F) {
	for _, s := range []string{"hello", "Hello world\a", "a\r\nb", "\t\n", "", "ñ😀中", "\xff", "a\u0085", strings.Repeat("x", 40),
		"   ", " \n\t ", "x\ty\nz ~", strings.Repeat("y", 20), strings.Repeat("y", 21), "a\x7f", "a\x1f"} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, body string, max int) {
		if max < 1 || max > 100000 {
			max = 20
		}
		err := ValidateMessageBody(body, max)
		// The rule, stated the slow way.
		want := utf8.ValidString(body) && strings.TrimSpace(body) != "" && utf8.RuneCountInString(body) <= max
		for _, r := range body {
			if unicode.IsControl(r) && r != '\n' && r != '\t' {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("ValidateMessageBody(%q, %d) = %v, want accepted=%v", body, max, err, want)
		}
		if err != nil && KindOf(err) != KindInvalid {
			t.Fatalf("error %v has kind %v", err, KindOf(err))
		}
	})
}

func TestSendOnlyToApprovedContactsDepartmentsAndPREA(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	r.addInmate(t, "muted", false)
	ok := r.approved(t, "i1", "Ana", "ana@example.com")
	pending, _ := r.t.AddContact("i1", "Bob", "bob@example.com")
	declined, _ := r.t.AddContact("i1", "Cy", "cy@example.com")
	r.t.SetContactState("i1", declined.ID, ContactDeclined, "no")
	removed := r.approved(t, "i1", "Di", "di@example.com")
	r.t.RemoveContact("i1", removed.ID)
	others := r.approved(t, "i2", "Ed", "ed@example.com")
	dept := r.t.Policy().Departments[0]

	cases := []struct {
		name, inmate, peer string
		kind               Kind
		reason             Reason
	}{
		{"approved contact", "i1", ok.ID, 0, ""},
		{"department", "i1", dept.ID, 0, ""},
		{"PREA", "i1", PREAChannel, 0, ""},
		{"pending contact", "i1", pending.ID, KindRefused, ReasonContactNotApproved},
		{"declined contact", "i1", declined.ID, KindRefused, ReasonContactNotApproved},
		{"removed contact", "i1", removed.ID, KindNotFound, ""},
		{"another inmate's contact", "i1", others.ID, KindNotFound, ""},
		{"nobody", "i1", "", KindInvalid, ""},
		{"unknown inmate", "ghost", dept.ID, KindRefused, ReasonNoSession},
		{"no messaging privilege, contact", "muted", ok.ID, KindNotFound, ""},
		{"no messaging privilege, department", "muted", dept.ID, 0, ""},
		{"no messaging privilege, PREA", "muted", PREAChannel, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inmate != "ghost" {
				r.login(t, tc.inmate)
			}
			before := len(r.queued(t, ItemMessage, ItemPREA))
			m, err := r.t.Send(tc.inmate, tc.peer, "Hi", "Hello there")
			after := len(r.queued(t, ItemMessage, ItemPREA))
			if tc.kind == 0 {
				if err != nil || m.State != MsgQueued || after != before+1 {
					t.Fatalf("send = %+v, %v; queue %d -> %d", m, err, before, after)
				}
				return
			}
			wantKind(t, err, tc.kind)
			if ReasonOf(err) != tc.reason || after != before {
				t.Fatalf("error = %v, want reason %q; queue %d -> %d", err, tc.reason, before, after)
			}
		})
	}

	// Only in one's own session: i2 is logged in, so i1 cannot send.
	r.login(t, "i2")
	_, err := r.t.Send("i1", ok.ID, "", "hello")
	if ReasonOf(err) != ReasonNoSession {
		t.Fatalf("send in another's session = %v, want %s", err, ReasonNoSession)
	}
	// A muted inmate with an approved contact is refused for the privilege, not the contact.
	r.addInmate(t, "i1", false)
	r.login(t, "i1")
	_, err = r.t.Send("i1", ok.ID, "", "hello")
	if ReasonOf(err) != ReasonNoMessaging {
		t.Fatalf("send without privilege = %v, want %s", err, ReasonNoMessaging)
	}
	_, err = r.t.AddContact("i1", "Fay", "fay@example.com")
	if ReasonOf(err) != ReasonNoMessaging {
		t.Fatalf("add contact without privilege = %v, want %s", err, ReasonNoMessaging)
	}
}

func TestSendRefusesBadTextAndKeepsTheDraft(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	long := strings.Repeat("ñ", 13001)
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: c.ID, Body: long}); err != nil {
		t.Fatal(err)
	}
	_, err := r.t.Send("i1", c.ID, "", long)
	if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "13001 characters") {
		t.Fatalf("send 13001 = %v", err)
	}
	_, err = r.t.Send("i1", c.ID, "bad\nsubject", "body")
	if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "U+000A at position 4") {
		t.Fatalf("subject with newline = %v", err)
	}
	if d, ok, _ := r.t.Draft("i1"); !ok || d.Body != long {
		t.Fatalf("draft after refused send: ok=%v len=%d", ok, len(d.Body))
	}
	if sent, _ := r.t.Sent("i1"); len(sent) != 0 {
		t.Fatalf("refused sends stored %d messages", len(sent))
	}
	// Exactly the limit goes, and clears the draft.
	m, err := r.t.Send("i1", c.ID, "", long[:len(long)-len("ñ")])
	if err != nil || utf8.RuneCountInString(m.Body) != 13000 {
		t.Fatalf("send 13000 = %v", err)
	}
	if _, ok, _ := r.t.Draft("i1"); ok {
		t.Fatalf("draft still there after send")
	}
}

func TestSendStoresOnceQueuesOnceAndClearsDraft(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: c.ID, Subject: "Sunday", Body: "See you Sunday"}); err != nil {
		t.Fatal(err)
	}
	m, err := r.t.Send("i1", c.ID, "Sunday", "See you Sunday")
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(m.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("message id %q is not a UUIDv7 (%v)", m.ID, err)
	}
	if m.State != MsgQueued || m.Box != BoxOutbox || m.PeerName != "Ana" || !m.CreatedAt.Equal(mbStart) {
		t.Fatalf("sent message = %+v", m)
	}
	check := func(when string) {
		t.Helper()
		sent, err := r.t.Sent("i1")
		if err != nil || len(sent) != 1 || sent[0].ID != m.ID || sent[0].Body != "See you Sunday" {
			t.Fatalf("%s: outbox = %+v, %v; want exactly the one message", when, sent, err)
		}
		items := r.queued(t, ItemMessage)
		if len(items) != 1 {
			t.Fatalf("%s: %d message items queued, want 1", when, len(items))
		}
		var body Message
		if err := json.Unmarshal(items[0].Body, &body); err != nil || body.ID != m.ID || body.Body != m.Body || body.InmateID != "i1" {
			t.Fatalf("%s: queued body = %s", when, items[0].Body)
		}
		if _, ok, _ := r.t.Draft("i1"); ok {
			t.Fatalf("%s: draft still there", when)
		}
		if in, _ := r.t.Inbox("i1"); len(in) != 0 {
			t.Fatalf("%s: sent message shows in the inbox", when)
		}
	}
	check("after send")
	r.reopen(t)
	check("after reopen")
}

func TestMessageStatesFollowTheRelay(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	send := func() Message {
		m, err := r.t.Send("i1", c.ID, "", "hello")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	state := func(id string) Message {
		t.Helper()
		sent, _ := r.t.Sent("i1")
		for _, m := range sent {
			if m.ID == id {
				return m
			}
		}
		t.Fatalf("message %s not in Sent", id)
		return Message{}
	}
	seqOf := func(id string) uint64 {
		for _, it := range r.queued(t, ItemMessage) {
			var m Message
			json.Unmarshal(it.Body, &m)
			if m.ID == id {
				return it.Seq
			}
		}
		t.Fatalf("message %s not queued", id)
		return 0
	}

	// ack -> sent -> held -> delivered; a late "held" does not undo delivered.
	a := send()
	r.clock.Advance(time.Minute)
	if _, err := r.store.Ack(r.clock.Now(), seqOf(a.ID)); err != nil {
		t.Fatal(err)
	}
	if m := state(a.ID); m.State != MsgSent || !m.UpdatedAt.Equal(mbStart.Add(time.Minute)) {
		t.Fatalf("after ack = %+v", m)
	}
	for _, step := range []struct{ set, want string }{
		{MsgHeld, MsgHeld}, {MsgDelivered, MsgDelivered}, {MsgHeld, MsgDelivered}, {MsgSent, MsgDelivered}, {MsgRejected, MsgDelivered},
	} {
		if err := r.t.SetMessageState(a.ID, step.set, "x"); err != nil {
			t.Fatal(err)
		}
		if got := state(a.ID).State; got != step.want {
			t.Fatalf("after %s: state %s, want %s", step.set, got, step.want)
		}
	}

	// Held may arrive before the ack: the ack then does not move it back to sent.
	b := send()
	if err := r.store.db.Update(func(tx *bolt.Tx) error {
		return setMessageStateTx(tx, r.clock.Now(), b.ID, MsgHeld, "review")
	}); err != nil {
		t.Fatal(err)
	}
	r.store.Ack(r.clock.Now(), seqOf(b.ID))
	if m := state(b.ID); m.State != MsgHeld || m.Reason != "review" {
		t.Fatalf("ack after held = %+v", m)
	}
	if err := r.t.SetMessageState(b.ID, MsgRejected, "threatening content"); err != nil {
		t.Fatal(err)
	}
	if m := state(b.ID); m.State != MsgRejected || m.Reason != "threatening content" {
		t.Fatalf("rejected after review = %+v", m)
	}

	// A refusal of the item itself: rejected with the relay's reason, shown in Sent.
	c2 := send()
	if err := r.store.Reject(r.clock.Now(), seqOf(c2.ID), "recipient address bounced"); err != nil {
		t.Fatal(err)
	}
	if m := state(c2.ID); m.State != MsgRejected || m.Reason != "recipient address bounced" || m.Body != "hello" {
		t.Fatalf("after refusal = %+v", m)
	}
	if n := len(r.queued(t, ItemMessage)); n != 0 {
		t.Fatalf("%d items still queued", n)
	}

	wantKind(t, r.t.SetMessageState("no-such-id", MsgHeld, ""), KindNotFound)
	wantKind(t, r.t.SetMessageState(a.ID, MsgQueued, ""), KindInvalid)
	wantKind(t, r.t.SetMessageState(a.ID, "lost", ""), KindInvalid)
	in := Message{ID: "in-1", InmateID: "i1", Peer: c.ID, PeerName: "Ana", Body: "hi"}
	if _, err := r.t.DeliverInbound(in); err != nil {
		t.Fatal(err)
	}
	wantKind(t, r.t.SetMessageState("in-1", MsgHeld, ""), KindInvalid)
}

func TestPREAReportAlwaysOpenAndErasedAfterAck(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", false)
	p := r.t.Policy()
	p.Lockdown = true
	now := r.clock.Now().In(p.Location())
	p.Curfew = []CurfewWindow{{Weekday: now.Weekday(), Start: "00:00", End: "23:59"}}
	if err := r.t.SetPolicy(p, "tech"); err != nil {
		t.Fatal(err)
	}
	const text = "Officer X threatened me in block C"
	// No session, lockdown, curfew, no messaging privilege: the report still goes.
	m, err := r.t.SendPREA("i1", text)
	if err != nil {
		t.Fatalf("PREA during lockdown and curfew: %v", err)
	}
	anon, err := r.t.SendPREA("", "anonymous: "+text)
	if err != nil {
		t.Fatalf("anonymous PREA: %v", err)
	}
	if m.State != MsgQueued || m.Peer != PREAChannel {
		t.Fatalf("report = %+v", m)
	}
	if cs, _ := r.t.Contacts("i1"); len(cs) != 0 {
		t.Fatalf("PREA made contacts %+v", cs)
	}
	items := r.queued(t, ItemPREA)
	if len(items) != 2 || len(r.queued(t, ItemMessage)) != 0 {
		t.Fatalf("queued PREA items = %d", len(items))
	}
	_, err = r.t.SendPREA("i1", "bad \a")
	wantKind(t, err, KindInvalid)
	_, err = r.t.SendPREA("ghost", text)
	wantKind(t, err, KindNotFound)

	if _, err := r.store.Ack(r.clock.Now(), items[1].Seq); err != nil {
		t.Fatal(err)
	}
	sent, _ := r.t.Sent("i1")
	if len(sent) != 1 || sent[0].ID != m.ID || sent[0].State != MsgSent || sent[0].Body != "" {
		t.Fatalf("after ack Sent = %+v", sent)
	}
	// The text is nowhere in the store's records any more, and once the store is reopened (as
	// kioskd does at each start) nowhere in the file either: not in the pages bbolt freed.
	r.store.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(v, []byte("threatened")) {
					t.Errorf("bucket %s key %q still holds the report text", name, k)
				}
				return nil
			})
		})
	})
	r.reopen(t)
	if fileHolds(t, r.dir, "threatened") {
		t.Fatal("the acknowledged report's text is still in the bytes of the store file after reopening")
	}
	// A second ack of the same range changes nothing.
	if n, err := r.store.Ack(r.clock.Now(), items[1].Seq); err != nil || n != 0 {
		t.Fatalf("second ack = %d, %v", n, err)
	}
	_ = anon
}

func TestPREARefusedIsShownAndSendClearsOnlyItsOwnDraft(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	// A letter in progress is not thrown away by a report filed from the welcome screen.
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: c.ID, Body: "Dear Ana"}); err != nil {
		t.Fatal(err)
	}
	m, err := r.t.SendPREA("i1", "report")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok, _ := r.t.Draft("i1"); !ok || d.Body != "Dear Ana" {
		t.Fatalf("letter draft after PREA = %+v, %v", d, ok)
	}
	it := r.queued(t, ItemPREA)[0]
	if err := r.store.Reject(r.clock.Now(), it.Seq, "malformed report"); err != nil {
		t.Fatal(err)
	}
	sent, _ := r.t.Sent("i1")
	if len(sent) != 1 || sent[0].ID != m.ID || sent[0].State != MsgRejected || sent[0].Reason != "malformed report" || sent[0].Body != "report" {
		t.Fatalf("refused PREA in Sent = %+v", sent)
	}
	// A report drafted in the compose screen is cleared when it is sent.
	r.t.SaveDraft(Draft{InmateID: "i1", Peer: PREAChannel, Body: "second"})
	if _, err := r.t.SendPREA("i1", "second"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.t.DraftTo("i1", PREAChannel); ok {
		t.Fatalf("PREA draft kept after sending it")
	}
	if d, ok, _ := r.t.DraftTo("i1", c.ID); !ok || d.Body != "Dear Ana" {
		t.Fatalf("letter draft after the second PREA = %+v, %v", d, ok)
	}
}

func TestInboxDeliveryIsIdempotentWithReadState(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	deliver := func(id, inmate, body string) bool {
		t.Helper()
		r.clock.Advance(time.Second)
		ok, err := r.t.DeliverInbound(Message{ID: id, InmateID: inmate, Peer: c.ID, PeerName: "Ana", Body: body, State: "junk", Read: true})
		if err != nil {
			t.Fatalf("deliver %s: %v", id, err)
		}
		return ok
	}
	if !deliver("0001", "i1", "first") || !deliver("0002", "i1", "second") || !deliver("0003", "i2", "other") {
		t.Fatal("a new message was not delivered")
	}
	if deliver("0001", "i1", "first again") {
		t.Fatal("the same message id was delivered twice")
	}
	in, _ := r.t.Inbox("i1")
	if len(in) != 2 || in[0].ID != "0002" || in[1].ID != "0001" || in[1].Body != "first" || in[0].Read || in[0].State != "" || in[0].Box != BoxInbox {
		t.Fatalf("inbox = %+v", in)
	}
	if n := r.t.Unread("i1"); n != 2 {
		t.Fatalf("unread = %d, want 2", n)
	}
	wantKind(t, r.t.MarkRead("i2", "0001"), KindNotFound) // not theirs
	if err := r.t.MarkRead("i1", "0001"); err != nil {
		t.Fatal(err)
	}
	if err := r.t.MarkRead("i1", "0001"); err != nil {
		t.Fatal(err)
	}
	if n := r.t.Unread("i1"); n != 1 {
		t.Fatalf("unread after read = %d, want 1", n)
	}
	r.reopen(t)
	in, _ = r.t.Inbox("i1")
	if n := r.t.Unread("i1"); n != 1 || !in[1].Read {
		t.Fatalf("after reopen unread = %d, inbox %+v", n, in)
	}
	if n := r.t.Unread("i2"); n != 1 {
		t.Fatalf("i2 unread = %d", n)
	}
	if sent, _ := r.t.Sent("i1"); len(sent) != 0 {
		t.Fatalf("inbound shows in Sent: %+v", sent)
	}
	for _, bad := range []Message{{InmateID: "i1", Peer: "x"}, {ID: "a/b", InmateID: "i1", Peer: "x"}, {ID: "z", Peer: "x"}, {ID: "z", InmateID: "i1"}} {
		_, err := r.t.DeliverInbound(bad)
		wantKind(t, err, KindInvalid)
	}
}

// TestSendOnClosedStoreKeepsTheDraft forces a write error without root: the store's database
// is closed under the terminal, so the send's transaction cannot even begin.
func TestSendOnClosedStoreKeepsTheDraft(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: c.ID, Body: "typed before the fault"}); err != nil {
		t.Fatal(err)
	}
	r.store.Close()
	_, err := r.t.Send("i1", c.ID, "", "typed before the fault, and more")
	wantKind(t, err, KindIO)
	r.open(t)
	if d, ok, _ := r.t.Draft("i1"); !ok || d.Body != "typed before the fault" {
		t.Fatalf("draft after failed send = %+v, %v", d, ok)
	}
	if sent, _ := r.t.Sent("i1"); len(sent) != 0 || len(r.queued(t, ItemMessage)) != 0 {
		t.Fatalf("a failed send left %d messages", len(sent))
	}
}

// TestAnswerKeepsLinkToOwnRequest: a department's answer keeps its reply_to when it names the
// inmate's own request (or one this kiosk never held); a link to another inmate's letter or a
// malformed one is dropped, and the answer still reaches the inbox.
func TestAnswerKeepsLinkToOwnRequest(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	dept := r.t.Policy().Departments[0]
	r.login(t, "i2")
	other, err := r.t.Send("i2", dept.ID, "", "Mine too")
	if err != nil {
		t.Fatal(err)
	}
	r.login(t, "i1")
	req, err := r.t.Send("i1", dept.ID, "Tooth", "My tooth hurts")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, replyTo, want string }{
		{"a1", req.ID, req.ID},
		{"a2", "sent-from-another-kiosk", "sent-from-another-kiosk"},
		{"a3", other.ID, ""},
		{"a4", "bad/id", ""},
	} {
		if _, err := r.t.DeliverInbound(Message{ID: tc.id, InmateID: "i1", Peer: dept.ID, PeerName: dept.Name, Body: "Sick call Tuesday", ReplyTo: tc.replyTo}); err != nil {
			t.Fatalf("deliver %s: %v", tc.id, err)
		}
	}
	in, err := r.t.Inbox("i1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range in {
		got[m.ID] = m.ReplyTo
	}
	if len(got) != 4 || got["a1"] != req.ID || got["a2"] != "sent-from-another-kiosk" || got["a3"] != "" || got["a4"] != "" {
		t.Fatalf("inbox links = %v; want a1→%s, a2 kept, a3 and a4 unlinked", got, req.ID)
	}
}

// A letter's photo references are held to the shared rules on the terminal too: a letter whose
// photos are malformed (or too many) is refused whole, never stored half; a letter with good
// references keeps them.
func TestInboundPhotosHeldToTheSharedRules(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	d := strings.Repeat("ab", 32)
	good := Photo{SHA256: d, Manifest: strings.Repeat("cd", 32), Size: 5000, Type: "image/jpeg", Width: 10, Height: 10}
	letter := func(id string, ps ...Photo) Message {
		return Message{ID: id, InmateID: "i1", Peer: c.ID, PeerName: "Ana", Body: "photos", Photos: ps}
	}
	six := make([]Photo, 6)
	for i := range six {
		six[i] = good
		six[i].SHA256 = strings.Repeat(string(rune('0'+i)), 64)
	}
	bad := good
	bad.Manifest = "not a digest"
	for name, m := range map[string]Message{"malformed": letter("0001", good, bad), "six": letter("0002", six...)} {
		if _, err := r.t.DeliverInbound(m); KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "photos") {
			t.Fatalf("%s: %v, want invalid naming the photos", name, err)
		}
	}
	if ok, err := r.t.DeliverInbound(letter("0003", good)); !ok || err != nil {
		t.Fatalf("good letter: %v %v", ok, err)
	}
	in, _ := r.t.Inbox("i1")
	if len(in) != 1 || in[0].ID != "0003" || len(in[0].Photos) != 1 || in[0].Photos[0] != good {
		t.Fatalf("inbox = %+v; want only the good letter, with its photo", in)
	}
}
