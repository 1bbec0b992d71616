package relay

import (
	"errors"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Where this relay holds the inmate's facility, a refund is two transactions, as a deposit is
// (depositdue.go), and sometimes three; elsewhere it is one, refused whole where the balance
// does not allow it. The
// state's records it, checked against its deposit and the refunds already made from it, lists
// it under its deposit and marks it due; the inmate's facility's writer then takes it from
// the balance once (debitRefund), unless the balance no longer allows it: a refund never makes
// a balance negative, and the balance is the facility's, known only there. Refused there,
// the refund is taken back in a third transaction, the state's (dropRefund), and the caller
// hears why. A crash between them leaves the mark, finished as a deposit's is.

// bRefundsDue marks refunds recorded whose debit may not be made yet: ref -> when recorded
// (8 bytes, Unix nanoseconds). The state's root, made on first use.
const bRefundsDue = "refunds_due"

// bDepositRefunds lists the refunds made from each deposit: deposit ref + "/" + refund ref ->
// nil, the state's, so the first half of a refund sums them from the state's records alone.
// Refunds made before it existed are in their inmate's statement (by_inmate "r"), which no
// facility held then. Made on first use.
const bDepositRefunds = "deposit_refunds"

// listRefund lists rf under its deposit.
func listRefund(tx kv.Tx, rf Refund) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bDepositRefunds)); err != nil {
		return err
	}
	return putRaw(tx, bDepositRefunds, rf.DepositRef+"/"+rf.Ref, nil)
}

// markRefundDue lists rf under its deposit and marks it as still to be taken from the balance.
func markRefundDue(tx kv.Tx, rf Refund, now time.Time) error {
	if err := listRefund(tx, rf); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists([]byte(bRefundsDue)); err != nil {
		return err
	}
	return putRaw(tx, bRefundsDue, rf.Ref, u64(uint64(now.UnixNano())))
}

// refusedRefund is the conflict a refund the balance bal does not allow is refused with.
func refusedRefund(op string, rf Refund, bal vocab.Cents) error {
	return conflict(op, "cents", "%s is more than inmate %s's balance of %s: a refund never makes it negative", rf.Cents, rf.InmateID, bal)
}

// refundedFrom sums the refunds recorded from deposit d: those listed under it, and those of
// its inmate's statement from before the list.
func refundedFrom(tx kv.Tx, d vocab.Deposit) (vocab.Cents, error) {
	refs := map[string]bool{}
	for _, ref := range indexed(tx, d.InmateID, "r") {
		refs[ref] = true
	}
	if tx.Bucket([]byte(bDepositRefunds)) != nil {
		if err := forEachRaw(tx, bDepositRefunds, d.Ref+"/", func(k string, _ []byte) bool {
			refs[k[len(d.Ref)+1:]] = true
			return true
		}); err != nil {
			return 0, err
		}
	}
	var sum vocab.Cents
	for ref := range refs {
		var o Refund
		found, err := getJSON(tx, bRefunds, ref, &o)
		if err != nil {
			return 0, err
		}
		if found && o.DepositRef == d.Ref {
			sum += o.Cents
		}
	}
	return sum, nil
}

// errRefundRefused: the balance does not allow the refund now (debitRefund).
var errRefundRefused = errors.New("relay: the balance does not allow the refund")

// finishRefund takes rf from its inmate's balance, unless that was done already, and clears
// its mark; where the balance no longer allows it, it takes the refund back and says so.
func (r *Relay) finishRefund(op string, rf Refund) error {
	bal, err := r.debitRefund(op, rf)
	if errors.Is(err, errRefundRefused) {
		if derr := r.dropRefund(op, rf); derr != nil {
			return derr
		}
		return refusedRefund(op, rf, bal)
	}
	if err != nil {
		return err
	}
	return r.update(op, func(tx kv.Tx, _ *fanout) error {
		if tx.Bucket([]byte(bRefundsDue)) == nil {
			return nil
		}
		return deleteKey(tx, bRefundsDue, rf.Ref)
	})
}

// debitRefund is a refund's second half, on the writer of the inmate's facility: the refund
// in the inmate's statement, taken from the balance and sent to the inmate's terminals, once
// (the statement's entry says it was done); errRefundRefused, writing nothing, where the
// balance (bal) is smaller than the refund.
func (r *Relay) debitRefund(op string, rf Refund) (bal vocab.Cents, err error) {
	err = r.updateAt(op, func(tx kv.Tx) (string, error) { return inmatePlace(tx, op, rf.InmateID, "") },
		func(tx kv.Tx, f *fanout, facility string) error {
			var err error
			bal, err = debitTx(tx, f, facility, rf)
			return err
		})
	return bal, err
}

// debitTx takes refund rf from its inmate's balance, of facility, in tx, unless that was done:
// errRefundRefused, writing nothing, where the balance (bal) is smaller than the refund.
func debitTx(tx kv.Tx, f *fanout, facility string, rf Refund) (bal vocab.Cents, err error) {
	key := indexKey(rf.InmateID, "r", rf.Ref)
	if getRaw(tx, bByInmate, key) != nil {
		return 0, nil
	}
	var t totals
	if _, err := getJSON(tx, bBalances, rf.InmateID, &t); err != nil {
		return 0, err
	}
	if bal = t.balance(); rf.Cents > bal {
		return bal, errRefundRefused
	}
	if err := putRaw(tx, bByInmate, key, nil); err != nil {
		return bal, err
	}
	if err := addTotals(tx, rf.InmateID, func(t *totals) { t.Refunds += rf.Cents }); err != nil {
		return bal, err
	}
	return bal, f.toInmate(facility, rf.InmateID, "", wire.DownRefund, rf)
}

// dropRefund takes back refund rf, recorded and refused by the balance: its record, its place
// under its deposit and its mark. A retry of it is a new refund.
func (r *Relay) dropRefund(op string, rf Refund) error {
	return r.update(op, func(tx kv.Tx, _ *fanout) error {
		if getRaw(tx, bByInmate, indexKey(rf.InmateID, "r", rf.Ref)) != nil {
			return nil // taken from the balance after all (another finish of it): it stands
		}
		if err := deleteKey(tx, bRefunds, rf.Ref); err != nil {
			return err
		}
		if tx.Bucket([]byte(bDepositRefunds)) != nil {
			if err := deleteKey(tx, bDepositRefunds, rf.DepositRef+"/"+rf.Ref); err != nil {
				return err
			}
		}
		if tx.Bucket([]byte(bRefundsDue)) == nil {
			return nil
		}
		return deleteKey(tx, bRefundsDue, rf.Ref)
	})
}

// finishRefunds finishes the refunds marked due at least age before now whose inmates'
// facilities this gateway serves, as finishDeposits does deposits. A refund the balance no
// longer allows is taken back, and the log says so: staff see it gone from the list.
func (r *Relay) finishRefunds(now time.Time, age time.Duration) (int, error) {
	const op = "finish refunds"
	var due []Refund
	err := r.view(op, func(tx kv.Tx) error {
		due = due[:0]
		return eachMarkDue(tx, bRefundsDue, now, age, func(ref string) {
			var rf Refund
			if found, err := getJSON(tx, bRefunds, ref, &rf); err != nil || !found {
				due = append(due, Refund{Ref: ref}) // a mark without its refund: cleared below
				return
			}
			if r.servesHere(facilityOf(tx, rf.InmateID, "")) {
				due = append(due, rf)
			}
		})
	})
	if err != nil {
		return 0, err
	}
	for i, rf := range due {
		switch {
		case rf.InmateID == "":
			err = r.update(op, func(tx kv.Tx, _ *fanout) error { return deleteKey(tx, bRefundsDue, rf.Ref) })
		default:
			err = r.finishRefund(op, rf)
			if err == nil {
				r.logf("relay: refund %s for inmate %s finished: it was cut off between its record and its debit", rf.Ref, rf.InmateID)
			} else if vocab.KindOf(err) == vocab.KindConflict {
				r.logf("relay: refund %s for inmate %s taken back: it was cut off, and the balance no longer allows it", rf.Ref, rf.InmateID)
				err = nil
			}
		}
		if err != nil {
			return i, err
		}
	}
	return len(due), nil
}
