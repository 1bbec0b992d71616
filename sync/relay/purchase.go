package relay

import (
	"time"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Purchases (docs/PROTOCOL.md, "Library"): a terminal charges a catalog item's price in the
// transaction that buys it and forwards the charge (record id vocab.PurchaseRecordID, item_id
// the item). As for stamps, the relay takes the terminal's word for nothing: it prices the
// item from its own catalog and records the charge only for a published item of the
// terminal's facility, at exactly its price, that the inmate does not own yet; anything else
// is refused, the terminal gives the money back itself, and the relay never held it. A
// purchase recorded makes the inmate an owner: the item's media may then be fetched by the
// inmate's tablets, and its charge goes to the inmate's other terminals as remote_charge
// (with item_id), which is how a tablet learns of a purchase made at a kiosk.

// ownedRec is an inmate's ownership of an item (bOwned, key "i/" + inmate + "/" + item id).
// The key "m/" + inmate + "/" + object sha256 -> nil indexes the media an inmate owns, for
// the content entitlement of a tablet (catalogEntitled).
type ownedRec struct {
	ItemID     string      `json:"item_id"`
	RecordID   string      `json:"record_id"`
	TerminalID string      `json:"terminal_id"`
	Cents      vocab.Cents `json:"cents"`
	At         time.Time   `json:"at"`
}

func ownedKey(inmate, item string) string  { return "i/" + inmate + "/" + item }
func ownedMedia(inmate, sha string) string { return "m/" + inmate + "/" + sha }

// checkPurchase decides a new purchase charge c from terminal t ("" lets it through).
func checkPurchase(tx kv.Tx, t TerminalInfo, c vocab.Charge) (string, error) {
	// The shape first, as wire.CheckUpBody states it (the same verdict: invalid).
	if wire.CheckRecordID("item_id", c.ItemID) != nil || wire.CheckRecordID("purchase id", vocab.PurchaseID(c.RecordID)) != nil ||
		c.SessionID != "" || c.Minute != 0 || c.MessageID != "" || c.Cents < 1 || c.Cents > vocab.MaxItemPrice {
		return wire.RefuseInvalid, nil
	}
	var rec catalogRec
	found, err := getJSON(tx, bCatalog, catalogKey(t.FacilityID, c.ItemID), &rec)
	switch {
	case err != nil:
		return "", err
	case !found:
		return wire.RefusePurchaseUnknown, nil
	case rec.Withdrawn:
		return wire.RefusePurchaseWithdrawn, nil
	case rec.Item.PriceCents <= 0 || c.Cents != rec.Item.PriceCents:
		// A free item is owned without a charge: any amount for it is mispriced.
		return wire.RefusePurchasePrice, nil
	}
	var prev ownedRec
	if found, err := getJSON(tx, bOwned, ownedKey(c.InmateID, c.ItemID), &prev); err != nil {
		return "", err
	} else if found && prev.RecordID != c.RecordID {
		return wire.RefusePurchaseOwned, nil
	}
	return "", nil
}

// purchaseRecorded makes the inmate an owner of the item once its charge is stored.
func purchaseRecorded(tx kv.Tx, f *fanout, t TerminalInfo, c vocab.Charge, now time.Time) error {
	var rec catalogRec
	if _, err := getJSON(tx, bCatalog, catalogKey(t.FacilityID, c.ItemID), &rec); err != nil {
		return err
	}
	o := ownedRec{ItemID: c.ItemID, RecordID: c.RecordID, TerminalID: t.ID, Cents: c.Cents, At: now}
	if err := putJSON(tx, bOwned, ownedKey(c.InmateID, c.ItemID), o); err != nil {
		return err
	}
	for _, m := range rec.Item.Media() {
		if err := tx.Bucket([]byte(bOwned)).Put([]byte(ownedMedia(c.InmateID, m.SHA256)), nil); err != nil {
			return err
		}
	}
	f.logf("relay: inmate %s bought catalog item %s for %d cents on terminal %s", c.InmateID, c.ItemID, c.Cents, t.ID)
	return nil
}

// catalogEntitled reports whether terminal t may fetch obj as catalog media: obj was uploaded
// for t's facility, and t is a kiosk (which fetches any item on demand) or a tablet whose
// inmate owns an item naming obj. (Free items' media are held for the facility as a whole.)
func (r *Relay) catalogEntitled(s ContentStore, obj content.Hash, t TerminalInfo) (bool, error) {
	holders, _, err := s.Holders(obj)
	if err != nil || !containsHolder(holders, catalogHolder(t.FacilityID)) {
		return false, err
	}
	if t.Mode == wire.ModeKiosk {
		return true, nil
	}
	if t.InmateID == "" {
		return false, nil
	}
	owned := false
	ctx, cancel := r.txContext()
	defer cancel()
	err = r.db.View(ctx, func(tx kv.Tx) error {
		owned = tx.Bucket([]byte(bOwned)).Get([]byte(ownedMedia(t.InmateID, obj.String()))) != nil
		return nil
	})
	return owned, err
}

// recordFreeFetch makes inmate t.InmateID an owner of catalog media obj that its tablet fetches
// while a free item opens it to the facility (facilityHolder): a free item is owned on the
// terminal with nothing sent to the relay, and its owners must keep fetching it (a fetch cut
// short, a replaced tablet) once it is withdrawn or priced and the facility's claim goes.
// Kiosks fetch for anyone and own nothing.
func (r *Relay) recordFreeFetch(s ContentStore, obj content.Hash, t TerminalInfo) error {
	if t.Mode == wire.ModeKiosk || t.InmateID == "" {
		return nil
	}
	holders, _, err := s.Holders(obj)
	if err != nil || !containsHolder(holders, catalogHolder(t.FacilityID)) || !containsHolder(holders, facilityHolder(t.FacilityID)) {
		return err
	}
	key := []byte(ownedMedia(t.InmateID, obj.String()))
	owned := false
	if err := r.viewFor(t.FacilityID, "record free fetch", func(tx kv.Tx) error {
		owned = tx.Bucket([]byte(bOwned)).Get(key) != nil
		return nil
	}); err != nil || owned {
		return err
	}
	// The record is the inmate's, written by the holder of the inmate's facility, which is
	// the tablet's but for an inmate moved since the tablet's record was read.
	return r.updateAt("record free fetch", func(tx kv.Tx) (string, error) { return inmatePlace(tx, "record free fetch", t.InmateID, t.FacilityID) },
		func(tx kv.Tx, _ *fanout, _ string) error { return tx.Bucket([]byte(bOwned)).Put(key, nil) })
}

// CatalogOwners counts, for each item of a facility's catalog, the inmates of the facility
// whose purchase of it the relay recorded (the staff console's list). A free item is owned on
// the terminal with nothing sent, so free items count no owners here.
func (r *Relay) CatalogOwners(facility string) (map[string]int, error) {
	const op = "count catalog owners"
	if err := checkID(op, "facility_id", facility); err != nil {
		return nil, err
	}
	out := map[string]int{}
	err := r.view(op, func(tx kv.Tx) error {
		clear(out) // a View may run again
		// The facility's roster, not every inmate of the state.
		inmates, err := rosterOf(tx, facility)
		if err != nil {
			return err
		}
		for _, in := range inmates {
			if err := forEachJSON(tx, bOwned, "i/"+in.ID+"/", func(_ string, o ownedRec) bool {
				out[o.ItemID]++
				return true
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
