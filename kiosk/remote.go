package kiosk

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Facts from the facility's other terminals, so balance and cool-down hold facility-wide.
// They are kept apart from this terminal's own charges and credits (bRemote), each once by
// its record id: a relay resending them after a reconnect changes nothing. A record id this
// terminal holds in its own ledger (bCharges, bCredits) is its own minute coming back (a
// re-enrolled terminal kept its store; a relay snapshot holds every record of the inmate):
// it is already counted, so it is skipped.

const (
	remoteChargePrefix = "charge/"
	remoteCreditPrefix = "credit/"
	// remoteRefundPrefix keys a refund of a deposit (by the refund's ref): like the minutes of
	// other terminals, a fact the relay decided that moves this terminal's balance.
	remoteRefundPrefix = "refund/"
)

// applyRefundTx lowers the inmate's balance by a refund the relay made, once per ref. The relay
// refunded no more than its own balance allowed; this terminal applies it as it comes (its
// balance may lag the relay's by minutes not yet synced), the same ref again changes nothing.
func applyRefundTx(tx *bolt.Tx, rf Refund) error {
	const op = "apply refund"
	if rf.Ref == "" || len(rf.Ref) > maxRefLen || rf.InmateID == "" || rf.DepositRef == "" || rf.Cents <= 0 || rf.Cents > MaxDepositLimit {
		return errInvalid(op, "refund %q for inmate %q of %d cents", clip(rf.Ref, 64), clip(rf.InmateID, 64), int64(rf.Cents))
	}
	var old Refund
	found, err := getJSON(tx, bRemote, remoteRefundPrefix+rf.Ref, &old)
	if err != nil {
		return err
	}
	if found {
		if old.InmateID == rf.InmateID && old.Cents == rf.Cents && old.DepositRef == rf.DepositRef {
			return nil
		}
		return &Error{Kind: KindConflict, Op: op, Err: fmt.Errorf("reference %q was already used for a different refund", rf.Ref)}
	}
	rf.At = rf.At.UTC()
	return applyRemoteTx(tx, remoteRefundPrefix+rf.Ref, rf.InmateID, -rf.Cents, rf)
}

// applyRemoteChargeTx lowers the inmate's balance by a minute billed on another terminal.
func applyRemoteChargeTx(tx *bolt.Tx, c Charge) error {
	const op = "apply remote charge"
	if c.RecordID == "" || c.InmateID == "" || c.Cents <= 0 || c.Cents > vocab.ChargeLimit(c.RecordID) {
		return errInvalid(op, "record %q for inmate %q of %d cents", clip(c.RecordID, 64), clip(c.InmateID, 64), int64(c.Cents))
	}
	if tx.Bucket([]byte(bCharges)).Get([]byte(c.RecordID)) != nil {
		return nil
	}
	return applyRemoteTx(tx, remoteChargePrefix+c.RecordID, c.InmateID, -c.Cents, c)
}

// applyRemoteCreditTx gives back a minute another terminal credited.
func applyRemoteCreditTx(tx *bolt.Tx, cr Credit) error {
	const op = "apply remote credit"
	if cr.RecordID == "" || cr.InmateID == "" || cr.Cents <= 0 || cr.Cents > vocab.ChargeLimit(cr.RecordID) {
		return errInvalid(op, "record %q for inmate %q of %d cents", clip(cr.RecordID, 64), clip(cr.InmateID, 64), int64(cr.Cents))
	}
	if tx.Bucket([]byte(bCredits)).Get([]byte(cr.RecordID)) != nil {
		return nil
	}
	return applyRemoteTx(tx, remoteCreditPrefix+cr.RecordID, cr.InmateID, cr.Cents, cr)
}

func applyRemoteTx(tx *bolt.Tx, key, inmateID string, delta Cents, record any) error {
	if tx.Bucket([]byte(bRemote)).Get([]byte(key)) != nil {
		return nil
	}
	if err := putJSON(tx, bRemote, key, record); err != nil {
		return err
	}
	acc, err := loadAccountTx(tx, inmateID)
	if err != nil {
		return err
	}
	acc.Balance += delta
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}

// applyRemoteSessionEndTx starts the inmate's cool-down from a session that ended elsewhere,
// unless a later one is already in force.
func applyRemoteSessionEndTx(tx *bolt.Tx, s Session) error {
	if s.InmateID == "" || s.End.IsZero() {
		return errInvalid("apply remote session end", "session %q has no inmate or end", clip(s.ID, 64))
	}
	p, err := policyTx(tx)
	if err != nil {
		return err
	}
	acc, err := loadAccountTx(tx, s.InmateID)
	if err != nil {
		return err
	}
	until := s.End.Add(p.CooldownAfter(s.EndReason)).UTC()
	if !until.After(acc.CooldownUntil) {
		return nil
	}
	acc.CooldownUntil = until
	acc.CooldownFrom, acc.CooldownReason = s.End.UTC(), s.EndReason
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}

// forgetCooldown drops the in-memory cool-down so the next check reads the stored one, which a
// remote session end may just have extended.
func (t *Terminal) forgetCooldown(inmateID string) {
	t.meter.coolMu.Lock()
	delete(t.meter.cool, inmateID)
	t.meter.coolMu.Unlock()
}
