package kiosk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	bolt "go.etcd.io/bbolt"
)

// ValidateEmail checks an address an inmate typed and returns it as it will be stored; the
// rule is vocab.ValidateEmail, the one the relay runs on every contact request.
func ValidateEmail(addr string) (string, error) { return vocab.ValidateEmail(addr) }

func contactKey(inmateID, contactID string) string { return inmateID + "/" + contactID }

// listContactsTx returns every contact record of an inmate, removed ones included, oldest first.
func listContactsTx(tx *bolt.Tx, inmateID string) ([]Contact, error) {
	var out []Contact
	prefix := []byte(inmateID + "/")
	c := tx.Bucket([]byte(bContacts)).Cursor()
	for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
		var ct Contact
		if err := json.Unmarshal(v, &ct); err != nil {
			return nil, &Error{Kind: KindCorrupt, Op: "read contacts", Err: fmt.Errorf("record %q: %w", k, err)}
		}
		// An id holding "/" could share this prefix; the record says whose it is.
		if ct.InmateID == inmateID {
			out = append(out, ct)
		}
	}
	return out, nil
}

func getInmateTx(tx *bolt.Tx, op, inmateID string) (Inmate, error) {
	var in Inmate
	if inmateID == "" {
		return in, errInvalid(op, "no inmate given")
	}
	found, err := getJSON(tx, bInmates, inmateID, &in)
	if err != nil {
		return in, err
	}
	if !found {
		return in, errNotFound(op, "inmate %q is not on this terminal's roster", inmateID)
	}
	return in, nil
}

// Contacts lists an inmate's contacts that are pending, approved or declined, oldest first.
func (t *Terminal) Contacts(inmateID string) ([]Contact, error) {
	var out []Contact
	err := t.store.view(func(tx *bolt.Tx) error {
		all, err := listContactsTx(tx, inmateID)
		for _, c := range all {
			if c.State != ContactRemoved {
				out = append(out, c)
			}
		}
		return err
	})
	return out, err
}

// AddContact asks for a new contact in the inmate's own session: it is stored as pending and a
// request is queued for the relay in the same transaction. Live (pending + approved) contacts are limited to
// Policy.MaxContacts; an address already live is a conflict; a declined or removed address
// is asked for again under its old id.
func (t *Terminal) AddContact(inmateID, name, email string) (Contact, error) {
	const op = "add contact"
	name, err := vocab.ValidateContactName(name)
	if err != nil {
		return Contact{}, err
	}
	email, err = ValidateEmail(email)
	if err != nil {
		return Contact{}, err
	}
	if err := t.requireSession(op, inmateID); err != nil {
		return Contact{}, err
	}
	max := t.Policy().MaxContacts
	now := t.clock.Now().UTC()
	var added Contact
	err = t.store.update(op, func(tx *bolt.Tx) error {
		in, err := getInmateTx(tx, op, inmateID)
		if err != nil {
			return err
		}
		if !in.Messaging {
			return errRefused(op, ReasonNoMessaging, time.Time{})
		}
		all, err := listContactsTx(tx, inmateID)
		if err != nil {
			return err
		}
		live := 0
		var old *Contact
		for i, c := range all {
			if ContactLive(c, now) {
				live++
			}
			if strings.EqualFold(c.Email, email) {
				if ContactLive(c, now) {
					return &Error{Kind: KindConflict, Op: op, Err: fmt.Errorf("%s is already a contact (%s)", email, c.State)}
				}
				old = &all[i]
			}
		}
		if live >= max {
			return &Error{Kind: KindRefused, Op: op, Reason: ReasonContactLimit,
				Err: fmt.Errorf("%d of %d contacts are in use; remove one first", live, max)}
		}
		if old != nil {
			added = *old
		} else {
			id, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("make contact id: %w", err)
			}
			added = Contact{ID: id.String(), InmateID: inmateID}
		}
		added.Name, added.Email, added.State, added.Reason, added.UpdatedAt = name, email, ContactPending, "", now
		added.Invite, added.InviteExpires = "", time.Time{} // asked again: a new approval, a new invitation
		if err := putJSON(tx, bContacts, contactKey(inmateID, added.ID), added); err != nil {
			return err
		}
		_, err = enqueue(tx, now, ItemContactRequest, added)
		return err
	})
	if err != nil {
		return Contact{}, err
	}
	t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	return added, nil
}

// RemoveContact marks a contact removed and queues the removal for the relay, in the inmate's
// own session. Removing a contact already removed changes nothing.
func (t *Terminal) RemoveContact(inmateID, contactID string) error {
	const op = "remove contact"
	if err := t.requireSession(op, inmateID); err != nil {
		return err
	}
	now := t.clock.Now().UTC()
	changed := false
	err := t.store.update(op, func(tx *bolt.Tx) error {
		var c Contact
		found, err := getJSON(tx, bContacts, contactKey(inmateID, contactID), &c)
		if err != nil {
			return err
		}
		if !found || c.InmateID != inmateID {
			return errNotFound(op, "contact %q", contactID)
		}
		if c.State == ContactRemoved {
			return nil
		}
		c.State, c.Reason, c.UpdatedAt = ContactRemoved, "", now
		if err := putJSON(tx, bContacts, contactKey(inmateID, contactID), c); err != nil {
			return err
		}
		changed = true
		_, err = enqueue(tx, now, ItemContactRemove, c)
		return err
	})
	if err == nil && changed {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return err
}

// setContactStateTx applies the relay's decision on a contact (approved or declined, or
// removed by the facility). A contact the inmate removed stays removed: a late approval must
// not bring it back. Setting the state it already has changes nothing.
func setContactStateTx(tx *bolt.Tx, now time.Time, inmateID, contactID, state, reason string) error {
	const op = "set contact state"
	switch state {
	case ContactApproved, ContactDeclined, ContactRemoved:
	default:
		return errInvalid(op, "state %q is not approved, declined or removed", state)
	}
	var c Contact
	found, err := getJSON(tx, bContacts, contactKey(inmateID, contactID), &c)
	if err != nil {
		return err
	}
	if !found || c.InmateID != inmateID {
		return errNotFound(op, "contact %q of inmate %q", contactID, inmateID)
	}
	if c.State == ContactRemoved || (c.State == state && c.Reason == reason) {
		return nil
	}
	c.State, c.Reason, c.UpdatedAt = state, reason, now.UTC()
	return putJSON(tx, bContacts, contactKey(inmateID, contactID), c)
}

// SetContactState applies a relay decision in its own transaction and tells the screens.
func (t *Terminal) SetContactState(inmateID, contactID, state, reason string) error {
	now := t.clock.Now()
	err := t.store.update("set contact state", func(tx *bolt.Tx) error {
		return setContactStateTx(tx, now, inmateID, contactID, state, reason)
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return err
}

// contactRequestRefused: a request the relay refuses for good will never be approved, so
// it stops holding one of the inmate's slots and the inmate sees why.
func contactRequestRefused(tx *bolt.Tx, now time.Time, it Item, reason string) error {
	var c Contact
	if err := json.Unmarshal(it.Body, &c); err != nil {
		return &Error{Kind: KindCorrupt, Op: "read contact request", Err: err}
	}
	var cur Contact
	found, err := getJSON(tx, bContacts, contactKey(c.InmateID, c.ID), &cur)
	if err != nil || !found || cur.State != ContactPending {
		return err
	}
	cur.State, cur.Reason, cur.UpdatedAt = ContactDeclined, reason, now.UTC()
	return putJSON(tx, bContacts, contactKey(c.InmateID, c.ID), cur)
}

// applyContactTx applies a contact record from the relay. A contact this terminal knows gets
// the relay's decision (setContactStateTx); one it does not know (the inmate asked for it at
// another kiosk) is stored as the relay sends it, so it can be written to from here too.
func applyContactTx(tx *bolt.Tx, now time.Time, c Contact) error {
	const op = "apply contact"
	if c.ID == "" || len(c.ID) > 128 || strings.Contains(c.ID, "/") || c.InmateID == "" {
		return errInvalid(op, "contact id %q of inmate %q is missing or malformed", c.ID, c.InmateID)
	}
	found, err := getJSON(tx, bContacts, contactKey(c.InmateID, c.ID), &Contact{})
	if err != nil {
		return err
	}
	if found {
		if c.State == ContactPending {
			return nil // the terminal already knows it asked
		}
		if err := setContactStateTx(tx, now, c.InmateID, c.ID, c.State, c.Reason); err != nil {
			return err
		}
		return setInviteTx(tx, c)
	}
	switch c.State {
	case ContactPending, ContactApproved, ContactDeclined:
	case ContactRemoved:
		return nil
	default:
		return errInvalid(op, "state %q is not pending, approved, declined or removed", c.State)
	}
	if c.Name, err = vocab.ValidateContactName(c.Name); err != nil {
		return err
	}
	if c.Email, err = ValidateEmail(c.Email); err != nil {
		return err
	}
	if !knownInvite(c.Invite) {
		return errInvalid(op, "invitation state %q is not invited, accepted, declined, blocked or expired", c.Invite)
	}
	c.UpdatedAt = now.UTC()
	return putJSON(tx, bContacts, contactKey(c.InmateID, c.ID), c)
}

func knownInvite(s string) bool {
	switch s {
	case "", InviteInvited, InviteAccepted, InviteDeclined, InviteBlocked, InviteExpired:
		return true
	}
	return false
}

// setInviteTx applies the relay's invitation state of a contact this terminal holds (after its
// staff decision). A contact the inmate removed stays as it is.
func setInviteTx(tx *bolt.Tx, in Contact) error {
	const op = "apply contact"
	if !knownInvite(in.Invite) {
		return errInvalid(op, "invitation state %q is not invited, accepted, declined, blocked or expired", in.Invite)
	}
	var c Contact
	found, err := getJSON(tx, bContacts, contactKey(in.InmateID, in.ID), &c)
	if err != nil || !found || c.State == ContactRemoved {
		return err
	}
	if c.Invite == in.Invite && c.InviteExpires.Equal(in.InviteExpires) {
		return nil
	}
	c.Invite, c.InviteExpires = in.Invite, in.InviteExpires.UTC()
	return putJSON(tx, bContacts, contactKey(in.InmateID, in.ID), c)
}
