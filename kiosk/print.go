package kiosk

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Printing (vocab/print.go has the rule both sides share). The money moves in three steps, each
// one transaction, so a crash between any two leaves a job the next start can settle:
//   - HoldPrint, before the job goes to the printer: the price leaves the balance and counts
//     against the offline spending cap (Account.Unsynced), and the job is stored held;
//   - PrintSubmitted records the printer's job id, so a restarted kiosk can ask about it;
//   - SettlePrint, once the printer answered: completed makes the held price a charge queued
//     for the relay (RecordID vocab.PrintRecordID(job id)); failed or cancelled gives it back
//     on this terminal, and the relay hears nothing of the job. A job held but never handed to
//     the printer (a crash in between) is given back too: without the printer's word the
//     inmate is not charged.
// The relay may still refuse the charge (its policy's price or page limit differ): the
// terminal then credits it back itself (printRefusedTx), like a refused stamp.

// bPrints (schema 4): print job id -> PrintJob.
const bPrints = "prints"

// Print job states.
const (
	PrintHeld     = "held"     // the price is held; the printer has not answered yet
	PrintCharged  = "charged"  // printed: the price is a charge for the relay
	PrintReleased = "released" // not printed: the price went back to the balance
)

// PrintJob is one print job's money and where it stands; it holds nothing of the text.
type PrintJob struct {
	ID       string    `json:"id"`
	InmateID string    `json:"inmate_id"`
	Pages    int       `json:"pages"`
	Cents    Cents     `json:"cents"`
	State    string    `json:"state"`
	Printer  int       `json:"printer_job,omitempty"` // the printer's (CUPS) job id, once submitted
	Reason   string    `json:"reason,omitempty"`      // why it was released
	At       time.Time `json:"at"`
	Settled  time.Time `json:"settled,omitempty"`
}

// migrate3to4 brings in the print jobs (bPrints); no record changes.
func migrate3to4(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bPrints)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bPrints, err)
	}
	return nil
}

// PrintPrice is what a job of pages pages costs now, for the screens to show before Print; an
// error (kind invalid) says why it may not print at all.
func (t *Terminal) PrintPrice(pages int) (Cents, error) { return t.Policy().PrintCost(pages) }

// HoldPrint starts a print job of pages pages for the inmate in session: it holds the price
// back from the balance and the offline spending cap, or refuses (insufficient_balance,
// offline_limit, needs_funds in a free session, or invalid when the policy does not let it
// print that many pages), and nothing is held then.
func (t *Terminal) HoldPrint(inmateID string, pages int) (PrintJob, error) {
	const op = "print"
	p := t.Policy()
	cost, err := p.PrintCost(pages)
	if err != nil {
		return PrintJob{}, err
	}
	if err := t.requireSession(op, inmateID); err != nil {
		return PrintJob{}, err
	}
	if cost > 0 && t.freeSession() {
		return PrintJob{}, errRefused(op, ReasonNeedsFunds, time.Time{})
	}
	id, err := uuid.NewV7()
	if err != nil {
		return PrintJob{}, &Error{Kind: KindInternal, Op: op, Err: err}
	}
	now := t.clock.Now().UTC()
	j := PrintJob{ID: id.String(), InmateID: inmateID, Pages: pages, Cents: cost, State: PrintHeld, At: now}
	err = t.store.update(op, func(tx *bolt.Tx) error {
		acc, err := loadAccountTx(tx, inmateID)
		if err != nil {
			return err
		}
		if acc.Balance < cost {
			return &Error{Kind: KindRefused, Op: op, Reason: ReasonInsufficientBalance,
				Err: fmt.Errorf("%d pages cost %s and the balance is %s", pages, cost, acc.Balance)}
		}
		if acc.Unsynced+cost > p.OfflineSpendCap {
			return &Error{Kind: KindRefused, Op: op, Reason: ReasonOfflineLimit,
				Err: fmt.Errorf("%d pages cost %s and %s of the offline limit %s is spent", pages, cost, acc.Unsynced, p.OfflineSpendCap)}
		}
		acc.Balance -= cost
		acc.Unsynced += cost
		if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
			return err
		}
		return putJSON(tx, bPrints, j.ID, j)
	})
	if err != nil {
		return PrintJob{}, err
	}
	t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	return j, nil
}

// PrintSubmitted records the printer's job id for held job jobID, so that a kiosk restarted
// before the printer answered can ask it (PrintsHeld).
func (t *Terminal) PrintSubmitted(jobID string, printerJob int) error {
	const op = "print submitted"
	return t.store.update(op, func(tx *bolt.Tx) error {
		j, err := printJobTx(tx, op, jobID)
		if err != nil {
			return err
		}
		if j.State != PrintHeld {
			return &Error{Kind: KindInvalid, Op: op, Err: fmt.Errorf("print job %s is %s already", jobID, j.State)}
		}
		j.Printer = printerJob
		return putJSON(tx, bPrints, j.ID, j)
	})
}

// SettlePrint ends held job jobID as the printer reported it: completed charges the held price
// (queued for the relay), anything else releases it back to the balance, with reason. A job
// settled already is returned as it is: the printer's answer counts once.
func (t *Terminal) SettlePrint(jobID string, completed bool, reason string) (PrintJob, error) {
	const op = "settle print"
	now := t.clock.Now().UTC()
	var j PrintJob
	err := t.store.update(op, func(tx *bolt.Tx) error {
		var err error
		if j, err = printJobTx(tx, op, jobID); err != nil || j.State != PrintHeld {
			return err
		}
		j.Settled = now
		if completed {
			j.State = PrintCharged
			if j.Cents > 0 {
				c := Charge{RecordID: vocab.PrintRecordID(j.ID), InmateID: j.InmateID, Cents: j.Cents, At: now, Pages: j.Pages}
				if tx.Bucket([]byte(bCharges)).Get([]byte(c.RecordID)) != nil {
					return &Error{Kind: KindInternal, Op: op, Err: fmt.Errorf("print job %s is charged already", j.ID)}
				}
				if err := putJSON(tx, bCharges, c.RecordID, c); err != nil {
					return err
				}
				// Unsynced already counts the price (HoldPrint); the relay's ack settles it.
				if _, err := enqueue(tx, now, ItemCharge, c); err != nil {
					return err
				}
			}
			return putJSON(tx, bPrints, j.ID, j)
		}
		j.State, j.Reason = PrintReleased, reason
		acc, err := loadAccountTx(tx, j.InmateID)
		if err != nil {
			return err
		}
		acc.Balance += j.Cents
		acc.Unsynced = max(acc.Unsynced-j.Cents, 0)
		if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
			return err
		}
		return putJSON(tx, bPrints, j.ID, j)
	})
	if err != nil {
		return PrintJob{}, err
	}
	t.emit(Event{Kind: EventChanged, InmateID: j.InmateID, At: now})
	return j, nil
}

// PrintJobByID reads one print job.
func (t *Terminal) PrintJobByID(jobID string) (PrintJob, error) {
	var j PrintJob
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		j, err = printJobTx(tx, "print job", jobID)
		return err
	})
	return j, err
}

// PrintsHeld lists the jobs whose price is still held, oldest first: what a kiosk starting
// again must settle by asking the printer.
func (t *Terminal) PrintsHeld() ([]PrintJob, error) {
	var out []PrintJob
	err := t.store.view(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bPrints)).ForEach(func(k, v []byte) error {
			var j PrintJob
			if err := json.Unmarshal(v, &j); err != nil {
				return &Error{Kind: KindCorrupt, Op: "print jobs", Err: fmt.Errorf("job %s: %w", k, err)}
			}
			if j.State == PrintHeld {
				out = append(out, j)
			}
			return nil
		})
	})
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID }) // UUIDv7: time order
	return out, err
}

func printJobTx(tx *bolt.Tx, op, jobID string) (PrintJob, error) {
	var j PrintJob
	found, err := getJSON(tx, bPrints, jobID, &j)
	if err != nil {
		return PrintJob{}, err
	}
	if !found {
		return PrintJob{}, errNotFound(op, "no print job %s", jobID)
	}
	return j, nil
}

// printRefusedTx gives back a print charge the relay refused for good: the relay never took
// it. Written once, under the charge's record id.
func printRefusedTx(tx *bolt.Tx, now time.Time, it Item) error {
	var c Charge
	if err := json.Unmarshal(it.Body, &c); err != nil {
		return &Error{Kind: KindCorrupt, Op: "refund refused print", Err: err}
	}
	if !vocab.IsPrintRecord(c.RecordID) || tx.Bucket([]byte(bCredits)).Get([]byte(c.RecordID)) != nil {
		return nil
	}
	cr := Credit{RecordID: c.RecordID, InmateID: c.InmateID, Cents: c.Cents, Reason: vocab.CreditPrintRefused, At: now.UTC()}
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

// heldPrintsTx adds to Verify's sums what held print jobs hold: their price is out of the
// balance and counts against the offline cap, though no charge is written yet.
func heldPrintsTx(tx *bolt.Tx, balance, unsynced map[string]Cents, add func(check, format string, args ...any)) {
	b := tx.Bucket([]byte(bPrints))
	if b == nil {
		return
	}
	_ = b.ForEach(func(k, v []byte) error {
		var j PrintJob
		if err := json.Unmarshal(v, &j); err != nil {
			add("print_job", "print job %s does not decode: %v", k, err)
			return nil
		}
		if j.State == PrintHeld {
			balance[j.InmateID] -= j.Cents
			unsynced[j.InmateID] += j.Cents
		}
		return nil
	})
}
