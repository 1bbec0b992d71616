package relay

import (
	"fmt"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// What a terminal says of itself as it runs (schema 22): when it was last seen, its software,
// and its forwarding queue (a hello's, and items_waiting in a device_status report), kept in a
// small record of the terminal's own (term_seen), not in its terminal record. The terminal
// record is the state's (enrollment, key, revocation: written in kv transactions that any
// gateway or the console may run); this record is the terminal's, written by its connection
// alone and held with its facility (facscope.go), so a status report or a hello on a held
// facility writes nothing of the state's (docs/SCALE.md "A status report on a held
// facility"). A queue that changed rewrote the whole terminal record, its key among it.
const bTermSeen = "term_seen" // terminal id -> seenState (JSON)

// seenState is a terminal's term_seen record.
type seenState struct {
	LastSeen      time.Time `json:"last_seen,omitzero"`
	Software      string    `json:"software,omitempty"`
	ItemsWaiting  int       `json:"items_waiting"`
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
}

// applyTo shows s on t: what the terminal said last.
func (s seenState) applyTo(t *TerminalInfo) {
	if !s.LastSeen.IsZero() {
		t.LastSeen = s.LastSeen
	}
	if s.Software != "" {
		t.Software = s.Software
	}
	t.ItemsWaiting, t.OldestWaiting = s.ItemsWaiting, s.OldestWaiting
}

// seenOf is terminal id's term_seen record (zero if it has none).
func seenOf(tx kv.Tx, id string) (seenState, bool, error) {
	var s seenState
	ok, err := getJSON(tx, bTermSeen, id, &s)
	return s, ok, err
}

// migrate21to22 moves each terminal's last seen time and queue out of its terminal record
// into its term_seen record, with the software its last hello named (the terminal record keeps
// the software it enrolled with).
func migrate21to22(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bTermSeen)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bTermSeen, err)
	}
	var moved []terminalRec
	if err := forEachJSON(tx, bTerminals, "", func(_ string, t terminalRec) bool {
		if !t.LastSeen.IsZero() || t.ItemsWaiting != 0 || !t.OldestWaiting.IsZero() {
			moved = append(moved, t)
		}
		return true
	}); err != nil {
		return err
	}
	for _, t := range moved {
		s := seenState{LastSeen: t.LastSeen, Software: t.Software, ItemsWaiting: t.ItemsWaiting, OldestWaiting: t.OldestWaiting}
		if err := putJSON(tx, bTermSeen, t.ID, s); err != nil {
			return err
		}
		t.LastSeen, t.ItemsWaiting, t.OldestWaiting = time.Time{}, 0, time.Time{}
		if err := putJSON(tx, bTerminals, t.ID, t); err != nil {
			return err
		}
	}
	return nil
}
