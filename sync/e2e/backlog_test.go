package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
)

// backlogEnv sets the number of letters TestBacklogWhileRelayDown queues: make soak (scripts/
// soak.sh) queues 10,000, a week of a busy kiosk's letters.
const backlogEnv = "TETHER_BACKLOG"

// TestBacklogWhileRelayDown: 3,000 messages (1,000 on JetStream; TETHER_BACKLOG sets another
// number) queued while the relay is down all arrive once, in order per inmate, once it comes
// back.
func TestBacklogWhileRelayDown(t *testing.T) {
	// 3,000 letters are a dozen full batches and more than a relay's group commit takes at
	// once. On JetStream (TestOnJetStreamToo) 1,000 already needs batches stored in parts (a
	// few hundred letters are more than one atomic batch may hold).
	n := 3000
	if testing.Short() || onJetStream() {
		n = 1000
	}
	if s := os.Getenv(backlogEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 {
			t.Fatalf("%s=%q: want a number of letters, 2 or more", backlogEnv, s)
		}
		n = v
	}
	rl, px, tm, en := syncedKiosk(t, nil)
	rl.stop()
	tm.stopSync()
	// Queueing is not what this test measures: skip fsync while filling, then reopen normally.
	tm.reopen(kiosk.StoreOptions{NoSync: true})

	start := time.Now()
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, n/2)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	tm.login("B2", "2345")
	tm.sendNumbered("A2", 0, n-n/2)
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	t.Logf("queued %d messages in %v", n, time.Since(start))
	tm.reopen(kiosk.StoreOptions{})
	tm.start()
	testwait.UntilSaw(t, "the engine to notice the relay is down", func() (bool, string) {
		st := tm.eng.Status()
		return st.LastError != "", ""
	})
	st := tm.eng.Status()
	if st.Connected || st.Waiting < n || st.LastError == "" {
		t.Fatalf("status while the relay is down = %+v", st)
	}

	start = time.Now()
	rl.open()
	px.setBackend(rl.addr())
	tm.eng.SyncNow()
	tm.waitSynced()
	t.Logf("drained in %v", time.Since(start))
	checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": n / 2, "A2": n - n/2})
}
