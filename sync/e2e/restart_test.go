package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
)

// TestRelayRestartMidStream restarts the relay several times while a backlog drains.
func TestRelayRestartMidStream(t *testing.T) {
	const n = 3000
	rl, px, tm, en := syncedKiosk(t, nil)
	tm.stopSync()
	tm.reopen(kiosk.StoreOptions{NoSync: true})
	t.Logf("%v: queueing", time.Now().Format("05.000"))
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, n)
	t.Logf("%v: queued", time.Now().Format("05.000"))
	tm.reopen(kiosk.StoreOptions{})
	tm.cfg = func(c *client.Config) { c.BatchItems = 64 }
	tm.start()
	restarts := 0
	for restarts < 4 {
		waiting, _, err := tm.store.QueueStats()
		if err != nil {
			t.Fatal(err)
		}
		got := n - waiting
		if waiting == 0 {
			break
		}
		if got > restarts*n/6 {
			t.Logf("%v: %d stored, restarting", time.Now().Format("05.000"), got)
			rl.restart()
			px.setBackend(rl.addr())
			restarts++
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%v: restarts done", time.Now().Format("05.000"))
	tm.waitSynced()
	t.Logf("%v: synced", time.Now().Format("05.000"))
	if restarts < 2 {
		t.Fatalf("only %d relay restarts happened mid-stream", restarts)
	}
	t.Logf("%d relay restarts", restarts)
	checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": n})
}

// TestKilledTerminalResumes SIGKILLs a terminal process (this test binary, re-executed as a
// child) in the middle of syncing, restarts it, and checks every message arrives exactly once.
func TestKilledTerminalResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const n = 3000
	rl, _, tm, en := syncedKiosk(t, nil)
	tm.stopSync()
	tm.reopen(kiosk.StoreOptions{NoSync: true})
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, n)
	tm.close() // the child owns the store from here

	kills := 0
	for kills < 3 {
		child := startChild(t, tm.dir)
		// Kill it once it has made progress, at a moment it is most likely mid-batch.
		target := (kills + 1) * n / 5
		testwait.UntilSaw(t, "the child to forward some items", func() (bool, string) {
			got := countMessages(rl.r, en.TerminalID)
			return got >= target, fmt.Sprintf("%d of %d", got, target)
		})
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		kills++
	}
	child := startChild(t, tm.dir)
	defer func() { child.Process.Signal(syscall.SIGKILL); child.Wait() }()
	testwait.UntilSaw(t, "every message on the relay", func() (bool, string) {
		got := countMessages(rl.r, en.TerminalID)
		return got >= n, fmt.Sprintf("%d of %d", got, n)
	})
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": n})
	tm.reopen(kiosk.StoreOptions{})
	if w, _, err := tm.store.QueueStats(); err != nil || w > 0 {
		// The last acks may not have reached the store before the kill; a restart resends them
		// and the relay drops the duplicates.
		tm.start()
		tm.waitSynced()
		checkMessages(t, rl.r, en.TerminalID, map[string]int{"A1": n})
	}
}

// startChild runs this test binary as a terminal process syncing dir.
func startChild(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildTerminal$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "child: syncing" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child terminal did not start")
	}
	return cmd
}

// TestChildTerminal is the child process of TestKilledTerminalResumes; it does nothing when
// run normally.
func TestChildTerminal(t *testing.T) {
	dir := childDir()
	if dir == "" {
		t.Skip("only runs as a child process")
	}
	tm := openTerminal(t, dir, kiosk.StoreOptions{})
	tm.cfg = func(c *client.Config) { c.BatchItems = 32 }
	tm.start()
	fmt.Println("child: syncing")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	<-ctx.Done() // until killed
}
