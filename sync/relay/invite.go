package relay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Contact invitations, as CorrLinks does them. Staff approving a contact is not enough: the
// relay then invites the contact (an identification code valid for Config.InviteTTL, sent
// through Config.Notifier), and letters flow either way only once the contact has accepted.
// The contact may instead decline, block this inmate, or block every inmate of the facility.
//
// The code is random (80 bits), kept only as its sha256 (a guess cannot be checked offline
// against a stolen store any faster than online, and 80 bits are out of reach), and single-use:
// an answer deletes it. A code is minted at each attempt to send the invitation, so a failed
// attempt leaves no code anyone could have seen, and a retry sends a fresh one.

// DefaultInviteTTL is how long an invitation's code is valid (CorrLinks: 10 days).
const DefaultInviteTTL = 10 * 24 * time.Hour

// Answers a contact gives to an invitation.
const (
	AnswerAccept        = "accept"
	AnswerDecline       = "decline"
	AnswerBlockInmate   = "block_inmate"
	AnswerBlockFacility = "block_facility"
)

// InvitationNotice is what a Notifier sends to a contact.
type InvitationNotice struct {
	ContactID   string
	ContactName string
	Email       string
	InmateName  string
	FacilityID  string
	Code        string
	ExpiresAt   time.Time
	// URL is the page where the contact answers (Config.FamilyURL).
	URL string
}

// Notifier delivers an invitation to its contact. An error leaves the invitation unsent: it is
// kept, listed for staff with the error, and sent again by RetryInvitations.
type Notifier interface {
	NotifyInvitation(ctx context.Context, n InvitationNotice) error
}

// inviteRec is a contact's current invitation.
type inviteRec struct {
	ContactID string    `json:"contact_id"`
	CodeHash  string    `json:"code_hash,omitempty"` // of the last code sent; "" once answered
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Sent      bool      `json:"sent"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	Answer    string    `json:"answer,omitempty"`
	AnswerAt  time.Time `json:"answered_at,omitzero"`
	// Lapsed: it expired before it could be sent (the mail was down for the whole TTL). It
	// will never be sent, so it leaves the hourly retry's list; staff see it expired and may
	// issue it again, which writes a fresh record.
	Lapsed bool `json:"lapsed,omitempty"`
	// SendingUntil: a gateway minted the code of this attempt and is sending it until then
	// (inviteSendClaim after it began). Another gateway of the same store leaves the
	// invitation alone meanwhile: its retry would mint a second code, which voids the first,
	// and the family would get two emails, the first one's code refused. The sender clears it
	// when the attempt ends; a gateway that died mid-send leaves it to lapse.
	SendingUntil time.Time `json:"sending_until,omitzero"`
}

// inviteSendClaim is how long an attempt to send an invitation holds it against other
// gateways: the send's own timeout (30 s), both transactions around it, and room for the
// gateways' clocks to differ.
const inviteSendClaim = 2 * time.Minute

// sendingHeld reports whether a hold until `until` keeps an invitation from being sent at now.
// A hold further ahead than inviteSendClaim was set by a gateway whose clock ran fast; were it
// honoured, a gateway that then died mid-send would keep the invitation from every other for
// as long as its clock was wrong, so it counts as lapsed.
func sendingHeld(until, now time.Time) bool {
	return now.Before(until) && until.Sub(now) <= inviteSendClaim
}

// awaitsSending is whether the hourly retry may still send inv: the rule of the list of
// unsent invitations (bInvitesUnsent), which putInvite keeps, migrate17to18 fills and verify
// checks.
func (inv inviteRec) awaitsSending() bool { return !inv.Sent && inv.Answer == "" && !inv.Lapsed }

// Invitation is a contact's invitation as staff see it (GET /admin/v1/invitations).
type Invitation struct {
	ContactID  string    `json:"contact_id"`
	InmateID   string    `json:"inmate_id"`
	FacilityID string    `json:"facility_id"`
	Name       string    `json:"name"`
	Email      string    `json:"email"`
	State      string    `json:"state"` // kiosk.Invite*: invited, accepted, declined, blocked, expired
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Sent       bool      `json:"sent"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// SendingUntil, while ahead, says a gateway is sending the invitation now
	// (inviteRec.SendingUntil).
	SendingUntil time.Time `json:"sending_until,omitzero"`
}

// blockRec is an address that blocked an inmate or a whole facility.
type blockRec struct {
	Email     string    `json:"email"`
	InmateID  string    `json:"inmate_id,omitempty"` // "" blocks every inmate of the facility
	Facility  string    `json:"facility_id"`
	ContactID string    `json:"contact_id"` // the invitation it was answered on
	At        time.Time `json:"at"`
}

func blockKey(facility, inmateID, email string) string {
	if inmateID == "" {
		return "f/" + facility + "/" + strings.ToLower(email)
	}
	return "i/" + inmateID + "/" + strings.ToLower(email)
}

// blocked reports whether email blocked the inmate or the inmate's facility.
func blocked(tx kv.Tx, facility, inmateID, email string) bool {
	b := tx.Bucket([]byte(bBlocks))
	return b.Get([]byte(blockKey(facility, "", email))) != nil || b.Get([]byte(blockKey(facility, inmateID, email))) != nil
}

// newInviteCode is 80 random bits in base32, grouped in fours: XXXX-XXXX-XXXX-XXXX.
func newInviteCode() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make invitation code: %w", err)
	}
	s := base32.StdEncoding.EncodeToString(b[:])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], nil
}

// normalizeCode takes a code as a person types it (any case, spaces or dashes anywhere) and
// gives its canonical form, or ok=false if it cannot be a code.
func normalizeCode(in string) (string, bool) {
	if len(in) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(in) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case (r >= 'A' && r <= 'Z') || (r >= '2' && r <= '7'):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	s := b.String()
	if len(s) != 16 {
		return "", false
	}
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], true
}

func codeHash(code string) string {
	h := sha256.Sum256([]byte(code))
	return hex.EncodeToString(h[:])
}

// inviteOnApprovalTx starts the invitation of contact c, just approved: invited until now+TTL,
// or blocked at once if the address blocked the inmate or the facility (no invitation is sent).
// It reports whether an invitation is to be sent.
func (r *Relay) inviteOnApprovalTx(tx kv.Tx, c *ContactRecord, now time.Time) (bool, error) {
	facility := facilityOf(tx, c.InmateID, c.FacilityID)
	if blocked(tx, facility, c.InmateID, c.Email) {
		c.Invite, c.InviteExpires = vocab.InviteBlocked, time.Time{}
		return false, nil
	}
	if err := dropCodeTx(tx, c.ID); err != nil {
		return false, err
	}
	c.Invite, c.InviteExpires = vocab.InviteInvited, now.Add(r.cfg.InviteTTL)
	return true, putInvite(tx, c.ID, inviteRec{ContactID: c.ID, IssuedAt: now, ExpiresAt: c.InviteExpires})
}

// eachInvitation reads the invitations of the contacts ids with the contacts themselves
// (fetched together where the store can) and calls fn for each id that has both. An
// invitation that does not decode is an error; a contact that does not decode is passed over
// (verify reports it), so that one damaged contact holds up no one else's invitation.
func eachInvitation(tx kv.Tx, ids []string, fn func(id string, inv inviteRec, c ContactRecord)) error {
	var keys keyList
	for _, id := range ids {
		keys.add(bInvites, id)
		keys.add(bContacts, id)
	}
	kv.Prefetch(tx, keys)
	for _, id := range ids {
		var inv inviteRec
		if ok, err := getJSON(tx, bInvites, id, &inv); err != nil {
			return err
		} else if !ok {
			continue
		}
		var c ContactRecord
		if ok, err := getJSON(tx, bContacts, id, &c); err == nil && ok {
			fn(id, inv, c)
		}
	}
	return nil
}

// putInvite stores the invitation of contact id and keeps the list of those neither sent nor
// answered (invites_unsent), which RetryInvitations reads. It reads the list's key first so
// that it writes the key only when it changes (on JetStream a delete is a message too).
func putInvite(tx kv.Tx, id string, inv inviteRec) error {
	if err := putJSON(tx, bInvites, id, inv); err != nil {
		return err
	}
	unsent := inv.awaitsSending()
	if listed := getRaw(tx, bInvitesUnsent, id) != nil; listed == unsent {
		return nil
	}
	if unsent {
		return putRaw(tx, bInvitesUnsent, id, nil)
	}
	return deleteKey(tx, bInvitesUnsent, id)
}

// migrate17to18 lists every invitation neither sent nor answered. A record that does not
// decode is passed over (verify reports it) rather than failing the upgrade.
func migrate17to18(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bInvitesUnsent)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bInvitesUnsent, err)
	}
	var unsent []string
	if err := forEachRaw(tx, bInvites, "", func(id string, raw []byte) bool {
		var inv inviteRec
		if json.Unmarshal(raw, &inv) == nil && inv.awaitsSending() {
			unsent = append(unsent, id)
		}
		return true
	}); err != nil {
		return err
	}
	for _, id := range unsent {
		if err := putRaw(tx, bInvitesUnsent, id, nil); err != nil {
			return err
		}
	}
	return nil
}

// dropCodeTx forgets the code of a contact's invitation, if any.
func dropCodeTx(tx kv.Tx, contactID string) error {
	var inv inviteRec
	found, err := getJSON(tx, bInvites, contactID, &inv)
	if err != nil || !found || inv.CodeHash == "" {
		return err
	}
	return tx.Bucket([]byte(bInviteCodes)).Delete([]byte(inv.CodeHash))
}

// sendInvitation mints a fresh code for contact id's invitation and sends it, if it is still
// waiting to be sent and no other gateway is sending it (sent reports whether it went out
// now). Sends are one at a time here (inviteMu) and claimed in the store across gateways
// (SendingUntil), so two never race to replace each other's code.
func (r *Relay) sendInvitation(ctx context.Context, id string) (sent bool, err error) {
	const op = "send invitation"
	r.inviteMu.Lock()
	defer r.inviteMu.Unlock()
	code, err := newInviteCode()
	if err != nil {
		return false, ioErr(op, err)
	}
	now := r.clock.Now().UTC()
	var notice InvitationNotice
	send := false
	err = r.update(op, func(tx kv.Tx, _ *fanout) error {
		send = false
		var c ContactRecord
		var inv inviteRec
		if ok, err := getJSON(tx, bContacts, id, &c); err != nil || !ok {
			return err
		}
		if ok, err := getJSON(tx, bInvites, id, &inv); err != nil || !ok {
			return err
		}
		if inv.Sent || inv.Answer != "" || c.State != vocab.ContactApproved || c.Invite != vocab.InviteInvited || !now.Before(inv.ExpiresAt) {
			return nil
		}
		if sendingHeld(inv.SendingUntil, now) {
			return nil // another gateway is sending it now
		}
		if err := dropCodeTx(tx, id); err != nil {
			return err
		}
		inv.CodeHash = codeHash(code)
		inv.Attempts++
		inv.SendingUntil = now.Add(inviteSendClaim)
		if err := tx.Bucket([]byte(bInviteCodes)).Put([]byte(inv.CodeHash), []byte(id)); err != nil {
			return err
		}
		if err := putInvite(tx, id, inv); err != nil {
			return err
		}
		var in inmateRec
		if _, err := getJSON(tx, bInmates, c.InmateID, &in); err != nil {
			return err
		}
		notice = InvitationNotice{ContactID: id, ContactName: c.Name, Email: c.Email, InmateName: in.Name,
			FacilityID: facilityOf(tx, c.InmateID, c.FacilityID), Code: code, ExpiresAt: inv.ExpiresAt, URL: r.cfg.FamilyURL}
		send = true
		return nil
	})
	if err != nil || !send {
		return false, err
	}
	var sendErr error
	if r.cfg.Notifier == nil {
		sendErr = fmt.Errorf("this relay has no notifier configured (relayd -smtp or -invite-spool)")
	} else {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sendErr = r.cfg.Notifier.NotifyInvitation(sctx, notice)
		cancel()
	}
	hash := codeHash(code)
	err = r.update(op, func(tx kv.Tx, _ *fanout) error {
		var inv inviteRec
		if ok, err := getJSON(tx, bInvites, id, &inv); err != nil || !ok || inv.CodeHash != hash {
			return err // answered or re-issued meanwhile
		}
		inv.SendingUntil = time.Time{}
		if sendErr != nil {
			inv.LastError = sendErr.Error()
		} else {
			inv.Sent, inv.SentAt, inv.LastError = true, r.clock.Now().UTC(), ""
		}
		return putInvite(tx, id, inv)
	})
	if sendErr != nil {
		// The address and the error only: never the code.
		r.logf("relay: invitation of contact %s not sent (attempt kept for retry): %v", id, sendErr)
		return false, &vocab.Error{Kind: vocab.KindTransient, Op: op, Err: sendErr}
	}
	r.logf("relay: invitation of contact %s sent", id)
	return err == nil, err
}

// RetryInvitations sends every invitation not yet sent (a notifier that failed, a relay that
// stopped between approval and sending) and still valid. It reports how many were sent and
// how many failed again; relayd calls it periodically.
func (r *Relay) RetryInvitations(ctx context.Context) (sent, failed int, err error) {
	now := r.clock.Now().UTC()
	var ids, lapsed []string
	err = r.view("retry invitations", func(tx kv.Tx) error {
		ids, lapsed = ids[:0], lapsed[:0] // a View may run again: an invitation listed twice would be sent twice
		// The unsent ones only (invites_unsent), not every invitation ever made.
		var listed []string
		_ = forEachRaw(tx, bInvitesUnsent, "", func(id string, _ []byte) bool {
			listed = append(listed, id)
			return true
		})
		return eachInvitation(tx, listed, func(id string, inv inviteRec, c ContactRecord) {
			switch {
			case !inv.awaitsSending():
			case !now.Before(inv.ExpiresAt):
				lapsed = append(lapsed, id)
			case c.State == vocab.ContactApproved && c.Invite == vocab.InviteInvited:
				ids = append(ids, id)
			}
		})
	})
	if err != nil {
		return 0, 0, err
	}
	if len(lapsed) > 0 {
		if err := r.lapseInvitations(lapsed, now); err != nil {
			return 0, 0, err
		}
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return sent, failed, ctx.Err()
		}
		ok, err := r.sendInvitation(ctx, id)
		switch {
		case err != nil && vocab.KindOf(err) != vocab.KindTransient:
			return sent, failed, err
		case err != nil:
			failed++
		case ok:
			sent++
		}
	}
	return sent, failed, nil
}

// lapseInvitations takes invitations that expired before they could be sent off the retry's
// list, each if it is still unsent and expired when the transaction reads it (a reissue
// meanwhile gave it a fresh expiry): read every hour, they would never be sent.
func (r *Relay) lapseInvitations(ids []string, now time.Time) error {
	return r.update("lapse invitations", func(tx kv.Tx, _ *fanout) error {
		for _, id := range ids {
			var inv inviteRec
			if ok, err := getJSON(tx, bInvites, id, &inv); err != nil || !ok {
				return err
			}
			if !inv.awaitsSending() || now.Before(inv.ExpiresAt) {
				continue
			}
			inv.Lapsed = true
			if err := putInvite(tx, id, inv); err != nil {
				return err
			}
		}
		return nil
	})
}

// Invitations lists invitations for staff, unsent ones only if unsent.
func (r *Relay) Invitations(unsent bool) ([]Invitation, error) {
	now := r.clock.Now().UTC()
	out := []Invitation{}
	err := r.view("list invitations", func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		return forEachJSON(tx, bInvites, "", func(_ string, inv inviteRec) bool {
			var c ContactRecord
			if ok, err := getJSON(tx, bContacts, inv.ContactID, &c); err != nil || !ok {
				return true
			}
			v := invitationOf(c, inv, now)
			if !unsent || (!inv.Sent && v.State == vocab.InviteInvited) {
				out = append(out, v)
			}
			return true
		})
	})
	return out, err
}

// InvitationsIn is Invitations of the given facilities' contacts only, in their contacts'
// order (oldest first): it reads their lists (ContactsOf, InvitationsOf), not every
// invitation of the state.
func (r *Relay) InvitationsIn(facilities []string, unsent bool) ([]Invitation, error) {
	cs, err := r.ContactsOf(facilities...)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	invs, err := r.InvitationsOf(ids...)
	if err != nil {
		return nil, err
	}
	out := []Invitation{}
	for _, id := range ids {
		v, ok := invs[id]
		if ok && (!unsent || (!v.Sent && v.State == vocab.InviteInvited)) {
			out = append(out, v)
		}
	}
	return out, nil
}

func invitationOf(c ContactRecord, inv inviteRec, now time.Time) Invitation {
	state := vocab.InviteState(c.Contact, now)
	if c.State != vocab.ContactApproved {
		state = c.State // removed by the inmate, or asked for again and pending: no invitation open
	}
	return Invitation{ContactID: c.ID, InmateID: c.InmateID, FacilityID: c.FacilityID, Name: c.Name, Email: c.Email,
		State: state, IssuedAt: inv.IssuedAt, ExpiresAt: inv.ExpiresAt, Sent: inv.Sent,
		Attempts: inv.Attempts, LastError: inv.LastError, AnsweredAt: inv.AnswerAt, SendingUntil: inv.SendingUntil}
}

// ReissueInvitation gives an approved contact whose invitation expired unanswered a new one
// (a new code, valid for InviteTTL from now) and sends it. A send that fails is kept for retry
// and the invitation is returned with its error.
func (r *Relay) ReissueInvitation(ctx context.Context, contactID string) (Invitation, error) {
	const op = "reissue invitation"
	if err := checkID(op, "id", contactID); err != nil {
		return Invitation{}, err
	}
	now := r.clock.Now().UTC()
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		var c ContactRecord
		ok, err := getJSON(tx, bContacts, contactID, &c)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no contact %q", contactID)
		}
		if c.State != vocab.ContactApproved || vocab.InviteState(c.Contact, now) != vocab.InviteExpired {
			return conflict(op, "id", "contact %q is %s with invitation %s: only an expired invitation is issued again",
				contactID, c.State, vocab.InviteState(c.Contact, now))
		}
		if _, err := r.inviteOnApprovalTx(tx, &c, now); err != nil {
			return err
		}
		c.UpdatedAt = now
		if err := putJSON(tx, bContacts, c.ID, c); err != nil {
			return err
		}
		return f.toInmate(facilityOf(tx, c.InmateID, c.FacilityID), c.InmateID, "", wire.DownContact, c.Contact)
	})
	if err != nil {
		return Invitation{}, err
	}
	_, sendErr := r.sendInvitation(ctx, contactID)
	if sendErr != nil && vocab.KindOf(sendErr) != vocab.KindTransient {
		return Invitation{}, sendErr
	}
	return r.invitation(contactID)
}

func (r *Relay) invitation(contactID string) (Invitation, error) {
	var v Invitation
	now := r.clock.Now().UTC()
	err := r.view("read invitation", func(tx kv.Tx) error {
		var c ContactRecord
		var inv inviteRec
		if ok, err := getJSON(tx, bContacts, contactID, &c); err != nil || !ok {
			return err
		}
		if _, err := getJSON(tx, bInvites, contactID, &inv); err != nil {
			return err
		}
		v = invitationOf(c, inv, now)
		return nil
	})
	return v, err
}

// InvitationView is what the family page shows of an invitation before it is answered.
type InvitationView struct {
	ContactName string
	InmateName  string
	FacilityID  string
	ExpiresAt   time.Time
}

// errBadCode is the one answer to a code that is malformed, unknown, used or expired: the
// page says nothing that would tell a guesser which.
func errBadCode(op string) error {
	return notFound(op, "code", "this identification code is not valid: it may be mistyped, already used or expired")
}

// LookupInvitation shows who invites the holder of code, without answering.
func (r *Relay) LookupInvitation(code string) (InvitationView, error) {
	const op = "look up invitation"
	var v InvitationView
	norm, ok := normalizeCode(code)
	if !ok {
		return v, errBadCode(op)
	}
	now := r.clock.Now().UTC()
	err := r.view(op, func(tx kv.Tx) error {
		c, _, err := invitationByCode(tx, op, norm, now)
		if err != nil {
			return err
		}
		var in inmateRec
		if _, err := getJSON(tx, bInmates, c.InmateID, &in); err != nil {
			return err
		}
		v = InvitationView{ContactName: c.Name, InmateName: in.Name, FacilityID: facilityOf(tx, c.InmateID, c.FacilityID),
			ExpiresAt: c.InviteExpires}
		return nil
	})
	return v, err
}

// invitationByCode finds the contact and invitation a valid, unanswered, unexpired code opens.
func invitationByCode(tx kv.Tx, op, norm string, now time.Time) (ContactRecord, inviteRec, error) {
	var c ContactRecord
	var inv inviteRec
	id := tx.Bucket([]byte(bInviteCodes)).Get([]byte(codeHash(norm)))
	if id == nil {
		return c, inv, errBadCode(op)
	}
	okC, err := getJSON(tx, bContacts, string(id), &c)
	if err != nil {
		return c, inv, err
	}
	okI, err := getJSON(tx, bInvites, string(id), &inv)
	if err != nil {
		return c, inv, err
	}
	if !okC || !okI || inv.Answer != "" || c.State != vocab.ContactApproved || vocab.InviteState(c.Contact, now) != vocab.InviteInvited {
		return c, inv, errBadCode(op)
	}
	return c, inv, nil
}

// AnswerInvitation records the contact's answer to the invitation code opens (once: the code
// is spent) and tells the inmate's terminals. Blocking the facility also blocks every other
// invitation of the facility's inmates to the same address, now and later.
func (r *Relay) AnswerInvitation(code, answer string) (Invitation, error) {
	const op = "answer invitation"
	var state string
	switch answer {
	case AnswerAccept:
		state = vocab.InviteAccepted
	case AnswerDecline:
		state = vocab.InviteDeclined
	case AnswerBlockInmate, AnswerBlockFacility:
		state = vocab.InviteBlocked
	default:
		return Invitation{}, invalid(op, "answer", "must be accept, decline, block_inmate or block_facility")
	}
	norm, ok := normalizeCode(code)
	if !ok {
		return Invitation{}, errBadCode(op)
	}
	now := r.clock.Now().UTC()
	var v Invitation
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		c, inv, err := invitationByCode(tx, op, norm, now)
		if err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bInviteCodes)).Delete([]byte(inv.CodeHash)); err != nil {
			return err
		}
		inv.CodeHash, inv.Answer, inv.AnswerAt = "", answer, now
		if err := putInvite(tx, c.ID, inv); err != nil {
			return err
		}
		facility := facilityOf(tx, c.InmateID, c.FacilityID)
		if err := setInviteState(tx, f, facility, &c, state, now); err != nil {
			return err
		}
		v = invitationOf(c, inv, now)
		switch answer {
		case AnswerBlockInmate:
			return putJSON(tx, bBlocks, blockKey(facility, c.InmateID, c.Email),
				blockRec{Email: c.Email, InmateID: c.InmateID, Facility: facility, ContactID: c.ID, At: now})
		case AnswerBlockFacility:
			if err := putJSON(tx, bBlocks, blockKey(facility, "", c.Email),
				blockRec{Email: c.Email, Facility: facility, ContactID: c.ID, At: now}); err != nil {
				return err
			}
			return blockOthersTx(tx, f, facility, c, now)
		}
		return nil
	})
	if err != nil {
		return Invitation{}, err
	}
	r.logf("relay: invitation of contact %s answered: %s", v.ContactID, answer)
	return v, nil
}

// setInviteState stores c with its new invitation state and sends it to the inmate's terminals.
func setInviteState(tx kv.Tx, f *fanout, facility string, c *ContactRecord, state string, now time.Time) error {
	c.Invite, c.UpdatedAt = state, now
	if state != vocab.InviteInvited {
		c.InviteExpires = time.Time{}
	}
	if err := putJSON(tx, bContacts, c.ID, *c); err != nil {
		return err
	}
	return f.toInmate(facility, c.InmateID, "", wire.DownContact, c.Contact)
}

// blockOthersTx blocks the other approved contacts with c's address of inmates of facility:
// their open invitations are spent and no letter flows with them.
func blockOthersTx(tx kv.Tx, f *fanout, facility string, c ContactRecord, now time.Time) error {
	var others []ContactRecord
	if err := forEachJSON(tx, bContacts, "", func(_ string, o ContactRecord) bool {
		if o.ID != c.ID && strings.EqualFold(o.Email, c.Email) && o.State == vocab.ContactApproved &&
			o.Invite != vocab.InviteBlocked && facilityOf(tx, o.InmateID, o.FacilityID) == facility {
			others = append(others, o)
		}
		return true
	}); err != nil {
		return err
	}
	for _, o := range others {
		if err := dropCodeTx(tx, o.ID); err != nil {
			return err
		}
		var inv inviteRec
		if found, err := getJSON(tx, bInvites, o.ID, &inv); err != nil {
			return err
		} else if found && inv.Answer == "" {
			inv.CodeHash, inv.Answer, inv.AnswerAt = "", AnswerBlockFacility, now
			if err := putInvite(tx, o.ID, inv); err != nil {
				return err
			}
		}
		if err := setInviteState(tx, f, facility, &o, vocab.InviteBlocked, now); err != nil {
			return err
		}
	}
	return nil
}
