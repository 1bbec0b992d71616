package ui

import (
	"errors"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// words turns domain values into what a person reads, in one language and time zone.
type words struct {
	i18n.Lang
	loc *time.Location
	now time.Time
}

// clock is the wall time as the screens show it.
func (w words) clock(t time.Time) string { return t.In(w.loc).Format("15:04") }

// when is a time of day, with the weekday when it is not today.
func (w words) when(t time.Time) string {
	t = t.In(w.loc)
	n := w.now.In(w.loc)
	if t.Year() == n.Year() && t.YearDay() == n.YearDay() {
		return t.Format("15:04")
	}
	return w.T("day."+strconv.Itoa(int(t.Weekday()))) + " " + t.Format("15:04")
}

// stamp is a date and time for lists and statements (ISO order reads the same in en and es).
func (w words) stamp(t time.Time) string { return t.In(w.loc).Format("2006-01-02 15:04") }

// num groups thousands the way the language does: 13,000 in English, 13.000 in Spanish.
func (w words) num(n int) string {
	sep := ","
	if w.Code() == "es" {
		sep = "."
	}
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.Itoa(n)
	out := ""
	for len(s) > 3 {
		out = sep + s[len(s)-3:] + out
		s = s[:len(s)-3]
	}
	out = s + out
	if neg {
		out = "-" + out
	}
	return out
}

// ceilMinute is t, or the next whole minute when t falls within one.
func ceilMinute(t time.Time) time.Time {
	if f := t.Truncate(time.Minute); !f.Equal(t) {
		return f.Add(time.Minute)
	}
	return t
}

// minutesLeft rounds up, so "1 minute left" shows until the very end.
func minutesLeft(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Minute - 1) / time.Minute)
}

// refusal says in plain words why the domain said no (login, send, contacts).
func (w words) refusal(err error) string {
	var e *kiosk.Error
	if !errors.As(err, &e) {
		return w.T("error.generic")
	}
	until := ""
	if !e.Until.IsZero() {
		// Rounded up: "try again at 09:33" must not be refused at 09:33:44.
		until = w.when(ceilMinute(e.Until))
	}
	switch e.Reason {
	case kiosk.ReasonUnknownBadge, kiosk.ReasonSuspended, kiosk.ReasonLockdown, kiosk.ReasonInsufficientBalance,
		kiosk.ReasonOfflineLimit, kiosk.ReasonNoticeNotAccepted, kiosk.ReasonNoSession, kiosk.ReasonPREABacklog:
		return w.T("refuse." + string(e.Reason))
	case kiosk.ReasonLocked, kiosk.ReasonCooldown:
		return w.T("refuse."+string(e.Reason), "until", until)
	case kiosk.ReasonCurfew:
		if until == "" {
			return w.T("refuse.curfew_open")
		}
		return w.T("refuse.curfew", "until", until)
	case kiosk.ReasonNoMessaging:
		return w.T("refuse.no_messaging")
	case kiosk.ReasonWrongPIN:
		if n, ok := kiosk.AttemptsLeft(err); ok {
			if n == 1 {
				return w.T("refuse.wrong_pin_last")
			}
			return w.T("refuse.wrong_pin_left", "n", strconv.Itoa(n))
		}
		return w.T("refuse.wrong_pin")
	case kiosk.ReasonNotBound:
		return w.T("refuse.not_bound")
	case kiosk.ReasonLoginExpired:
		return w.T("refuse.login_expired")
	case kiosk.ReasonContactNotApproved:
		return w.T("write.err.not_approved")
	case kiosk.ReasonContactNotAccepted:
		return w.T("write.err.not_accepted")
	case kiosk.ReasonContactLimit:
		return w.T("contacts.err.full")
	case kiosk.ReasonNeedsFunds:
		return w.T("refuse.needs_funds")
	}
	switch e.Kind {
	case kiosk.KindIO, kiosk.KindTransient, kiosk.KindCorrupt:
		return w.T("error.io")
	case kiosk.KindRefused:
		return w.T("refuse.other")
	}
	return w.T("error.generic")
}

// freeSession says what a free session (too little money, Policy.FreeServices) may do.
func (w words) freeSession(p kiosk.Policy) string {
	var can []string
	if p.Free(kiosk.FreeReadMail) {
		can = append(can, w.T("free.read_mail"))
	}
	if p.Free(kiosk.FreeDepartments) {
		can = append(can, w.T("free.departments"))
	}
	can = append(can, w.T("free.prea"))
	return w.T("home.free", "services", strings.Join(can, ", "))
}

// endReason names why a session ended.
func (w words) endReason(r kiosk.Reason) string {
	switch r {
	case kiosk.EndLogout, kiosk.EndIdle, kiosk.EndMaxLength, kiosk.EndBalance, kiosk.EndCurfew,
		kiosk.EndLockdown, kiosk.EndOfflineLimit:
		return w.T("end." + string(r))
	case kiosk.EndTerminalFault:
		return w.T("end.terminal_fault")
	}
	return w.T("end.other")
}

// msgState names an outbox message's state.
func (w words) msgState(m kiosk.Message) string {
	switch m.State {
	case kiosk.MsgQueued, kiosk.MsgSent, kiosk.MsgHeld, kiosk.MsgDelivered:
		return w.T("state." + m.State)
	case kiosk.MsgRejected:
		return w.rejection(m.Reason)
	}
	return m.State
}

// rejectKind sorts a rejection code: a reviewer's (which may carry a note for the inmate
// after ": "), the relay's own refusal of the item (whose detail after ": " is technical and
// never shown), or neither (docs/PROTOCOL.md lists them).
func rejectKind(code string) string {
	if vocab.IsReviewReason(code) {
		return "review"
	}
	switch code {
	case "too_large", "unknown_contact", "contact_not_accepted", "suspended", "invalid", "unknown_kind", "id_conflict", "not_this_terminals_inmate",
		"stamp_missing", "stamp_price", "stamp_no_letter": // the last three: a letter the relay rejected unpaid
		return "relay"
	}
	return ""
}

// rejection says why a message was rejected in the reader's words: never a raw code. A
// reason that is no code at all is a reviewer's own words, shown as their note.
func (w words) rejection(reason string) string {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return w.T("state.rejected_plain")
	}
	code, note, _ := strings.Cut(reason, ":")
	code, note = strings.TrimSpace(code), strings.TrimSpace(note)
	switch rejectKind(code) {
	case "review":
		return withStaffNote(w, w.T("reject."+code), note)
	case "relay":
		return w.T("reject." + code)
	}
	return withStaffNote(w, w.T("reject.staff"), reason)
}

func withStaffNote(w words, msg, note string) string {
	if note == "" {
		return msg
	}
	return msg + " " + w.T("reject.note", "note", note)
}

// contactState names a contact's state.
func (w words) contactState(c kiosk.Contact) string {
	switch c.State {
	case kiosk.ContactPending:
		return w.T("contacts.pending")
	case kiosk.ContactApproved:
		// Approved by staff; then the contact's own answer to the invitation.
		switch kiosk.InviteState(c, w.now) {
		case kiosk.InviteInvited:
			return w.T("contacts.invited", "date", w.stamp(c.InviteExpires))
		case kiosk.InviteAccepted:
			return w.T("contacts.accepted")
		case kiosk.InviteDeclined:
			return w.T("contacts.invite_declined")
		case kiosk.InviteBlocked:
			return w.T("contacts.blocked")
		case kiosk.InviteExpired:
			return w.T("contacts.expired")
		}
		return w.T("contacts.approved")
	case kiosk.ContactDeclined:
		if c.Reason != "" {
			return w.T("contacts.declined", "reason", c.Reason)
		}
		return w.T("contacts.declined_plain")
	case kiosk.ContactRemoved:
		return w.T("contacts.removed_state")
	}
	return c.State
}

// recipientName is how a recipient shows in the chooser.
func (w words) recipientName(r kiosk.Recipient) string {
	switch r.Kind {
	case "prea":
		return w.T("write.prea")
	case "department":
		return w.T("write.department", "name", r.Name)
	}
	return r.Name
}
