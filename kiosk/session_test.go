package kiosk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// A Wednesday morning, in UTC (the rigs' policies read curfews in UTC).
var rigStart = time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC)

const rigPIN = "2468"

// rig is a terminal over a real store in a temp dir, driven by a fake clock.
type rig struct {
	tb    testing.TB
	dir   string
	clk   *clock.Fake
	store *Store
	term  *Terminal
	opts  StoreOptions

	mu     sync.Mutex
	events []Event
}

func testPolicy(mutate func(*Policy)) Policy {
	p := DefaultPolicy()
	p.Timezone = "UTC"
	// No free sessions unless a test asks: most tests are about money refusing a login.
	p.FreeServices = nil
	if mutate != nil {
		mutate(&p)
	}
	return p
}

func newRig(tb testing.TB, mutate func(*Policy)) *rig {
	tb.Helper()
	r := &rig{tb: tb, dir: tb.TempDir(), clk: clock.NewFake(rigStart)}
	r.open()
	if err := r.term.SetPolicy(testPolicy(mutate), "test"); err != nil {
		tb.Fatalf("set policy: %v", err)
	}
	return r
}

// open opens the store and a terminal over it (Recover runs, as at every start).
func (r *rig) open() {
	r.tb.Helper()
	s, err := OpenStore(r.dir, r.opts)
	if err != nil {
		r.tb.Fatalf("open store: %v", err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: r.clk, PINParams: TestPINParams(), ID: "T1",
		Logf: func(f string, a ...any) { r.tb.Logf(f, a...) }, OnEvent: r.record})
	if err != nil {
		r.tb.Fatalf("new terminal: %v", err)
	}
	r.store, r.term = s, term
	r.tb.Cleanup(func() { s.Close() })
}

// restart drops the terminal without logging out (as a power cut does) and starts again.
func (r *rig) restart() {
	r.tb.Helper()
	if err := r.store.Close(); err != nil {
		r.tb.Fatal(err)
	}
	r.open()
}

func (r *rig) record(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *rig) eventsOf(kind EventKind) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (r *rig) addInmate(id string, deposit Cents) {
	r.tb.Helper()
	h, err := HashPINWith(rigPIN, TestPINParams())
	if err != nil {
		r.tb.Fatal(err)
	}
	in := Inmate{ID: id, Name: "Inmate " + id, Badges: []string{"B-" + id}, PINHash: h, Language: "en",
		Status: StatusActive, Messaging: true}
	if err := r.term.UpsertInmate(in, "test"); err != nil {
		r.tb.Fatalf("add inmate %s: %v", id, err)
	}
	if deposit > 0 {
		r.deposit(id, deposit, "init-"+id)
	}
}

func (r *rig) deposit(id string, c Cents, ref string) {
	r.tb.Helper()
	if err := r.term.Deposit(id, c, ref); err != nil {
		r.tb.Fatalf("deposit %v for %s: %v", c, id, err)
	}
}

// login goes the way a screen does: PIN, then the notice.
func (r *rig) login(id string) (SessionInfo, error) {
	p, err := r.term.EnterPIN("B-"+id, rigPIN)
	if err != nil {
		return SessionInfo{}, err
	}
	return r.term.AcceptNotice(p)
}

func (r *rig) mustLogin(id string) SessionInfo {
	r.tb.Helper()
	info, err := r.login(id)
	if err != nil {
		r.tb.Fatalf("login %s: %v", id, err)
	}
	return info
}

// run lets d pass in one-second steps, ticking after each as the UI loop does; with touch the
// inmate keeps typing.
func (r *rig) run(d time.Duration, touch bool) {
	for d > 0 {
		step := min(time.Second, d)
		r.clk.Advance(step)
		d -= step
		if touch {
			r.term.Touch()
		}
		r.term.Tick()
	}
}

func (r *rig) balance(id string) Cents {
	r.tb.Helper()
	b, err := r.term.Balance(id)
	if err != nil {
		r.tb.Fatal(err)
	}
	return b
}

func (r *rig) lastSession(id string) Session {
	r.tb.Helper()
	us, err := r.term.Usage(id)
	if err != nil || len(us) == 0 {
		r.tb.Fatalf("usage of %s: %v, %d sessions", id, err, len(us))
	}
	return us[0]
}

func (r *rig) account(id string) Account {
	r.tb.Helper()
	var acc Account
	if err := r.store.view(func(tx *bolt.Tx) (err error) { acc, err = loadAccountTx(tx, id); return }); err != nil {
		r.tb.Fatal(err)
	}
	return acc
}

// checkLedger asserts the store keeps the ledger's rules, as `kioskctl verify` checks them
// (verifyTx), and, while nothing was acknowledged, that every charge and credit still waits.
func checkLedger(tb testing.TB, s *Store, acked bool) {
	tb.Helper()
	if err := s.view(func(tx *bolt.Tx) error { return ledgerProblems(tx, acked) }); err != nil {
		tb.Fatal(err)
	}
}

// isAuditItem spots a queued audit item without decoding it (the checks run after every step
// of long tests).
func isAuditItem(v []byte) bool {
	return bytes.Contains(v, []byte(`"kind":"audit"`))
}

// ledgerProblems runs the production verifier on tx. With acked false, the test knows the
// relay acknowledged and refused nothing, so every charge and credit must still wait in the
// queue: that is what the test saw happen, which no rule of the store can tell.
func ledgerProblems(tx *bolt.Tx, acked bool) error {
	if rep := verifyTx(tx); len(rep.Problems) > 0 {
		return fmt.Errorf("the store breaks %d rules: %+v", len(rep.Problems), rep.Problems)
	}
	if acked {
		return nil
	}
	waiting := map[string]bool{}
	if err := tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		if isAuditItem(v) {
			return nil
		}
		var it struct {
			Kind ItemKind `json:"kind"`
			Body struct {
				RecordID string `json:"record_id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		waiting[string(it.Kind)+":"+it.Body.RecordID] = true
		return nil
	}); err != nil {
		return err
	}
	for _, kind := range []ItemKind{ItemCharge, ItemCredit} {
		bucket := map[ItemKind]string{ItemCharge: bCharges, ItemCredit: bCredits}[kind]
		if err := tx.Bucket([]byte(bucket)).ForEach(func(k, _ []byte) error {
			if !waiting[string(kind)+":"+string(k)] {
				return fmt.Errorf("%s %s is not waiting for the relay, though nothing was acknowledged", kind, k)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
