package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The uplink item bodies, field by field (docs/PROTOCOL.md, "Uplink bodies"). CheckUpBody is
// the one statement of what a relay refuses as RefuseInvalid before it looks at its own
// records: a body that does not parse, a required field that is missing or of the wrong JSON
// type, a value beyond its limit. What depends on the relay's records (an unknown inmate, a
// contact that is not approved, a message longer than the facility allows) comes after, with
// its own reasons. Unknown fields are ignored, as everywhere in this protocol.

// MaxRecordIDLen bounds a record id (message, contact, session, audit event, inmate).
const MaxRecordIDLen = 64

// Limits of the free text in uplink bodies.
const (
	MaxEndReason = 64 // bytes of a session's end_reason
	// MaxSessionMinutes bounds a session's billed minutes: a policy's max_session is at most 24 h.
	MaxSessionMinutes = 24 * 60
)

// CheckRecordID accepts 1 to 64 bytes of A-Z a-z 0-9 . _ - : @ (no "/", which keys use as a
// separator, no space, nothing that needs escaping in a URL path).
func CheckRecordID(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is missing", field)
	}
	if len(s) > MaxRecordIDLen {
		return fmt.Errorf("%s is %d bytes, limit %d", field, len(s), MaxRecordIDLen)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:@", r)
		if !ok {
			return fmt.Errorf("%s may hold only letters, digits and . _ - : @", field)
		}
	}
	return nil
}

// CheckUpBody checks an uplink body of kind against its schema. An unknown kind is not an
// error here (the relay refuses it with RefuseUnknownKind).
func CheckUpBody(kind string, body json.RawMessage) error {
	_, err := DecodeUpBody(kind, body)
	return err
}

// DecodeUpBody is CheckUpBody that also returns the body decoded, so a relay checks and reads
// it in one pass: *vocab.Message (message, prea), *vocab.Contact (contact_request,
// contact_remove), *vocab.Charge, *vocab.Credit, *vocab.Session (session_end),
// *vocab.AuditEvent (audit), *vocab.MessageRead (message_read); nil for device_status and an
// unknown kind.
func DecodeUpBody(kind string, body json.RawMessage) (any, error) {
	v, err := checkUpBody(kind, body)
	if err != nil {
		return nil, fmt.Errorf("%s body: %w", cut(kind), err)
	}
	return v, nil
}

func checkUpBody(kind string, body json.RawMessage) (any, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return nil, fmt.Errorf("is not a JSON object")
	}
	// Field presence (a missing required number must not pass as 0), read only for the kinds
	// that need it.
	var present map[string]json.RawMessage
	need := func(names ...string) error {
		if present == nil {
			if err := json.Unmarshal(body, &present); err != nil {
				return fmt.Errorf("does not parse: %w", err)
			}
		}
		for _, n := range names {
			v, ok := present[n]
			if !ok || bytes.Equal(v, []byte("null")) {
				return fmt.Errorf("%s is missing", n)
			}
		}
		return nil
	}
	decode := func(v any) error {
		if err := json.Unmarshal(body, v); err != nil {
			return fmt.Errorf("does not parse: %w", err)
		}
		return nil
	}
	switch kind {
	case UpMessage, UpPREA:
		m := new(vocab.Message)
		if err := decode(m); err != nil {
			return nil, err
		}
		return m, checkMessage(kind, m)
	case UpContactRequest:
		c := new(vocab.Contact)
		if err := decode(c); err != nil {
			return nil, err
		}
		if err := CheckRecordID("id", c.ID); err != nil {
			return nil, err
		}
		if err := nonEmpty("inmate_id", c.InmateID); err != nil {
			return nil, err
		}
		// The rules the kiosk applied when the inmate typed them, and the values as the kiosk
		// stores them: anything else was not made by a kiosk's AddContact.
		name, err := vocab.ValidateContactName(c.Name)
		if err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		if name != c.Name {
			return nil, fmt.Errorf("name has spaces around it")
		}
		email, err := vocab.ValidateEmail(c.Email)
		if err != nil {
			return nil, fmt.Errorf("email: %w", err)
		}
		if email != c.Email {
			return nil, fmt.Errorf("email %q is not in the stored form %q", c.Email, email)
		}
		return c, nil
	case UpContactRemove:
		c := new(vocab.Contact)
		if err := decode(c); err != nil {
			return nil, err
		}
		if err := nonEmpty("id", c.ID); err != nil {
			return nil, err
		}
		return c, nonEmpty("inmate_id", c.InmateID)
	case UpCharge, UpCredit:
		var c vocab.Credit
		var out any = &c
		if kind == UpCharge {
			ch := new(vocab.Charge)
			if err := decode(ch); err != nil {
				return nil, err
			}
			// A stamp pays for one letter: its record id is the letter's, and it bills no minute.
			if (ch.MessageID != "" || vocab.IsStampRecord(ch.RecordID)) &&
				(ch.RecordID != vocab.StampRecordID(ch.MessageID) || ch.SessionID != "" || ch.Minute != 0) {
				return nil, fmt.Errorf("a stamp's record_id must be %q with message_id set, no session_id and minute 0", vocab.StampRecordPrefix+"<message_id>")
			}
			// A print charge pays for one job the printer completed: pages, no session, no letter.
			if vocab.IsPrintRecord(ch.RecordID) || ch.Pages != 0 {
				if err := checkPrintCharge(ch); err != nil {
					return nil, err
				}
			}
			// A purchase pays for one catalog item: its record id is the purchase's, it bills no
			// minute, and it costs at least a cent (a free item is owned without a charge).
			if ch.ItemID != "" || vocab.IsPurchaseRecord(ch.RecordID) {
				if err := checkPurchase(ch); err != nil {
					return nil, err
				}
			}
			c, out = vocab.Credit{RecordID: ch.RecordID, InmateID: ch.InmateID, Minute: ch.Minute, Cents: ch.Cents}, ch
		} else if err := decode(&c); err != nil {
			return nil, err
		}
		if c.RecordID == "" || len(c.RecordID) > MaxIDLen {
			return nil, fmt.Errorf("record_id must be 1 to %d bytes", MaxIDLen)
		}
		if err := CheckRecordID("inmate_id", c.InmateID); err != nil {
			return nil, err
		}
		if limit := vocab.ChargeLimit(c.RecordID); c.Cents < 0 || c.Cents > limit {
			return nil, fmt.Errorf("cents %d is outside 0..%d", c.Cents, limit)
		}
		if c.Minute < 0 {
			return nil, fmt.Errorf("minute %d is negative", c.Minute)
		}
		return out, nil
	case UpSessionEnd:
		s := new(vocab.Session)
		return s, checkSessionEnd(s, need, decode)
	case UpAudit:
		ev := new(vocab.AuditEvent)
		return ev, checkAudit(ev, need, decode)
	case UpDeviceStatus:
		return nil, nil // any JSON object
	case UpQuizAttempt:
		a := new(vocab.QuizAttempt)
		if err := decode(a); err != nil {
			return nil, err
		}
		if err := need("id", "inmate_id", "course_id", "quiz_id", "answers", "at"); err != nil {
			return nil, err
		}
		return a, vocab.ValidateQuizAttempt(*a)
	case UpLibraryUse:
		u := new(vocab.LibraryUse)
		if err := decode(u); err != nil {
			return nil, err
		}
		if err := need("inmate_id", "day", "minutes", "at"); err != nil {
			return nil, err
		}
		if u.TerminalID != "" {
			// The relay names the terminal from the connection; a body claiming one is refused.
			return nil, fmt.Errorf("terminal_id is set by the relay, not the terminal")
		}
		return u, vocab.ValidateLibraryUse(*u)
	case UpMessageRead:
		r := new(vocab.MessageRead)
		if err := decode(r); err != nil {
			return nil, err
		}
		if err := CheckRecordID("message_id", r.MessageID); err != nil {
			return nil, err
		}
		if err := CheckRecordID("inmate_id", r.InmateID); err != nil {
			return nil, err
		}
		if err := need("at"); err != nil {
			return nil, err
		}
		return r, checkTime("at", r.At)
	}
	return nil, nil
}

// checkMessage is the schema check of a message or prea body once decoded (DecodeUpBody and
// the batch decoder share it).
func checkMessage(kind string, m *vocab.Message) error {
	if err := CheckRecordID("id", m.ID); err != nil {
		return err
	}
	if kind == UpPREA && m.InmateID == "" {
		return nil // an anonymous report: it must reach the coordinator all the same
	}
	return nonEmpty("inmate_id", m.InmateID)
}

func nonEmpty(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is missing", field)
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%s is the zero time", field)
	}
	return nil
}

func checkSessionEnd(s *vocab.Session, need func(...string) error, decode func(any) error) error {
	if err := need("id", "inmate_id", "start", "end", "minutes", "rate_cents", "charged_cents", "credited_cents", "end_reason"); err != nil {
		return err
	}
	if err := decode(s); err != nil {
		return err
	}
	if err := CheckRecordID("id", s.ID); err != nil {
		return err
	}
	if err := CheckRecordID("inmate_id", s.InmateID); err != nil {
		return err
	}
	if err := checkTime("start", s.Start); err != nil {
		return err
	}
	if err := checkTime("end", s.End); err != nil {
		return err
	}
	if s.End.Before(s.Start) {
		return fmt.Errorf("end is before start")
	}
	if s.Minutes < 0 || s.Minutes > MaxSessionMinutes {
		return fmt.Errorf("minutes %d is outside 0..%d", s.Minutes, MaxSessionMinutes)
	}
	if s.Rate < 0 || s.Rate > vocab.MaxRatePerMinute {
		return fmt.Errorf("rate_cents %d is outside 0..%d", s.Rate, vocab.MaxRatePerMinute)
	}
	if maxCharged := vocab.Cents(MaxSessionMinutes) * vocab.MaxRatePerMinute; s.Charged < 0 || s.Charged > maxCharged {
		return fmt.Errorf("charged_cents %d is outside 0..%d", s.Charged, maxCharged)
	}
	if s.Credited < 0 || s.Credited > s.Charged {
		return fmt.Errorf("credited_cents %d is outside 0..charged_cents", s.Credited)
	}
	if s.EndReason == "" || len(s.EndReason) > MaxEndReason {
		return fmt.Errorf("end_reason must be 1 to %d bytes", MaxEndReason)
	}
	return CheckIDText("end_reason", string(s.EndReason))
}

func checkAudit(ev *vocab.AuditEvent, need func(...string) error, decode func(any) error) error {
	if err := need("id", "at", "kind"); err != nil {
		return err
	}
	if err := decode(ev); err != nil {
		return err
	}
	if err := CheckRecordID("id", ev.ID); err != nil {
		return err
	}
	if err := checkTime("at", ev.At); err != nil {
		return err
	}
	if ev.Kind == "" || len(ev.Kind) > vocab.MaxAuditKindLen {
		return fmt.Errorf("kind must be 1 to %d bytes", vocab.MaxAuditKindLen)
	}
	if err := CheckIDText("kind", ev.Kind); err != nil {
		return err
	}
	if len(ev.Actor) > vocab.MaxAuditActorLen {
		return fmt.Errorf("actor is %d bytes, limit %d", len(ev.Actor), vocab.MaxAuditActorLen)
	}
	if err := CheckIDText("actor", ev.Actor); err != nil {
		return err
	}
	if len(ev.Detail) > vocab.MaxAuditDetail {
		return fmt.Errorf("detail has %d entries, limit %d", len(ev.Detail), vocab.MaxAuditDetail)
	}
	for k, v := range ev.Detail {
		if k == "" || len(k) > vocab.MaxAuditDetailKey {
			return fmt.Errorf("detail key %q must be 1 to %d bytes", cut(k), vocab.MaxAuditDetailKey)
		}
		if err := CheckIDText("detail key", k); err != nil {
			return err
		}
		if len(v) > vocab.MaxAuditDetailValue {
			return fmt.Errorf("detail %q is %d bytes, limit %d", cut(k), len(v), vocab.MaxAuditDetailValue)
		}
	}
	return nil
}

// checkPrintCharge checks the shape of a print charge (record id "print/<job id>", 1 to
// vocab.MaxPrintPagesLimit pages, no session, minute or letter); the relay checks its price
// and page count against the facility's policy.
func checkPrintCharge(ch *vocab.Charge) error {
	if !vocab.IsPrintRecord(ch.RecordID) || len(ch.RecordID) == len(vocab.PrintRecordPrefix) ||
		ch.SessionID != "" || ch.Minute != 0 || ch.MessageID != "" {
		return fmt.Errorf("a print charge's record_id must be %q with pages set, no session_id, message_id or minute", vocab.PrintRecordPrefix+"<job id>")
	}
	if ch.Pages < 1 || ch.Pages > vocab.MaxPrintPagesLimit {
		return fmt.Errorf("pages %d is outside 1..%d", ch.Pages, vocab.MaxPrintPagesLimit)
	}
	return nil
}

// checkPurchase is the shape of a purchase charge: record id PurchaseRecordID of a record id,
// item_id a record id, no session, minute 0, 1 to MaxItemPrice cents.
func checkPurchase(ch *vocab.Charge) error {
	id := vocab.PurchaseID(ch.RecordID)
	if CheckRecordID("purchase id", id) != nil || CheckRecordID("item_id", ch.ItemID) != nil ||
		ch.SessionID != "" || ch.Minute != 0 || ch.MessageID != "" {
		return fmt.Errorf("a purchase's record_id must be %q with item_id set, no session_id or message_id and minute 0", vocab.PurchaseRecordPrefix+"<purchase id>")
	}
	if ch.Cents < 1 || ch.Cents > vocab.MaxItemPrice {
		return fmt.Errorf("a purchase's cents %d is outside 1..%d", ch.Cents, vocab.MaxItemPrice)
	}
	return nil
}
