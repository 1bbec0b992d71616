package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
)

// TestBacklogWhileRelayDown: 10,000 messages (1,000 on JetStream) queued while the relay is down all arrive once,
// in order per inmate, once it comes back.
func TestBacklogWhileRelayDown(t *testing.T) {
	n := 10000
	// On JetStream (TestOnJetStreamToo) 1,000 already needs batches stored in parts (a few
	// hundred letters are more than one atomic batch may hold); 10,000 is the bbolt run's.
	if testing.Short() || os.Getenv(storeEnv) == "jetstream" {
		n = 1000
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
