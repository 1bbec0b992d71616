package relay

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The calls of one group commit share its item log record where their arrival numbers follow
// one another: a call's items are added to the end of the record the call before it wrote
// (lastRecord), a gap or a record at its limit starts another, and every item is read back by
// its number, within the transaction by the calls after it and once committed.
func TestGroupCommitCallsAddToOneItemRecord(t *testing.T) {
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "items.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	big := bytes.Repeat([]byte("b"), logRecordMax*2/3)
	item := func(n uint64) []byte {
		if n == 13 || n == 14 {
			return fmt.Appendf(nil, `{"n":%d,"pad":%q}`, n, big)
		}
		return fmt.Appendf(nil, `{"n":%d}`, n)
	}
	calls := [][]uint64{{5, 6, 7}, {8, 9}, {11, 12}, {13}, {14}, {15}}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bItems)); err != nil {
			return err
		}
		last := &lastRecord{}
		for i, nums := range calls {
			l := &itemLog{}
			ltx := &logTx{Tx: tx, log: l}
			for _, n := range nums {
				l.add(n, item(n))
			}
			// What the calls before wrote reads back through this one's transaction.
			for _, prev := range calls[:i] {
				for _, n := range prev {
					if got := storedItemRaw(ltx, n); !bytes.Equal(got, item(n)) {
						return fmt.Errorf("call %d reads item %d as %.40q", i, n, got)
					}
				}
			}
			if err := l.flush(tx, last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 5-9 one record (the second call follows the first), 11-13 one (after the gap at 10),
	// 14-15 one: 14 would take 11's record past logRecordMax.
	keys, logs := itemRecords(t, db)
	if fmt.Sprint(keys) != "[5 11 14]" || logs != len(keys) {
		t.Fatalf("records %v (%d log records), want [5 11 14]", keys, logs)
	}
	err = db.View(context.Background(), func(tx kv.Tx) error {
		for n := uint64(0); n <= 16; n++ {
			got := storedItemRaw(tx, n)
			stored := n >= 5 && n <= 15 && n != 10
			if stored != (got != nil) || (got != nil && !bytes.Equal(got, item(n))) {
				return fmt.Errorf("item %d = %.40q, stored %v", n, got, stored)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// queuedItems waits until n calls that store items wait in w's queue.
func queuedItems(t *testing.T, w *committer, n int) {
	waitUntil(t, "batches queued", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		items := 0
		for _, call := range w.queue {
			if call.numbers > 0 {
				items++
			}
		}
		return items == n
	})
}

// On a shared store the batches of one group commit, from several kiosks, are one item log
// record, not one a call: on the kv path, and on a held facility's state, whose projection
// writes that one record to the kv state. Staff read every item and every letter as sent.
func TestAGroupCommitsBatchesAreOneItemRecord(t *testing.T) {
	c := natstest.Start(t)
	for _, held := range []bool{false, true} {
		name := map[bool]string{false: "kv", true: "held"}[held]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "relay-"+name) })
			e.seed()
			e.letterContact("A1", "pal")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			committer := e.r.writes
			if held {
				hf, err := e.r.holdFacility(ctx, openFacLog(ctx, t, c, 1), "north", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)})
				if err != nil {
					t.Fatal(err)
				}
				committer = hf.writes
			}
			var kcs []*tconn
			for range 4 {
				kcs = append(kcs, e.enroll(wire.ModeKiosk, "").connect(t, 0))
			}
			before, _ := itemRecords(t, e.r.db)
			release := holdCommitterOn(t, e.r, committer)
			var sent []wire.Item
			for i, kc := range kcs {
				it := kc.term.item(wire.UpMessage, kiosk.Message{ID: fmt.Sprintf("m%d", i), InmateID: "A1",
					Box: kiosk.BoxOutbox, Peer: "pal", Body: fmt.Sprintf("letter %d from kiosk %d", i, i)})
				sent = append(sent, it)
				send(t, kc.c, wire.Batch{Epoch: kc.term.epoch, Items: []wire.Item{it}})
			}
			queuedItems(t, committer, len(kcs))
			release()
			for i, kc := range kcs {
				if ack := kc.ack(); ack.Seq != 1 || len(ack.Rejected) != 0 {
					t.Fatalf("kiosk %d: ack %+v", i, ack)
				}
			}
			if held {
				if err := e.r.releaseFacility(ctx, "north"); err != nil { // projects what it holds
					t.Fatal(err)
				}
			}
			after, logs := itemRecords(t, e.r.db)
			if len(after) != len(before)+1 || logs != len(after) {
				t.Fatalf("4 calls' items are %d records (%v after %v), want one log record", len(after)-len(before), after, before)
			}
			for i, kc := range kcs {
				list, err := e.r.Items(ItemFilter{TerminalID: kc.term.id})
				if err != nil || len(list) != 1 || list[0].ID != sent[i].ID || list[0].Seq != 1 {
					t.Fatalf("kiosk %d's items: %+v, %v", i, list, err)
				}
			}
			var ol struct{ Messages []Outbound }
			e.must(http.StatusOK, "GET", "/admin/v1/outbound", nil, &ol)
			bodies := map[string]string{}
			for _, m := range ol.Messages {
				bodies[m.ID] = m.Body
			}
			for i := range kcs {
				if want := fmt.Sprintf("letter %d from kiosk %d", i, i); bodies[fmt.Sprintf("m%d", i)] != want {
					t.Fatalf("letter m%d = %q, want %q (all: %v)", i, bodies[fmt.Sprintf("m%d", i)], want, bodies)
				}
			}
			if rep, err := e.r.Verify(); err != nil || !rep.OK {
				t.Fatalf("verify: %+v %v", rep, err)
			}
		})
	}
}

// A holder forgets its item log records once its projector wrote them to the kv state (its
// first step, not the whole forget twenty steps on): nothing reads them from the held state,
// and they were most of a busy holder's memory. Staff read every item all the same.
func TestAHolderForgetsItsItemRecordsOnceProjected(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "relay") })
	e.seed()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fake := clock.NewFake(t0)
	hf, err := e.r.holdFacility(ctx, openFacLog(ctx, t, c, 1), "north", "gw-test", faclog.HoldOptions{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	kc := k.connect(t, 0)
	defer kc.c.Close(websocket.StatusNormalClosure, "")
	var sent []string
	for i := range 5 {
		it := k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": i})
		sent = append(sent, it.ID)
		if ack := kc.batch(it); ack.Seq != it.Seq || len(ack.Rejected) != 0 {
			t.Fatalf("batch %d: ack %+v", i, ack)
		}
	}
	_, before := hf.holding.Store().Size()
	fake.Advance(time.Second) // the projector's first step
	waitUntil(t, "the item records forgotten", func() bool {
		_, keys := hf.holding.Store().Size()
		return keys <= before-len(sent) // a record a batch: each came in a group of its own
	})
	list, err := e.r.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(list) != len(sent) {
		t.Fatalf("items: %d, %v", len(list), err)
	}
	for i, it := range list {
		if it.ID != sent[i] {
			t.Fatalf("item %d is %s, want %s", i, it.ID, sent[i])
		}
	}
}
