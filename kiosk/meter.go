package kiosk

import (
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Per-minute metering. Minute n of a session begins at start + n minutes on the monotonic
// clock and is billed in the transaction that begins it, under a key made of the session id
// and n, so a crash at any instant leaves each begun minute billed exactly once.

// minute is the billing unit.
const minute = time.Minute

// meter is the Terminal's session state (one session at a time per terminal).
type meter struct {
	// mu serialises session changes; it is taken before a store transaction, never inside one.
	mu       sync.Mutex
	cur      *liveSession
	ticked   bool
	lastTick time.Duration // monotonic time of the last Tick, to notice a frozen process

	// quick guards lastInput and snap, which screens read and write without waiting for mu
	// (held across a billing fsync).
	quick     sync.Mutex
	lastInput time.Duration // monotonic time of the last input
	snap      *liveSession  // a copy of cur for Active

	coolMu sync.Mutex
	// cool holds cool-downs this process set, on the monotonic clock, so a wall-clock jump
	// neither shortens nor lengthens them while the process runs (Account.CooldownUntil
	// covers restarts).
	cool map[string]coolDown
}

// coolDown is one cool-down on the monotonic clock: it began at from (the session end), lasts
// the policy's length for reason as the policy says at check time, and never past until.
type coolDown struct {
	from, until time.Duration
	reason      Reason
}

// liveSession is what the meter keeps in memory about the open session; the stored Session
// record is the truth, these fields mirror it.
type liveSession struct {
	id        string
	inmateID  string
	name      string
	language  string
	start     time.Time     // wall, for display
	startMono time.Duration // every billing duration counts from here
	minutes   int
	rate      Cents
	charged   Cents
	credited  Cents
	free      bool // unbilled: the inmate cannot pay, Policy.FreeServices only

	warned        map[time.Duration]bool // WarnBefore entries already raised
	idleWarnedFor time.Duration          // lastInput value the idle warning was raised for (-1: none)
	curfewAt      time.Duration          // monotonic start of the next curfew as last computed (-1: none)
}

func (s *liveSession) copyOut() *liveSession {
	c := *s
	c.warned = nil
	return &c
}

func chargeKey(sessionID string, minute int) string {
	return fmt.Sprintf("%s/%06d", sessionID, minute)
}

// Touch records input from the inmate: the idle clock starts again.
func (t *Terminal) Touch() {
	t.meter.setInput(t.clock.Mono())
}

// Tick bills every minute that has begun, ends the session when a rule says so, credits a
// freeze, and raises warnings. The UI loop calls it about four times a second; every event it
// returns has also been delivered to OnEvent.
func (t *Terminal) Tick() []Event {
	t.meter.mu.Lock()
	evs := t.tickLocked(t.Policy())
	t.meter.mu.Unlock()
	for _, ev := range evs {
		t.emit(ev)
	}
	return evs
}

func (t *Terminal) tickLocked(p Policy) []Event {
	m := &t.meter
	now, wall := t.clock.Mono(), t.clock.Now()
	gapFrom := time.Duration(-1)
	if m.ticked && now-m.lastTick > p.StallThreshold.D() {
		gapFrom = m.lastTick
		// The inmate could not type while the terminal was frozen: that time is not idleness.
		t.shiftInput(now-m.lastTick, now)
	}
	m.ticked, m.lastTick = true, now
	s := m.cur
	if s == nil {
		return nil
	}
	var evs []Event
	if gapFrom >= 0 {
		// The minute the freeze began in was billed already; the ones begun during it are
		// credited as they are billed, below.
		if err := t.creditSpanLocked(s, gapFrom, gapFrom, CreditStall); err != nil {
			t.logf("credit stalled minute of session %s: %v", s.id, err)
		}
	}
	evs = append(evs, t.advanceLocked(p, now, wall, gapFrom)...)
	if m.cur != nil {
		evs = append(evs, t.warningsLocked(p, m.cur, now, wall)...)
	}
	return evs
}

// shiftInput moves the last input forward by d (not past now).
func (t *Terminal) shiftInput(d, now time.Duration) {
	m := &t.meter
	m.quick.Lock()
	m.lastInput = max(m.lastInput, min(m.lastInput+d, now))
	m.quick.Unlock()
}

func (m *meter) setInput(at time.Duration) {
	m.quick.Lock()
	m.lastInput = at
	m.quick.Unlock()
}

func (m *meter) input() time.Duration {
	m.quick.Lock()
	defer m.quick.Unlock()
	return m.lastInput
}

// setSnap publishes a copy of s (nil: no session) for Active.
func (m *meter) setSnap(s *liveSession) {
	if s != nil {
		s = s.copyOut()
	}
	m.quick.Lock()
	m.snap = s
	m.quick.Unlock()
}

func (m *meter) snapshot() *liveSession {
	m.quick.Lock()
	defer m.quick.Unlock()
	return m.snap
}

// deadline is the earliest instant (monotonic) at which a rule other than paying for the next
// minute ends the session, and that rule; ties go to the rule listed first.
func (t *Terminal) deadline(p Policy, s *liveSession, now time.Duration) (time.Duration, Reason) {
	type cand struct {
		at time.Duration
		r  Reason
	}
	cs := []cand{}
	if p.Lockdown {
		cs = append(cs, cand{now, EndLockdown})
	}
	if s.curfewAt >= 0 {
		cs = append(cs, cand{s.curfewAt, EndCurfew})
	}
	cs = append(cs,
		cand{s.startMono + p.MaxSession.D(), EndMaxLength},
		cand{t.meter.input() + p.IdleTimeout.D(), EndIdle})
	best := cs[0]
	for _, c := range cs[1:] {
		if c.at < best.at {
			best = c
		}
	}
	return best.at, best.r
}

// updateCurfew records when the session must stop for curfew, read from the wall clock now:
// already inside a window means now (or the start seen before, if it has passed).
func (s *liveSession) updateCurfew(p Policy, now time.Duration, wall time.Time) {
	in, boundary := p.CurfewAt(wall)
	switch {
	case in:
		if s.curfewAt < 0 || s.curfewAt > now {
			s.curfewAt = now
		}
	case boundary.IsZero():
		s.curfewAt = -1
	default:
		s.curfewAt = now + boundary.Sub(wall)
	}
}

// advanceLocked begins (and bills) each minute due by now, in order, and ends the session at
// the first rule that says so. Minutes begun inside (gapFrom, now) are credited as billed.
func (t *Terminal) advanceLocked(p Policy, now time.Duration, wall time.Time, gapFrom time.Duration) []Event {
	m := &t.meter
	s := m.cur
	if s == nil {
		return nil
	}
	s.updateCurfew(p, now, wall)
	var evs []Event
	if s.free || s.rate == 0 {
		// Nothing to bill (a free session, or one priced per letter): only the rules (time limit, idle, curfew, lockdown) end it.
		if end, reason := t.deadline(p, s, now); end <= now {
			evs = append(evs, t.endLocked(p, reason, end, now, wall)...)
		}
		return evs
	}
	for m.cur != nil {
		next := s.startMono + time.Duration(s.minutes)*minute
		end, reason := t.deadline(p, s, now)
		if end <= now && end <= next {
			evs = append(evs, t.endLocked(p, reason, end, now, wall)...)
			break
		}
		if next > now {
			break
		}
		credit := gapFrom >= 0 && next > gapFrom && next < now
		refused, err := t.billNextLocked(p, s, wallAt(next, now, wall), credit)
		if err != nil {
			t.logf("bill minute %d of session %s: %v", s.minutes, s.id, err)
			evs = append(evs, t.dropLocked(EndTerminalFault, wall))
			break
		}
		if refused != "" {
			evs = append(evs, t.endLocked(p, refused, next, now, wall)...)
			break
		}
	}
	return evs
}

// wallAt converts a monotonic instant to the wall time it corresponds to now (for display).
func wallAt(at, now time.Duration, wall time.Time) time.Time {
	return wall.Add(at - now)
}

// billNextLocked begins minute s.minutes: one transaction writes the charge, queues it for the
// relay, takes it from the balance and counts it on the session. A minute the balance or the
// offline cap cannot cover is not begun; the reason comes back instead.
func (t *Terminal) billNextLocked(p Policy, s *liveSession, at time.Time, credit bool) (refused Reason, err error) {
	err = t.store.update("bill minute", func(tx *bolt.Tx) error {
		sess, err := loadSessionTx(tx, s.id)
		if err != nil {
			return err
		}
		acc, err := loadAccountTx(tx, sess.InmateID)
		if err != nil {
			return err
		}
		if r := minuteRefusal(p, acc, sess.Rate); r != "" {
			refused = r
			return nil
		}
		if err := chargeTx(tx, at, &sess, &acc); err != nil {
			return err
		}
		if credit {
			if _, err := creditTx(tx, at, &sess, &acc, sess.Minutes-1, CreditStall); err != nil {
				return err
			}
		}
		if err := putJSON(tx, bSessions, sess.ID, sess); err != nil {
			return err
		}
		if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
			return err
		}
		s.minutes, s.charged, s.credited = sess.Minutes, sess.Charged, sess.Credited
		return nil
	})
	if err == nil {
		t.meter.setSnap(s)
	}
	return refused, err
}

// minuteRefusal says why acc cannot begin a minute at rate, or "" if it can.
func minuteRefusal(p Policy, acc Account, rate Cents) Reason {
	if acc.Balance < rate {
		return EndBalance
	}
	if acc.Unsynced+rate > p.OfflineSpendCap {
		return EndOfflineLimit
	}
	return ""
}

// chargeTx bills the next minute of sess. Its key is the session id and minute number; a key
// already present means the minute was billed, and billing it again is refused.
func chargeTx(tx *bolt.Tx, now time.Time, sess *Session, acc *Account) error {
	key := chargeKey(sess.ID, sess.Minutes)
	if tx.Bucket([]byte(bCharges)).Get([]byte(key)) != nil {
		return &Error{Kind: KindInternal, Op: "bill minute", Err: fmt.Errorf("charge %s already exists", key)}
	}
	c := Charge{RecordID: key, SessionID: sess.ID, InmateID: sess.InmateID, Minute: sess.Minutes,
		Cents: sess.Rate, At: now.UTC()}
	if err := putJSON(tx, bCharges, key, c); err != nil {
		return err
	}
	if _, err := enqueue(tx, now, ItemCharge, c); err != nil {
		return err
	}
	acc.Balance -= c.Cents
	acc.Unsynced += c.Cents
	sess.Minutes++
	sess.Charged += c.Cents
	return nil
}

// creditTx gives back billed minute n of sess, once: a second credit of the same minute, or a
// credit of a minute never billed, does nothing and reports false.
func creditTx(tx *bolt.Tx, now time.Time, sess *Session, acc *Account, n int, reason string) (bool, error) {
	if n < 0 || n >= sess.Minutes {
		return false, nil
	}
	key := chargeKey(sess.ID, n)
	if tx.Bucket([]byte(bCredits)).Get([]byte(key)) != nil {
		return false, nil
	}
	var ch Charge
	found, err := getJSON(tx, bCharges, key, &ch)
	if err != nil || !found {
		return false, err
	}
	cr := Credit{RecordID: key, SessionID: sess.ID, InmateID: sess.InmateID, Minute: n, Cents: ch.Cents,
		Reason: reason, At: now.UTC()}
	if err := putJSON(tx, bCredits, key, cr); err != nil {
		return false, err
	}
	if _, err := enqueue(tx, now, ItemCredit, cr); err != nil {
		return false, err
	}
	acc.Balance += cr.Cents
	sess.Credited += cr.Cents
	return true, nil
}

// creditSpanLocked credits every billed minute of s that overlaps [from, to] (monotonic).
func (t *Terminal) creditSpanLocked(s *liveSession, from, to time.Duration, reason string) error {
	first := int((max(from, s.startMono) - s.startMono) / minute)
	last := min(int((max(to, s.startMono)-s.startMono)/minute), s.minutes-1)
	if last < first {
		return nil
	}
	wall := t.clock.Now()
	return t.store.update("credit minute", func(tx *bolt.Tx) error {
		sess, err := loadSessionTx(tx, s.id)
		if err != nil {
			return err
		}
		acc, err := loadAccountTx(tx, sess.InmateID)
		if err != nil {
			return err
		}
		changed := false
		for n := first; n <= last; n++ {
			ok, err := creditTx(tx, wall, &sess, &acc, n, reason)
			if err != nil {
				return err
			}
			changed = changed || ok
		}
		if !changed {
			return nil
		}
		if err := putJSON(tx, bSessions, sess.ID, sess); err != nil {
			return err
		}
		if err := putJSON(tx, bAccounts, acc.InmateID, acc); err != nil {
			return err
		}
		s.credited = sess.Credited
		t.meter.setSnap(s)
		return nil
	})
}

// ReportStall is the UI saying it froze for d: if d is over Policy.StallThreshold, each minute
// the freeze touched is credited (once per minute, however often it is reported).
func (t *Terminal) ReportStall(d time.Duration) error {
	p := t.Policy()
	if d <= p.StallThreshold.D() {
		return nil
	}
	t.meter.mu.Lock()
	defer t.meter.mu.Unlock()
	s := t.meter.cur
	if s == nil {
		return nil
	}
	now := t.clock.Mono()
	t.shiftInput(d, now)
	return t.creditSpanLocked(s, now-d, now, CreditStall)
}

// predictEnd is when the session must end if nothing but the rules acts: the maximum length,
// the start of curfew, or the first minute the balance or the offline cap cannot pay.
func predictEnd(p Policy, s *liveSession, acc Account) (time.Duration, Reason) {
	end, reason := s.startMono+p.MaxSession.D(), EndMaxLength
	if s.curfewAt >= 0 && s.curfewAt < end {
		end, reason = s.curfewAt, EndCurfew
	}
	if s.rate > 0 {
		payable, r := acc.Balance/s.rate, EndBalance
		if byCap := (p.OfflineSpendCap - acc.Unsynced) / s.rate; byCap < payable {
			payable, r = byCap, EndOfflineLimit
		}
		payable = max(payable, 0)
		if at := s.startMono + time.Duration(int64(s.minutes)+int64(payable))*minute; at < end {
			end, reason = at, r
		}
	}
	return end, reason
}

// warningsLocked raises each WarnBefore once as the predicted end nears, and the idle warning
// once per stretch of idleness.
func (t *Terminal) warningsLocked(p Policy, s *liveSession, now time.Duration, wall time.Time) []Event {
	var evs []Event
	var acc Account
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		acc, err = loadAccountTx(tx, s.inmateID)
		return err
	})
	// A store that cannot be read skips the warnings; it is logged once, by the next billing.
	if err == nil {
		end, reason := predictEnd(p, s, acc)
		left := end - now
		ws := make([]time.Duration, 0, len(p.WarnBefore))
		for _, w := range p.WarnBefore {
			ws = append(ws, w.D())
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i] > ws[j] })
		raise := false
		for _, w := range ws {
			if left > 0 && left <= w && !s.warned[w] {
				// Several thresholds crossed at once (a short balance) make one warning, not a burst.
				s.warned[w] = true
				raise = true
			}
		}
		if raise {
			evs = append(evs, Event{Kind: EventWarning, SessionID: s.id, InmateID: s.inmateID, Reason: reason,
				Remaining: left, At: wall})
		}
	}
	if iw := p.IdleWarning.D(); iw > 0 {
		li := t.meter.input()
		idleEnd := li + p.IdleTimeout.D()
		if s.idleWarnedFor != li && now >= idleEnd-iw && now < idleEnd {
			s.idleWarnedFor = li
			evs = append(evs, Event{Kind: EventIdleWarning, SessionID: s.id, InmateID: s.inmateID, Reason: EndIdle,
				Remaining: idleEnd - now, At: wall})
		}
	}
	return evs
}
