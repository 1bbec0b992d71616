package kiosk

import (
	"errors"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PREAReporter is an inmate whose badge (or tablet) and PIN were checked for a PREA report
// only: no session is opened, nothing is billed, and no rule of the sessions (balance,
// lockdown, curfew, cool-down, suspension) applies. FilePREA takes it.
type PREAReporter struct {
	InmateID string
	Name     string
	Language string
	At       time.Time // when the PIN was accepted
}

// PREABadge is Badge for a PREA report: it refuses only an unknown badge (or a technician's)
// and a person locked out by wrong PINs, and says the inmate's language.
func (t *Terminal) PREABadge(badgeID string) (BadgeResult, error) {
	badgeID = strings.TrimSpace(badgeID)
	return t.precheck(loginAttempt{via: "badge", stage: "badge", badge: badgeID, prea: true}, func(tx *bolt.Tx) (subject, bool, error) {
		return badgeSubjectTx(tx, badgeID)
	})
}

// VerifyPREA checks the PIN of a badge's holder for a PREA report. Wrong PINs count toward
// the lockout as at login (a report must not become a way to guess PINs); every attempt is
// audited, with "for": "prea", never with the PIN.
func (t *Terminal) VerifyPREA(badgeID, pin string) (PREAReporter, error) {
	badgeID = strings.TrimSpace(badgeID)
	p, err := t.enterPIN(loginAttempt{via: "badge", stage: "pin", badge: badgeID, prea: true}, pin, func(tx *bolt.Tx) (subject, bool, error) {
		return badgeSubjectTx(tx, badgeID)
	})
	return reporter(p), err
}

// VerifyBoundPREA is VerifyPREA on a tablet, for the inmate it is bound to.
func (t *Terminal) VerifyBoundPREA(pin string) (PREAReporter, error) {
	p, err := t.enterPIN(loginAttempt{via: "tablet", stage: "pin", prea: true}, pin, t.boundSubjectTx)
	return reporter(p), err
}

func reporter(p Pending) PREAReporter {
	return PREAReporter{InmateID: p.PersonID, Name: p.Name, Language: p.Language, At: p.At}
}

// FilePREA files the report of r, who must be the last person VerifyPREA accepted on this
// terminal, within Policy.MaxSession of it (writing a report takes time; a login begun since
// closes it). It is SendPREA in r's name: free, no session. Filed, r is used up.
func (t *Terminal) FilePREA(r PREAReporter, body string) (Message, error) {
	const op = "send PREA report"
	now := t.clock.Now()
	t.mu.Lock()
	v := t.preaVerified
	open := v.id != "" && v.kind == PersonInmate && v.id == r.InmateID && v.at.Equal(r.At) &&
		now.Sub(v.at) <= t.policy.MaxSession.D()
	t.mu.Unlock()
	if !open {
		return Message{}, &Error{Kind: KindConflict, Op: op, Reason: ReasonLoginExpired,
			Err: errors.New("this report's badge and PIN are no longer open; please start again")}
	}
	m, err := t.SendPREA(r.InmateID, body)
	if err != nil {
		return m, err
	}
	t.mu.Lock()
	if t.preaVerified == v {
		t.preaVerified = verifiedLogin{}
	}
	t.mu.Unlock()
	return m, nil
}

// PREAReference is the reference a person keeps for a PREA report: "PREA-" and the last eight
// hex digits of its message id, which are random in a UUIDv7, grouped by four in capitals
// ("PREA-3F9A-C21B"). Staff find the report by the end of its id.
func PREAReference(messageID string) string {
	hex := make([]byte, 0, len(messageID))
	for i := 0; i < len(messageID); i++ {
		c := messageID[i]
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
			hex = append(hex, c)
		case c >= 'a' && c <= 'f':
			hex = append(hex, c-'a'+'A')
		}
	}
	if len(hex) < 8 {
		return "PREA-" + string(hex)
	}
	tail := hex[len(hex)-8:]
	return "PREA-" + string(tail[:4]) + "-" + string(tail[4:])
}
