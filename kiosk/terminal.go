package kiosk

import (
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// EventKind names what the terminal tells its screens.
type EventKind string

const (
	// EventWarning: the session must end in Remaining (raised at each Policy.WarnBefore).
	EventWarning EventKind = "warning"
	// EventIdleWarning: the session ends for idleness in Remaining unless the inmate touches.
	EventIdleWarning EventKind = "idle_warning"
	// EventSessionEnded: the session ended with Reason; screens must clear everything.
	EventSessionEnded EventKind = "session_ended"
	// EventChanged: stored data the screens show changed (a message arrived, a deposit...).
	EventChanged EventKind = "changed"
)

// Event is something the screens must react to.
type Event struct {
	Kind      EventKind
	SessionID string
	InmateID  string
	Reason    Reason
	Remaining time.Duration
	At        time.Time
}

// TerminalConfig wires a Terminal; Store and Clock are required.
type TerminalConfig struct {
	Store *Store
	Clock clock.Clock
	Logf  Logf
	// OnEvent, if set, is called for every event, outside the terminal's lock; the UI hops
	// to its own goroutine from there.
	OnEvent func(Event)
	// PINParams are the argon2id costs for PINs hashed on this terminal (zero: defaults).
	PINParams PINParams
	// ID names this terminal in session records ("" until enrolled).
	ID string
}

// Terminal is the domain: login, sessions and metering, mailbox, policy, over one Store.
// Its methods are safe for concurrent use; none touches a screen.
type Terminal struct {
	store   *Store
	clock   clock.Clock
	logf    Logf
	onEvent func(Event)
	pinCost PINParams
	id      string

	mu     sync.Mutex
	policy Policy

	meter meter // the session in progress and its billing (session.go, meter.go)
	// verified is the last login whose PIN was accepted, awaiting its notice (login.go).
	verified verifiedLogin
	// preaVerified is the last badge and PIN checked for a PREA report only (prea.go).
	preaVerified verifiedLogin
	// relay is the relay's clock at the last welcome this process heard (relaytime.go).
	relay relaySeen
}

// NewTerminal loads the stored policy (or the default) and is ready for logins.
func NewTerminal(cfg TerminalConfig) (*Terminal, error) {
	if cfg.Store == nil || cfg.Clock == nil {
		return nil, fmt.Errorf("new terminal: store and clock are required")
	}
	t := &Terminal{store: cfg.Store, clock: cfg.Clock, logf: cfg.Logf, onEvent: cfg.OnEvent, pinCost: cfg.PINParams, id: cfg.ID}
	if t.logf == nil {
		t.logf = func(string, ...any) {}
	}
	if t.pinCost == (PINParams{}) {
		t.pinCost = DefaultPINParams()
	}
	p, err := loadPolicy(cfg.Store)
	if err != nil {
		return nil, err
	}
	t.policy = p
	if err := t.Recover(); err != nil {
		return nil, fmt.Errorf("new terminal: %w", err)
	}
	if err := t.clampLocks(); err != nil {
		return nil, fmt.Errorf("new terminal: %w", err)
	}
	return t, nil
}

// Store is the terminal's store, for the sync engine and the control API.
func (t *Terminal) Store() *Store { return t.store }

// Clock is the terminal's clock.
func (t *Terminal) Clock() clock.Clock { return t.clock }

// Policy is the facility policy in force.
func (t *Terminal) Policy() Policy {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.policy
}

// SetPolicy validates and stores a new policy; a bad one is refused with its field named
// and the old one stays in force.
func (t *Terminal) SetPolicy(p Policy, actor string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	err := t.store.update("set policy", func(tx *bolt.Tx) error {
		return setPolicyTx(tx, t.clock.Now(), p, actor)
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.policy = p
	t.mu.Unlock()
	t.emit(Event{Kind: EventChanged, At: t.clock.Now()})
	return nil
}

// setPolicyTx stores p in tx (the sync engine applies a downlink policy this way).
func setPolicyTx(tx *bolt.Tx, now time.Time, p Policy, actor string) error {
	if err := putJSON(tx, bMeta, kPolicy, p); err != nil {
		return err
	}
	return appendAudit(tx, now, "policy_set", actor, nil)
}

// loadPolicy reads the stored policy (policyTx) and checks it once, at start.
func loadPolicy(s *Store) (Policy, error) {
	var p Policy
	err := s.view(func(tx *bolt.Tx) (err error) {
		p, err = policyTx(tx)
		return err
	})
	if err != nil {
		return Policy{}, err
	}
	return p, p.Validate()
}

// emit tells the screens; it must be called without t.mu held.
func (t *Terminal) emit(ev Event) {
	if t.onEvent != nil {
		t.onEvent(ev)
	}
}
