package ui

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
)

// TestDepartmentReplyThreadedInInbox: Maria asks Medical about her knee; Medical's answer
// comes in the inbox under her request, not as a letter from nowhere, and opening it shows
// the answer with what she asked.
func TestDepartmentReplyThreadedInInbox(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("Medical (department)")
	test.Type(h.entry("Type your message here"), "My knee hurts when I climb stairs.")
	h.tap("Send")
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	if len(sent) != 1 {
		t.Fatalf("sent = %+v", sent)
	}
	h.advance(time.Minute)
	_, err = h.term.DeliverInbound(kiosk.Message{ID: "ans-1", InmateID: mariaID, Peer: "dept-medical", PeerName: "Medical",
		Body: "Sick call Tuesday 9:00. Bring your ID.", ReplyTo: sent[0].ID, CreatedAt: h.clk.Now()})
	must(t, err)
	h.deliver("ltr-1", "c-ana", "Ana Ruiz", "", "The garden is green.")
	h.tap("Back")
	h.tap("Inbox (2)")
	h.mustSee("Your request to Medical, sent 2025-11-25 10:00", "My knee hurts when I climb stairs.",
		"Answer from Medical", "Sick call Tuesday 9:00. Bring your ID.", "From: Ana Ruiz")
	// Not threaded: an unrelated answer shows without any request above it.
	all := h.screenText()
	req, ans := strings.Index(all, "Your request to Medical"), strings.Index(all, "Answer from Medical")
	if !(req >= 0 && req < ans) {
		t.Fatalf("the answer is not under the request; screen shows:\n%s", all)
	}
	h.tapText("Sick call Tuesday")
	h.mustSee("Answer from Medical", "Sick call Tuesday 9:00. Bring your ID.",
		"Your request to Medical, sent 2025-11-25 10:00", "My knee hurts when I climb stairs.")
	if n := h.term.Unread(mariaID); n != 1 {
		t.Errorf("unread after reading the answer = %d, want 1 (Ana's letter)", n)
	}
}

// TestAnswerWithoutItsRequest: an answer to a request this terminal does not hold (written
// on another kiosk, history not here) still says it is an answer.
func TestAnswerWithoutItsRequest(t *testing.T) {
	h := newHarness(t)
	h.login()
	_, err := h.term.DeliverInbound(kiosk.Message{ID: "ans-2", InmateID: mariaID, Peer: "dept-medical", PeerName: "Medical",
		Body: "Your glasses are ready.", ReplyTo: "req-elsewhere", CreatedAt: h.clk.Now()})
	must(t, err)
	h.settle()
	h.tap("Inbox (1)")
	h.mustSee("Answer from Medical", "An answer to a request you wrote", "Your glasses are ready.")
	h.mustNotSee("Your request to")
}

// TestSentLetterOpensInFull: a long sent letter is cut in the list and read whole when opened.
func TestSentLetterOpensInFull(t *testing.T) {
	h := newHarness(t)
	h.login()
	long := "Dear Medical, " + strings.Repeat("my knee still hurts and ", 8) + "THE END"
	_, err := h.term.Send(mariaID, "dept-medical", "Knee", long)
	must(t, err)
	h.settle()
	h.tap("Sent")
	h.mustNotSee("THE END")
	h.tapText("Dear Medical")
	h.mustSee("To: Medical", "Written 2025-11-25 10:00", "Knee", "THE END")
}

// TestTabletCurfewLiftedBySync: a tablet showing the curfew goes back to its PIN pad when a
// policy without the curfew arrives by sync, before the curfew would have ended, with no
// restart and no tap.
func TestTabletCurfewLiftedBySync(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.tablet = true
		s.policy = func(p *kiosk.Policy) {
			p.Curfew = []kiosk.CurfewWindow{{Weekday: time.Tuesday, Start: "10:05", End: "10:30"}}
		}
	})
	h.mustSee("Enter your PIN to start")
	h.advance(6 * time.Minute)
	h.mustSee("The kiosks are closed for curfew until 10:30.")
	p := h.term.Policy()
	p.Curfew = nil
	h.down(kiosk.DownPolicy, p)
	h.mustNotSee("curfew")
	h.mustSee("Enter your PIN to start")
	h.typePIN(mariaPIN, "OK")
	h.mustSee("Monitoring notice")
}

// TestKioskSentSaysHistoryUnavailable: on a shared kiosk that is offline before the letters
// Maria wrote on other terminals came for her session, Sent shows what the kiosk holds and
// says the rest cannot be shown; when they come they are listed, and after she logs out they
// are gone.
func TestKioskSentSaysHistoryUnavailable(t *testing.T) {
	h := newHarness(t)
	h.login()
	_, err := h.term.Send(mariaID, "dept-medical", "", "Written at this kiosk.")
	must(t, err)
	h.settle()
	h.tap("Sent")
	h.mustSee("Written at this kiosk.")
	h.mustNotSee("can't be shown") // online: the history is on its way
	h.k.SetLinkStatus(false)
	h.settle()
	h.mustSee("Written at this kiosk.", "Letters you wrote on other terminals can't be shown right now.")
	info, _ := h.term.Active()
	h.down(kiosk.DownHistory, kiosk.History{InmateID: mariaID, SessionID: info.SessionID, Letters: []kiosk.Message{{
		ID: "tab-1", InmateID: mariaID, Box: kiosk.BoxOutbox, Peer: "dept-medical", PeerName: "Medical",
		Body: "Written on my tablet.", State: kiosk.MsgDelivered, CreatedAt: start.Add(-time.Hour)}}})
	h.mustSee("Written at this kiosk.", "Written on my tablet.")
	h.mustNotSee("can't be shown")
	h.tap("Back")
	h.tap("Log out")
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	if len(sent) != 1 || sent[0].Body != "Written at this kiosk." {
		t.Fatalf("after logout the kiosk holds %+v", sent)
	}
}

// TestTabletSentNeedsNoFetch: a tablet holds its person's letters and never says any are
// missing; a letter written on a kiosk that came by sync opens in full.
func TestTabletSentNeedsNoFetch(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.tablet = true })
	h.down(kiosk.DownSentMessage, kiosk.Message{ID: "k-1", InmateID: mariaID, Box: kiosk.BoxOutbox, Peer: "dept-medical",
		PeerName: "Medical", Body: "Written at the kiosk in unit B.", State: kiosk.MsgHeld, CreatedAt: start})
	h.typePIN(mariaPIN, "OK")
	h.tap("I accept")
	h.tap("Sent")
	h.mustSee("Written at the kiosk in unit B.", "Held for review")
	h.mustNotSee("can't be shown")
	h.tapText("Written at the kiosk")
	h.mustSee("To: Medical", "Written at the kiosk in unit B.")
}

// TestAnswerThreadedOnceHistoryComes: Maria asked Medical from her tablet; on a kiosk the
// answer first stands alone, and once her session's history brings the request it is shown
// under it.
func TestAnswerThreadedOnceHistoryComes(t *testing.T) {
	h := newHarness(t)
	h.login()
	_, err := h.term.DeliverInbound(kiosk.Message{ID: "ans-3", InmateID: mariaID, Peer: "dept-medical", PeerName: "Medical",
		Body: "Your glasses are ready.", ReplyTo: "tab-req", CreatedAt: h.clk.Now()})
	must(t, err)
	h.settle()
	h.tap("Inbox (1)")
	h.mustSee("An answer to a request you wrote", "Your glasses are ready.")
	info, _ := h.term.Active()
	h.down(kiosk.DownHistory, kiosk.History{InmateID: mariaID, SessionID: info.SessionID, Letters: []kiosk.Message{{
		ID: "tab-req", InmateID: mariaID, Box: kiosk.BoxOutbox, Peer: "dept-medical", PeerName: "Medical",
		Body: "Are my glasses ready?", State: kiosk.MsgDelivered, CreatedAt: start.Add(-24 * time.Hour)}}})
	h.mustSee("Your request to Medical, sent 2025-11-24 10:00", "Are my glasses ready?", "Answer from Medical", "Your glasses are ready.")
	h.mustNotSee("An answer to a request you wrote")
}
