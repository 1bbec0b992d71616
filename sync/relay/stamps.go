package relay

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Stamps: under a policy that prices letters per message, a terminal charges a stamp on each
// letter to a contact (kiosk/stamps.go) and forwards it as a charge item right after the
// letter. The relay does not take the terminal's word for the money: it records a stamp only
// for a letter it holds from that terminal (or the terminal it replaced) and inmate, for the
// amount the facility's policy charges for that letter; and only the relay gives a stamp back,
// when its staff reject the letter, as a credit it sends to the inmate's terminals itself.

// stampPrice is what policy p charges a stamp, 0 when it charges none.
func stampPrice(p vocab.Policy) vocab.Cents {
	if !p.ChargesStamps() {
		return 0
	}
	return p.StampPrice
}

// notePolicyChange keeps the stamp price the facility charged before p replaces its policy:
// a terminal offline across the change still stamps at the old price, and that is accepted
// (see checkStamp). A change that leaves the price alone keeps the earlier previous price.
func notePolicyChange(fac *facilityRec, p vocab.Policy) {
	if old := stampPrice(fac.policy()); old != stampPrice(p) {
		fac.PrevStampPrice = old
	}
}

// checkStamp decides a stamp charge c from terminal t ("" lets it through). The rule for a
// policy change in flight: the amount must be the stamp price of the policy in force now, or
// of the one it replaced last (the terminal had not heard of the change yet); any other amount
// is refused stamp_price and the terminal gives the stamp back itself, so a price the relay
// does not know is never charged. A letter to a department is free under any policy.
func checkStamp(tx *bolt.Tx, t TerminalInfo, fac facilityRec, pol vocab.Policy, c vocab.Charge) (string, error) {
	if c.MessageID == "" || c.RecordID != vocab.StampRecordID(c.MessageID) || c.SessionID != "" || c.Minute != 0 {
		return wire.RefuseInvalid, nil
	}
	rec, found, err := getLetter(tx, bOutbound, c.MessageID)
	if err != nil {
		return "", err
	}
	if !found || rec.InmateID != c.InmateID {
		return wire.RefuseStampNoLetter, nil
	}
	same, err := sameTerminalLineage(tx, t.ID, rec.TerminalID)
	if err != nil {
		return "", err
	}
	if !same {
		return wire.RefuseStampNoLetter, nil
	}
	for _, d := range pol.Departments {
		if d.ID == rec.Peer {
			return wire.RefuseStampPrice, nil
		}
	}
	if c.Cents <= 0 || (c.Cents != stampPrice(pol) && c.Cents != fac.PrevStampPrice) {
		return wire.RefuseStampPrice, nil
	}
	return "", nil
}

// stampRecorded runs after a stamp charge was stored: a letter staff already rejected (the
// charge came in a later batch than its letter) is refunded at once.
func stampRecorded(tx *bolt.Tx, f *fanout, c vocab.Charge, now time.Time) error {
	rec, found, err := getLetter(tx, bOutbound, c.MessageID)
	if err != nil || !found || rec.Status != vocab.MsgRejected {
		return err
	}
	return refundStampTx(tx, f, rec.Outbound, now)
}

// refundStampTx gives back the stamp on letter o, once: nothing if it carried none or was
// refunded already. The credit takes the stamp's record id, so a second one cannot be stored;
// it goes to every kiosk of the facility and the inmate's tablets, the one that charged it too.
func refundStampTx(tx *bolt.Tx, f *fanout, o Outbound, now time.Time) error {
	key := o.InmateID + "/" + vocab.StampRecordID(o.ID)
	var ch UsageRecord
	found, err := getJSON(tx, bCharges, key, &ch)
	if err != nil || !found {
		return err
	}
	if tx.Bucket([]byte(bCredits)).Get([]byte(key)) != nil {
		return nil
	}
	u := UsageRecord{Kind: "credit", RecordID: ch.RecordID, InmateID: ch.InmateID, Cents: ch.Cents,
		Reason: vocab.CreditStampRejected, At: now, MessageID: o.ID}
	if err := putJSON(tx, bCredits, key, u); err != nil {
		return err
	}
	if err := addTotals(tx, u.InmateID, func(tt *totals) { tt.Credits += u.Cents }); err != nil {
		return err
	}
	f.logf("relay: stamp on letter %s refunded (%s): rejected at review", o.ID, u.Cents)
	cr := vocab.Credit{RecordID: u.RecordID, InmateID: u.InmateID, Cents: u.Cents, Reason: u.Reason, At: now, MessageID: o.ID}
	return f.toInmate(facilityOf(tx, o.InmateID, o.FacilityID), o.InmateID, "", wire.DownRemoteCredit, cr)
}
