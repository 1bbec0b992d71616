// Package ledger is what must agree between a terminal and the relay once everything has
// synced, each inmate's balance and the state of each letter sent, and the one comparison of
// the two views (Reconcile) that `kioskctl verify` and the tests use. Each side builds its
// Ledger from its own store; this package holds no storage of its own.
package ledger

import (
	"fmt"
	"sort"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Ledger is one side's view of what must agree between a terminal and the relay once
// everything has synced: each inmate's balance and the state of each letter sent. The terminal
// builds it from its store (Terminal.Ledger), the relay from its own records, and Reconcile
// compares the two; both `kioskctl verify` and the lifecycle tests use this one comparison.
type Ledger struct {
	// Balances maps an inmate id to the balance in cents.
	Balances map[string]vocab.Cents `json:"balances"`
	// Letters maps an outbound message id (PREA reports included) to its state.
	Letters map[string]LetterState `json:"letters"`
}

// LetterState is where one sent message stands.
type LetterState struct {
	InmateID string `json:"inmate_id"`
	Peer     string `json:"peer"`
	State    string `json:"state"` // vocab.MsgQueued ... vocab.MsgRejected
	Reason   string `json:"reason,omitempty"`
}

// LetterIDs lists the letters of a ledger, sorted, to ask the other side about exactly those.
func (l Ledger) LetterIDs() []string {
	ids := make([]string, 0, len(l.Letters))
	for id := range l.Letters {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Reconcile compares a terminal's ledger with the relay's view for that terminal, once both
// directions have drained. The relay's Balances name the inmates the terminal serves now: each
// must have the same balance on the terminal (an account the terminal no longer serves, such as
// an inmate moved to another facility, is not compared). Every letter written on the terminal
// must be held by the relay, and, while the terminal serves its writer, exactly as the writer
// sees it; a PREA report only has to be held, since no status comes back for it.
func Reconcile(terminal, relay Ledger) []vocab.Problem {
	var out []vocab.Problem
	add := func(check, format string, args ...any) {
		if len(out) < vocab.MaxProblems {
			out = append(out, vocab.Problem{Check: check, Detail: fmt.Sprintf(format, args...)})
		}
	}
	inmates := make([]string, 0, len(relay.Balances))
	for id := range relay.Balances {
		inmates = append(inmates, id)
	}
	sort.Strings(inmates)
	for _, id := range inmates {
		want := relay.Balances[id]
		got, ok := terminal.Balances[id]
		switch {
		case !ok && want != 0:
			add("relay_balance", "inmate %s has %s on the relay but no account on the terminal", id, want)
		case ok && got != want:
			add("relay_balance", "inmate %s has %s on the terminal but %s on the relay", id, got, want)
		}
	}
	served := func(inmate string) bool { _, ok := relay.Balances[inmate]; return ok }
	for _, id := range terminal.LetterIDs() {
		mine := terminal.Letters[id]
		theirs, ok := relay.Letters[id]
		switch {
		case mine.State == vocab.MsgQueued:
			add("relay_letter", "letter %s of inmate %s is still queued on the terminal", id, mine.InmateID)
		case !ok:
			add("relay_letter", "letter %s of inmate %s is %s on the terminal but the relay does not hold it", id, mine.InmateID, mine.State)
		case theirs.InmateID != mine.InmateID:
			add("relay_letter", "letter %s is inmate %s's on the terminal but %s's on the relay", id, mine.InmateID, theirs.InmateID)
		case mine.Peer == vocab.PREAChannel:
		case !served(mine.InmateID):
			// Released or moved away: nobody reads this letter here any more, and the relay
			// sends this terminal nothing about that person; it only has to hold the letter.
		case theirs.State != mine.State || theirs.Reason != mine.Reason:
			add("relay_letter", "letter %s of inmate %s is %s on the terminal but %s on the relay", id, mine.InmateID,
				letterWords(mine), letterWords(theirs))
		}
	}
	return out
}

func letterWords(l LetterState) string {
	if l.Reason != "" {
		return l.State + " (" + l.Reason + ")"
	}
	return l.State
}
