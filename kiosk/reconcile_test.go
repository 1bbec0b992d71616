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
	// A released inmate's letter need only be held: the relay tells this terminal nothing more
	// about that person. A letter the relay does not hold is a problem whoever wrote it.
	term.Letters["r1"] = LetterState{InmateID: "GONE", Peer: "c9", State: MsgHeld}
	relay.Letters["r1"] = LetterState{InmateID: "GONE", Peer: "c9", State: MsgDelivered}
	if probs := Reconcile(term, relay); len(probs) != 0 {
		t.Fatalf("a released inmate's letter compared by status: %+v", probs)
	}
	delete(relay.Letters, "r1")
	if probs := Reconcile(term, relay); len(probs) != 1 || !strings.Contains(probs[0].Detail, "r1") {
		t.Fatalf("a released inmate's letter missing on the relay: %+v", probs)
	}
	delete(term.Letters, "r1")

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

// The terminal's ledger shows a letter as the Sent screen does: "queued" until the relay
// acknowledges it, then "sent" (worked out from the acknowledged cursor), with its balance.
func TestTerminalLedgerFollowsTheAck(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 1000)
	r.mustLogin("a")
	m, err := r.term.Send("a", "dept-medical", "", "my file")
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.term.Ledger()
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Letters[m.ID]; got.State != MsgQueued || got.InmateID != "a" {
		t.Fatalf("letter before the ack: %+v", got)
	}
	bal, _ := r.term.Balance("a")
	if l.Balances["a"] != bal {
		t.Fatalf("ledger balance %s, terminal balance %s", l.Balances["a"], bal)
	}
	items, err := r.store.Pending(0, 100, 1<<20)
	if err != nil || len(items) == 0 {
		t.Fatalf("queue: %d items, %v", len(items), err)
	}
	if _, err := r.term.MarkForwarded(items[len(items)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if l, _ = r.term.Ledger(); l.Letters[m.ID].State != MsgSent {
		t.Fatalf("letter after the ack: %+v", l.Letters[m.ID])
	}
}
