package kiosk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// LineKind is what one statement line did to an inmate's balance.
type LineKind string

// Statement line kinds. A minute given back is a credit (its Reason says why); money given
// back out of a deposit is a refund (Ref is the refund's, DepositRef the deposit's).
const (
	LineDeposit LineKind = "deposit"
	LineCharge  LineKind = "charge"
	LineCredit  LineKind = "credit"
	LineRefund  LineKind = "refund"
)

// StatementLine is one movement of an inmate's money: a deposit, a minute charged or a minute
// credited back, on this terminal or (Remote) on another of the facility's terminals.
type StatementLine struct {
	Kind LineKind
	// Cents is what the line did to the balance: negative for a charge, positive otherwise.
	Cents     Cents
	At        time.Time
	SessionID string // charges and credits
	Minute    int    // charges and credits: the minute of the session, from 0
	Reason    string // credits: CreditStall, CreditTerminalFault...
	Ref       string // deposits: the payment's reference; refunds: the refund's
	// DepositRef is the deposit a refund gives money back from.
	DepositRef string
	Remote     bool // billed or credited on another terminal of the facility
	// MessageID names the letter a stamp paid for (charges) or was refunded for (credits);
	// SessionID and Minute are then empty.
	MessageID string
	// Pages is what a print job's charge paid for, or its credit gave back (print.go);
	// SessionID and Minute are then empty.
	Pages int
	// ItemID names the library item a purchase paid for (charges) or was given back for
	// (credits); SessionID and Minute are then empty. A quiz's credit has Reason
	// vocab.CreditQuizPassed and no session.
	ItemID string
	// Balance is the balance right after this line.
	Balance Cents
}

// Statement is the inmate's itemised statement, newest first: every deposit, every minute
// charged and every minute credited, this terminal's and the facility's other terminals', each
// with the balance after it. It is read in one transaction, so the lines add up to the
// account's balance; if the stored records do not (a damaged store), it refuses with
// KindCorrupt rather than show a statement that does not match the balance.
func (t *Terminal) Statement(inmateID string) ([]StatementLine, error) {
	const op = "itemised statement"
	if inmateID == "" {
		return nil, errInvalid(op, "inmate id is empty")
	}
	var lines []StatementLine
	var acc Account
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		if lines, err = statementTx(tx, inmateID); err != nil {
			return err
		}
		acc, err = loadAccountTx(tx, inmateID)
		return err
	})
	if err != nil {
		return nil, errIO(op, err)
	}
	// Oldest first to run the balance; ties keep deposits before the minutes they paid for and
	// a minute's charge before its credit.
	rank := map[LineKind]int{LineDeposit: 0, LineCharge: 1, LineCredit: 2, LineRefund: 3}
	sort.SliceStable(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		switch {
		case !a.At.Equal(b.At):
			return a.At.Before(b.At)
		case rank[a.Kind] != rank[b.Kind]:
			return rank[a.Kind] < rank[b.Kind]
		case a.SessionID != b.SessionID:
			return a.SessionID < b.SessionID
		case a.Minute != b.Minute:
			return a.Minute < b.Minute
		}
		return a.Ref < b.Ref
	})
	var run Cents
	for i := range lines {
		run += lines[i].Cents
		lines[i].Balance = run
	}
	if run != acc.Balance {
		return nil, &Error{Kind: KindCorrupt, Op: op, Err: fmt.Errorf(
			"inmate %s: the %d records add up to %s but the balance is %s", inmateID, len(lines), run, acc.Balance)}
	}
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return lines, nil
}

// statementTx collects the inmate's lines, unordered and without running balances.
func statementTx(tx *bolt.Tx, inmateID string) ([]StatementLine, error) {
	var out []StatementLine
	// This terminal's minutes: through the usage index to the inmate's sessions, then each
	// session's charges and credits, which are keyed by session id and minute.
	prefix := []byte(inmateID + "/")
	c := tx.Bucket([]byte(bSessIndex)).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		sid := k[len(prefix):]
		if bytes.IndexByte(sid, '/') >= 0 {
			continue // another inmate whose id starts with this one's and a slash
		}
		spfx := append(append([]byte{}, sid...), '/')
		for _, bucket := range []string{bCharges, bCredits} {
			cc := tx.Bucket([]byte(bucket)).Cursor()
			for k, v := cc.Seek(spfx); k != nil && bytes.HasPrefix(k, spfx); k, v = cc.Next() {
				l, _, err := minuteLine(bucket == bCredits, k, v)
				if err != nil {
					return nil, err
				}
				if l.SessionID != string(sid) {
					continue // another session whose id starts with this one's and a slash
				}
				out = append(out, l)
			}
		}
	}
	// Stamps (stamps.go) and purchases (library.go), and what was given back of them here, are
	// keyed by letter or purchase, and print jobs (print.go) by job, not by session.
	for _, prefix := range []string{vocab.StampRecordPrefix, vocab.PurchaseRecordPrefix, vocab.PrintRecordPrefix} {
		spfx := []byte(prefix)
		for _, bucket := range []string{bCharges, bCredits} {
			cc := tx.Bucket([]byte(bucket)).Cursor()
			for k, v := cc.Seek(spfx); k != nil && bytes.HasPrefix(k, spfx); k, v = cc.Next() {
				l, inmate, err := minuteLine(bucket == bCredits, k, v)
				if err != nil {
					return nil, err
				}
				if inmate != inmateID {
					continue
				}
				if prefix == vocab.PrintRecordPrefix {
					// A credit of a print job names no pages: its charge does.
					l.Pages = recordPages(tx.Bucket([]byte(bCharges)).Get(k))
				}
				out = append(out, l)
			}
		}
	}
	// The facility's other terminals' minutes and the deposits are not indexed by inmate.
	err := tx.Bucket([]byte(bRemote)).ForEach(func(k, v []byte) error {
		if strings.HasPrefix(string(k), remoteRefundPrefix) {
			var rf Refund
			if err := json.Unmarshal(v, &rf); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read remote", Err: fmt.Errorf("record %q: %w", k, err)}
			}
			if rf.InmateID == inmateID {
				out = append(out, StatementLine{Kind: LineRefund, Cents: -rf.Cents, At: rf.At, Ref: rf.Ref, DepositRef: rf.DepositRef, Reason: rf.Reason})
			}
			return nil
		}
		credit := strings.HasPrefix(string(k), remoteCreditPrefix)
		if !credit && !strings.HasPrefix(string(k), remoteChargePrefix) {
			return &Error{Kind: KindCorrupt, Op: "read remote", Err: fmt.Errorf("record under unknown key %q", k)}
		}
		l, inmate, err := minuteLine(credit, k, v)
		if err != nil || inmate != inmateID {
			return err
		}
		if strings.HasPrefix(string(k), remoteChargePrefix+vocab.PrintRecordPrefix) {
			l.Pages = recordPages(v)
		}
		// A stamp refund comes from the relay itself, not from another terminal.
		// So does a quiz's credit.
		l.Remote = !strings.HasPrefix(string(k), remoteCreditPrefix+vocab.StampRecordPrefix) &&
			!strings.HasPrefix(string(k), remoteCreditPrefix+vocab.QuizRecordPrefix)
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket([]byte(bDeposits)).ForEach(func(k, v []byte) error {
		var d Deposit
		if err := json.Unmarshal(v, &d); err != nil {
			return &Error{Kind: KindCorrupt, Op: "read " + bDeposits, Err: fmt.Errorf("record %q: %w", k, err)}
		}
		if d.InmateID == inmateID {
			out = append(out, StatementLine{Kind: LineDeposit, Cents: d.Cents, At: d.At, Ref: d.Ref})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// minuteLine reads a stored Charge or Credit (both carry the same fields but the reason) as
// a line, with the inmate it belongs to.
func minuteLine(credit bool, k, v []byte) (StatementLine, string, error) {
	var r Credit
	if err := json.Unmarshal(v, &r); err != nil {
		return StatementLine{}, "", &Error{Kind: KindCorrupt, Op: "read statement", Err: fmt.Errorf("record %q: %w", k, err)}
	}
	l := StatementLine{Kind: LineCharge, Cents: -r.Cents, At: r.At, SessionID: r.SessionID, Minute: r.Minute, MessageID: r.MessageID, ItemID: r.ItemID}
	if credit {
		l.Kind, l.Cents, l.Reason = LineCredit, r.Cents, r.Reason
	}
	return l, r.InmateID, nil
}

// recordPages reads the pages of a stored print charge (0 if there is none or it names none).
func recordPages(v []byte) int {
	var c struct {
		Pages int `json:"pages"`
	}
	if v == nil || json.Unmarshal(v, &c) != nil {
		return 0
	}
	return c.Pages
}
