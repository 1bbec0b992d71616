package relay

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// storedBytes is the stored bytes of key in bucket (nil if absent).
func storedBytes(t *testing.T, e *env, bucket, key string) []byte {
	t.Helper()
	var v []byte
	if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		v = bytes.Clone(getRaw(tx, bucket, key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// What a terminal says of itself as it runs (a hello's last seen, software and queue, a
// status report's queue) goes to its own term_seen record, not to its terminal record, which
// stays as enrollment wrote it; the fleet shows it, across a restart.
func TestATerminalsReportsLeaveItsRecordAlone(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	enrolled := storedBytes(t, e, bTerminals, k.id)
	oldest := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	c := dial(t, e.wsURL())
	send(t, c, wire.Hello{TerminalID: k.id, Epoch: k.epoch, Software: "tether 9.1", Waiting: 4, OldestWaiting: oldest})
	f := read(t, c)
	send(t, c, wire.Auth{Signature: wire.SignAuth(k.priv, k.id, f.Challenge.Nonce)})
	if f = read(t, c); f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	tc := &tconn{t: t, c: c, term: k, w: *f.Welcome}
	tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 2}))
	c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the terminal is gone", func() bool { return !e.r.hub.connected(k.id) })
	if got := storedBytes(t, e, bTerminals, k.id); !bytes.Equal(got, enrolled) {
		t.Errorf("the terminal record changed:\n%s\nwas\n%s", got, enrolled)
	}
	if storedBytes(t, e, bTermSeen, k.id) == nil {
		t.Errorf("no %s record", bTermSeen)
	}
	e.restart()
	ti := e.terminalInfo(k.id)
	if ti.Software != "tether 9.1" || ti.ItemsWaiting != 2 || !ti.OldestWaiting.Equal(oldest) || !ti.LastSeen.Equal(t0) {
		t.Fatalf("the fleet shows software %q, %d waiting since %v, last seen %v", ti.Software, ti.ItemsWaiting, ti.OldestWaiting, ti.LastSeen)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// A store of schema 21 kept what terminals said in their terminal records: the migration moves
// it to their term_seen records, and the fleet shows the same. A term_seen record of a
// terminal that is not enrolled is named by verify.
func TestSeenStateMovedOutOfTerminalRecords(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	quiet := e.enroll(wire.ModeKiosk, "")
	seen := time.Date(2026, 4, 2, 9, 30, 0, 0, time.UTC)
	err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		var rec terminalRec
		if _, err := getJSON(tx, bTerminals, k.id, &rec); err != nil {
			return err
		}
		rec.LastSeen, rec.Software, rec.ItemsWaiting, rec.OldestWaiting = seen, "tether 8", 5, seen.Add(-time.Hour)
		if err := putJSON(tx, bTerminals, k.id, rec); err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte(bTermSeen)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(21))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	ti := e.terminalInfo(k.id)
	if ti.Software != "tether 8" || ti.ItemsWaiting != 5 || !ti.OldestWaiting.Equal(seen.Add(-time.Hour)) || !ti.LastSeen.Equal(seen) {
		t.Fatalf("after the migration the fleet shows software %q, %d waiting since %v, last seen %v", ti.Software, ti.ItemsWaiting, ti.OldestWaiting, ti.LastSeen)
	}
	var rec terminalRec
	if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		_, err := getJSON(tx, bTerminals, k.id, &rec)
		return err
	}); err != nil || !rec.LastSeen.IsZero() || rec.ItemsWaiting != 0 || !rec.OldestWaiting.IsZero() {
		t.Fatalf("the terminal record still holds %+v (%v)", rec.TerminalInfo, err)
	}
	if storedBytes(t, e, bTermSeen, quiet.id) != nil {
		t.Errorf("a terminal that never said anything got a %s record", bTermSeen)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify after the migration = %+v, %v", rep, err)
	}
	if err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		return putJSON(tx, bTermSeen, "t-nobody", seenState{ItemsWaiting: 1})
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || rep.OK || rep.Problems[0].Check != "term_seen" {
		t.Fatalf("verify with a stray term_seen record = %+v, %v; want a term_seen problem", rep, err)
	}
}

// On a shared store a status report that says the queue length the connection's last one
// said reads nothing of the terminal's term_seen record, so its commit need carry no check of
// it (a message of its own in a group of many terminals, when the group's writes cannot carry
// all its checks): the connection remembers what it left there. Forgetting that (as after a
// failed write) costs each such report a read.
func TestAnUnchangedQueueReadsNothing(t *testing.T) {
	c := natstest.Start(t)
	st := jetStore(t, c, 0, "seen")
	e := newEnv(t, func(cfg *Config) { cfg.Store = st })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	tc := k.connect(t, 0)
	tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 2}))
	sess := e.r.hub.session(k.id)
	if sess == nil {
		t.Fatal("no session")
	}
	own, err := sess.owner()
	if err != nil || own == nil {
		t.Fatalf("owner: %v, %v", own, err)
	}
	reads := func(s jskv.Stats) int64 { return s.Reads + s.ReplicaReads + s.CacheHits }
	messages := func(forget bool) (int64, int64) {
		before := st.Stats()
		for range 5 {
			if forget {
				own.queue.Store(0)
			}
			if ack := tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 2})); len(ack.Rejected) != 0 {
				t.Fatalf("status: ack %+v", ack)
			}
		}
		after := st.Stats()
		return after.Messages - before.Messages, reads(after) - reads(before)
	}
	messages(false) // the connection's own records in the gateway's cache, as they are under load
	msgsForgot, readForgot := messages(true)
	// The store's counts take in what the relay's other work reads meanwhile (its beats, the
	// watch feed), which only adds: the least of three rounds is the reports' own, so a
	// loaded machine does not fail the test (it did, now and then).
	msgs, read := messages(false)
	for range 2 {
		m, r := messages(false)
		msgs, read = min(msgs, m), min(read, r)
	}
	t.Logf("5 unchanged status reports: %d messages and %d reads remembered, %d and %d forgotten", msgs, read, msgsForgot, readForgot)
	if read+5 > readForgot || msgs > msgsForgot {
		t.Errorf("5 unchanged reports read %d keys (%d messages), %d (%d) when the connection forgets its queue: want 5 reads fewer",
			read, msgs, readForgot, msgsForgot)
	}
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 2 {
		t.Fatalf("the fleet shows %d waiting, want 2", ti.ItemsWaiting)
	}
	tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 0}))
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 0 {
		t.Fatalf("after a change the fleet shows %d waiting, want 0", ti.ItemsWaiting)
	}
}
