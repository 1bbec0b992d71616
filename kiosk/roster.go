package kiosk

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// kBoundInmate is the meta key holding the id of the inmate a tablet is bound to.
const kBoundInmate = "bound_inmate"

// The rules for a person's fields, languages and ids are kiosk/vocab's, shared with the relay;
// what is here is the terminal's own: a stored PIN hash must be one kiosk/pin can verify, and
// a badge or id must be nobody else's in this store.

// badField and join are vocab's field errors and paths, for the checks made here.
func badField(path, format string, args ...any) error {
	return &vocab.FieldError{Field: path, Msg: fmt.Sprintf(format, args...)}
}

func join(prefix, field string) string { return vocab.FieldPath(prefix, field) }

func checkID(path, id string) error { return vocab.CheckID(path, id) }

// checkPINHash names the field of a PIN hash this terminal could not verify a PIN against.
func checkPINHash(path, h string) error {
	if h == "" {
		return badField(path, "is missing (make one with kioskctl hash-pin)")
	}
	if err := ValidatePINHash(h); err != nil {
		// The hash is not a secret the way a PIN is, but it is long and useless on a screen.
		var e *Error
		if errors.As(err, &e) && e.Err != nil {
			return badField(path, "%v", e.Err)
		}
		return badField(path, "not an argon2id hash")
	}
	return nil
}

// validateInmate checks every field of in; path prefixes the field names in the error.
func validateInmate(path string, in Inmate) error {
	if err := checkPINHash(join(path, "pin_hash"), in.PINHash); err != nil {
		return err
	}
	return vocab.ValidateInmateFields(path, in)
}

// validateTechnician checks every field of tc; path prefixes the field names in the error.
func validateTechnician(path string, tc Technician) error {
	if err := checkPINHash(join(path, "pin_hash"), tc.PINHash); err != nil {
		return err
	}
	return vocab.ValidateTechnicianFields(path, tc)
}

// ValidateInmate reports the first bad field of in, by its JSON name.
func ValidateInmate(in Inmate) error {
	if err := validateInmate("", in); err != nil {
		return &Error{Kind: KindInvalid, Op: "inmate", Err: err}
	}
	return nil
}

// ValidateTechnician reports the first bad field of tc, by its JSON name.
func ValidateTechnician(tc Technician) error {
	if err := validateTechnician("", tc); err != nil {
		return &Error{Kind: KindInvalid, Op: "technician", Err: err}
	}
	return nil
}

// badgeOwnerTx returns who holds badge, found false if nobody does.
func badgeOwnerTx(tx *bolt.Tx, badge string) (BadgeOwner, bool, error) {
	var o BadgeOwner
	found, err := getJSON(tx, bBadges, badge, &o)
	return o, found, err
}

// dropBadgesTx removes the mappings of badges that still point at (kind, id).
func dropBadgesTx(tx *bolt.Tx, kind, id string, badges []string) error {
	b := tx.Bucket([]byte(bBadges))
	for _, badge := range badges {
		o, found, err := badgeOwnerTx(tx, badge)
		if err != nil {
			return err
		}
		if found && o.Kind == kind && o.ID == id {
			if err := b.Delete([]byte(badge)); err != nil {
				return fmt.Errorf("remove badge mapping: %w", err)
			}
		}
	}
	return nil
}

// claimBadgesTx maps each badge to (kind, id), refusing any badge someone else holds.
func claimBadgesTx(tx *bolt.Tx, path, kind, id string, badges []string) error {
	for i, badge := range badges {
		o, found, err := badgeOwnerTx(tx, badge)
		if err != nil {
			return err
		}
		if found && (o.Kind != kind || o.ID != id) {
			return &Error{Kind: KindConflict, Op: "roster", Err: badField(
				fmt.Sprintf("%s[%d]", join(path, "badges"), i), "badge %q already belongs to %s %s", badge, o.Kind, o.ID)}
		}
		if err := putJSON(tx, bBadges, badge, BadgeOwner{Kind: kind, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// upsertInmateTx stores in from the relay, replacing any earlier record with its id: badges it
// no longer holds are released, the new ones claimed, taken from whoever holds them here. A
// change of status is audited; the rest is the relay's.
func upsertInmateTx(tx *bolt.Tx, now time.Time, in Inmate) error {
	if err := validateInmate("", in); err != nil {
		return &Error{Kind: KindInvalid, Op: "roster", Err: err}
	}
	if err := takeBadgesTx(tx, now, PersonInmate, in.ID, in.Badges); err != nil {
		return err
	}
	return upsertInmateAt(tx, now, "", in, "")
}

// takeBadgesTx moves each badge another person holds on this terminal to (kind, id): the relay
// keeps badges unique across a facility's roster, so its latest word on a badge is the truth. A
// roster update can move a badge from a released inmate to a new one, or swap two people's
// badges, and no order of items would then let a refusing terminal catch up. The person who
// loses a badge keeps the rest of their record (possibly with no badge left: then only the
// relay's next word about them gives them one).
func takeBadgesTx(tx *bolt.Tx, now time.Time, kind, id string, badges []string) error {
	for _, badge := range badges {
		o, found, err := badgeOwnerTx(tx, badge)
		if err != nil {
			return err
		}
		if !found || (o.Kind == kind && o.ID == id) {
			continue
		}
		bucket := bInmates
		if o.Kind == PersonTechnician {
			bucket = bTechnicians
		}
		var rec map[string]json.RawMessage
		had, err := getJSON(tx, bucket, o.ID, &rec)
		if err != nil {
			return err
		}
		if had {
			var held []string
			if err := json.Unmarshal(rec["badges"], &held); err != nil && rec["badges"] != nil {
				return &Error{Kind: KindCorrupt, Op: "move badge", Err: fmt.Errorf("%s %s: badges: %w", o.Kind, o.ID, err)}
			}
			held = slices.DeleteFunc(held, func(b string) bool { return b == badge })
			raw, err := json.Marshal(held)
			if err != nil {
				return fmt.Errorf("move badge: %w", err)
			}
			rec["badges"] = raw
			if err := putJSON(tx, bucket, o.ID, rec); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(bBadges)).Delete([]byte(badge)); err != nil {
			return fmt.Errorf("move badge: %w", err)
		}
		// The badge id itself stays out of the audit log; who lost one to whom is enough.
		if err := appendAudit(tx, now, "badge_moved", "relay", map[string]string{
			"from": o.Kind + " " + o.ID, "to": kind + " " + id}); err != nil {
			return err
		}
	}
	return nil
}

func upsertInmateAt(tx *bolt.Tx, now time.Time, path string, in Inmate, actor string) error {
	if err := validateInmate(path, in); err != nil {
		return &Error{Kind: KindInvalid, Op: "roster", Err: err}
	}
	if tx.Bucket([]byte(bTechnicians)).Get([]byte(in.ID)) != nil {
		// Login state is kept per person id, so an id must name one person.
		return &Error{Kind: KindConflict, Op: "roster", Err: badField(join(path, "id"), "%q is already a technician's id", in.ID)}
	}
	var old Inmate
	had, err := getJSON(tx, bInmates, in.ID, &old)
	if err != nil {
		return err
	}
	if had {
		if err := dropBadgesTx(tx, PersonInmate, in.ID, old.Badges); err != nil {
			return err
		}
	}
	if err := claimBadgesTx(tx, path, PersonInmate, in.ID, in.Badges); err != nil {
		return err
	}
	in.Badges = slices.Clone(in.Badges)
	if err := putJSON(tx, bInmates, in.ID, in); err != nil {
		return err
	}
	if had && old.Status != in.Status {
		return appendAudit(tx, now, "inmate_status", actor, map[string]string{"inmate": in.ID, "status": in.Status})
	}
	return nil
}

// upsertTechnicianTx stores tc from the relay, replacing any earlier record with its id; its
// badges are taken from whoever holds them here (takeBadgesTx).
func upsertTechnicianTx(tx *bolt.Tx, now time.Time, tc Technician) error {
	if err := validateTechnician("", tc); err != nil {
		return &Error{Kind: KindInvalid, Op: "roster", Err: err}
	}
	if err := takeBadgesTx(tx, now, PersonTechnician, tc.ID, tc.Badges); err != nil {
		return err
	}
	return upsertTechnicianAt(tx, "", tc)
}

func upsertTechnicianAt(tx *bolt.Tx, path string, tc Technician) error {
	if err := validateTechnician(path, tc); err != nil {
		return &Error{Kind: KindInvalid, Op: "roster", Err: err}
	}
	if tx.Bucket([]byte(bInmates)).Get([]byte(tc.ID)) != nil {
		return &Error{Kind: KindConflict, Op: "roster", Err: badField(join(path, "id"), "%q is already an inmate's id", tc.ID)}
	}
	var old Technician
	had, err := getJSON(tx, bTechnicians, tc.ID, &old)
	if err != nil {
		return err
	}
	if had {
		if err := dropBadgesTx(tx, PersonTechnician, tc.ID, old.Badges); err != nil {
			return err
		}
	}
	if err := claimBadgesTx(tx, path, PersonTechnician, tc.ID, tc.Badges); err != nil {
		return err
	}
	tc.Badges = slices.Clone(tc.Badges)
	return putJSON(tx, bTechnicians, tc.ID, tc)
}

// setInmateStatusTx suspends or reinstates an inmate; the change is audited.
func setInmateStatusTx(tx *bolt.Tx, now time.Time, id, status, actor string) error {
	if status != StatusActive && status != StatusSuspended {
		return errInvalid("set inmate status", "status %q is not %s or %s", status, StatusActive, StatusSuspended)
	}
	var in Inmate
	found, err := getJSON(tx, bInmates, id, &in)
	if err != nil {
		return err
	}
	if !found {
		return errNotFound("set inmate status", "no inmate %q", id)
	}
	if in.Status == status {
		return nil
	}
	in.Status = status
	if err := putJSON(tx, bInmates, id, in); err != nil {
		return err
	}
	return appendAudit(tx, now, "inmate_status", actor, map[string]string{"inmate": id, "status": status})
}

// removeInmateTx deletes an inmate (released, transferred), its badges, login state and any
// tablet binding to it. Accounts, sessions and messages stay until the relay has them.
func removeInmateTx(tx *bolt.Tx, now time.Time, id, actor string) error {
	var in Inmate
	found, err := getJSON(tx, bInmates, id, &in)
	if err != nil || !found {
		return err
	}
	if err := dropBadgesTx(tx, PersonInmate, id, in.Badges); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bInmates)).Delete([]byte(id)); err != nil {
		return fmt.Errorf("remove inmate: %w", err)
	}
	if err := tx.Bucket([]byte(bLogins)).Delete([]byte(id)); err != nil {
		return fmt.Errorf("remove login state: %w", err)
	}
	meta := tx.Bucket([]byte(bMeta))
	if string(meta.Get([]byte(kBoundInmate))) == id {
		if err := meta.Delete([]byte(kBoundInmate)); err != nil {
			return fmt.Errorf("remove tablet binding: %w", err)
		}
	}
	return appendAudit(tx, now, "inmate_removed", actor, map[string]string{"inmate": id})
}

// removeTechnicianTx deletes a technician, its badges and login state.
func removeTechnicianTx(tx *bolt.Tx, now time.Time, id, actor string) error {
	var tc Technician
	found, err := getJSON(tx, bTechnicians, id, &tc)
	if err != nil || !found {
		return err
	}
	if err := dropBadgesTx(tx, PersonTechnician, id, tc.Badges); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bTechnicians)).Delete([]byte(id)); err != nil {
		return fmt.Errorf("remove technician: %w", err)
	}
	if err := tx.Bucket([]byte(bLogins)).Delete([]byte(id)); err != nil {
		return fmt.Errorf("remove login state: %w", err)
	}
	return appendAudit(tx, now, "technician_removed", actor, map[string]string{"technician": id})
}

// applyRosterTx upserts every record of r as one change: all badges of the records being
// replaced are released first, so a badge may move between people listed in the same roster.
// src (a file name, "relay") starts every error, which names the record's field.
func applyRosterTx(tx *bolt.Tx, now time.Time, src string, r Roster, actor string) error {
	for _, in := range r.Inmates {
		var old Inmate
		if had, err := getJSON(tx, bInmates, in.ID, &old); err != nil {
			return err
		} else if had {
			if err := dropBadgesTx(tx, PersonInmate, old.ID, old.Badges); err != nil {
				return err
			}
		}
	}
	for _, tc := range r.Technicians {
		var old Technician
		if had, err := getJSON(tx, bTechnicians, tc.ID, &old); err != nil {
			return err
		} else if had {
			if err := dropBadgesTx(tx, PersonTechnician, old.ID, old.Badges); err != nil {
				return err
			}
		}
	}
	prefix := func(err error) error {
		var e *Error
		if src != "" && errors.As(err, &e) && e.Err != nil {
			e.Err = fmt.Errorf("%s: %w", src, e.Err)
		}
		return err
	}
	for i, in := range r.Inmates {
		if err := upsertInmateAt(tx, now, fmt.Sprintf("inmates[%d]", i), in, actor); err != nil {
			return prefix(err)
		}
	}
	for i, tc := range r.Technicians {
		if err := upsertTechnicianAt(tx, fmt.Sprintf("technicians[%d]", i), tc); err != nil {
			return prefix(err)
		}
	}
	return nil
}

// bindTabletTx binds this terminal to inmateID (tablet mode); "" unbinds it.
func bindTabletTx(tx *bolt.Tx, now time.Time, inmateID, actor string) error {
	meta := tx.Bucket([]byte(bMeta))
	if inmateID == "" {
		if err := meta.Delete([]byte(kBoundInmate)); err != nil {
			return fmt.Errorf("unbind tablet: %w", err)
		}
		return appendAudit(tx, now, "tablet_unbound", actor, nil)
	}
	if err := checkID("inmate", inmateID); err != nil {
		return &Error{Kind: KindInvalid, Op: "bind tablet", Err: err}
	}
	if err := meta.Put([]byte(kBoundInmate), []byte(inmateID)); err != nil {
		return fmt.Errorf("bind tablet: %w", err)
	}
	return appendAudit(tx, now, "tablet_bound", actor, map[string]string{"inmate": inmateID})
}

func boundInmateTx(tx *bolt.Tx) string {
	return string(tx.Bucket([]byte(bMeta)).Get([]byte(kBoundInmate)))
}

// UpsertInmate adds or replaces an inmate record (validated, badges unique across the roster);
// the change is audited under actor.
func (t *Terminal) UpsertInmate(in Inmate, actor string) error {
	err := t.store.update("save inmate", func(tx *bolt.Tx) error {
		now := t.clock.Now()
		if err := upsertInmateAt(tx, now, "", in, actor); err != nil {
			return err
		}
		return appendAudit(tx, now, "inmate_saved", actor, map[string]string{"inmate": in.ID})
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: in.ID, At: t.clock.Now()})
	}
	return err
}

// UpsertTechnician adds or replaces a technician record; the change is audited under actor.
func (t *Terminal) UpsertTechnician(tc Technician, actor string) error {
	return t.store.update("save technician", func(tx *bolt.Tx) error {
		if err := upsertTechnicianAt(tx, "", tc); err != nil {
			return err
		}
		return appendAudit(tx, t.clock.Now(), "technician_saved", actor, map[string]string{"technician": tc.ID, "role": tc.Role})
	})
}

// SuspendInmate refuses the inmate's future logins until ReinstateInmate.
func (t *Terminal) SuspendInmate(id, actor string) error {
	return t.setStatus(id, StatusSuspended, actor)
}

// ReinstateInmate lets a suspended inmate log in again.
func (t *Terminal) ReinstateInmate(id, actor string) error {
	return t.setStatus(id, StatusActive, actor)
}

func (t *Terminal) setStatus(id, status, actor string) error {
	err := t.store.update("set inmate status", func(tx *bolt.Tx) error {
		return setInmateStatusTx(tx, t.clock.Now(), id, status, actor)
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: id, At: t.clock.Now()})
	}
	return err
}

// RemoveInmate deletes an inmate from this terminal's roster; removing one absent is not an error.
func (t *Terminal) RemoveInmate(id, actor string) error {
	return t.store.update("remove inmate", func(tx *bolt.Tx) error {
		return removeInmateTx(tx, t.clock.Now(), id, actor)
	})
}

// RemoveTechnician deletes a technician; removing one absent is not an error.
func (t *Terminal) RemoveTechnician(id, actor string) error {
	return t.store.update("remove technician", func(tx *bolt.Tx) error {
		return removeTechnicianTx(tx, t.clock.Now(), id, actor)
	})
}

// SetLanguage remembers the language an inmate reads the screens in.
func (t *Terminal) SetLanguage(inmateID, lang string) error {
	if !KnownLanguage(lang) {
		return errInvalid("set language", "language %q is not one of en, es", lang)
	}
	err := t.store.update("set language", func(tx *bolt.Tx) error {
		var in Inmate
		found, err := getJSON(tx, bInmates, inmateID, &in)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound("set language", "no inmate %q", inmateID)
		}
		if in.Language == lang {
			return nil
		}
		in.Language = lang
		return putJSON(tx, bInmates, inmateID, in)
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: t.clock.Now()})
	}
	return err
}

// Inmate returns an inmate's record for the screens, without the PIN hash: a short PIN
// is quickly found from its hash, so the hash stays inside this package.
func (t *Terminal) Inmate(id string) (Inmate, error) {
	var in Inmate
	err := t.store.view(func(tx *bolt.Tx) error {
		found, err := getJSON(tx, bInmates, id, &in)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound("inmate", "no inmate %q", id)
		}
		return nil
	})
	in.PINHash = ""
	return in, err
}

// Technician returns a technician's record without the PIN hash.
func (t *Terminal) Technician(id string) (Technician, error) {
	var tc Technician
	err := t.store.view(func(tx *bolt.Tx) error {
		found, err := getJSON(tx, bTechnicians, id, &tc)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound("technician", "no technician %q", id)
		}
		return nil
	})
	tc.PINHash = ""
	return tc, err
}

// Roster lists every inmate and technician, in id order, without PIN hashes.
func (s *Store) Roster() (Roster, error) {
	var r Roster
	err := s.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bInmates)).ForEach(func(k, v []byte) error {
			var in Inmate
			if err := json.Unmarshal(v, &in); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read inmates", Err: fmt.Errorf("record %q: %w", k, err)}
			}
			in.PINHash = ""
			r.Inmates = append(r.Inmates, in)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket([]byte(bTechnicians)).ForEach(func(k, v []byte) error {
			var tc Technician
			if err := json.Unmarshal(v, &tc); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read technicians", Err: fmt.Errorf("record %q: %w", k, err)}
			}
			tc.PINHash = ""
			r.Technicians = append(r.Technicians, tc)
			return nil
		})
	})
	return r, err
}

// BindTablet puts the terminal in tablet mode for inmateID, who must be on the roster.
func (t *Terminal) BindTablet(inmateID string) error {
	err := t.store.update("bind tablet", func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bInmates)).Get([]byte(inmateID)) == nil {
			return errNotFound("bind tablet", "no inmate %q", inmateID)
		}
		return bindTabletTx(tx, t.clock.Now(), inmateID, "")
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: t.clock.Now()})
	}
	return err
}

// UnbindTablet returns the terminal to shared-kiosk mode.
func (t *Terminal) UnbindTablet() error {
	return t.store.update("unbind tablet", func(tx *bolt.Tx) error {
		return bindTabletTx(tx, t.clock.Now(), "", "")
	})
}

// BoundInmate reports the inmate this terminal is bound to; ok is false on a shared kiosk.
func (t *Terminal) BoundInmate() (inmateID string, ok bool, err error) {
	err = t.store.view(func(tx *bolt.Tx) error {
		inmateID = boundInmateTx(tx)
		return nil
	})
	return inmateID, inmateID != "", err
}
