package ui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// A facility that prices letters per message: the Write screen shows the stamp before Send,
// Send takes it from the balance, a request to staff says it is free, a stamp past the offline
// limit is refused in words about the stamp, and a rejected letter says its stamp came back.
func TestWriteShowsStampPriceAndRejectedLetterSaysRefunded(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) {
			p.Pricing, p.StampPrice, p.OfflineSpendCap = kiosk.PricingPerMessage, 25, 30
		}
	})
	h.login()
	h.mustSee("Balance: $20.00")
	h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)

	h.tap("Write")
	h.tap("Medical (department)")
	h.mustSee("Free: letters to staff departments and PREA reports cost no stamp.")
	h.mustNotSee("costs 1 stamp")
	h.tap("Back")

	h.tap("Write")
	h.tap("Ana Ruiz <ana@example.com>")
	h.mustSee("This letter costs 1 stamp: $0.25.")
	test.Type(h.entry("Type your message here"), "Hola Ana")
	h.tap("Send")
	h.mustSee("Your message to Ana Ruiz is on its way.")
	h.tap("Back")
	h.mustSee("Balance: $19.75")

	// A second stamp would pass the offline limit (30¢): refused, nothing taken.
	h.tap("Write")
	h.tap("Ana Ruiz <ana@example.com>")
	test.Type(h.entry("Type your message here"), "Otra carta")
	h.tap("Send")
	h.mustSee("the stamp ($0.25) would pass the offline spending limit")
	h.tap("Back")
	h.mustSee("Balance: $19.75")

	// Staff reject the first letter; the relay refunds its stamp.
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	if len(sent) != 1 {
		t.Fatalf("sent %d letters, want 1", len(sent))
	}
	m := sent[0]
	must(t, h.term.SetMessageState(m.ID, kiosk.MsgRejected, "content_policy"))
	cr, _ := json.Marshal(kiosk.Credit{RecordID: vocab.StampRecordID(m.ID), InmateID: mariaID, Cents: 25,
		Reason: kiosk.CreditStampRejected, MessageID: m.ID, At: start})
	if refused, err := h.term.ApplyDownlink(1, "remote_credit", cr); err != nil || refused != "" {
		t.Fatalf("refund: %q %v", refused, err)
	}
	h.advance(time.Second) // the next tick reads the balance
	h.mustSee("Balance: $20.00")
	h.tap("Sent")
	h.mustSee("The stamp ($0.25) was refunded to your balance.")

	// The statement itemises the stamp and its refund (from the relay, not another kiosk).
	h.tap("Back")
	h.tap("Usage")
	h.mustSee("Stamp on a letter", "Stamp refunded: the letter was rejected by staff")
	h.mustNotSee("Minute 1 refunded", "(other kiosk)")
}

// A letter the relay rejected because its stamp never came (or came at the wrong price) reads
// as words about the stamp on the Sent screen, in each language, never as a staff note with
// the raw code.
func TestSentSaysALetterWentUnpaid(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.tap("Write")
	h.tap("Ana Ruiz <ana@example.com>")
	test.Type(h.entry("Type your message here"), "Hola Ana")
	h.tap("Send")
	h.mustSee("Your message to Ana Ruiz is on its way.")
	h.tap("Back")
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	if len(sent) != 1 {
		t.Fatalf("sent %d letters, want 1", len(sent))
	}
	must(t, h.term.SetMessageState(sent[0].ID, kiosk.MsgRejected, "stamp_missing"))
	h.tap("Sent")
	h.mustSee("Rejected: its stamp did not reach the facility with it, so it was not delivered.")
	h.mustNotSee("stamp_missing", "Rejected by staff")

	cat := i18n.MustLoad()
	for _, lang := range cat.Languages() {
		w := words{Lang: cat.For(lang), loc: time.UTC, now: start}
		for _, code := range []string{"stamp_missing", "stamp_price", "stamp_no_letter"} {
			if got := w.rejection(code); got != w.T("reject."+code) || strings.Contains(got, code) {
				t.Fatalf("%s: %s reads %q", lang, code, got)
			}
		}
	}
}
