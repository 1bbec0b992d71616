package relay

import (
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A deposit is two transactions where this relay holds the inmate's facility (money.go,
// Deposit): the state's records it and marks it due here; the facility's holder then credits
// it (creditDeposit), and the mark is cleared. Elsewhere it is one, as it always was: the
// credit in the record's transaction, and no mark. What a crash between them leaves, a mark with no credit, is finished by a retry of
// the same deposit, by the relay's next start, and by the sweep a gateway runs on its beat
// for its home facilities' inmates (finishDeposits).

// bDepositsDue marks deposits recorded whose credit may not be made yet: ref -> when
// recorded (8 bytes, Unix nanoseconds). The state's root, made on first use.
const bDepositsDue = "deposits_due"

// dueSweepAge is how old a mark must be before a sweep finishes its deposit: younger, the
// call that made it is most likely still at work on its second half (which would do no harm,
// the credit being made once, but costs a transaction for nothing).
const dueSweepAge = time.Minute

// markDepositDue marks the deposit ref, recorded in tx at now, as still to be credited.
func markDepositDue(tx kv.Tx, ref string, now time.Time) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bDepositsDue)); err != nil {
		return err
	}
	return putRaw(tx, bDepositsDue, ref, u64(uint64(now.UnixNano())))
}

// finishDeposit credits d to its inmate's account, unless that was done already, and clears
// its mark.
func (r *Relay) finishDeposit(op string, d vocab.Deposit) error {
	if err := r.creditDeposit(op, d); err != nil {
		return err
	}
	return r.update(op, func(tx kv.Tx, _ *fanout) error {
		if tx.Bucket([]byte(bDepositsDue)) == nil {
			return nil
		}
		return deleteKey(tx, bDepositsDue, d.Ref)
	})
}

// creditDeposit is a deposit's second half, on the inmate's facility's writer: the deposit
// in the inmate's statement, added to the balance and sent to the inmate's terminals, once
// (the statement's entry says it was done).
func (r *Relay) creditDeposit(op string, d vocab.Deposit) error {
	return r.updateAt(op, func(tx kv.Tx) (string, error) { return inmatePlace(tx, op, d.InmateID, "") },
		func(tx kv.Tx, f *fanout, facility string) error { return creditTx(tx, f, facility, d) })
}

// creditTx credits deposit d to its inmate, of facility, in tx, unless that was done.
func creditTx(tx kv.Tx, f *fanout, facility string, d vocab.Deposit) error {
	key := indexKey(d.InmateID, "d", d.Ref)
	if getRaw(tx, bByInmate, key) != nil {
		return nil
	}
	if err := putRaw(tx, bByInmate, key, nil); err != nil {
		return err
	}
	if err := addTotals(tx, d.InmateID, func(t *totals) { t.Deposits += d.Cents }); err != nil {
		return err
	}
	return f.toInmate(facility, d.InmateID, "", wire.DownDeposit, d)
}

// eachMarkDue calls fn with the key of each mark in root (a deposit's or a refund's: the time
// it was made, 8 bytes of Unix nanoseconds) made at least age before now.
func eachMarkDue(tx kv.Tx, root string, now time.Time, age time.Duration, fn func(ref string)) error {
	b := tx.Bucket([]byte(root))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if now.Sub(time.Unix(0, int64(readU64(v)))) >= age {
			fn(string(k))
		}
		return nil
	})
}

// servesHere says whether this gateway finishes what is due to facility: its home facilities
// (every facility, on a relay without homes). What is due to another gateway's facility is
// that gateway's to finish: written here, it could be written beside the facility's holder.
func (r *Relay) servesHere(facility string) bool {
	home := r.homes.of(facility, false)
	return home == "" || home == r.homes.self
}

// finishDeposits finishes the deposits marked due at least age before now whose
// inmates' facilities this gateway serves (all, on a relay without homes), and says how many
// it finished. A deposit of another gateway's facility is that gateway's to finish: written
// here, it could be written beside the facility's holder.
func (r *Relay) finishDeposits(now time.Time, age time.Duration) (int, error) {
	const op = "finish deposits"
	var due []vocab.Deposit
	err := r.view(op, func(tx kv.Tx) error {
		due = due[:0]
		return eachMarkDue(tx, bDepositsDue, now, age, func(ref string) {
			var d vocab.Deposit
			if found, err := getJSON(tx, bDeposits, ref, &d); err != nil || !found {
				due = append(due, vocab.Deposit{Ref: ref}) // a mark without its deposit: cleared below
				return
			}
			if r.servesHere(facilityOf(tx, d.InmateID, "")) {
				due = append(due, d)
			}
		})
	})
	if err != nil {
		return 0, err
	}
	for i, d := range due {
		if d.InmateID == "" {
			err = r.update(op, func(tx kv.Tx, _ *fanout) error { return deleteKey(tx, bDepositsDue, d.Ref) })
		} else {
			err = r.finishDeposit(op, d)
		}
		if err != nil {
			return i, err
		}
		if d.InmateID != "" {
			r.logf("relay: deposit %s for inmate %s finished: it was cut off between its record and its credit", d.Ref, d.InmateID)
		}
	}
	return len(due), nil
}
