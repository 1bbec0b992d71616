package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The fleet view shows how old a terminal's oldest waiting item is, from its hello, until a
// device status says nothing waits any more.
func TestHelloOldestWaitingShowsInTheFleet(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	oldest := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	c := dial(t, e.wsURL())
	send(t, c, wire.Hello{TerminalID: k.id, Epoch: k.epoch, Software: "test", Waiting: 4, OldestWaiting: oldest})
	f := read(t, c)
	if f.Type != wire.TypeChallenge {
		t.Fatalf("got %s, want challenge", f.Type)
	}
	send(t, c, wire.Auth{Signature: wire.SignAuth(k.priv, k.id, f.Challenge.Nonce)})
	if f = read(t, c); f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 4 || !ti.OldestWaiting.Equal(oldest) {
		t.Fatalf("while connected: waiting %d, oldest %v", ti.ItemsWaiting, ti.OldestWaiting)
	}
	tc := &tconn{t: t, c: c, term: k, w: *f.Welcome}
	// A status that changes nothing leaves the record as it is (and is not written again).
	tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 4}))
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 4 || !ti.OldestWaiting.Equal(oldest) {
		t.Fatalf("after a status with as many waiting: waiting %d, oldest %v", ti.ItemsWaiting, ti.OldestWaiting)
	}
	tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 0}))
	c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the terminal is gone", func() bool { return !e.r.hub.connected(k.id) })
	if ti := e.terminalInfo(k.id); ti.ItemsWaiting != 0 || !ti.OldestWaiting.IsZero() {
		t.Fatalf("after a status with nothing waiting: waiting %d, oldest %v", ti.ItemsWaiting, ti.OldestWaiting)
	}
}

// The console's bucket is made by its first write, survives a restart, and leaves Verify clean.
func TestStaffBucket(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if err := e.r.StaffView(func(kv.Bucket) error { return nil }); !errors.Is(err, errNoStaffBucket) {
		t.Fatalf("StaffView before any StaffUpdate: %v", err)
	}
	if err := e.r.StaffUpdate(func(b kv.Bucket) error { return b.Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	e.restart()
	var got string
	if err := e.r.StaffView(func(b kv.Bucket) error { got = string(b.Get([]byte("k"))); return nil }); err != nil || got != "v" {
		t.Fatalf("after a restart: %q %v", got, err)
	}
	rep, err := e.r.Verify()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify with the console's bucket: %+v %v", rep.Problems, err)
	}
	facs, err := e.r.Facilities()
	if err != nil || len(facs) != 1 {
		t.Errorf("facilities: %v %v", facs, err)
	}
	ins, err := e.r.Inmates(facs[0])
	if err != nil || len(ins) == 0 {
		t.Errorf("inmates of %s: %v %v", facs[0], ins, err)
	}
}

// A device status sets the terminal's queue length only from a number in items_waiting,
// spelt so: anything else leaves it as it was, and a body that is not an object is refused.
// The status itself is kept as it came.
func TestDeviceStatusReadsOnlyItsQueueLength(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	tc := k.connect(t, 0)
	for _, step := range []struct {
		body    string
		refused bool
		want    int
	}{
		{`{"items_waiting":7,"printer":"jammed"}`, false, 7},
		{`{"items_waiting":"9"}`, false, 7},
		{`{"items_waiting":-1}`, false, 7},
		{`{"Items_Waiting":9}`, false, 7},
		{`{"items_waiting":{"n":9}}`, false, 7},
		{`{"items_waiting":3.0,"items":[1,2]}`, false, 3},
		{`[{"items_waiting":9}]`, true, 3},
		{`null`, true, 3},
		{`{"items_waiting":0}`, false, 0},
	} {
		it := k.item(wire.UpDeviceStatus, json.RawMessage(step.body))
		ack := tc.batch(it)
		if refused := len(ack.Rejected) == 1 && ack.Rejected[0].Reason == wire.RefuseInvalid; refused != step.refused {
			t.Fatalf("%s: refused %v (%+v), want %v", step.body, refused, ack.Rejected, step.refused)
		}
		if got := e.terminalInfo(k.id).ItemsWaiting; got != step.want {
			t.Fatalf("%s: %d waiting, want %d", step.body, got, step.want)
		}
		if !step.refused {
			if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
				if got := string(tx.Bucket([]byte(bDevices)).Get([]byte(k.id))); got != step.body {
					return fmt.Errorf("%s: the status kept is %s", step.body, got)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
