package kiosk

import (
	"strings"
	"testing"
)

func TestReconcile(t *testing.T) {
	term := Ledger{
		Balances: map[string]Cents{"A1": 100, "A2": 50, "GONE": 7},
		Letters: map[string]LetterState{
			"m1": {InmateID: "A1", Peer: "c1", State: MsgDelivered},
			"m2": {InmateID: "A1", Peer: "c1", State: MsgRejected, Reason: "content_policy"},
			"p1": {InmateID: "A2", Peer: PREAChannel, State: MsgSent},
		},
	}
	relay := Ledger{
		Balances: map[string]Cents{"A1": 100, "A2": 50},
		Letters: map[string]LetterState{
			"m1": {InmateID: "A1", Peer: "c1", State: MsgDelivered},
			"m2": {InmateID: "A1", Peer: "c1", State: MsgRejected, Reason: "content_policy"},
			"p1": {InmateID: "A2", Peer: PREAChannel, State: MsgDelivered},
		},
	}
	if probs := Reconcile(term, relay); len(probs) != 0 {
		t.Fatalf("agreeing ledgers: %+v", probs)
	}

	relay.Balances["A2"] = 45
	relay.Balances["A3"] = 10
	relay.Letters["m1"] = LetterState{InmateID: "A1", Peer: "c1", State: MsgHeld}
	delete(relay.Letters, "m2")
	term.Letters["q1"] = LetterState{InmateID: "A1", Peer: "c1", State: MsgQueued}
	var got []string
	for _, p := range Reconcile(term, relay) {
		got = append(got, p.Check+": "+p.Detail)
	}
	want := []string{
		"relay_balance: inmate A2 has $0.50 on the terminal but $0.45 on the relay",
		"relay_balance: inmate A3 has $0.10 on the relay but no account on the terminal",
		"relay_letter: letter m1 of inmate A1 is delivered on the terminal but held on the relay",
		"relay_letter: letter m2 of inmate A1 is rejected on the terminal but the relay does not hold it",
		"relay_letter: letter q1 of inmate A1 is still queued on the terminal",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
