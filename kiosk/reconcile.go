package kiosk

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Ledger reads this terminal's view: every account it holds and every letter written on it.
func (t *Terminal) Ledger() (Ledger, error) {
	l := Ledger{Balances: map[string]Cents{}, Letters: map[string]LetterState{}}
	err := t.store.view(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bAccounts)).ForEach(func(k, v []byte) error {
			var acc Account
			if err := json.Unmarshal(v, &acc); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read ledger", Err: fmt.Errorf("account %q: %w", k, err)}
			}
			l.Balances[string(k)] = acc.Balance
			return nil
		}); err != nil {
			return err
		}
		// Through getMessageTx: a letter's "sent" follows from the acknowledged cursor, as the
		// Sent screen shows it, not from the stored record alone.
		return tx.Bucket([]byte(bMessages)).ForEach(func(k, _ []byte) error {
			m, _, err := getMessageTx(tx, string(k))
			if err != nil {
				return &Error{Kind: KindCorrupt, Op: "read ledger", Err: fmt.Errorf("message %q: %w", k, err)}
			}
			if m.Box == BoxOutbox {
				l.Letters[m.ID] = LetterState{InmateID: m.InmateID, Peer: m.Peer, State: m.State, Reason: m.Reason}
			}
			return nil
		})
	})
	if err != nil {
		return Ledger{}, fmt.Errorf("read ledger: %w", err)
	}
	return l, nil
}
