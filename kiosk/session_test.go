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

// checkLedger asserts the invariants every test relies on: per session, charges are exactly
// minutes 0..Minutes-1; each charge and credit is queued for the relay at most once (exactly
// once while nothing was acknowledged); balance = deposits - charges + credits per inmate.
func checkLedger(tb testing.TB, s *Store, acked bool) {
	tb.Helper()
	if err := s.view(func(tx *bolt.Tx) error { return ledgerInvariants(tx, acked) }); err != nil {
		tb.Fatal(err)
	}
}

// isAuditItem spots a queued audit item without decoding it (the invariant checks run after
// every step of long tests).
func isAuditItem(v []byte) bool {
	return bytes.Contains(v, []byte(`"kind":"audit"`))
}

func ledgerInvariants(tx *bolt.Tx, acked bool) error {
	deposits := map[string]Cents{}
	net := map[string]Cents{}
	charges := map[string]Charge{}
	credits := map[string]Credit{}
	if err := tx.Bucket([]byte(bDeposits)).ForEach(func(k, v []byte) error {
		var d Deposit
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		deposits[d.InmateID] += d.Cents
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bCharges)).ForEach(func(k, v []byte) error {
		var c Charge
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		if c.RecordID != string(k) || chargeKey(c.SessionID, c.Minute) != string(k) {
			return fmt.Errorf("charge under key %s has record id %s, minute %d", k, c.RecordID, c.Minute)
		}
		charges[c.RecordID] = c
		net[c.InmateID] -= c.Cents
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bCredits)).ForEach(func(k, v []byte) error {
		var c Credit
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		ch, ok := charges[string(k)]
		if c.RecordID != string(k) || !ok || ch.Cents != c.Cents {
			return fmt.Errorf("credit %s does not match a charge (%+v)", k, c)
		}
		credits[c.RecordID] = c
		net[c.InmateID] += c.Cents
		return nil
	}); err != nil {
		return err
	}
	// Sessions: minutes billed are exactly the minutes begun.
	perSession := map[string][2]Cents{}
	count := map[string]int{}
	for _, c := range charges {
		count[c.SessionID]++
		v := perSession[c.SessionID]
		v[0] += c.Cents
		perSession[c.SessionID] = v
	}
	for _, c := range credits {
		v := perSession[c.SessionID]
		v[1] += c.Cents
		perSession[c.SessionID] = v
	}
	open := string(tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession)))
	nsess := 0
	if err := tx.Bucket([]byte(bSessions)).ForEach(func(k, v []byte) error {
		var s Session
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		nsess++
		if count[s.ID] != s.Minutes {
			return fmt.Errorf("session %s: %d minutes begun but %d charges", s.ID, s.Minutes, count[s.ID])
		}
		for m := 0; m < s.Minutes; m++ {
			if _, ok := charges[chargeKey(s.ID, m)]; !ok {
				return fmt.Errorf("session %s: minute %d not billed", s.ID, m)
			}
		}
		if pv := perSession[s.ID]; pv[0] != s.Charged || pv[1] != s.Credited {
			return fmt.Errorf("session %s: record says charged %v credited %v, records say %v %v", s.ID, s.Charged, s.Credited, pv[0], pv[1])
		}
		if s.End.IsZero() != (s.ID == open) {
			return fmt.Errorf("session %s: end %v but open mark %q", s.ID, s.End, open)
		}
		if tx.Bucket([]byte(bSessIndex)).Get([]byte(s.InmateID+"/"+s.ID)) == nil {
			return fmt.Errorf("session %s is missing from the usage index", s.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(count) > nsess {
		return fmt.Errorf("charges for %d sessions but %d sessions stored", len(count), nsess)
	}
	// Balances.
	var unsynced = map[string]Cents{}
	if err := tx.Bucket([]byte(bAccounts)).ForEach(func(k, v []byte) error {
		var a Account
		if err := json.Unmarshal(v, &a); err != nil {
			return err
		}
		if want := deposits[a.InmateID] + net[a.InmateID]; a.Balance != want {
			return fmt.Errorf("inmate %s: balance %v, but deposits - charges + credits = %v", a.InmateID, a.Balance, want)
		}
		if a.Unsynced < 0 {
			return fmt.Errorf("inmate %s: unsynced %v below zero", a.InmateID, a.Unsynced)
		}
		unsynced[a.InmateID] = a.Unsynced
		return nil
	}); err != nil {
		return err
	}
	// The forwarding queue: no record queued twice; with nothing acknowledged, every one queued.
	queued := map[string]int{}
	if err := tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		if isAuditItem(v) {
			return nil // the bulk of the queue, and none of the ledger's business
		}
		var it struct {
			Kind ItemKind
			Body struct {
				RecordID string `json:"record_id"`
				ID       string `json:"id"`
			}
		}
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		switch it.Kind {
		case ItemCharge, ItemCredit:
			queued[string(it.Kind)+":"+it.Body.RecordID]++
		case ItemSessionEnd:
			queued["end:"+it.Body.ID]++
		}
		return nil
	}); err != nil {
		return err
	}
	for k, n := range queued {
		if n > 1 {
			return fmt.Errorf("%s queued %d times", k, n)
		}
	}
	if !acked {
		for id, c := range charges {
			if queued["charge:"+id] != 1 {
				return fmt.Errorf("charge %s not queued for the relay", id)
			}
			unsynced[c.InmateID] -= c.Cents
		}
		for id := range credits {
			if queued["credit:"+id] != 1 {
				return fmt.Errorf("credit %s not queued for the relay", id)
			}
		}
		for id, u := range unsynced {
			if u != 0 {
				return fmt.Errorf("inmate %s: unsynced is off by %v from the unacknowledged charges", id, u)
			}
		}
	}
	return nil
}
