package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// invitedContact asks for a contact on the kiosk, has staff approve it, and waits until the
// kiosk shows the invitation sent. It returns the contact id.
func invitedContact(t *testing.T, rl *relayEnv, tm *terminal, inmate, name, email string) string {
	t.Helper()
	c, err := tm.term.AddContact(inmate, name, email)
	if err != nil {
		t.Fatalf("add contact: %v", err)
	}
	testwait.UntilSaw(t, "the contact request on the relay", func() (bool, string) {
		cs, err := rl.r.Contacts(kiosk.ContactPending, inmate)
		for _, rc := range cs {
			if rc.ID == c.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(cs, err)
	})
	rl.admin("POST", "/admin/v1/contacts/"+c.ID+"/approve", nil, nil)
	waitInvite(t, tm, inmate, c.ID, kiosk.InviteInvited)
	return c.ID
}

func waitInvite(t *testing.T, tm *terminal, inmate, id, invite string) kiosk.Contact {
	t.Helper()
	var got kiosk.Contact
	testwait.UntilSaw(t, "the contact "+invite+" on the kiosk", func() (bool, string) {
		cs, err := tm.term.Contacts(inmate)
		for _, c := range cs {
			if c.ID == id {
				got = c
				return c.State == kiosk.ContactApproved && c.Invite == invite, fmt.Sprintf("%+v", c)
			}
		}
		return false, fmt.Sprint(cs, err)
	})
	return got
}

// TestInvitationAcceptedThenMessageDelivered: staff approve Mom; until she answers the kiosk
// will not let Ana write to her; she accepts on the family page over HTTP, and Ana's letter
// goes through the relay and comes back delivered; Mom's answer lands in Ana's inbox.
func TestInvitationAcceptedThenMessageDelivered(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	id := invitedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
	if _, err := tm.term.Send("A1", id, "hi", "before she answers"); kiosk.ReasonOf(err) != kiosk.ReasonContactNotAccepted {
		t.Fatalf("send before the invitation is accepted: %v", err)
	}

	st, page := familyAnswer(t, rl, spooledCode(t, rl.spool(), id), relay.AnswerAccept)
	if st != http.StatusOK || !strings.Contains(page, "You accepted") {
		t.Fatalf("accept on the family page: %d\n%s", st, page)
	}
	waitInvite(t, tm, "A1", id, kiosk.InviteAccepted)
	m, err := tm.term.Send("A1", id, "hi", "hello Mom")
	if err != nil {
		t.Fatalf("send after acceptance: %v", err)
	}
	tm.waitSynced()
	testwait.UntilSaw(t, "the letter delivered", func() (bool, string) {
		sent, err := tm.term.Sent("A1")
		for _, s := range sent {
			if s.ID == m.ID {
				return s.State == kiosk.MsgDelivered, s.State
			}
		}
		return false, fmt.Sprint(sent, err)
	})
	var in kiosk.Message
	rl.admin("POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "mom@example.org", "body": "Hello Ana"}, &in)
	testwait.UntilSaw(t, "Mom's letter in Ana's inbox", func() (bool, string) {
		box, err := tm.term.Inbox("A1")
		for _, x := range box {
			if x.ID == in.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(box, err)
	})
}

// TestInvitationDeclinedThenSendingRefused: Dad declines on the family page; the kiosk shows
// it, does not offer him as a recipient, refuses a letter to him with words Ana can read, and
// a letter the kiosk queued while it still thought him invited is refused by the relay with
// the reason contact_not_accepted, which the kiosk shows as a rejection in plain words.
func TestInvitationDeclinedThenSendingRefused(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	id := invitedContact(t, rl, tm, "A1", "Dad", "dad@example.org")

	st, page := familyAnswer(t, rl, spooledCode(t, rl.spool(), id), relay.AnswerDecline)
	if st != http.StatusOK || !strings.Contains(page, "You declined") {
		t.Fatalf("decline on the family page: %d\n%s", st, page)
	}
	c := waitInvite(t, tm, "A1", id, kiosk.InviteDeclined)
	if kiosk.ContactMayWrite(c) || kiosk.ContactLive(c, time.Now()) {
		t.Fatalf("a declined contact %+v may be written to or holds a place", c)
	}
	rs, err := tm.term.Recipients("A1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == id {
			t.Fatalf("Dad is still offered as a recipient: %+v", rs)
		}
	}
	_, err = tm.term.Send("A1", id, "hi", "hello Dad")
	if kiosk.ReasonOf(err) != kiosk.ReasonContactNotAccepted || !strings.Contains(err.Error(), "has not accepted the invitation") {
		t.Fatalf("send to a contact who declined: %v", err)
	}
	// Inbound from him is refused too.
	if st, body := rl.call("POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "dad@example.org", "body": "hi"}); st != http.StatusConflict ||
		!strings.Contains(body, "has not accepted the invitation") {
		t.Fatalf("inbound from a contact who declined: %d %s", st, body)
	}
}

// TestRefundReachesTheKioskStatement: a deposit is refunded in part through the admin API,
// exactly once however often the call is retried; the kiosk's balance falls by it and its
// itemised statement shows the refund; a refund larger than the balance is refused, and a
// kiosk enrolled afterwards gets the refund in its snapshot.
func TestRefundReachesTheKioskStatement(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	before, err := tm.term.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	var rf relay.Refund
	for range 2 { // a retry of the same call
		rl.admin("POST", "/admin/v1/refunds", map[string]any{"ref": "rf-1", "deposit_ref": "seed-A1", "cents": 12000, "reason": "released"}, &rf)
	}
	if rf.InmateID != "A1" || rf.Cents != 12000 {
		t.Fatalf("refund = %+v", rf)
	}
	testwait.UntilSaw(t, "the refund on the kiosk", func() (bool, string) {
		b, err := tm.term.Balance("A1")
		return err == nil && b == before-12000, fmt.Sprint(b, err)
	})
	lines, err := tm.term.Statement("A1")
	if err != nil {
		t.Fatal(err)
	}
	refunds := 0
	for _, l := range lines {
		if l.Kind == kiosk.LineRefund {
			refunds++
			if l.Cents != -12000 || l.Ref != "rf-1" || l.DepositRef != "seed-A1" || l.Balance != before-12000 {
				t.Fatalf("refund line = %+v", l)
			}
		}
	}
	if refunds != 1 || lines[0].Kind != kiosk.LineRefund {
		t.Fatalf("statement = %+v; want one refund line, newest first", lines)
	}
	// More than is left of the deposit, and more than the balance: refused, nothing moves.
	if st, body := rl.call("POST", "/admin/v1/refunds", map[string]any{"ref": "rf-2", "deposit_ref": "seed-A1", "cents": 40000}); st != http.StatusConflict ||
		!strings.Contains(body, "cents") {
		t.Fatalf("refund past the deposit: %d %s", st, body)
	}
	if b, _ := rl.r.Balance("A1"); b.BalanceCents != 50000-12000 || b.Refunds != 12000 {
		t.Fatalf("relay balance = %+v", b)
	}
	// A kiosk enrolled after the refund starts with it.
	tm2 := openTerminal(t, "", kiosk.StoreOptions{})
	tm2.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm2.start()
	testwait.UntilSaw(t, "the refund on a new kiosk", func() (bool, string) {
		b, err := tm2.term.Balance("A1")
		return err == nil && b == 50000-12000, fmt.Sprint(b, err)
	})
}

// TestBlockedWhileOfflineLetterRefused: Mom accepted Ana's invitation; later, answering Bo's,
// she blocks everyone at the facility. Ana's kiosk, offline meanwhile, still thinks it may
// write to her and queues a letter: when it syncs, the relay refuses it (contact_not_accepted),
// the kiosk marks it rejected with that reason and shows Mom blocked.
func TestBlockedWhileOfflineLetterRefused(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	ana := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tab.start()
	testwait.UntilSaw(t, "Bo and his money on the second kiosk", func() (bool, string) {
		b, err := tab.term.Balance("A2")
		return err == nil && b == 50000, fmt.Sprint(b, err)
	})
	tab.login("B2", "2345")
	bo := invitedContact(t, rl, tab, "A2", "Mom", "mom@example.org")

	tm.stopSync()
	m, err := tm.term.Send("A1", ana, "hi", "written offline")
	if err != nil {
		t.Fatalf("send while offline: %v", err)
	}
	if st, page := familyAnswer(t, rl, spooledCode(t, rl.spool(), bo), relay.AnswerBlockFacility); st != http.StatusOK {
		t.Fatalf("block the facility: %d\n%s", st, page)
	}
	tm.start()
	testwait.UntilSaw(t, "the offline letter rejected", func() (bool, string) {
		sent, err := tm.term.Sent("A1")
		for _, s := range sent {
			if s.ID == m.ID {
				return s.State == kiosk.MsgRejected && s.Reason == wire.RefuseContactNotAccepted, fmt.Sprintf("%+v", s)
			}
		}
		return false, fmt.Sprint(sent, err)
	})
	waitInvite(t, tm, "A1", ana, kiosk.InviteBlocked)
}
