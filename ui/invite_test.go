package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// TestContactInvitationStates: after staff approve a contact the relay invites them; the
// contacts screen shows each answer as it arrives by sync, in the person's words, and only an
// accepted contact can be written to.
func TestContactInvitationStates(t *testing.T) {
	h := newHarness(t)
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactPending)
	h.tap("Contacts")
	h.mustSee("Ana Ruiz", "Waiting for approval", "1 of 30 contacts")

	send := func(c kiosk.Contact) {
		t.Helper()
		h.down(kiosk.DownContact, c)
	}
	c := ana
	c.State, c.Invite, c.InviteExpires = kiosk.ContactApproved, kiosk.InviteInvited, start.Add(10*24*time.Hour)
	send(c)
	h.mustSee("Invited: waiting for their answer until 2025-12-05 10:00", "1 of 30 contacts")
	h.mustNotSee("Approved")
	if _, err := h.term.Send(mariaID, ana.ID, "hi", "hello"); kiosk.ReasonOf(err) != kiosk.ReasonContactNotAccepted {
		t.Fatalf("send to an invited contact: %v; want refused %s", err, kiosk.ReasonContactNotAccepted)
	} else if got := h.k.words("en").refusal(err); got != "This contact has not accepted your invitation, so you cannot write to them." {
		t.Fatalf("the refusal reads %q", got)
	}

	c.Invite = kiosk.InviteDeclined
	send(c)
	h.mustSee("Declined your invitation", "0 of 30 contacts")
	c.Invite = kiosk.InviteBlocked
	send(c)
	h.mustSee("Blocked: this person does not want to be contacted", "0 of 30 contacts")
	h.tap("Back")
	h.tap("Write")
	h.mustNotSee("Ana Ruiz <ana@example.com>")
	h.tap("Back")

	c.Invite, c.InviteExpires = kiosk.InviteAccepted, time.Time{}
	send(c)
	h.tap("Contacts")
	h.mustSee("Accepted: you can write to each other", "1 of 30 contacts")
	if _, err := h.term.Send(mariaID, ana.ID, "hi", "hello"); err != nil {
		t.Fatalf("send to an accepted contact: %v", err)
	}
}

// An invitation past its expiry shows as expired with no word from the relay: the terminal's
// clock decides what it shows; the relay refuses the code by its own clock.
func TestContactInvitationExpiredShows(t *testing.T) {
	h := newHarness(t)
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactPending)
	c := ana
	c.State, c.Invite, c.InviteExpires = kiosk.ContactApproved, kiosk.InviteInvited, start.Add(-time.Minute)
	h.down(kiosk.DownContact, c)
	h.tap("Contacts")
	h.mustSee("Invitation expired. An officer can send it again.", "0 of 30 contacts")
}

// Every invitation state has its own words in English and Spanish, never a raw code.
func TestContactInvitationWords(t *testing.T) {
	h := newHarness(t)
	want := map[string][2]string{
		kiosk.InviteInvited:  {"Invited: waiting for their answer until", "Invitado: esperando su respuesta hasta el"},
		kiosk.InviteAccepted: {"Accepted: you can write to each other", "Aceptado: pueden escribirse"},
		kiosk.InviteDeclined: {"Declined your invitation", "Rechazó su invitación"},
		kiosk.InviteBlocked:  {"Blocked: this person does not want to be contacted", "Bloqueado: esta persona no quiere ser contactada"},
		kiosk.InviteExpired:  {"Invitation expired.", "La invitación caducó."},
	}
	for state, texts := range want {
		c := kiosk.Contact{State: kiosk.ContactApproved, Invite: state, InviteExpires: start.Add(time.Hour)}
		if state == kiosk.InviteExpired {
			c.Invite, c.InviteExpires = kiosk.InviteInvited, start.Add(-time.Hour)
		}
		for i, lang := range []string{"en", "es"} {
			if got := h.k.words(lang).contactState(c); !strings.HasPrefix(got, texts[i]) {
				t.Errorf("%s in %s reads %q; want %q...", state, lang, got, texts[i])
			}
		}
	}
	if got := h.k.words("es").rejection("contact_not_accepted"); got != "Rechazado: este contacto no ha aceptado su invitación o ya no acepta mensajes." {
		t.Errorf("rejection in es reads %q", got)
	}
}
