package ui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
)

// slowDisk is the real terminal whose draft saves wait until the test lets them through,
// as a write to a slow or busy disk would.
type slowDisk struct {
	*kiosk.Terminal
	gate chan struct{}
}

func (s *slowDisk) SaveDraft(d kiosk.Draft) error {
	<-s.gate
	return s.Terminal.SaveDraft(d)
}

func TestScreenKeepsWorkingWhileTheDiskIsSlow(t *testing.T) {
	gate := make(chan struct{})
	h := newHarness(t, func(s *setup) {
		s.wrap = func(term *kiosk.Terminal) Domain { return &slowDisk{Terminal: term, gate: gate} }
	})
	h.login()
	h.tap("Write")
	h.tap("Chaplain (department)")
	body := h.entry("Type your message here")
	test.Type(body, "A") // starts a save, which now hangs on the disk
	h.drain()
	if h.k.work.busy() == 0 {
		t.Fatal("no save started")
	}
	// The UI goroutine is free: typing and the countdown go on while the save waits.
	test.Type(body, "men")
	h.drain()
	h.mustSee("12,996 characters left of 13,000", "Draft not saved yet")
	test.Tap(h.button("Back"))
	h.drain()
	h.mustSee("Hello, Maria Gonzalez")
	close(gate)
	h.settle()
	d, _, err := h.term.Draft(mariaID)
	must(t, err)
	if d.Body != "Amen" { // the leave-the-screen save runs after the slow one, in order
		t.Errorf("draft %q, want the whole text", d.Body)
	}
}

func TestOfflineSaysHowManyMessagesWait(t *testing.T) {
	h := newHarness(t)
	h.k.SetLinkStatus(false)
	h.settle()
	h.mustSee("Scan your badge", "Offline: new messages will be sent when the connection returns")
	h.login()
	h.mustSee("Offline: new messages will be sent when the connection returns")
	for i, text := range []string{"First", "Second"} { // sent while offline
		h.tap("Write")
		h.tap("Records (department)")
		test.Type(h.entry("Type your message here"), text)
		h.tap("Send")
		h.tap("Back")
		if i == 0 {
			h.mustSee("Offline: 1 message will be sent when the connection returns")
		}
	}
	h.mustSee("Offline: 2 messages will be sent when the connection returns")
	h.k.SetLinkStatus(true)
	h.settle()
	h.mustSee("Online: sending 2 messages")
}

func TestTechnicianLogin(t *testing.T) {
	h := newHarness(t)
	hash, _ := kiosk.HashPINWith("8642", kiosk.TestPINParams())
	must(t, h.term.UpsertTechnician(kiosk.Technician{ID: "T1", Name: "Tom Tech", Badges: []string{"TB1"}, PINHash: hash, Role: "installer"}, "test"))
	h.badge("TB1")
	h.typePIN("8642", "OK")
	h.tap("I accept")
	h.mustSee("Technician")
	h.tap("Log out")
	h.mustSee("Scan your badge")
	h.mustNotSee("Technician")
}

func TestBadgeDuringASessionIsIgnored(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.badge("SOMEONE-ELSE")
	h.mustSee("Hello, Maria Gonzalez")
	if _, ok := h.term.Active(); !ok {
		t.Error("session ended by a stray badge")
	}
}

func TestEveryInputKeepsTheSessionAlive(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("Medical (department)")
	for i := 0; i < 4; i++ { // 8 minutes of typing, never 3 idle
		h.advance(2 * time.Minute)
		h.tap("q") // the on-screen keyboard
	}
	test.Type(h.entry("Subject"), "x") // the physical keyboard
	h.advance(2 * time.Minute)
	if _, ok := h.term.Active(); !ok {
		t.Fatal("session ended for idleness while the inmate typed")
	}
	h.mustNotSee("Are you still there?")
}

func TestPREAReportNeedsNoContact(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("PREA report (free, confidential)")
	test.Type(h.entry("Type your message here"), "I need to report something.")
	h.tap("Send")
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	if len(sent) != 1 || sent[0].Peer != kiosk.PREAChannel {
		t.Fatalf("sent = %+v", sent)
	}
	// On a shared kiosk the report is not listed in Sent; its reference is what she keeps.
	h.mustSee("Sent messages", "Reference: "+kiosk.PREAReference(sent[0].ID), "You have not sent anything yet.")
	h.mustNotSee("Waiting to be sent", "I need to report")
}

func TestShowWelcomeDropsTheSession(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.k.ShowWelcome()
	h.settle()
	h.mustSee("Scan your badge")
	h.mustNotSee(mariaName)
	if h.k.sess != nil {
		t.Error("session still referenced")
	}
	if _, ok := h.term.Active(); ok {
		t.Error("the session goes on, billed, behind the welcome screen")
	}
}
