package kiosk

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ackRig is a mailbox rig with an inmate who sends messages and a PREA report and is billed
// minutes, so the queue holds every kind an acknowledgement treats differently.
type ackRig struct {
	*mbRig
	contact Contact
}

func newAckRig(t *testing.T) *ackRig {
	r := &ackRig{mbRig: newMBRig(t)}
	r.addInmate(t, "i1", true)
	r.contact = r.approved(t, "i1", "Ana", "ana@example.com")
	return r
}

func (r *ackRig) send(t *testing.T, body string) Message {
	t.Helper()
	r.login(t, "i1")
	m, err := r.t.Send("i1", r.contact.ID, "", body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bill begins n more billed minutes in i1's session.
func (r *ackRig) bill(t *testing.T, n int) {
	t.Helper()
	r.login(t, "i1")
	for range n {
		r.clock.Advance(time.Minute)
		r.t.Touch()
		r.t.Tick()
	}
}

// seqOf is the queue seq of the item carrying message id (0 if none waits).
func (r *ackRig) seqOf(t *testing.T, id string) uint64 {
	t.Helper()
	for _, it := range r.queued(t, ItemMessage, ItemPREA) {
		var m Message
		if err := json.Unmarshal(it.Body, &m); err != nil {
			t.Fatal(err)
		}
		if m.ID == id {
			return it.Seq
		}
	}
	return 0
}

// shown is the message as the Sent screen lists it.
func (r *ackRig) shown(t *testing.T, id string) Message {
	t.Helper()
	sent, err := r.t.Sent("i1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sent {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s is not on the Sent screen", id)
	return Message{}
}

// queuedCharges sums the cents of i1's charges still waiting for the relay.
func (r *ackRig) queuedCharges(t *testing.T) Cents {
	t.Helper()
	var sum Cents
	for _, it := range r.queued(t, ItemCharge) {
		var c Charge
		if err := json.Unmarshal(it.Body, &c); err != nil {
			t.Fatal(err)
		}
		sum += c.Cents
	}
	return sum
}

func (r *ackRig) verify(t *testing.T, when string) {
	t.Helper()
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("%s: verify = %+v, %v", when, rep.Problems, err)
	}
}

// An acknowledgement moves a cursor instead of rewriting messages; the screens still show each
// message "sent" exactly when the relay has acknowledged it, stamped with the time of that
// acknowledgement; the PREA text is erased at its ack and Unsynced drops by the acknowledged
// charges only. All of it holds across a restart and a new epoch.
func TestAckCursorShowsSentExactlyWhenAcked(t *testing.T) {
	r := newAckRig(t)
	m1 := r.send(t, "first")
	r.bill(t, 2)
	prea, err := r.t.SendPREA("i1", "report text")
	if err != nil {
		t.Fatal(err)
	}
	m2 := r.send(t, "second")
	r.bill(t, 3)
	m3 := r.send(t, "third")
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	unsynced := r.account("i1").Unsynced
	if unsynced == 0 || unsynced != r.queuedCharges(t) {
		t.Fatalf("unsynced %v, queued charges %v", unsynced, r.queuedCharges(t))
	}

	// The relay acknowledges up to m2: m1, the report and m2 are sent, m3 is not.
	r.clock.Advance(time.Minute)
	ackAt := r.clock.Now()
	if n, err := r.t.MarkForwarded(r.seqOf(t, m2.ID)); err != nil || n == 0 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	check := func(when string) {
		t.Helper()
		for _, m := range []Message{m1, m2} {
			if got := r.shown(t, m.ID); got.State != MsgSent || !got.UpdatedAt.Equal(ackAt) || got.Body == "" {
				t.Fatalf("%s: %s shows %s updated %v (body %q), want sent at %v", when, m.Body, got.State, got.UpdatedAt, got.Body, ackAt)
			}
		}
		if got := r.shown(t, prea.ID); got.State != MsgSent || got.Body != "" {
			t.Fatalf("%s: PREA report shows %s with body %q, want sent and erased", when, got.State, got.Body)
		}
		if got := r.shown(t, m3.ID); got.State != MsgQueued || got.Body != "third" {
			t.Fatalf("%s: m3 shows %s, want queued", when, got.State)
		}
		if u := r.account("i1").Unsynced; u == unsynced || u != r.queuedCharges(t) {
			t.Fatalf("%s: unsynced %v (was %v), want the charges still queued: %v", when, u, unsynced, r.queuedCharges(t))
		}
		r.verify(t, when)
	}
	check("after ack")
	r.reopen(t)
	check("after restart")

	// A new epoch renumbers m3 (and the charges after it) from 1: the acknowledged ones stay
	// sent, m3 stays queued until its new seq is acknowledged.
	if _, err := r.t.NewEpoch("sequence conflict"); err != nil {
		t.Fatal(err)
	}
	check("after new epoch")
	r.reopen(t)
	check("after new epoch and restart")
	seq3 := r.seqOf(t, m3.ID)
	if seq3 == 0 || seq3 > 10 {
		t.Fatalf("m3 waits at %d after the new epoch", seq3)
	}
	r.clock.Advance(time.Minute)
	if _, err := r.t.MarkForwarded(seq3); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m3.ID); got.State != MsgSent || !got.UpdatedAt.Equal(r.clock.Now()) {
		t.Fatalf("m3 after its ack shows %s updated %v", got.State, got.UpdatedAt)
	}
	if got := r.shown(t, m1.ID); got.State != MsgSent || !got.UpdatedAt.Equal(ackAt) {
		t.Fatalf("m1 after the second ack shows %s updated %v", got.State, got.UpdatedAt)
	}
	if _, err := r.t.MarkForwarded(1 << 62); err != nil {
		t.Fatal(err)
	}
	if u := r.account("i1").Unsynced; u != 0 {
		t.Fatalf("unsynced %v with nothing queued", u)
	}
	r.verify(t, "all acknowledged")

	// An ack beyond anything queued (a confused or hostile relay) cannot make a message queued
	// later read as sent.
	m4 := r.send(t, "fourth")
	if got := r.shown(t, m4.ID); got.State != MsgQueued {
		t.Fatalf("message queued after an ack of 1<<62 shows %s", got.State)
	}
	// A status report before the ack is not undone by it, and the record stays consistent.
	if err := r.t.SetMessageState(m4.ID, MsgHeld, "review"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.MarkForwarded(r.seqOf(t, m4.ID)); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m4.ID); got.State != MsgHeld {
		t.Fatalf("held message after its ack shows %s", got.State)
	}
	r.verify(t, "held then acked")
}

// Enrolling under a new terminal id renumbers the queue under a new epoch (SetEnrollment);
// the cursor starts again with it, so nothing queued reads as sent and nothing sent as queued.
func TestAckCursorAcrossReEnrollment(t *testing.T) {
	r := newAckRig(t)
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "T-1", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	var ms []Message
	for i := range 5 {
		ms = append(ms, r.send(t, fmt.Sprint("message ", i)))
	}
	if _, err := r.t.MarkForwarded(r.seqOf(t, ms[2].ID)); err != nil {
		t.Fatal(err)
	}
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "T-2", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		want := MsgSent
		if i > 2 {
			want = MsgQueued
		}
		if got := r.shown(t, m.ID).State; got != want {
			t.Fatalf("after re-enrollment message %d shows %s, want %s", i, got, want)
		}
	}
	if seq := r.seqOf(t, ms[3].ID); seq == 0 || seq > 3 {
		t.Fatalf("message 3 waits at %d, want renumbered from 1", seq)
	}
	r.verify(t, "after re-enrollment")
}

// Verify checks the acknowledgement bookkeeping: each rule, broken by hand, is reported.
func TestVerifyChecksAckBookkeeping(t *testing.T) {
	for _, tc := range []struct {
		check  string
		damage func(tx *bolt.Tx, r *ackRig, m Message, seq uint64) error
	}{
		{"ack_cursor", func(tx *bolt.Tx, r *ackRig, m Message, seq uint64) error {
			return tx.Bucket([]byte(bMeta)).Put([]byte(kAckedSeq), u64(1<<40))
		}},
		{"ack_follow_up", func(tx *bolt.Tx, r *ackRig, m Message, seq uint64) error {
			c := tx.Bucket([]byte(bOutFollow)).Cursor()
			k, _ := c.First()
			return tx.Bucket([]byte(bOutFollow)).Delete(k)
		}},
		{"message_queue", func(tx *bolt.Tx, r *ackRig, m Message, seq uint64) error {
			var sm storedMessage
			if _, err := getJSON(tx, bMessages, m.ID, &sm); err != nil {
				return err
			}
			sm.QueueSeq = seq + 1000
			return putJSON(tx, bMessages, m.ID, sm)
		}},
		{"message_queue", func(tx *bolt.Tx, r *ackRig, m Message, seq uint64) error {
			return tx.Bucket([]byte(bOutq)).Delete(u64(seq)) // the item gone, the message still queued
		}},
	} {
		r := newAckRig(t)
		m := r.send(t, "hello")
		r.bill(t, 1)
		seq := r.seqOf(t, m.ID)
		r.verify(t, "before damage")
		if err := r.store.update("damage", func(tx *bolt.Tx) error { return tc.damage(tx, r, m, seq) }); err != nil {
			t.Fatal(err)
		}
		rep, err := r.t.Verify("test")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range rep.Problems {
			found = found || p.Check == tc.check
		}
		if rep.OK || !found {
			t.Errorf("damage for %s: verify found %+v", tc.check, rep.Problems)
		}
	}
}

func (r *ackRig) account(id string) Account {
	var acc Account
	if err := r.store.view(func(tx *bolt.Tx) (err error) { acc, err = loadAccountTx(tx, id); return }); err != nil {
		panic(err)
	}
	return acc
}
