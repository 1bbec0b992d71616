package relay

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Each facility's contacts are listed under it (fac_contacts), by the facility the inmate
// asked from (ContactRecord.FacilityID), so its contacts screen reads them rather than every
// contact of the state. A contact is listed when a terminal asks for it, and moves to another
// facility's list only when asked for again from there.

// listContact puts c on its facility's list; a record with no valid facility or id (an older
// relay's damage) is left off it.
func listContact(tx kv.Tx, c ContactRecord) error {
	if checkID("", "", c.FacilityID) != nil || checkID("", "", c.ID) != nil {
		return nil
	}
	return putRaw(tx, bFacContacts, c.FacilityID+"/"+c.ID, nil)
}

// unlistContact takes c off its facility's list.
func unlistContact(tx kv.Tx, c ContactRecord) error {
	if checkID("", "", c.FacilityID) != nil || checkID("", "", c.ID) != nil {
		return nil
	}
	return deleteKey(tx, bFacContacts, c.FacilityID+"/"+c.ID)
}

// ContactsOf lists the contacts asked for in the given facilities, oldest first. It reads
// those facilities' lists and their contacts only.
func (r *Relay) ContactsOf(facilities ...string) ([]ContactRecord, error) {
	const op = "list contacts"
	if err := checkFacilityIDs(op, facilities); err != nil {
		return nil, err
	}
	out := []ContactRecord{}
	if len(facilities) == 0 {
		return out, nil // none asked for (listedUnder reads every facility for nil)
	}
	// A facility this relay holds is read from its held state, its contacts asked for and not
	// yet drained into the kv state too (statedue.go).
	var part []ContactRecord
	err := r.viewsFor(facilities, op, func(tx kv.Tx, facilities []string) error {
		part = part[:0] // a View may run again
		for _, facility := range facilities {
			if err := eachListed(tx, facility, bFacContacts, bContacts, func(id string, raw []byte) error {
				c, err := decodeContact(id, raw)
				if err == nil && c.FacilityID == facility {
					part = append(part, c)
				}
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	}, func() { out = append(out, part...) })
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// Contact reads one contact (found false if there is none).
func (r *Relay) Contact(id string) (c ContactRecord, found bool, err error) {
	const op = "read contact"
	if err := checkID(op, "id", id); err != nil {
		return ContactRecord{}, false, err
	}
	err = r.view(op, func(tx kv.Tx) error {
		c = ContactRecord{}
		found, err = getJSON(tx, bContacts, id, &c)
		return err
	})
	return c, found, err
}

// InvitationsOf gives the invitations of the named contacts, by contact id; a contact with
// none (never approved) is left out.
func (r *Relay) InvitationsOf(contactIDs ...string) (map[string]Invitation, error) {
	now := r.clock.Now().UTC()
	out := map[string]Invitation{}
	err := r.view("list invitations", func(tx kv.Tx) error {
		clear(out) // a View may run again
		return eachInvitation(tx, contactIDs, func(id string, inv inviteRec, c ContactRecord) {
			out[id] = invitationOf(c, inv, now)
		})
	})
	return out, err
}

// migrate15to16 lists every contact under the facility it was asked from. A record that does
// not decode is passed over (verify reports it) rather than failing the upgrade.
func migrate15to16(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bFacContacts)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bFacContacts, err)
	}
	var all []ContactRecord
	if err := forEachRaw(tx, bContacts, "", func(id string, raw []byte) bool {
		var c ContactRecord
		if json.Unmarshal(raw, &c) == nil && c.ID == id {
			all = append(all, c)
		}
		return true
	}); err != nil {
		return err
	}
	for _, c := range all {
		if err := listContact(tx, c); err != nil {
			return err
		}
	}
	return nil
}
