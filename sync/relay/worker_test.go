package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// While a connection's batch waits on a slow commit, the relay goes on reading the connection:
// it answers the terminal's ping (a terminal, or the relay's own ping timer, must not take a
// queued link for a dead one), takes the batches pipelined behind it, and then acknowledges
// every batch in the order it was sent, each stored once.
func TestSlowCommitKeepsReadingAndAcksInOrder(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	tc := k.connect(t, 0)

	// The terminal's reader: the websocket library answers control frames only while reading.
	frames := make(chan wire.Frame, 16)
	go func() {
		defer close(frames)
		for {
			_, b, err := tc.c.Read(context.Background())
			if err != nil {
				return
			}
			f, err := wire.DecodeFrame(b)
			if err != nil {
				t.Errorf("decode frame from relay: %v", err)
				return
			}
			frames <- f
		}
	}()

	release := holdCommitter(t, e.r) // the disk is slow: nothing commits until release
	var sent []wire.Batch
	for i := 0; i < 3; i++ {
		b := wire.Batch{Epoch: k.epoch, Items: []wire.Item{k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": i})}}
		send(t, tc.c, b)
		sent = append(sent, b)
		if i == 0 {
			queued(t, e.r, 1) // the first batch's write waits behind the held commit
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := tc.c.Ping(ctx)
	cancel()
	if err != nil {
		release()
		t.Fatalf("the relay did not answer a ping while a commit was slow: %v", err)
	}
	for len(frames) > 0 {
		if f := <-frames; f.Type == wire.TypeAck {
			release()
			t.Fatalf("got an ack of seq %d before anything committed", f.Ack.Seq)
		}
	}
	release()

	for i, b := range sent {
		var ack *wire.Ack
		for ack == nil {
			select {
			case f, ok := <-frames:
				if !ok {
					t.Fatalf("connection ended before ack %d", i+1)
				}
				if f.Type == wire.TypeAck {
					ack = f.Ack
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no ack %d", i+1)
			}
		}
		if want := b.Items[0].Seq; ack.Seq != want || len(ack.Rejected) != 0 {
			t.Fatalf("ack %d: seq %d rejected %v, want seq %d, none rejected", i+1, ack.Seq, ack.Rejected, want)
		}
	}
	items, err := e.r.Items(ItemFilter{TerminalID: k.id, Kind: wire.UpDeviceStatus})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(sent) {
		t.Fatalf("%d device statuses stored, want %d (each once)", len(items), len(sent))
	}
	for i, it := range items {
		if it.ID != sent[i].Items[0].ID {
			t.Fatalf("item %d stored is %s, want %s (in the order sent)", i, it.ID, sent[i].Items[0].ID)
		}
	}
	tc.c.Close(websocket.StatusNormalClosure, "")
}

// The down frame the writer puts together from stored items is byte for byte what wire.Encode
// writes for the same items, for bodies with characters JSON escapes too, and a terminal
// decodes it.
func TestDownFrameFromStoredItemsMatchesEncode(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	texts := []string{"plain", `<b>&"quoted"</b>`, "line\nbreak \u2028 é ✓"}
	for i, text := range texts {
		if err := e.r.update("queue", func(tx kv.Tx, f *fanout) error {
			return f.toTerminal(k.id, wire.DownNotice, wire.Notice{ID: fmt.Sprintf("n%d", i), Text: text, At: t0})
		}); err != nil {
			t.Fatal(err)
		}
	}
	raw, last, _, err := e.r.pendingDownRaw(downReader{id: k.id, facility: "north", mode: wire.ModeKiosk}, 0, 1000, wire.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	items, err := e.r.pendingDown(k.id, 0, 1000, wire.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(items) || len(items) < len(texts) || last != items[len(items)-1].Seq {
		t.Fatalf("%d raw items up to %d, %d decoded", len(raw), last, len(items))
	}
	got, err := downFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := wire.Encode(wire.Down{Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("down frame:\n%s\nwant (wire.Encode):\n%s", got, want)
	}
	f, err := wire.DecodeFrame(got)
	if err != nil || f.Type != wire.TypeDown {
		t.Fatalf("terminal decodes %v, %v", f.Type, err)
	}
	var n wire.Notice
	if err := json.Unmarshal(f.Down.Items[len(f.Down.Items)-1].Body, &n); err != nil || n.Text != texts[len(texts)-1] {
		t.Fatalf("last notice %q, %v; want %q", n.Text, err, texts[len(texts)-1])
	}
}

// The fan-out index's kiosk entry is recognised by its bytes: they must be what enrollment
// writes, or every kiosk would silently take the slow path (and a change of termRoute be missed).
func TestKioskRouteIsWhatEnrollmentWrites(t *testing.T) {
	raw, err := json.Marshal(termRoute{Mode: wire.ModeKiosk})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != kioskRoute {
		t.Fatalf("termRoute of a kiosk encodes as %s, kioskRoute is %s", raw, kioskRoute)
	}
	for _, v := range []string{kioskRoute, `{"mode":"tablet","inmate_id":"A1"}`, `{"inmate_id":"A1","mode":"kiosk"}`} {
		fast, err := decodeRoute([]byte(v))
		var slow termRoute
		if jerr := json.Unmarshal([]byte(v), &slow); err != nil || jerr != nil || fast != slow {
			t.Fatalf("decodeRoute(%s) = %+v, %v; json gives %+v, %v", v, fast, err, slow, jerr)
		}
	}
}
