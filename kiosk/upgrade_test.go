package kiosk

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// oldItem is a queue entry as schema 1 wrote it (json.Marshal of the Item of that time).
type oldItem struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"body"`
}

// A store written by the previous program (schema 1: no acknowledged cursor, messages without a
// queue position, no follow-up list) opens, keeps its queue entries byte for byte, forwards
// them, and its acknowledgement has every effect it had: messages sent, the PREA text erased,
// Unsynced lowered by the charges.
func TestSchema1StoreForwardsAfterUpgrade(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	db, err := bolt.Open(filepath.Join(dir, StoreFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{ID: "0192bbbb-0000-7000-8000-000000000001", InmateID: "i1", Box: BoxOutbox, Peer: "dept-medical", PeerName: "Medical",
			Body: "first <&> letter", State: MsgQueued, CreatedAt: at, UpdatedAt: at},
		{ID: "0192bbbb-0000-7000-8000-000000000002", InmateID: "i1", Box: BoxOutbox, Peer: PREAChannel, PeerName: "PREA report",
			Body: "report text", State: MsgQueued, CreatedAt: at, UpdatedAt: at},
		{ID: "0192bbbb-0000-7000-8000-000000000003", InmateID: "i1", Box: BoxOutbox, Peer: "dept-medical", PeerName: "Medical",
			Body: "second letter", State: MsgQueued, CreatedAt: at, UpdatedAt: at},
	}
	charge := Charge{RecordID: "s1/000000", SessionID: "s1", InmateID: "i1", Minute: 0, Cents: 25, At: at}
	var stored [][]byte
	err = db.Update(func(tx *bolt.Tx) error {
		if err := migrate0to1(tx); err != nil {
			return err
		}
		meta := tx.Bucket([]byte(bMeta))
		if err := meta.Put([]byte(kSchema), u64(1)); err != nil {
			return err
		}
		sess := Session{ID: "s1", InmateID: "i1", Start: at, End: at.Add(time.Minute), Minutes: 1, Rate: 25, Charged: 25, EndReason: EndLogout}
		for _, rec := range []struct {
			bucket, key string
			v           any
		}{
			{bSessions, sess.ID, sess}, {bCharges, charge.RecordID, charge},
			{bDeposits, "d1", Deposit{Ref: "d1", InmateID: "i1", Cents: 1000, At: at}},
			{bAccounts, "i1", Account{InmateID: "i1", Balance: 975, Unsynced: 25}},
		} {
			if err := putJSON(tx, rec.bucket, rec.key, rec.v); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(bSessIndex)).Put([]byte("i1/s1"), nil); err != nil {
			return err
		}
		if err := meta.Put([]byte(preaWaitingKey("i1")), u64(1)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The queue: message, PREA report, charge, message, each as schema 1 encoded it.
	err = db.Update(func(tx *bolt.Tx) error {
		kinds := []ItemKind{ItemMessage, ItemPREA, ItemCharge, ItemMessage}
		bodies := []any{msgs[0], msgs[1], charge, msgs[2]}
		for i, kind := range kinds {
			body, err := json.Marshal(bodies[i])
			if err != nil {
				return err
			}
			enc, err := json.Marshal(oldItem{Seq: uint64(i + 1), ID: "0192cccc-0000-7000-8000-00000000000" + string(rune('1'+i)),
				Kind: string(kind), CreatedAt: at, Body: body})
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte(bOutq)).Put(u64(uint64(i+1)), enc); err != nil {
				return err
			}
			stored = append(stored, enc)
		}
		for _, m := range msgs {
			if err := putJSON(tx, bMessages, m.ID, m); err != nil { // no queue position: schema 1
				return err
			}
			if err := tx.Bucket([]byte(bMsgIndex)).Put(msgIndexKey(m.InmateID, m.ID), []byte(idxOutbox)); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bMeta))
		if err := meta.Put([]byte(kNextSeq), u64(5)); err != nil {
			return err
		}
		return meta.Put([]byte(kOutqCount), u64(4))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatalf("open a schema 1 store: %v", err)
	}
	defer s.Close()
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clock.NewFake(at.Add(time.Hour)), PINParams: TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(); info.Schema != SchemaVersion() || info.Schema != 6 {
		t.Fatalf("schema after upgrade = %d", info.Schema)
	}
	if rep, err := term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after upgrade: %+v, %v", rep.Problems, err)
	}
	// The queue forwards as it was written: the entries are the items' wire encoding.
	qs, err := s.PendingWire(0, 4, 1<<20) // (Verify queued its audit event after them)
	if err != nil || len(qs) != 4 {
		t.Fatalf("PendingWire = %d items, %v", len(qs), err)
	}
	for i, q := range qs {
		if q.Seq != uint64(i+1) || !bytes.Equal(q.JSON, stored[i]) {
			t.Fatalf("item %d = %d %s, want %s", i, q.Seq, q.JSON, stored[i])
		}
	}
	shown := func(id string) Message {
		t.Helper()
		sent, err := term.Sent("i1")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range sent {
			if m.ID == id {
				return m
			}
		}
		t.Fatalf("message %s not on the Sent screen", id)
		return Message{}
	}
	if m := shown(msgs[0].ID); m.State != MsgQueued {
		t.Fatalf("before the ack the first message shows %s", m.State)
	}
	// The relay acknowledges the first three.
	if n, err := term.MarkForwarded(3); err != nil || n != 3 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	if m := shown(msgs[0].ID); m.State != MsgSent || m.Body != msgs[0].Body {
		t.Fatalf("acknowledged message shows %s %q", m.State, m.Body)
	}
	if m := shown(msgs[1].ID); m.State != MsgSent || m.Body != "" {
		t.Fatalf("acknowledged PREA report shows %s with %q", m.State, m.Body)
	}
	if m := shown(msgs[2].ID); m.State != MsgQueued {
		t.Fatalf("unacknowledged message shows %s", m.State)
	}
	var acc Account
	if err := s.view(func(tx *bolt.Tx) (err error) { acc, err = loadAccountTx(tx, "i1"); return }); err != nil || acc.Unsynced != 0 {
		t.Fatalf("unsynced %v after the charge's ack (%v)", acc.Unsynced, err)
	}
	if rep, err := term.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after the ack: %+v, %v", rep.Problems, err)
	}
}
