package ledger

import (
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Two ledgers that agree reconcile to nothing; each kind of disagreement is named, with the
// inmate and the letter, and an account or letter of someone the terminal no longer serves
// is not held against it.
func TestReconcile(t *testing.T) {
	relay := Ledger{
		Balances: map[string]vocab.Cents{"A1": 500, "A2": 0},
		Letters: map[string]LetterState{
			"m1": {InmateID: "A1", Peer: "c1", State: vocab.MsgDelivered},
			"m2": {InmateID: "A1", Peer: "c1", State: vocab.MsgRejected, Reason: "content_policy"},
			"p1": {InmateID: "A1", Peer: vocab.PREAChannel, State: vocab.MsgDelivered},
			"m9": {InmateID: "A9", Peer: "c9", State: vocab.MsgDelivered},
		},
	}
	term := Ledger{
		Balances: map[string]vocab.Cents{"A1": 500, "A9": 40},
		Letters: map[string]LetterState{
			"m1": {InmateID: "A1", Peer: "c1", State: vocab.MsgDelivered},
			"m2": {InmateID: "A1", Peer: "c1", State: vocab.MsgRejected, Reason: "content_policy"},
			"p1": {InmateID: "A1", Peer: vocab.PREAChannel, State: vocab.MsgSent},
			"m9": {InmateID: "A9", Peer: "c9", State: vocab.MsgHeld},
		},
	}
	if got := Reconcile(term, relay); len(got) != 0 {
		t.Fatalf("agreeing ledgers: %+v", got)
	}

	term.Balances["A1"] = 495
	term.Letters["m2"] = LetterState{InmateID: "A1", Peer: "c1", State: vocab.MsgRejected, Reason: "other"}
	term.Letters["m3"] = LetterState{InmateID: "A1", Peer: "c1", State: vocab.MsgSent}
	term.Letters["m4"] = LetterState{InmateID: "A1", Peer: "c1", State: vocab.MsgQueued}
	got := Reconcile(term, relay)
	var words []string
	for _, p := range got {
		words = append(words, p.Check+": "+p.Detail)
	}
	all := strings.Join(words, "\n")
	for _, want := range []string{
		"inmate A1 has $4.95 on the terminal but $5.00 on the relay",
		"letter m2 of inmate A1 is rejected (other) on the terminal but rejected (content_policy) on the relay",
		"letter m3 of inmate A1 is sent on the terminal but the relay does not hold it",
		"letter m4 of inmate A1 is still queued on the terminal",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d problems, want 4:\n%s", len(got), all)
	}
}
