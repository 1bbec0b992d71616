package kiosk

import (
	"bytes"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rawMessage is the stored record of message id, as the bucket holds it.
func (r *ackRig) rawMessage(t *testing.T, id string) []byte {
	t.Helper()
	var raw []byte
	if err := r.store.view(func(tx *bolt.Tx) error {
		raw = append([]byte(nil), tx.Bucket([]byte(bMessages)).Get([]byte(id))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return raw
}

func (r *ackRig) stateEntries(t *testing.T) int {
	t.Helper()
	n := 0
	if err := r.store.view(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bMsgState)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// The states a relay reports with its acknowledgement (held, delivered) show on the Sent screen
// from that acknowledgement on, stamped with its time, without rewriting the letters; a later
// report (staff approve a held letter) moves the letter on; a report for an item the
// acknowledgement does not cover changes nothing; and it all holds across a restart.
func TestAckLettersShowReportedStates(t *testing.T) {
	r := newAckRig(t)
	m1 := r.send(t, "first")
	m2 := r.send(t, "second")
	r.bill(t, 1)
	m3 := r.send(t, "third")
	s1, s2, s3 := r.seqOf(t, m1.ID), r.seqOf(t, m2.ID), r.seqOf(t, m3.ID)
	before := r.rawMessage(t, m1.ID)

	r.clock.Advance(time.Minute)
	ackAt := r.clock.Now().UTC()
	// The relay acknowledges up to the second letter; it also (wrongly) names the third,
	// which this acknowledgement does not cover.
	if _, err := r.t.MarkForwardedLetters(s2, []AckedLetter{
		{Seq: s1, State: MsgDelivered}, {Seq: s2, State: MsgHeld}, {Seq: s3, State: MsgDelivered}}); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m1.ID); got.State != MsgDelivered || !got.UpdatedAt.Equal(ackAt) || got.Body != "first" {
		t.Fatalf("first letter shows %s at %v (%q), want delivered at %v", got.State, got.UpdatedAt, got.Body, ackAt)
	}
	if got := r.shown(t, m2.ID); got.State != MsgHeld {
		t.Fatalf("second letter shows %s, want held", got.State)
	}
	if got := r.shown(t, m3.ID); got.State != MsgQueued {
		t.Fatalf("third letter shows %s, want queued (not acknowledged)", got.State)
	}
	if !bytes.Equal(r.rawMessage(t, m1.ID), before) {
		t.Fatal("the acknowledgement rewrote the letter's record")
	}
	r.verify(t, "after the ack")

	// Staff approve the held letter: the downlink report moves it on, and its entry goes.
	if err := r.t.SetMessageState(m2.ID, MsgDelivered, ""); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m2.ID); got.State != MsgDelivered {
		t.Fatalf("approved letter shows %s", got.State)
	}
	if n := r.stateEntries(t); n != 1 {
		t.Fatalf("%d state entries after the approval, want 1 (the first letter's)", n)
	}
	// A late report of an earlier state does not move a letter back.
	if err := r.t.SetMessageState(m1.ID, MsgHeld, ""); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m1.ID); got.State != MsgDelivered {
		t.Fatalf("first letter went back to %s", got.State)
	}

	// The third letter's own acknowledgement without a state: it reads sent.
	if _, err := r.t.MarkForwardedLetters(s3, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m3.ID); got.State != MsgSent {
		t.Fatalf("third letter shows %s, want sent", got.State)
	}
	r.reopen(t)
	if got := r.shown(t, m1.ID); got.State != MsgDelivered {
		t.Fatalf("after a restart the first letter shows %s", got.State)
	}
	r.verify(t, "after the restart")

	if _, err := r.t.MarkForwardedLetters(s3, []AckedLetter{{Seq: s3, State: MsgRejected}}); err == nil {
		t.Fatal("a rejected state in an acknowledgement was taken")
	}
}

// A store of schema 2 opens with the states' bucket added and takes states at once.
func TestSchema2StoreTakesAckedStates(t *testing.T) {
	r := newAckRig(t)
	m1 := r.send(t, "first")
	if err := r.store.update("test", func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bMsgState)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(2))
	}); err != nil {
		t.Fatal(err)
	}
	r.reopen(t)
	if info, _ := r.store.Info(); info.Schema != SchemaVersion() {
		t.Fatalf("schema after reopening = %d", info.Schema)
	}
	r.verify(t, "after the upgrade")
	if _, err := r.t.MarkForwardedLetters(r.seqOf(t, m1.ID), []AckedLetter{{Seq: r.seqOf(t, m1.ID), State: MsgHeld}}); err != nil {
		t.Fatal(err)
	}
	if got := r.shown(t, m1.ID); got.State != MsgHeld {
		t.Fatalf("letter shows %s, want held", got.State)
	}
}
