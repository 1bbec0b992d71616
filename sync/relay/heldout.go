package relay

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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
	if err := putLetter(tx, bLetters, o, n); err != nil {
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
	keys, err := listedKeys(tx, facilities, bHeldOut)
	if err != nil {
		return nil, err
	}
	return readLetters(tx, keys, func(o Outbound) bool { return o.Status == vocab.MsgHeld })
}

// readLetters reads the letters named by keys (facility + "/" + id, as bLetters keys them;
// fetched together where the store can), in that order, those keep accepts; a key with no
// letter is passed over.
func readLetters(tx kv.Tx, keys []string, keep func(Outbound) bool) ([]Outbound, error) {
	var fetch keyList
	for _, k := range keys {
		fetch.add(bLetters, k)
	}
	kv.Prefetch(tx, fetch)
	out := []Outbound{}
	for _, k := range keys {
		rec, found, err := getLetter(tx, bLetters, k)
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
	// A facility this relay holds is read from its held state, where its letters are current.
	out, part := []Outbound{}, []Outbound(nil)
	err := r.viewsFor(facilities, op, func(tx kv.Tx, facilities []string) error {
		var err error
		part, err = heldLetters(tx, facilities)
		return err
	}, func() { out = append(out, part...) })
	slices.SortStableFunc(out, func(a, b Outbound) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// OutboundLetter reads one outbound letter, body included (found false if there is none).
func (r *Relay) OutboundLetter(id string) (o Outbound, found bool, err error) {
	const op = "read outbound"
	if err := checkID(op, "id", id); err != nil {
		return Outbound{}, false, err
	}
	// Found by its index, the state's; read where its facility's records are current.
	var facility string
	if err := r.view(op, func(tx kv.Tx) error { facility = letterAt(tx, "", id); return nil }); err != nil || facility == "" {
		return Outbound{}, false, err
	}
	err = r.viewFor(facility, op, func(tx kv.Tx) error {
		rec, ok, err := getLetter(tx, bLetters, facility+"/"+id)
		o, found = rec.Outbound, ok
		return err
	})
	return o, found, err
}

// inmateLetters reads the outbound letters of one inmate through its index (by_inmate "m"),
// by id, as viewer sees the state's index (letterAt: "" for the kv state, or the facility
// whose held state tx is).
func inmateLetters(tx kv.Tx, viewer, inmateID string) ([]Outbound, error) {
	return readLetters(tx, letterKeys(tx, viewer, indexed(tx, inmateID, "m")), func(Outbound) bool { return true })
}

// letterKeys is where the index (bLetterAt, as viewer sees it) places each of ids, as
// bLetters keys them; an id it places nowhere is left out.
func letterKeys(tx kv.Tx, viewer string, ids []string) []string {
	var fetch keyList
	for _, id := range ids {
		fetch.add(bLetterAt, id)
	}
	kv.Prefetch(tx, fetch)
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if facility := letterAt(tx, viewer, id); facility != "" {
			keys = append(keys, facility+"/"+id)
		}
	}
	return keys
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
