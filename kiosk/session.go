package kiosk

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Pending is a person whose badge and PIN were accepted and who has yet to accept the
// monitoring notice; AcceptNotice turns it into a session. It carries no PIN or hash.
type Pending struct {
	Kind     string    // PersonInmate or PersonTechnician
	PersonID string    // inmate or technician id
	Name     string    // shown on the notice screen
	Language string    // "en" or "es"
	Notice   string    // the monitoring notice in Language
	At       time.Time // when the PIN was accepted
}

// Pending kinds; also the "kind" an audit event's detail names (vocab: the relay reads it).
const (
	PersonInmate     = vocab.PersonInmate
	PersonTechnician = vocab.PersonTechnician
)

// SessionInfo is what the home screen shows about the session in progress.
type SessionInfo struct {
	// Technician marks a technician login: no billed session, only the id below.
	Technician   bool
	TechnicianID string

	InmateID   string
	InmateName string
	Language   string
	SessionID  string
	StartedAt  time.Time // wall time, for display
	Minutes    int       // minutes begun (each billed)
	Cost       Cents     // charged minus credited so far
	Balance    Cents
	// Free marks an unbilled session of someone who cannot pay: only Policy.FreeServices.
	Free bool
	// TimeLeft is how long until the first of: maximum length, balance running out, curfew,
	// offline cap; EndsBy names which.
	TimeLeft time.Duration
	EndsBy   Reason
}

// kOpenSession (meta) holds the id of the session in progress, written in the transaction that
// starts it and deleted in the one that ends it: what Recover finds there was cut by a fault.
const kOpenSession = "open_session"

// AcceptNotice records that the person accepted the monitoring notice and, for an inmate,
// re-checks eligibility and starts the session, billing minute 0, in the same transaction.
func (t *Terminal) AcceptNotice(p Pending) (SessionInfo, error) {
	const op = "accept notice"
	wall := t.clock.Now()
	t.mu.Lock()
	err := t.claimPendingLocked(p, wall)
	t.mu.Unlock()
	if err != nil {
		return SessionInfo{}, err
	}
	switch p.Kind {
	case PersonTechnician:
		err := t.store.update(op, func(tx *bolt.Tx) error {
			var tech Technician
			found, err := getJSON(tx, bTechnicians, p.PersonID, &tech)
			if err != nil {
				return err
			}
			if !found {
				return errNotFound(op, "technician %q", p.PersonID)
			}
			return appendAudit(tx, wall, "notice_accepted", tech.ID, map[string]string{"kind": PersonTechnician})
		})
		if err != nil {
			return SessionInfo{}, err
		}
		return SessionInfo{Technician: true, TechnicianID: p.PersonID, Language: p.Language}, nil
	case PersonInmate:
	default:
		return SessionInfo{}, errInvalid(op, "unknown person kind %q", p.Kind)
	}

	m := &t.meter
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		return SessionInfo{}, &Error{Kind: KindConflict, Op: op, Err: fmt.Errorf("a session is already in progress on this terminal")}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return SessionInfo{}, &Error{Kind: KindInternal, Op: op, Err: fmt.Errorf("make session id: %w", err)}
	}
	mono := t.clock.Mono()
	var sess Session
	var in Inmate
	var free bool
	err = t.store.update(op, func(tx *bolt.Tx) error {
		// A session left open by a failed write in this process is closed first.
		if _, err := recoverOpenTx(tx, wall, ""); err != nil {
			return err
		}
		found, err := getJSON(tx, bInmates, p.PersonID, &in)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound(op, "inmate %q", p.PersonID)
		}
		if in.Status == StatusSuspended {
			return errRefused(op, ReasonSuspended, time.Time{})
		}
		free, err = t.eligible(tx, in, wall)
		if err != nil {
			return err
		}
		pol, err := policyTx(tx)
		if err != nil {
			return err
		}
		if err := appendAudit(tx, wall, "notice_accepted", in.ID, map[string]string{
			"kind": PersonInmate, "session": id.String(), "language": p.Language}); err != nil {
			return err
		}
		sess = Session{ID: id.String(), InmateID: in.ID, Terminal: terminalIDTx(tx, t.id), Start: wall.UTC(), Rate: pol.RatePerMinute}
		acc, err := loadAccountTx(tx, in.ID)
		if err != nil {
			return err
		}
		if free || !pol.ChargesMinutes() {
			sess.Rate = 0 // nothing is billed: not minute 0, not any minute after
		} else if err := chargeTx(tx, wall, &sess, &acc); err != nil {
			return err
		}
		if err := putJSON(tx, bSessions, sess.ID, sess); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bSessIndex)).Put([]byte(in.ID+"/"+sess.ID), nil); err != nil {
			return fmt.Errorf("index session: %w", err)
		}
		if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kOpenSession), []byte(sess.ID))
	})
	if err != nil {
		return SessionInfo{}, err
	}
	lang := p.Language
	if lang == "" {
		lang = in.Language
	}
	s := &liveSession{id: sess.ID, inmateID: in.ID, name: in.Name, language: lang, start: sess.Start,
		startMono: mono, minutes: sess.Minutes, rate: sess.Rate, charged: sess.Charged, free: free,
		warned: map[time.Duration]bool{}, idleWarnedFor: -1, curfewAt: -1}
	m.cur = s
	m.setInput(mono)
	m.ticked, m.lastTick = true, mono
	pol := t.Policy()
	s.updateCurfew(pol, mono, wall)
	m.setSnap(s)
	return t.info(pol, s.copyOut(), mono)
}

// eligible says whether inmate in may start a session at wall time now; a refusal carries its
// Reason and, where one applies, Until. free is an unbilled session for Policy.FreeServices
// only, when money alone stands in the way. It runs inside the caller's transaction (the
// login engineer's badge check, and AcceptNotice) and reads the policy stored there.
func (t *Terminal) eligible(tx *bolt.Tx, in Inmate, now time.Time) (free bool, err error) {
	const op = "login"
	p, err := policyTx(tx)
	if err != nil {
		return false, err
	}
	if p.Lockdown {
		return false, errRefused(op, ReasonLockdown, time.Time{})
	}
	if inCurfew, end := p.CurfewAt(now); inCurfew {
		return false, errRefused(op, ReasonCurfew, end)
	}
	acc, err := loadAccountTx(tx, in.ID)
	if err != nil {
		return false, err
	}
	if until, ok := t.cooldownUntil(p, in.ID, acc, now); ok {
		return false, errRefused(op, ReasonCooldown, until)
	}
	var short Reason
	switch {
	case !p.ChargesMinutes():
		return false, nil // priced per letter (stamps): the session itself costs nothing
	case acc.Balance < p.RatePerMinute:
		short = ReasonInsufficientBalance
	case acc.Unsynced+p.RatePerMinute > p.OfflineSpendCap:
		short = ReasonOfflineLimit
	default:
		return false, nil
	}
	if len(p.FreeServices) > 0 {
		return true, nil
	}
	return false, errRefused(op, short, time.Time{})
}

// cooldownUntil reports whether the inmate is still cooling down and until when (wall time).
// A cool-down runs on the monotonic clock while the process lives, immune to wall-clock jumps;
// after a restart the stored wall time is read once, and never trusted for more than the
// policy's cool-down (more means the wall clock went back), then kept on the monotonic clock.
// Its length is read from the policy p at every check, so lowering it releases those waiting.
func (t *Terminal) cooldownUntil(p Policy, inmateID string, acc Account, now time.Time) (time.Time, bool) {
	m := &t.meter
	mono := t.clock.Mono()
	m.coolMu.Lock()
	defer m.coolMu.Unlock()
	c, ok := m.cool[inmateID]
	if !ok {
		if !now.Before(acc.CooldownUntil) {
			return time.Time{}, false
		}
		length := p.CooldownAfter(acc.CooldownReason)
		c = coolDown{until: mono + min(acc.CooldownUntil.Sub(now), length), reason: acc.CooldownReason}
		c.from = c.until - length
		if !acc.CooldownFrom.IsZero() {
			// A wall clock that went back would put the session end in the future: count
			// from now then, and the clamp above still bounds the wait.
			c.from = mono - max(now.Sub(acc.CooldownFrom), 0)
		}
		if m.cool == nil {
			m.cool = map[string]coolDown{}
		}
		m.cool[inmateID] = c
	}
	left := min(c.until, c.from+p.CooldownAfter(c.reason)) - mono
	return now.Add(left), left > 0
}

// policyTx reads the policy stored in tx (the default if none was set).
func policyTx(tx *bolt.Tx) (Policy, error) {
	p := DefaultPolicy()
	raw := tx.Bucket([]byte(bMeta)).Get([]byte(kPolicy))
	if raw == nil {
		return p, nil
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return Policy{}, &Error{Kind: KindCorrupt, Op: "load policy", Err: err}
	}
	return p, nil
}

func loadSessionTx(tx *bolt.Tx, id string) (Session, error) {
	var s Session
	found, err := getJSON(tx, bSessions, id, &s)
	if err != nil {
		return Session{}, err
	}
	if !found {
		return Session{}, errNotFound("read session", "session %q", id)
	}
	return s, nil
}

// Active reports the session in progress, if any. It never waits for billing.
func (t *Terminal) Active() (SessionInfo, bool) {
	s := t.meter.snapshot()
	if s == nil {
		return SessionInfo{}, false
	}
	info, err := t.info(t.Policy(), s, t.clock.Mono())
	if err != nil {
		t.logf("read session %s: %v", s.id, err)
	}
	return info, true
}

// info fills a SessionInfo from s (a copy) and the stored account.
func (t *Terminal) info(p Policy, s *liveSession, now time.Duration) (SessionInfo, error) {
	info := SessionInfo{InmateID: s.inmateID, InmateName: s.name, Language: s.language, SessionID: s.id, Free: s.free,
		StartedAt: s.start, Minutes: s.minutes, Cost: s.charged - s.credited}
	var acc Account
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		acc, err = loadAccountTx(tx, s.inmateID)
		return err
	})
	if err != nil {
		return info, err
	}
	info.Balance = acc.Balance
	end, why := predictEnd(p, s, acc)
	info.TimeLeft, info.EndsBy = max(end-now, 0), why
	return info, nil
}

// Logout ends the session in progress at the inmate's request; with none, it does nothing.
// Minutes begun up to now are billed first, and a freeze is credited, as Tick would.
func (t *Terminal) Logout() error {
	m := &t.meter
	m.mu.Lock()
	p := t.Policy()
	evs := t.tickLocked(p)
	var err error
	if m.cur != nil {
		now, wall := t.clock.Mono(), t.clock.Now()
		var end []Event
		end, err = t.endWith(p, EndLogout, now, now, wall)
		evs = append(evs, end...)
	}
	m.mu.Unlock()
	if err == nil {
		t.scrub() // a history fetched for the session was wiped: its text leaves the disk now
	}
	for _, ev := range evs {
		t.emit(ev)
	}
	return err
}

// endLocked ends the session at monotonic instant at for reason; a failed write drops the
// session from memory as a terminal fault (Recover closes it for good).
func (t *Terminal) endLocked(p Policy, reason Reason, at, now time.Duration, wall time.Time) []Event {
	evs, err := t.endWith(p, reason, at, now, wall)
	if err != nil {
		t.logf("end session: %v", err)
	}
	return evs
}

func (t *Terminal) endWith(p Policy, reason Reason, at, now time.Duration, wall time.Time) ([]Event, error) {
	m := &t.meter
	s := m.cur
	endWall := wallAt(at, now, wall)
	err := t.store.update("end session", func(tx *bolt.Tx) error {
		sess, err := loadSessionTx(tx, s.id)
		if err != nil {
			return err
		}
		if !sess.End.IsZero() {
			return nil
		}
		sess.End, sess.EndReason = endWall.UTC(), reason
		if err := closeSessionTx(tx, wall, sess); err != nil {
			return err
		}
		acc, err := loadAccountTx(tx, sess.InmateID)
		if err != nil {
			return err
		}
		// Wall time, because the cool-down must survive a restart and the monotonic clock does not.
		acc.CooldownUntil = endWall.Add(p.CooldownAfter(reason)).UTC()
		acc.CooldownFrom, acc.CooldownReason = endWall.UTC(), reason
		return putJSON(tx, bAccounts, acc.InmateID, acc)
	})
	if err != nil {
		return []Event{t.dropLocked(EndTerminalFault, wall)}, err
	}
	m.coolMu.Lock()
	if m.cool == nil {
		m.cool = map[string]coolDown{}
	}
	m.cool[s.inmateID] = coolDown{from: at, until: at + p.CooldownAfter(reason), reason: reason}
	m.coolMu.Unlock()
	return []Event{t.dropLocked(reason, wall)}, nil
}

// closeSessionTx stores the ended session, queues it for the relay and clears the open mark.
func closeSessionTx(tx *bolt.Tx, now time.Time, sess Session) error {
	if err := putJSON(tx, bSessions, sess.ID, sess); err != nil {
		return err
	}
	if _, err := enqueue(tx, now, ItemSessionEnd, sess); err != nil {
		return err
	}
	if err := wipeHistoryTx(tx, sess.InmateID); err != nil {
		return err
	}
	meta := tx.Bucket([]byte(bMeta))
	if string(meta.Get([]byte(kOpenSession))) == sess.ID {
		return meta.Delete([]byte(kOpenSession))
	}
	return nil
}

// dropLocked forgets the session in memory and says so to the screens.
func (t *Terminal) dropLocked(reason Reason, wall time.Time) Event {
	m := &t.meter
	s := m.cur
	m.cur = nil
	m.setSnap(nil)
	return Event{Kind: EventSessionEnded, SessionID: s.id, InmateID: s.inmateID, Reason: reason, At: wall}
}

// Recover closes a session cut by a crash or power loss: reason EndTerminalFault, its last
// minute credited, no cool-down (the terminal, not the inmate, ended it). NewTerminal calls it.
func (t *Terminal) Recover() error {
	m := &t.meter
	m.mu.Lock()
	defer m.mu.Unlock()
	skip := ""
	if m.cur != nil {
		skip = m.cur.id
	}
	var closed *Session
	err := t.store.update("recover session", func(tx *bolt.Tx) error {
		var err error
		closed, err = recoverOpenTx(tx, t.clock.Now(), skip)
		return err
	})
	if err != nil {
		return err
	}
	if closed != nil {
		t.logf("closed session %s of %s cut by a terminal fault after %d minutes; last minute credited",
			closed.ID, closed.InmateID, closed.Minutes)
	}
	return nil
}

// recoverOpenTx closes the session marked open (unless it is skip, the live one), if any.
func recoverOpenTx(tx *bolt.Tx, now time.Time, skip string) (*Session, error) {
	meta := tx.Bucket([]byte(bMeta))
	id := string(meta.Get([]byte(kOpenSession)))
	if id == "" || id == skip {
		return nil, nil
	}
	var sess Session
	found, err := getJSON(tx, bSessions, id, &sess)
	if err != nil {
		return nil, err
	}
	if !found || !sess.End.IsZero() {
		return nil, meta.Delete([]byte(kOpenSession))
	}
	acc, err := loadAccountTx(tx, sess.InmateID)
	if err != nil {
		return nil, err
	}
	if _, err := creditTx(tx, now, &sess, &acc, sess.Minutes-1, CreditTerminalFault); err != nil {
		return nil, err
	}
	// When exactly the terminal died is unknown; the end of the last billed minute is the best
	// guess, unless the clock says that has not come yet.
	end := sess.Start.Add(time.Duration(sess.Minutes) * minute)
	if end.After(now) || end.Before(sess.Start) {
		end = now
	}
	sess.End, sess.EndReason = end.UTC(), EndTerminalFault
	if err := closeSessionTx(tx, now, sess); err != nil {
		return nil, err
	}
	if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
		return nil, err
	}
	if err := appendAudit(tx, now, "session_recovered", sess.InmateID, map[string]string{
		"session": sess.ID, "minutes": fmt.Sprint(sess.Minutes)}); err != nil {
		return nil, err
	}
	return &sess, nil
}
