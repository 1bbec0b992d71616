package kiosk

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Stamps: a facility whose policy prices letters per message (Policy.Pricing) charges a stamp
// on each letter to a contact, in the transaction that sends it. The stamp is a Charge kept
// with the minutes (bCharges) under vocab.StampRecordID(letter id), queued for the relay right
// after the letter, so the relay holds the letter when the charge reaches it. It counts against
// the offline spending cap (Account.Unsynced) until the relay acknowledges it, like a minute.
//
// A stamp comes back once, in one of two ways, both under the stamp's own record id:
//   - the relay refunds a letter its staff rejected: a remote credit (bRemote), as for money
//     moved on another terminal;
//   - the relay refused the charge itself (it never took the money: the letter was refused, or
//     the price did not match its policy): the terminal writes the credit (bCredits), and does
//     not forward it, as the relay holds no charge to credit.

// LetterPrice is what a letter to peer costs now, before Send: 0 when the policy does not
// charge stamps, and to a department or the PREA channel, whatever it says.
func (t *Terminal) LetterPrice(peer string) Cents { return t.Policy().StampCost(peer, 0) }

// Stamp is what a sent letter cost and whether that was given back.
type Stamp struct {
	Cents    Cents
	Refunded bool
	Reason   string // the refund's: CreditStampRejected or CreditStampRefused
}

// StampOf reports the stamp on the inmate's letter messageID (found=false if it carried none).
func (t *Terminal) StampOf(inmateID, messageID string) (s Stamp, found bool, err error) {
	err = t.store.view(func(tx *bolt.Tx) error {
		s, found, err = stampOfTx(tx, inmateID, messageID)
		return err
	})
	return s, found, err
}

func stampOfTx(tx *bolt.Tx, inmateID, messageID string) (Stamp, bool, error) {
	key := vocab.StampRecordID(messageID)
	var c Charge
	found, err := getJSON(tx, bCharges, key, &c)
	if err != nil || !found || c.InmateID != inmateID {
		return Stamp{}, false, err
	}
	s := Stamp{Cents: c.Cents}
	var cr Credit
	for _, k := range []struct{ bucket, key string }{{bCredits, key}, {bRemote, remoteCreditPrefix + key}} {
		ok, err := getJSON(tx, k.bucket, k.key, &cr)
		if err != nil {
			return Stamp{}, false, err
		}
		if ok {
			s.Refunded, s.Reason = true, cr.Reason
			break
		}
	}
	return s, true, nil
}

// stampTx charges the stamp on letter m, just queued, in the send's transaction: refused with
// ReasonInsufficientBalance or ReasonOfflineLimit (and so nothing sent) when the inmate cannot
// pay it. A letter the policy makes free writes nothing.
func stampTx(tx *bolt.Tx, now time.Time, p Policy, m Message) error {
	const op = "send message"
	cost := p.StampCost(m.Peer, 0) // photos: none are sent yet
	if cost <= 0 {
		return nil
	}
	acc, err := loadAccountTx(tx, m.InmateID)
	if err != nil {
		return err
	}
	if acc.Balance < cost {
		return &Error{Kind: KindRefused, Op: op, Reason: ReasonInsufficientBalance,
			Err: fmt.Errorf("a stamp costs %s and the balance is %s", cost, acc.Balance)}
	}
	if acc.Unsynced+cost > p.OfflineSpendCap {
		return &Error{Kind: KindRefused, Op: op, Reason: ReasonOfflineLimit,
			Err: fmt.Errorf("a stamp costs %s and %s of the offline limit %s is spent", cost, acc.Unsynced, p.OfflineSpendCap)}
	}
	key := vocab.StampRecordID(m.ID)
	if tx.Bucket([]byte(bCharges)).Get([]byte(key)) != nil {
		return &Error{Kind: KindInternal, Op: op, Err: fmt.Errorf("letter %s is already stamped", m.ID)}
	}
	c := Charge{RecordID: key, InmateID: m.InmateID, Cents: cost, At: now.UTC(), MessageID: m.ID}
	if err := putJSON(tx, bCharges, key, c); err != nil {
		return err
	}
	if _, err := enqueue(tx, now, ItemCharge, c); err != nil {
		return err
	}
	acc.Balance -= cost
	acc.Unsynced += cost
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}

// stampRefusedTx gives back a stamp whose charge the relay refused for good: the relay never
// took it. Written once (a refund already held, from the relay or here, changes nothing).
func stampRefusedTx(tx *bolt.Tx, now time.Time, it Item) error {
	var c Charge
	if err := json.Unmarshal(it.Body, &c); err != nil {
		return &Error{Kind: KindCorrupt, Op: "refund refused stamp", Err: err}
	}
	if vocab.IsPurchaseRecord(c.RecordID) {
		return purchaseRefusedTx(tx, now, c)
	}
	if !vocab.IsStampRecord(c.RecordID) {
		return nil
	}
	if tx.Bucket([]byte(bCredits)).Get([]byte(c.RecordID)) != nil ||
		tx.Bucket([]byte(bRemote)).Get([]byte(remoteCreditPrefix+c.RecordID)) != nil {
		return nil
	}
	cr := Credit{RecordID: c.RecordID, InmateID: c.InmateID, Cents: c.Cents, Reason: CreditStampRefused,
		At: now.UTC(), MessageID: c.MessageID}
	if err := putJSON(tx, bCredits, cr.RecordID, cr); err != nil {
		return err
	}
	acc, err := loadAccountTx(tx, c.InmateID)
	if err != nil {
		return err
	}
	acc.Balance += c.Cents
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}
