package relay

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// holdCommitter occupies the relay's committer with a write that waits until the returned
// release is called, so the writes queued meanwhile commit together in one group.
func holdCommitter(t *testing.T, r *Relay) (release func()) {
	t.Helper()
	return holdCommitterOn(t, r, r.writes)
}

// holdCommitterOn is holdCommitter of the committer w (a held facility's).
func holdCommitterOn(t *testing.T, r *Relay, w *committer) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.updateOn(w, "hold", nil, 0, func(kv.Tx, *fanout) error {
			select {
			case <-entered:
			default:
				close(entered)
			}
			<-gate
			return nil
		})
	}()
	<-entered
	return func() {
		close(gate)
		if err := <-done; err != nil {
			t.Errorf("hold: %v", err)
		}
	}
}

// queued waits until n writes wait in the committer's queue.
func queued(t *testing.T, r *Relay, n int) {
	waitUntil(t, "writes queued", func() bool {
		r.writes.mu.Lock()
		defer r.writes.mu.Unlock()
		return len(r.writes.queue) == n
	})
}

// Writes that share a transaction are run again when another in it fails: the one that failed
// reports its own error and leaves nothing behind; the other is committed once, with its
// downlink queued and its log written once, though its function ran twice.
func TestGroupCommitRerunsAfterAFailure(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	_, before := downCount(t, e.r, k.id)

	release := holdCommitter(t, e.r)
	var okRuns, badRuns int
	var wg sync.WaitGroup
	var okErr, badErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		okErr = e.r.update("ok write", func(tx kv.Tx, f *fanout) error {
			okRuns++
			f.logf("relay: ok write ran")
			if err := tx.Bucket([]byte(bMeta)).Put([]byte("ok"), []byte("1")); err != nil {
				return err
			}
			return f.toFacility("north", "", wire.DownNotice, wire.Notice{ID: "n1", Text: "hello", At: t0})
		})
	}()
	queued(t, e.r, 1)
	errBad := errors.New("refused on purpose")
	go func() {
		defer wg.Done()
		badErr = e.r.update("bad write", func(tx kv.Tx, f *fanout) error {
			badRuns++
			if err := tx.Bucket([]byte(bMeta)).Put([]byte("bad"), []byte("1")); err != nil {
				return err
			}
			if err := f.toFacility("north", "", wire.DownNotice, wire.Notice{ID: "n2", Text: "never", At: t0}); err != nil {
				return err
			}
			return errBad
		})
	}()
	queued(t, e.r, 2)
	release()
	wg.Wait()

	if okErr != nil || !errors.Is(badErr, errBad) {
		t.Fatalf("ok write: %v; bad write: %v (want its own error)", okErr, badErr)
	}
	if okRuns != 2 || badRuns != 1 {
		t.Fatalf("ok write ran %d times, bad write %d: want 2 and 1 (one shared transaction, then the ok one again)", okRuns, badRuns)
	}
	err := e.r.view("check", func(tx kv.Tx) error {
		m := tx.Bucket([]byte(bMeta))
		if m.Get([]byte("ok")) == nil || m.Get([]byte("bad")) != nil {
			t.Errorf("ok written: %v, bad written: %v", m.Get([]byte("ok")) != nil, m.Get([]byte("bad")) != nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	items, after := downCount(t, e.r, k.id)
	if after != before+1 || items[len(items)-1].Kind != wire.DownNotice ||
		decodeAs[wire.Notice](t, items[len(items)-1].Body).ID != "n1" {
		t.Fatalf("kiosk downlink went from %d to %d items (want one more, notice n1): %+v", before, after, items[len(items)-1])
	}
	if n := countLines(e.logText(), "relay: ok write ran"); n != 1 {
		t.Fatalf("the ok write logged %d times, want once", n)
	}
}

// The same through the admin API: two deposits with one ref, committed together. The first is
// taken once; the second sees it and is refused as a conflict; the inmate's kiosks get one deposit.
func TestGroupCommitDepositsOneRef(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	_, before := downCount(t, e.r, k.id)

	release := holdCommitter(t, e.r)
	var wg sync.WaitGroup
	var created1 bool
	var err1, err2 error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, created1, err1 = e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 500, Ref: "dep-1"})
	}()
	queued(t, e.r, 1)
	go func() {
		defer wg.Done()
		_, _, err2 = e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 700, Ref: "dep-1"})
	}()
	queued(t, e.r, 2)
	release()
	wg.Wait()

	var ke *kiosk.Error
	if err1 != nil || !created1 || !errors.As(err2, &ke) || ke.Kind != kiosk.KindConflict {
		t.Fatalf("first deposit: created %v, %v; second: %v (want a conflict)", created1, err1, err2)
	}
	b, err := e.r.Balance("A1")
	if err != nil || b.BalanceCents != 500 || b.Deposits != 500 {
		t.Fatalf("balance %+v, %v: want 500 deposited once", b, err)
	}
	items, after := downCount(t, e.r, k.id)
	if after != before+1 || items[len(items)-1].Kind != wire.DownDeposit {
		t.Fatalf("kiosk downlink went from %d to %d items, want one deposit more", before, after)
	}
}

// downCount is a terminal's queued downlink (not yet acknowledged) and how many items it holds.
func downCount(t *testing.T, r *Relay, id string) ([]wire.DownItem, int) {
	t.Helper()
	items, err := r.pendingDown(id, 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return items, len(items)
}

func countLines(text, sub string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if l == sub {
			n++
		}
	}
	return n
}
