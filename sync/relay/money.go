package relay

import (
	"errors"
	"sort"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// DepositRequest adds money to an inmate's account; Ref makes a retried deposit count once.
type DepositRequest struct {
	InmateID string      `json:"inmate_id"`
	Cents    vocab.Cents `json:"cents"`
	Ref      string      `json:"ref"`
}

// Deposit records a deposit once per ref and sends it to the inmate's terminals. created is false
// when the same ref was already recorded with the same inmate and amount (nothing changes, but
// for a deposit whose credit a crash cut off: this call credits it); the same ref with a
// different inmate or amount is a conflict.
func (r *Relay) Deposit(req DepositRequest) (d vocab.Deposit, created bool, err error) {
	const op = "deposit"
	if err := checkID(op, "inmate_id", req.InmateID); err != nil {
		return d, false, err
	}
	if err := checkID(op, "ref", req.Ref); err != nil {
		return d, false, err
	}
	if req.Cents <= 0 {
		return d, false, invalid(op, "cents", "must be more than 0, got %d", req.Cents)
	}
	d, created, due, err := r.recordDeposit(op, req)
	if err != nil {
		return vocab.Deposit{}, false, err
	}
	// A deposit found already recorded may be one whose second half a crash cut off: doing
	// it again credits nothing twice (creditDeposit).
	if due {
		if err := r.finishDeposit(op, d); err != nil {
			return vocab.Deposit{}, false, err
		}
	}
	if created {
		r.logf("relay: deposit %s of %s for inmate %s", d.Ref, d.Cents, d.InmateID)
	}
	return d, created, nil
}

// recordDeposit is a deposit's first half, the state's transaction: the request checked, the
// deposit recorded under its ref and, where this relay holds the inmate's facility, marked due
// (depositdue.go; due says so), else credited at once. d is the deposit the ref names,
// created false where it was recorded before.
func (r *Relay) recordDeposit(op string, req DepositRequest) (d vocab.Deposit, created, due bool, err error) {
	now := r.clock.Now().UTC()
	// Two transactions (SCALE.md, "The second writer"): the deposit's record is the state's,
	// kept by its ref, and the money is the inmate's, which the holder of the inmate's
	// facility writes. The state's goes first, with a mark that its second half is due; a
	// crash between them leaves the mark, which a retry of the same deposit, the relay's next
	// start or a later sweep (finishDeposits) clears by doing the second half.
	err = r.update(op, func(tx kv.Tx, f *fanout) error {
		d, created, due = vocab.Deposit{}, false, false
		var in inmateRec
		ok, err := getJSON(tx, bInmates, req.InmateID, &in)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "inmate_id", "unknown inmate %q", req.InmateID)
		}
		if in.MovingFrom != "" {
			return movingErr(op, in.ID, in.MovingFrom) // nothing recorded: the same deposit later
		}
		var fac facilityRec
		if _, err := getJSON(tx, bFacilities, in.FacilityID, &fac); err != nil {
			return err
		}
		if max := fac.policy().MaxDeposit; req.Cents > max {
			return invalid(op, "cents", "%d is more than the facility's largest deposit %d", req.Cents, max)
		}
		var prev vocab.Deposit
		if found, err := getJSON(tx, bDeposits, req.Ref, &prev); err != nil {
			return err
		} else if found {
			if prev.InmateID != req.InmateID || prev.Cents != req.Cents {
				return conflict(op, "ref", "ref %q was already used for a different deposit", req.Ref)
			}
			d = prev
			// Finished by this call where it is marked, or not credited as the kv state has it
			// (damage verify names; or credited on a held state and not projected yet, which
			// the finish finds and leaves).
			due = getRaw(tx, bDepositsDue, d.Ref) != nil || getRaw(tx, bByInmate, indexKey(d.InmateID, "d", d.Ref)) == nil
			return nil
		}
		d = vocab.Deposit{Ref: req.Ref, InmateID: req.InmateID, Cents: req.Cents, At: now}
		if err := putJSON(tx, bDeposits, d.Ref, d); err != nil {
			return err
		}
		created = true
		if !f.deferTo(in.FacilityID) {
			return creditTx(tx, f, in.FacilityID, d) // not held here: one transaction
		}
		due = true
		return markDepositDue(tx, d.Ref, now)
	})
	if err != nil {
		return vocab.Deposit{}, false, false, err
	}
	return d, created, due, nil
}

func addTotals(tx kv.Tx, inmateID string, change func(*totals)) error {
	var t totals
	if _, err := getJSON(tx, bBalances, inmateID, &t); err != nil {
		return err
	}
	change(&t)
	return putJSON(tx, bBalances, inmateID, t)
}

// Balance is deposits - charges + credits for an inmate, across every terminal.
func (r *Relay) Balance(inmateID string) (Balance, error) {
	const op = "balance"
	if err := checkID(op, "inmate_id", inmateID); err != nil {
		return Balance{}, err
	}
	var b Balance
	err := r.viewOfInmate(inmateID, op, func(tx kv.Tx) error {
		var t totals
		hasMoney, err := getJSON(tx, bBalances, inmateID, &t)
		if err != nil {
			return err
		}
		known, err := getJSON(tx, bInmates, inmateID, &inmateRec{})
		if err != nil {
			return err
		}
		if !hasMoney && !known {
			return notFound(op, "inmate_id", "unknown inmate %q", inmateID)
		}
		b = Balance{InmateID: inmateID, BalanceCents: t.balance(), Deposits: t.Deposits, Charges: t.Charges, Credits: t.Credits, Refunds: t.Refunds}
		return nil
	})
	return b, err
}

// Usage is an inmate's statement: every charge and credit, sessions, and charges minus credits.
func (r *Relay) Usage(inmateID string) (Usage, error) {
	const op = "usage"
	if err := checkID(op, "inmate_id", inmateID); err != nil {
		return Usage{}, err
	}
	var u Usage
	err := r.viewOfInmate(inmateID, op, func(tx kv.Tx) error {
		// A View may run again: a statement that kept the first run's lines would show every
		// charge twice and twice the total.
		u = Usage{InmateID: inmateID, Records: []UsageRecord{}, Sessions: []vocab.Session{}}
		known, err := getJSON(tx, bInmates, inmateID, &inmateRec{})
		if err != nil {
			return err
		}
		for _, bucket := range []string{bCharges, bCredits} {
			if err := forEachJSON(tx, bucket, inmateID+"/", func(_ string, rec UsageRecord) bool {
				u.Records = append(u.Records, rec)
				if rec.Kind == "credit" {
					u.TotalCents -= rec.Cents
				} else {
					u.TotalCents += rec.Cents
				}
				return true
			}); err != nil {
				return err
			}
		}
		if err := forEachJSON(tx, bSessions, inmateID+"/", func(_ string, s vocab.Session) bool {
			u.Sessions = append(u.Sessions, s)
			return true
		}); err != nil {
			return err
		}
		sort.SliceStable(u.Records, func(i, j int) bool { return u.Records[i].At.Before(u.Records[j].At) })
		if !known && len(u.Records) == 0 && len(u.Sessions) == 0 {
			return notFound(op, "inmate_id", "unknown inmate %q", inmateID)
		}
		return nil
	})
	return u, err
}

// RefundRequest gives back (part of) a deposit: Ref is the refund's own reference (a retried
// refund counts once), DepositRef the deposit it comes out of.
type RefundRequest struct {
	Ref        string      `json:"ref"`
	DepositRef string      `json:"deposit_ref"`
	Cents      vocab.Cents `json:"cents"`
	Reason     string      `json:"reason,omitempty"`
}

// Refund is a refund as the relay keeps it and sends it to terminals.
type Refund = vocab.Refund

// Refund records a refund once per ref and sends it to the inmate's terminals. It never gives
// back more than the deposit less the refunds already made from it, nor more than the inmate's
// balance as the relay holds it: a refund never makes the balance negative (409 naming cents;
// the refund, recorded first, is taken back: refunddue.go).
// Minutes a terminal billed offline and has not yet synced are not in that balance; they reach
// the relay as facts already spent and are never refused, so the balance a refund leaves can
// still fall by them later, as it can after any purchase. created is false when the same ref
// was already recorded with the same deposit and amount; with others it is a conflict.
func (r *Relay) Refund(req RefundRequest) (rf Refund, created bool, err error) {
	const op = "refund"
	if err := checkID(op, "ref", req.Ref); err != nil {
		return rf, false, err
	}
	if err := checkID(op, "deposit_ref", req.DepositRef); err != nil {
		return rf, false, err
	}
	if req.Cents <= 0 {
		return rf, false, invalid(op, "cents", "must be more than 0, got %d", req.Cents)
	}
	if err := checkText(op, "reason", req.Reason, false, 200); err != nil {
		return rf, false, err
	}
	rf, created, due, err := r.recordRefund(op, req)
	if err != nil {
		return Refund{}, false, err
	}
	// A refund found already recorded may be one whose second half a crash cut off.
	if due {
		if err := r.finishRefund(op, rf); err != nil {
			return Refund{}, false, err
		}
	}
	if created {
		r.logf("relay: refund %s of %s from deposit %s for inmate %s", rf.Ref, rf.Cents, rf.DepositRef, rf.InmateID)
	}
	return rf, created, nil
}

// recordRefund is a refund's first half, the state's transaction (refunddue.go): the refund
// checked against its deposit and the refunds already made from it, recorded under its ref,
// listed under its deposit and, where this relay holds the inmate's facility, marked due (due
// says so), else taken from the balance at once. rf is the refund the ref names, created
// false where it was recorded before.
func (r *Relay) recordRefund(op string, req RefundRequest) (rf Refund, created, due bool, err error) {
	now := r.clock.Now().UTC()
	err = r.update(op, func(tx kv.Tx, f *fanout) error {
		rf, created, due = Refund{}, false, false
		var prev Refund
		if found, err := getJSON(tx, bRefunds, req.Ref, &prev); err != nil {
			return err
		} else if found {
			if prev.DepositRef != req.DepositRef || prev.Cents != req.Cents {
				return conflict(op, "ref", "ref %q was already used for a different refund", req.Ref)
			}
			rf = prev
			due = getRaw(tx, bRefundsDue, rf.Ref) != nil || getRaw(tx, bByInmate, indexKey(rf.InmateID, "r", rf.Ref)) == nil
			return nil
		}
		var d vocab.Deposit
		if found, err := getJSON(tx, bDeposits, req.DepositRef, &d); err != nil {
			return err
		} else if !found {
			return notFound(op, "deposit_ref", "no deposit %q", req.DepositRef)
		}
		refunded, err := refundedFrom(tx, d)
		if err != nil {
			return err
		}
		if left := d.Cents - refunded; req.Cents > left {
			return conflict(op, "cents", "%s is more than is left of deposit %q (%s of %s)", req.Cents, d.Ref, left, d.Cents)
		}
		rf = Refund{Ref: req.Ref, DepositRef: d.Ref, InmateID: d.InmateID, Cents: req.Cents, Reason: req.Reason, At: now}
		if err := putJSON(tx, bRefunds, rf.Ref, rf); err != nil {
			return err
		}
		created = true
		facility, err := inmatePlace(tx, op, rf.InmateID, "")
		if err != nil {
			return err
		}
		if !f.deferTo(facility) {
			// Not held here: one transaction, refused whole where the balance does not allow it.
			if err := listRefund(tx, rf); err != nil {
				return err
			}
			bal, err := debitTx(tx, f, facility, rf)
			if errors.Is(err, errRefundRefused) {
				return refusedRefund(op, rf, bal)
			}
			return err
		}
		due = true
		return markRefundDue(tx, rf, now)
	})
	if err != nil {
		return Refund{}, false, false, err
	}
	return rf, created, due, nil
}
