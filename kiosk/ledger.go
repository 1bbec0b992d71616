package kiosk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The ledger: an inmate's balance is always deposits - charges + credits, each kept as its own
// record with a deterministic key, and the Account keeps the running sum in the same
// transaction as the record that moves it.

// maxRefLen bounds a deposit reference; it is a key, not a document.
const maxRefLen = 128

// Deposit adds cents to the inmate's balance. A negative, zero or above-Policy.MaxDeposit amount
// is refused and nothing is applied; the same ref applied twice counts once (reported as nil).
func (t *Terminal) Deposit(inmateID string, cents Cents, ref string) error {
	const op = "deposit"
	if err := validateDeposit(op, t.Policy(), inmateID, cents, ref); err != nil {
		return err
	}
	now := t.clock.Now()
	applied := false
	err := t.store.update(op, func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bInmates)).Get([]byte(inmateID)) == nil {
			return errNotFound(op, "inmate %q", inmateID)
		}
		var err error
		applied, err = applyDepositTx(tx, now, Deposit{Ref: ref, InmateID: inmateID, Cents: cents})
		if err != nil || !applied {
			return err
		}
		return appendAudit(tx, now, "deposit", inmateID, map[string]string{"ref": ref, "cents": fmt.Sprint(int64(cents))})
	})
	if err != nil {
		return err
	}
	if applied {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return nil
}

func validateDeposit(op string, p Policy, inmateID string, cents Cents, ref string) error {
	switch {
	case strings.TrimSpace(inmateID) == "":
		return errInvalid(op, "inmate id is empty")
	case strings.TrimSpace(ref) == "" || len(ref) > maxRefLen:
		return errInvalid(op, "reference must be 1 to %d characters", maxRefLen)
	case cents <= 0:
		return errInvalid(op, "amount %s is not positive", cents)
	case cents > p.MaxDeposit:
		return errInvalid(op, "amount %s is above the facility's maximum deposit %s", cents, p.MaxDeposit)
	}
	return nil
}

// applyDepositTx applies d in the caller's transaction (the sync engine's downlink uses it
// directly). The facility's max_deposit_cents is checked where a deposit is accepted (Deposit
// here, the relay's admin API for the downlink): a deposit the relay accepted stays the relay's
// decision even if the policy was lowered since. Here it must only be positive and within
// MaxDepositLimit. A ref already applied with the same inmate and amount reports applied=false
// and no error, with different ones a conflict.
func applyDepositTx(tx *bolt.Tx, now time.Time, d Deposit) (applied bool, err error) {
	const op = "apply deposit"
	if err := validateDeposit(op, Policy{MaxDeposit: MaxDepositLimit}, d.InmateID, d.Cents, d.Ref); err != nil {
		return false, err
	}
	var old Deposit
	found, err := getJSON(tx, bDeposits, d.Ref, &old)
	if err != nil {
		return false, err
	}
	if found {
		if old.InmateID == d.InmateID && old.Cents == d.Cents {
			return false, nil
		}
		return false, &Error{Kind: KindConflict, Op: op, Err: fmt.Errorf("reference %q was already used for a different deposit", d.Ref)}
	}
	if d.At.IsZero() {
		d.At = now
	}
	d.At = d.At.UTC()
	if err := putJSON(tx, bDeposits, d.Ref, d); err != nil {
		return false, err
	}
	acc, err := loadAccountTx(tx, d.InmateID)
	if err != nil {
		return false, err
	}
	acc.Balance += d.Cents
	return true, putJSON(tx, bAccounts, acc.InmateID, acc)
}

// Balance is the inmate's balance as this terminal knows it (zero with no account yet).
func (t *Terminal) Balance(inmateID string) (Cents, error) {
	var acc Account
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		acc, err = loadAccountTx(tx, inmateID)
		return err
	})
	return acc.Balance, err
}

// loadAccountTx reads an inmate's account, an empty one if none was stored yet.
func loadAccountTx(tx *bolt.Tx, inmateID string) (Account, error) {
	acc := Account{InmateID: inmateID}
	if _, err := getJSON(tx, bAccounts, inmateID, &acc); err != nil {
		return Account{}, err
	}
	acc.InmateID = inmateID
	return acc, nil
}

// chargeSettledTx runs when the relay has refused a charge for good: it no longer counts
// against the offline cap. (Acknowledged charges settle by range, see Store.Ack.) Credits do
// not lower Unsynced, so the cap errs on the side of less unsynced spending.
func chargeSettledTx(tx *bolt.Tx, it Item) error {
	var c Charge
	if err := json.Unmarshal(it.Body, &c); err != nil {
		return &Error{Kind: KindCorrupt, Op: "settle charge", Err: err}
	}
	return settleUnsyncedTx(tx, c.InmateID, c.Cents)
}

// settleUnsyncedTx lowers an inmate's Unsynced by cents the relay now holds (never below 0).
func settleUnsyncedTx(tx *bolt.Tx, inmateID string, cents Cents) error {
	acc, err := loadAccountTx(tx, inmateID)
	if err != nil {
		return err
	}
	acc.Unsynced = max(acc.Unsynced-cents, 0)
	return putJSON(tx, bAccounts, acc.InmateID, acc)
}
