package relay

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// PREA reports are listed under the facility whose terminal filed them (fac_prea), so that a
// facility's PREA coordinator reads that facility's reports rather than every report of the
// state. A report is written once (applyPREA) and never changes facility, so its listing is
// written once with it, in the same transaction.

// listPREA puts report o on its facility's list.
func listPREA(tx kv.Tx, o Outbound) error {
	if checkID("", "", o.FacilityID) != nil || checkID("", "", o.ID) != nil {
		return nil // an older relay's damage: verify reports it
	}
	return putAppended(tx, bFacPREA, o.FacilityID+"/"+o.ID, nil) // ids are UUIDv7s, in time order
}

// PREAReportsOf lists the PREA reports filed in the given facilities, oldest first (by id),
// bodies included. It reads those facilities' lists and their reports only, and gives a
// report only if its own record names one of those facilities: a list entry in the wrong
// place (damage verify reports) never shows one facility's report to another's coordinator.
func (r *Relay) PREAReportsOf(facilities ...string) ([]Outbound, error) {
	const op = "list PREA reports"
	if err := checkFacilityIDs(op, facilities); err != nil {
		return nil, err
	}
	if len(facilities) == 0 {
		return []Outbound{}, nil // none asked for (listedUnder reads every facility for nil)
	}
	out, part := []Outbound{}, []Outbound(nil)
	// A held facility's list is read from its held state, and a report it has not drained
	// into the kv state yet from its state_due (statedue.go).
	err := r.viewsFor(facilities, op, func(tx kv.Tx, facilities []string) error {
		part = part[:0]
		for _, facility := range facilities {
			if err := eachListed(tx, facility, bFacPREA, bPREA, func(id string, raw []byte) error {
				rec, err := decodeLetter(tx, bPREA, id, raw)
				if err == nil && rec.FacilityID == facility {
					part = append(part, rec.Outbound)
				}
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	}, func() { out = append(out, part...) })
	slices.SortStableFunc(out, func(a, b Outbound) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// migrate19to20 lists every PREA report under its facility. A record that does not decode is
// passed over (verify reports it) rather than failing the upgrade.
func migrate19to20(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bFacPREA)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bFacPREA, err)
	}
	var reports []Outbound
	if err := forEachRaw(tx, bPREA, "", func(_ string, raw []byte) bool {
		var rec letterRec
		if json.Unmarshal(raw, &rec) == nil {
			reports = append(reports, rec.Outbound)
		}
		return true
	}); err != nil {
		return err
	}
	for _, o := range reports {
		if err := listPREA(tx, o); err != nil {
			return err
		}
	}
	return nil
}
