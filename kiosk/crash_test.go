package kiosk

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/internal/testseed"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// The crash test runs this test binary again as a child that meters and sends as fast as it
// can on a fake clock, kills it with SIGKILL at a random moment, and checks the store the
// child left: every begun minute billed once, nothing queued twice, the ledger balanced, and
// every message the child was told was stored present exactly once.

const crashEnv = "TETHER_CRASH_CHILD"

const (
	crashInmate = "crash-1"
	crashPeer   = "dept-medical"
)

func crashPolicy() Policy {
	p := testPolicy(nil)
	p.Cooldown = 0
	p.OfflineSpendCap = p.MaxDeposit // nothing is acknowledged here; the cap is tested elsewhere
	return p
}

func TestCrashRecovery(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 40
	}
	dir := t.TempDir()
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))

	// The roster and policy the children work with.
	r := &rig{tb: t, dir: dir, clk: clock.NewFake(time.Now())}
	r.open()
	if err := r.term.SetPolicy(crashPolicy(), "test"); err != nil {
		t.Fatal(err)
	}
	r.addInmate(crashInmate, 0)
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}

	sent := map[string]bool{}
	faults := 0
	for i := range kills {
		ids, err := runCrashChild(dir, seed+uint64(i)+1, time.Duration(rng.IntN(40))*time.Millisecond)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		for _, id := range ids {
			sent[id] = true
		}
		s, err := OpenStore(dir, StoreOptions{})
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", i, err)
		}
		err = s.view(func(tx *bolt.Tx) error {
			if err := ledgerProblems(tx, false); err != nil {
				return err
			}
			if string(tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession))) != "" {
				faults++
			}
			return outboxExactlyOnce(tx, sent)
		})
		s.Close()
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
	}

	// A last start recovers whatever the last kill cut; then everything still holds.
	r.open()
	checkLedger(t, r.store, false)
	var stats struct{ sessions, minutes, credited, recovered int }
	err := r.store.view(func(tx *bolt.Tx) error {
		if string(tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession))) != "" {
			return fmt.Errorf("a session is still open after recovery")
		}
		return tx.Bucket([]byte(bSessions)).ForEach(func(k, v []byte) error {
			var s Session
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			stats.sessions++
			stats.minutes += s.Minutes
			stats.credited += int(s.Credited / s.Rate)
			if s.EndReason == EndTerminalFault {
				stats.recovered++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills (%d with a session open): %d sessions, %d minutes billed, %d credited, %d recovered, %d messages",
		kills, faults, stats.sessions, stats.minutes, stats.credited, stats.recovered, len(sent))
	// The test means something only if the kills landed while metering and sending.
	if stats.minutes <= kills || stats.recovered < kills/4 || len(sent) == 0 {
		t.Fatalf("too little happened before the kills to test anything")
	}
}

// runCrashChild starts a child on dir, waits until it says it is metering, lets it run for
// after, kills it, and returns the ids of the messages it reported as stored.
func runCrashChild(dir string, seed uint64, after time.Duration) ([]string, error) {
	return runChildTest("TestCrashChild", dir, seed, after)
}

// runChildTest is runCrashChild for the child test named.
func runChildTest(name, dir string, seed uint64, after time.Duration) ([]string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("TETHER_CRASH_SEED=%d", seed))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder // what the child said besides its protocol; read after done
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	done := make(chan []string)
	go func() {
		var ids []string
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready" && !once:
				once = true
				close(ready)
			case strings.HasPrefix(line, "sent "):
				ids = append(ids, strings.TrimPrefix(line, "sent "))
			default:
				stderr.WriteString(line + "\n")
			}
		}
		if !once {
			close(ready)
		}
		done <- ids
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(after)
	cmd.Process.Signal(syscall.SIGKILL)
	ids := <-done
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		return nil, fmt.Errorf("child was not killed (%v); it said: %s", werr, stderr.String())
	}
	return ids, nil
}

// outboxExactlyOnce checks each message the children reported is stored and queued once,
// and that no message is queued twice.
func outboxExactlyOnce(tx *bolt.Tx, sent map[string]bool) error {
	queued := map[string]int{}
	err := tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		if isAuditItem(v) {
			return nil
		}
		var it struct {
			Kind ItemKind
			Body struct{ ID string }
		}
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		if it.Kind == ItemMessage {
			queued[it.Body.ID]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, n := range queued {
		if n != 1 {
			return fmt.Errorf("message %s queued %d times", id, n)
		}
	}
	for id := range sent {
		var m Message
		found, err := getJSON(tx, bMessages, id, &m)
		if err != nil {
			return err
		}
		if !found || m.Box != BoxOutbox || queued[id] != 1 {
			return fmt.Errorf("message %s was reported stored but is found %v (box %q), queued %d times", id, found, m.Box, queued[id])
		}
	}
	return nil
}

// TestCrashChild is the child's body; it runs only under TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("runs only as the crash test's child")
	}
	var seed uint64
	fmt.Sscan(os.Getenv("TETHER_CRASH_SEED"), &seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	clk := clock.NewFake(time.Now())
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clk, PINParams: TestPINParams(), ID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	login := func() {
		if b, _ := term.Balance(crashInmate); b < 100 {
			if err := term.Deposit(crashInmate, 5000, fmt.Sprintf("dep-%d-%d", seed, rng.Uint64())); err != nil {
				t.Fatal(err)
			}
		}
		p, err := term.EnterPIN("B-"+crashInmate, rigPIN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := term.AcceptNotice(p); err != nil {
			t.Fatal(err)
		}
	}
	login()
	say("ready")
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if _, ok := term.Active(); !ok {
			login()
		}
		switch x := rng.IntN(100); {
		case x < 75:
			clk.Advance(time.Duration(5+rng.IntN(25)) * time.Second)
			term.Touch()
			term.Tick()
		case x < 90:
			m, err := term.Send(crashInmate, crashPeer, "Appointment", fmt.Sprintf("message %d of child %d", n, seed))
			if err != nil {
				t.Fatal(err)
			}
			say("sent %s", m.ID)
		case x < 95:
			if err := term.Logout(); err != nil {
				t.Fatal(err)
			}
		case x < 98:
			if err := term.ReportStall(time.Duration(11+rng.IntN(20)) * time.Second); err != nil {
				t.Fatal(err)
			}
		default:
			clk.Advance(time.Duration(20+rng.IntN(70)) * time.Second) // frozen: no tick meanwhile
			term.Tick()
		}
	}
}
