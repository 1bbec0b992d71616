package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// InboundRequest is a message from an approved contact to an inmate; From is the contact's id or email.
type InboundRequest struct {
	InmateID string `json:"inmate_id"`
	From     string `json:"from"`
	Subject  string `json:"subject,omitempty"`
	Body     string `json:"body"`
	// Photos are the photos sent with the letter, at most the facility's
	// Policy.PhotosPerLetter, each checked (kiosk/photo) before anything is stored.
	Photos []InboundPhoto `json:"photos,omitempty"`
}

// InboundPhoto is one uploaded photo: its declared type (image/jpeg or image/png, or "" to
// take what the bytes are) and its bytes (base64 in JSON).
type InboundPhoto struct {
	Type string `json:"type,omitempty"`
	Data []byte `json:"data"`
}

// Inbound delivers a message from an approved contact to the inmate's terminals (every kiosk of
// the facility and the inmate's tablet).
func (r *Relay) Inbound(req InboundRequest) (vocab.Message, error) {
	const op = "inbound"
	if err := checkID(op, "inmate_id", req.InmateID); err != nil {
		return vocab.Message{}, err
	}
	if err := checkText(op, "from", req.From, true, 254); err != nil {
		return vocab.Message{}, err
	}
	inmate := func(tx kv.Tx) (inmateRec, error) {
		var in inmateRec
		ok, err := getJSON(tx, bInmates, req.InmateID, &in)
		if err != nil {
			return in, err
		}
		if !ok {
			return in, notFound(op, "inmate_id", "unknown inmate %q", req.InmateID)
		}
		if in.Status != vocab.StatusActive || !in.Messaging {
			return in, conflict(op, "inmate_id", "inmate %q may not receive messages now (suspended or no messaging)", req.InmateID)
		}
		return in, nil
	}
	sender := func(tx kv.Tx) (vocab.Message, error) {
		all, err := inmateContacts(tx, "", req.InmateID)
		if err != nil {
			return vocab.Message{}, err
		}
		for _, c := range all {
			if c.State == vocab.ContactApproved && (c.ID == req.From || strings.EqualFold(c.Email, req.From)) {
				if c.Invite != vocab.InviteAccepted {
					return vocab.Message{}, conflict(op, "from", "%q has not accepted the invitation to write with inmate %q (invitation %s)",
						req.From, req.InmateID, vocab.InviteState(c.Contact, r.clock.Now()))
				}
				return vocab.Message{Peer: c.ID, PeerName: c.Name}, nil
			}
		}
		return vocab.Message{}, notFound(op, "from", "%q is not an approved contact of inmate %q", req.From, req.InmateID)
	}
	// Photos are checked and stored before the letter's write (the content store is its own
	// file), once the addressee and the sender are known good, so a letter refused for who
	// writes or who it is to leaves no photo behind; deliverInbound checks both again.
	id, err := uuid.NewV7()
	if err != nil {
		return vocab.Message{}, ioErr(op, err)
	}
	photos, held, err := r.storePhotos(op, id.String(), req.Photos, func(tx kv.Tx) (inmateRec, error) {
		in, err := inmate(tx)
		if err != nil {
			return in, err
		}
		if _, err = sender(tx); err != nil {
			return in, err
		}
		var fac facilityRec
		if _, err := getJSON(tx, bFacilities, in.FacilityID, &fac); err != nil {
			return in, err
		}
		if err := checkText(op, "subject", req.Subject, false, vocab.MaxSubjectChars); err != nil {
			return in, err
		}
		if strings.TrimSpace(req.Body) == "" {
			return in, invalid(op, "body", "is required")
		}
		return in, checkText(op, "body", req.Body, true, fac.policy().MaxMessageChars)
	})
	if err != nil {
		return vocab.Message{}, err
	}
	m, _, err := r.deliverInbound(op, id.String(), "", req.Subject, req.Body, photos, held, inmate, sender)
	if err != nil {
		if held {
			// Held photos are the letter's alone: a letter refused leaves none behind.
			if rerr := r.releasePhotos(photos, heldHolder(id.String())); rerr != nil {
				r.logf("relay: inbound %s refused: %v", id, rerr)
			}
		}
		return vocab.Message{}, err
	}
	if held {
		r.logf("relay: inbound message %s for inmate %s held for photo review", m.ID, m.InmateID)
	} else {
		r.logf("relay: inbound message %s for inmate %s", m.ID, m.InmateID)
	}
	return m, nil
}

// ReplyRequest is a department's answer to an inmate's request (POST
// /admin/v1/requests/{message_id}/reply).
type ReplyRequest struct {
	// ID, if given (or the Idempotency-Key header), makes the reply count once: the same id
	// again with the same reply stores and sends nothing new and returns the first reply; with
	// another reply it is a conflict.
	ID      string `json:"id,omitempty"`
	From    string `json:"from"` // the department id the request was written to
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body"`
}

// ReplyToRequest delivers a department's answer to the inmate who wrote request requestID, as
// an inbound_message whose reply_to is the request, to the inmate's terminals. A department
// is no approved contact, so POST /admin/v1/inbound refuses it; this is its only way in.
func (r *Relay) ReplyToRequest(requestID string, req ReplyRequest) (m vocab.Message, created bool, err error) {
	const op = "reply to request"
	if err := checkID(op, "message_id", requestID); err != nil {
		return vocab.Message{}, false, err
	}
	if err := checkText(op, "from", req.From, true, 128); err != nil {
		return vocab.Message{}, false, err
	}
	key := ""
	if req.ID != "" {
		if err := checkID(op, "id", req.ID); err != nil {
			return vocab.Message{}, false, err
		}
		key = requestID + "/" + req.ID
	}
	var answer vocab.Message
	m, created, err = r.deliverInbound(op, "", key, req.Subject, req.Body, nil, false, func(tx kv.Tx) (inmateRec, error) {
		var in inmateRec
		o, found, err := letterByID(tx, "", requestID)
		if err != nil {
			return in, err
		}
		if !found {
			return in, notFound(op, "message_id", "no request %q", requestID)
		}
		if ok, err := getJSON(tx, bInmates, o.InmateID, &in); err != nil {
			return in, err
		} else if !ok {
			return in, notFound(op, "message_id", "the inmate of request %q is not on the roster", requestID)
		}
		var fac facilityRec
		if _, err := getJSON(tx, bFacilities, in.FacilityID, &fac); err != nil {
			return in, err
		}
		var dept *vocab.Department
		for _, d := range fac.policy().Departments {
			if d.ID == o.Peer {
				dept = &d
				break
			}
		}
		switch {
		case dept == nil:
			return in, conflict(op, "message_id", "message %q is not a request to one of the facility's departments", requestID)
		case dept.ID != req.From:
			return in, conflict(op, "from", "request %q was written to %q, not %q", requestID, dept.ID, req.From)
		case o.Status != vocab.MsgDelivered:
			return in, conflict(op, "message_id", "request %q is %s, not delivered", requestID, o.Status)
		case in.Status != vocab.StatusActive || !in.Messaging:
			return in, conflict(op, "message_id", "the inmate of request %q may not receive messages now (suspended or no messaging)", requestID)
		}
		answer = vocab.Message{Peer: dept.ID, PeerName: dept.Name, ReplyTo: requestID}
		return in, nil
	}, func(kv.Tx) (vocab.Message, error) { return answer, nil })
	if err != nil {
		return vocab.Message{}, false, err
	}
	if created {
		r.logf("relay: reply %s to request %s for inmate %s", m.ID, requestID, m.InmateID)
	}
	return m, created, nil
}

// replyKeyRec is what an idempotency key stood for: the letter it made and what it said.
type replyKeyRec struct {
	MessageID string `json:"message_id"`
	Sum       string `json:"sum"` // sha256 of sender, subject and body
}

func letterSum(peer, subject, body string) string {
	h := sha256.New()
	for _, s := range []string{peer, subject, body} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// deliverInbound is what every letter into the facility shares: a subject and a body checked,
// then in one write: inmate finds the addressee (or refuses), the body is held to their
// facility's limit, sender gives who writes (a template with the sender and any reply_to, or a
// refusal), and the letter is stored and sent to the inmate's terminals, or, held, stored for
// photo review (photoreview.go) and sent to no one yet. id is the letter's id ("": a new one).
func (r *Relay) deliverInbound(op, id, key, subject, body string, photos []vocab.Photo, held bool, inmate func(kv.Tx) (inmateRec, error),
	sender func(kv.Tx) (vocab.Message, error)) (vocab.Message, bool, error) {
	if err := checkText(op, "subject", subject, false, vocab.MaxSubjectChars); err != nil {
		return vocab.Message{}, false, err
	}
	if strings.TrimSpace(body) == "" {
		return vocab.Message{}, false, invalid(op, "body", "is required")
	}
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return vocab.Message{}, false, ioErr(op, err)
		}
		id = u.String()
	}
	now := r.clock.Now().UTC()
	var m vocab.Message
	created := false
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		created = false
		if key != "" {
			// Asked before under this key: the letter it made, if it is the same letter.
			var prev replyKeyRec
			found, err := getJSON(tx, bReplyKeys, key, &prev)
			if err != nil {
				return err
			}
			if found {
				var pm vocab.Message
				if ok, err := getJSON(tx, bInbound, prev.MessageID, &pm); err != nil {
					return err
				} else if !ok {
					return fmt.Errorf("reply key %q names message %q, which is missing", key, prev.MessageID)
				}
				if prev.Sum != letterSum(pm.Peer, subject, body) {
					return conflict(op, "id", "this idempotency key was already used for a different reply")
				}
				m = pm
				return nil
			}
		}
		in, err := inmate(tx)
		if err != nil {
			return err
		}
		var fac facilityRec
		if _, err := getJSON(tx, bFacilities, in.FacilityID, &fac); err != nil {
			return err
		}
		if err := checkText(op, "body", body, true, fac.policy().MaxMessageChars); err != nil {
			return err
		}
		// Again in the write: the policy may have changed since the photos were stored.
		if err := vocab.ValidatePhotos(photos, fac.policy().PhotosPerLetter()); err != nil {
			return invalid(op, "photos", "%v", err)
		}
		tmpl, err := sender(tx)
		if err != nil {
			return err
		}
		m = vocab.Message{ID: id, InmateID: in.ID, Box: vocab.BoxInbox, Peer: tmpl.Peer, PeerName: tmpl.PeerName,
			Subject: subject, Body: body, ReplyTo: tmpl.ReplyTo, Photos: photos, CreatedAt: now, UpdatedAt: now}
		if held {
			created = true
			return holdInboundTx(tx, f, m, in.FacilityID, now)
		}
		if err := putJSON(tx, bInbound, m.ID, m); err != nil {
			return err
		}
		if err := indexInboundIn(tx, f, in.FacilityID, m); err != nil {
			return err
		}
		if err := linkReply(tx, m); err != nil {
			return err
		}
		if key != "" {
			if err := putJSON(tx, bReplyKeys, key, replyKeyRec{MessageID: m.ID, Sum: letterSum(m.Peer, subject, body)}); err != nil {
				return err
			}
		}
		created = true
		return f.toInmate(in.FacilityID, in.ID, "", wire.DownInboundMessage, m)
	})
	if err != nil {
		return vocab.Message{}, false, err
	}
	return m, created, nil
}

// OutboundFilter narrows the review list; empty fields match everything.
type OutboundFilter struct {
	Status   string // vocab.MsgHeld, MsgDelivered, MsgRejected or ""
	InmateID string
}

// Outbound lists outbound messages, oldest first (by id). Held ones are read from their
// facilities' lists and one inmate's from its index; only a list of every status of every
// inmate reads every letter stored.
func (r *Relay) Outbound(flt OutboundFilter) ([]Outbound, error) {
	const op = "list outbound"
	switch flt.Status {
	case "", vocab.MsgHeld, vocab.MsgDelivered, vocab.MsgRejected:
	default:
		return nil, invalid(op, "status", "must be held, delivered or rejected")
	}
	if flt.InmateID != "" {
		if err := checkID(op, "inmate_id", flt.InmateID); err != nil {
			return nil, err
		}
	}
	out := []Outbound{}
	err := r.view(op, func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		match := func(o Outbound) bool {
			return (flt.Status == "" || o.Status == flt.Status) && (flt.InmateID == "" || o.InmateID == flt.InmateID)
		}
		if flt.Status == vocab.MsgHeld || flt.InmateID != "" {
			var some []Outbound
			var err error
			if flt.Status == vocab.MsgHeld {
				some, err = heldLetters(tx, nil)
			} else {
				some, err = inmateLetters(tx, "", flt.InmateID)
			}
			for _, o := range some {
				if match(o) {
					out = append(out, o)
				}
			}
			return err
		}
		return forEachLetter(tx, bLetters, "", func(o Outbound) bool {
			if match(o) {
				out = append(out, o)
			}
			return true
		})
	})
	if err == nil {
		out, err = r.heldFacilitiesLetters(out, flt)
	}
	slices.SortStableFunc(out, func(a, b Outbound) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// heldFacilitiesLetters is out with the letters of each facility this relay holds read from
// its held state instead, as Outbound filters them: the kv state's are behind it by the
// projector, and a letter written there is not in the kv state's index before its outbox is
// drained (letterAt).
func (r *Relay) heldFacilitiesLetters(out []Outbound, flt OutboundFilter) ([]Outbound, error) {
	const op = "list outbound"
	for _, facility := range r.held.facilities() {
		var theirs []Outbound
		err := r.viewFor(facility, op, func(tx kv.Tx) error {
			theirs = theirs[:0] // a View may run again
			keep := func(o Outbound) bool {
				if o.FacilityID == facility && (flt.Status == "" || o.Status == flt.Status) && (flt.InmateID == "" || o.InmateID == flt.InmateID) {
					theirs = append(theirs, o)
				}
				return true
			}
			var some []Outbound
			var err error
			switch {
			case flt.Status == vocab.MsgHeld:
				some, err = heldLetters(tx, []string{facility})
			case flt.InmateID != "":
				some, err = inmateLetters(tx, facility, flt.InmateID)
			default:
				return forEachLetter(tx, bLetters, facility+"/", keep)
			}
			for _, o := range some {
				keep(o)
			}
			return err
		})
		if err != nil {
			return out, err
		}
		out = slices.DeleteFunc(out, func(o Outbound) bool { return o.FacilityID == facility })
		out = append(out, theirs...)
	}
	return out, nil
}

// PREAReports lists PREA reports, oldest first, optionally of one inmate. They are never held
// or reviewed with the mail; this list is for the facility's PREA coordinator.
func (r *Relay) PREAReports(inmateID string) ([]Outbound, error) {
	const op = "list PREA reports"
	if inmateID != "" {
		if err := checkID(op, "inmate_id", inmateID); err != nil {
			return nil, err
		}
	}
	out := []Outbound{}
	err := r.view(op, func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		return forEachLetter(tx, bPREA, "", func(o Outbound) bool {
			if inmateID == "" || o.InmateID == inmateID {
				out = append(out, o)
			}
			return true
		})
	})
	return out, err
}

// ApproveOutbound releases a held message; the inmate's terminals see it delivered.
func (r *Relay) ApproveOutbound(id string) (Outbound, error) {
	return r.reviewOutbound("approve outbound", id, vocab.MsgDelivered, "")
}

// RejectOutbound refuses a held message with a reason the inmate sees.
func (r *Relay) RejectOutbound(id, reason string) (Outbound, error) {
	if err := checkText("reject outbound", "reason", reason, true, 500); err != nil {
		return Outbound{}, err
	}
	return r.reviewOutbound("reject outbound", id, vocab.MsgRejected, reason)
}

func (r *Relay) reviewOutbound(op, id, state, reason string) (Outbound, error) {
	if err := checkID(op, "id", id); err != nil {
		return Outbound{}, err
	}
	now := r.clock.Now().UTC()
	var o Outbound
	// The letter is its facility's record: reviewed on the facility's writer (its holder's, where
	// this relay holds it), found by the state's index.
	place := func(tx kv.Tx) (string, error) { return letterAt(tx, "", id), nil }
	err := r.updateAt(op, place, func(tx kv.Tx, f *fanout, facility string) error {
		var rec letterRec
		ok := false
		if facility != "" {
			var err error
			if rec, ok, err = getLetter(tx, bLetters, facility+"/"+id); err != nil { // a run again reads it afresh
				return err
			}
		}
		o = rec.Outbound
		if !ok {
			return notFound(op, "id", "no outbound message %q", id)
		}
		if o.Status != vocab.MsgHeld {
			return conflict(op, "id", "message %q is already %s", id, o.Status)
		}
		if state == vocab.MsgDelivered && o.AwaitingStamp { // stamps.go: never released unpaid
			return conflict(op, "id", "message %q waits for its stamp (%s) and cannot be approved before it is paid", id, o.StampDue)
		}
		o.Status, o.State, o.Reason, o.ReviewedAt, o.UpdatedAt = state, state, reason, now, now
		if err := putOutbound(tx, f, o, rec.BodyItem, true); err != nil {
			return err
		}
		if state == vocab.MsgRejected {
			if err := f.refundStamp(tx, o, now); err != nil { // stamps.go
				return err
			}
		}
		holder, err := liveHolder(tx, o.TerminalID)
		if err != nil {
			return err
		}
		return f.toHolder(facilityOf(tx, o.InmateID, o.FacilityID), o.InmateID, holder, wire.DownMessageStatus,
			wire.MessageStatus{MessageID: o.ID, InmateID: o.InmateID, State: state, Reason: reason, At: now})
	})
	return o, err
}

// Contacts lists contacts in a state ("" for all), optionally of one inmate.
func (r *Relay) Contacts(status, inmateID string) ([]ContactRecord, error) {
	const op = "list contacts"
	if err := checkContactFilter(op, status, inmateID); err != nil {
		return nil, err
	}
	out := []ContactRecord{}
	err := r.view(op, func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		// One inmate's: through its index, not every contact of the state.
		if inmateID != "" {
			cs, err := inmateContacts(tx, "", inmateID)
			for _, c := range cs {
				if (status == "" || c.State == status) && c.InmateID == inmateID {
					out = append(out, c)
				}
			}
			return err
		}
		return forEachJSON(tx, bContacts, "", func(_ string, c ContactRecord) bool {
			if (status == "" || c.State == status) && (inmateID == "" || c.InmateID == inmateID) {
				out = append(out, c)
			}
			return true
		})
	})
	return out, err
}

// checkContactFilter checks a listing's state ("" for all) and inmate id ("" for all).
func checkContactFilter(op, status, inmateID string) error {
	switch status {
	case "", vocab.ContactPending, vocab.ContactApproved, vocab.ContactDeclined, vocab.ContactRemoved:
	default:
		return invalid(op, "status", "must be pending, approved, declined or removed")
	}
	if inmateID != "" {
		return checkID(op, "inmate_id", inmateID)
	}
	return nil
}

// ContactsIn is Contacts of the given facilities only, oldest first: it reads their lists
// (ContactsOf), not every contact of the state.
func (r *Relay) ContactsIn(facilities []string, status, inmateID string) ([]ContactRecord, error) {
	if err := checkContactFilter("list contacts", status, inmateID); err != nil {
		return nil, err
	}
	all, err := r.ContactsOf(facilities...)
	return slices.DeleteFunc(all, func(c ContactRecord) bool {
		return (status != "" && c.State != status) || (inmateID != "" && c.InmateID != inmateID)
	}), err
}

// ApproveContact approves a pending contact and invites it (Config.Notifier): letters flow once
// the contact accepts. An invitation that cannot be sent now is kept and sent again by
// RetryInvitations; the approval stands either way.
func (r *Relay) ApproveContact(id string) (ContactRecord, error) {
	c, err := r.reviewContact("approve contact", id, vocab.ContactApproved, "")
	if err != nil || c.Invite != vocab.InviteInvited {
		return c, err
	}
	if _, err := r.sendInvitation(context.Background(), id); err != nil && vocab.KindOf(err) != vocab.KindTransient {
		r.logf("relay: invitation of contact %s: %v", id, err)
	}
	return c, nil
}

// DeclineContact refuses a pending contact; reason is optional.
func (r *Relay) DeclineContact(id, reason string) (ContactRecord, error) {
	if err := checkText("decline contact", "reason", reason, false, 500); err != nil {
		return ContactRecord{}, err
	}
	return r.reviewContact("decline contact", id, vocab.ContactDeclined, reason)
}

func (r *Relay) reviewContact(op, id, state, reason string) (ContactRecord, error) {
	if err := checkID(op, "id", id); err != nil {
		return ContactRecord{}, err
	}
	now := r.clock.Now().UTC()
	var c ContactRecord
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		c = ContactRecord{} // a run again must not see what an earlier run decoded and changed
		ok, err := getJSON(tx, bContacts, id, &c)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no contact %q", id)
		}
		if c.State != vocab.ContactPending {
			return conflict(op, "id", "contact %q is %s, not pending", id, c.State)
		}
		c.State, c.Reason, c.UpdatedAt = state, reason, now
		if state == vocab.ContactApproved {
			if _, err := r.inviteOnApprovalTx(tx, &c, now); err != nil {
				return err
			}
		}
		if err := putJSON(tx, bContacts, id, c); err != nil {
			return err
		}
		return f.toInmate(facilityOf(tx, c.InmateID, c.FacilityID), c.InmateID, "", wire.DownContact, c.Contact)
	})
	return c, err
}

// facilityOf is where an inmate lives now (they may have moved since a record was made), else fallback.
func facilityOf(tx kv.Tx, inmateID, fallback string) string {
	var in inmateRec
	if ok, err := getJSON(tx, bInmates, inmateID, &in); err == nil && ok {
		return in.FacilityID
	}
	return fallback
}
