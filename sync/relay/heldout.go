package relay

import (
	"encoding/json"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Letters held for review are listed under their facility (held_outbound), so the review
// queue, and every approval or rejection from it, reads the letters waiting rather than every
// letter the state ever stored. Every write of an outbound letter goes through putOutbound,
// which keeps the list.

// putOutbound stores letter o whose body is item n (putLetter), and keeps its facility's list
// of held letters: wasHeld says whether the stored letter was held before this write.
//
// The list is the facility's (held_outbound): written through f, due where f's call runs in
// a kv transaction for a facility this relay holds (fanoutdue.go).
func putOutbound(tx kv.Tx, f *fanout, o Outbound, n uint64, wasHeld bool) error {
	if err := putLetter(tx, bOutbound, o, n); err != nil {
		return err
	}
	held := o.Status == vocab.MsgHeld
	if held == wasHeld || checkID("", "", o.FacilityID) != nil || checkID("", "", o.ID) != nil {
		return nil // a record with no valid facility (an older relay's damage) is left off; verify reports it
	}
	if f.deferTo(o.FacilityID) {
		if held {
			return f.putIn(tx, o.FacilityID, bHeldOut, o.FacilityID+"/"+o.ID, nil)
		}
		return f.deleteIn(tx, o.FacilityID, bHeldOut, o.FacilityID+"/"+o.ID)
	}
	if held {
		return putAppended(tx, bHeldOut, o.FacilityID+"/"+o.ID, nil) // ids are UUIDv7s, in time order
	}
	return deleteKey(tx, bHeldOut, o.FacilityID+"/"+o.ID)
}

// heldLetters reads the held letters listed under the given facilities (every facility if
// none is given), by id. A listed letter no longer held is passed over.
func heldLetters(tx kv.Tx, facilities []string) ([]Outbound, error) {
	ids, err := listedUnder(tx, facilities, bHeldOut)
	if err != nil {
		return nil, err
	}
	return readLetters(tx, ids, func(o Outbound) bool { return o.Status == vocab.MsgHeld })
}

// readLetters reads the outbound letters named by ids (fetched together where the store can),
// in that order, those keep accepts; an id with no letter is passed over.
func readLetters(tx kv.Tx, ids []string, keep func(Outbound) bool) ([]Outbound, error) {
	return readLettersIn(tx, bOutbound, ids, keep)
}

// readLettersIn is readLetters of bucket (bOutbound or bPREA).
func readLettersIn(tx kv.Tx, bucket string, ids []string, keep func(Outbound) bool) ([]Outbound, error) {
	var keys keyList
	for _, id := range ids {
		keys.add(bucket, id)
	}
	kv.Prefetch(tx, keys)
	out := []Outbound{}
	for _, id := range ids {
		rec, found, err := getLetter(tx, bucket, id)
		if err != nil {
			return nil, err
		}
		if found && keep(rec.Outbound) {
			out = append(out, rec.Outbound)
		}
	}
	return out, nil
}

// HeldOutbound lists the letters held for review in the given facilities, oldest first. It
// reads those facilities' held letters only: the review queue of one prison costs the same in
// a state, and after years of mail, as on its first day.
func (r *Relay) HeldOutbound(facilities ...string) ([]Outbound, error) {
	const op = "list held letters"
	if err := checkFacilityIDs(op, facilities); err != nil {
		return nil, err
	}
	if len(facilities) == 0 {
		return []Outbound{}, nil
	}
	var out []Outbound
	err := r.view(op, func(tx kv.Tx) error {
		var err error
		out, err = heldLetters(tx, facilities)
		return err
	})
	return out, err
}

// OutboundLetter reads one outbound letter, body included (found false if there is none).
func (r *Relay) OutboundLetter(id string) (o Outbound, found bool, err error) {
	const op = "read outbound"
	if err := checkID(op, "id", id); err != nil {
		return Outbound{}, false, err
	}
	err = r.view(op, func(tx kv.Tx) error {
		rec, ok, err := getLetter(tx, bOutbound, id)
		o, found = rec.Outbound, ok
		return err
	})
	return o, found, err
}

// inmateLetters reads the outbound letters of one inmate through its index (by_inmate "m"),
// by id.
func inmateLetters(tx kv.Tx, inmateID string) ([]Outbound, error) {
	return readLetters(tx, indexed(tx, inmateID, "m"), func(Outbound) bool { return true })
}

// migrate14to15 lists every letter held before the upgrade under its facility. A record that
// does not decode is passed over (verify reports it) rather than failing the upgrade.
func migrate14to15(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bHeldOut)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bHeldOut, err)
	}
	var held []Outbound
	if err := forEachRaw(tx, bOutbound, "", func(_ string, raw []byte) bool {
		var rec letterRec
		if json.Unmarshal(raw, &rec) == nil && rec.Status == vocab.MsgHeld {
			held = append(held, rec.Outbound)
		}
		return true
	}); err != nil {
		return err
	}
	for _, o := range held {
		if checkID("", "", o.FacilityID) != nil || checkID("", "", o.ID) != nil {
			continue
		}
		if err := putRaw(tx, bHeldOut, o.FacilityID+"/"+o.ID, nil); err != nil {
			return err
		}
	}
	return nil
}
