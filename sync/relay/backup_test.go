package relay

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestOnlineBackupRestores: while terminals sync and staff post deposits, GET
// /admin/v1/backup streams the store; a relay opened on the copy (the documented restore:
// the file in place of relay.db) has the terminals, items and money of the moment it began,
// and passes verify.
func TestOnlineBackupRestores(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), k.item(wire.UpCharge, charge("A1", "s1", 1, 5)))

	// Deposits keep coming while the backup streams: the copy is one consistent state.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A2", Cents: 1, Ref: "during-" + strconv.Itoa(i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	req, _ := http.NewRequest("GET", e.srv.URL+PathBackup, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	close(stop)
	wg.Wait()
	if err != nil || f.Close() != nil {
		t.Fatalf("read backup: %v", err)
	}
	if resp.StatusCode != http.StatusOK || strconv.FormatInt(n, 10) != resp.Header.Get("Content-Length") {
		t.Fatalf("backup: status %d, %d bytes of Content-Length %s", resp.StatusCode, n, resp.Header.Get("Content-Length"))
	}

	restored, err := Open(Config{DataDir: dir, PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatalf("open the restored copy: %v", err)
	}
	defer restored.Close()
	// Verify checks each running total against the deposits stored: a copy that caught
	// half of a deposit made during the backup fails here.
	rep, err := restored.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("restored copy fails verify: %+v %v", rep, err)
	}
	b, err := restored.Balance("A1")
	if err != nil || b.BalanceCents != 990 {
		t.Fatalf("restored balance of A1 = %+v, %v; want 990", b, err)
	}
	terms, err := restored.Terminals()
	if err != nil || len(terms) != 1 || terms[0].ID != k.id {
		t.Fatalf("restored terminals = %+v, %v", terms, err)
	}
	items, err := restored.Items(ItemFilter{TerminalID: k.id})
	if err != nil || len(items) != 2 {
		t.Fatalf("restored items = %d, %v; want 2", len(items), err)
	}
}

// TestBackupNeedsTokenAndRunsAlone: no token, no copy; a second backup while one runs is
// refused with 409, not queued behind it.
func TestBackupNeedsTokenAndRunsAlone(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	if st, _ := e.callAuth("GET", PathBackup, nil, ""); st != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", st)
	}
	e.r.backups.mu.Lock()
	st, body := e.call("GET", PathBackup, nil)
	e.r.backups.mu.Unlock()
	if st != http.StatusConflict {
		t.Fatalf("during another backup: %d %s", st, body)
	}
	if st, _ := e.call("POST", PathBackup, nil); st != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", st)
	}
	if st, _ := e.call("GET", PathBackup, nil); st != http.StatusOK {
		t.Fatalf("after: %d", st)
	}
}
