package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// sendNumbered queues n messages from inmate to the medical department, numbered in their subject.
func (tm *terminal) sendNumbered(inmate string, from, n int) {
	tm.t.Helper()
	if err := tm.trySendNumbered(inmate, from, n); err != nil {
		tm.t.Fatal(err)
	}
}

// trySendNumbered is sendNumbered for a goroutine other than the test's, which must not
// stop the test (t.Fatal there ends only that goroutine): it returns the first failure.
func (tm *terminal) trySendNumbered(inmate string, from, n int) error {
	for i := from; i < from+n; i++ {
		if _, err := tm.term.Send(inmate, "dept-medical", fmt.Sprintf("%s #%06d", inmate, i), "body of message "+strconv.Itoa(i)); err != nil {
			return fmt.Errorf("send %s #%d: %w", inmate, i, err)
		}
	}
	return nil
}

// checkMessages asserts the relay holds exactly want[inmate] messages per inmate, each once,
// numbered 0..n-1 in arrival order.
func checkMessages(t *testing.T, r *relay.Relay, terminalID string, want map[string]int) {
	t.Helper()
	items, err := r.Items(relay.ItemFilter{TerminalID: terminalID, Kind: wire.UpMessage})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	next := map[string]int{}
	for _, it := range items {
		if seen[it.ID] {
			t.Fatalf("item %s (seq %d) stored twice", it.ID, it.Seq)
		}
		seen[it.ID] = true
		var m kiosk.Message
		if err := jsonUnmarshal(it.Body, &m); err != nil {
			t.Fatal(err)
		}
		prefix := m.InmateID + " #"
		if !strings.HasPrefix(m.Subject, prefix) {
			t.Fatalf("unexpected message %q", m.Subject)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(m.Subject, prefix))
		if n != next[m.InmateID] {
			t.Fatalf("%s: message #%d arrived where #%d was due (lost, duplicated or out of order)", m.InmateID, n, next[m.InmateID])
		}
		next[m.InmateID]++
	}
	for inmate, n := range want {
		if next[inmate] != n {
			t.Fatalf("%s: relay holds %d messages, want %d", inmate, next[inmate], n)
		}
	}
}

func countMessages(r *relay.Relay, terminalID string) int {
	items, err := r.Items(relay.ItemFilter{TerminalID: terminalID, Kind: wire.UpMessage})
	if err != nil {
		return -1
	}
	return len(items)
}

func TestEnrollSyncBothWays(t *testing.T) {
	rl, _, tm, en := syncedKiosk(t, nil)
	if en.TerminalID == "" || en.Facility != "north" || en.Mode != wire.ModeKiosk {
		t.Fatalf("enrollment = %+v", en)
	}
	st := tm.eng.Status()
	if !st.Connected || st.TerminalID != en.TerminalID || st.Facility != "north" {
		t.Fatalf("status = %+v", st)
	}
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 20)
	tm.waitSynced()
	checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": 20})
	sent, err := tm.term.Sent("A1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sent {
		if m.State == kiosk.MsgQueued {
			t.Fatalf("message %s still queued after its ack", m.Subject)
		}
	}
}
