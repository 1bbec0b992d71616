package kiosk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BadgeResult is what a screen learns from a badge before the PIN is typed.
type BadgeResult struct {
	Kind         string // PersonInmate or PersonTechnician
	PersonID     string
	Language     string // the inmate's language ("en" for technicians), so the PIN screen speaks it
	AttemptsLeft int    // wrong PINs left before a lockout
}

// attemptsLeft rides in a wrong-PIN refusal so the screen can say how many tries remain.
type attemptsLeft int

func (n attemptsLeft) Error() string {
	if n == 1 {
		return "1 attempt left"
	}
	return strconv.Itoa(int(n)) + " attempts left"
}

// AttemptsLeft reports how many PIN attempts a wrong-PIN refusal leaves.
func AttemptsLeft(err error) (int, bool) {
	var n attemptsLeft
	if errors.As(err, &n) {
		return int(n), true
	}
	return 0, false
}

// subject is the person a login is about, as the roster holds them.
type subject struct {
	kind   string
	id     string
	hash   string
	inmate Inmate
	tech   Technician
}

func (s subject) language() string {
	if s.kind == PersonInmate {
		return s.inmate.Language
	}
	return "en"
}

func (s subject) name() string {
	if s.kind == PersonInmate {
		return s.inmate.Name
	}
	return s.tech.Name
}

// verifiedLogin is the one login on this terminal whose PIN was accepted and whose notice
// is still on screen; a newer login replaces it, so a walked-away person's cannot be reused.
type verifiedLogin struct {
	kind, id string
	at       time.Time
}

// subjectTx loads the person of the given kind and id; found is false if they are gone.
func subjectTx(tx *bolt.Tx, kind, id string) (subject, bool, error) {
	s := subject{kind: kind, id: id}
	switch kind {
	case PersonInmate:
		found, err := getJSON(tx, bInmates, id, &s.inmate)
		s.hash = s.inmate.PINHash
		return s, found, err
	case PersonTechnician:
		found, err := getJSON(tx, bTechnicians, id, &s.tech)
		s.hash = s.tech.PINHash
		return s, found, err
	}
	return s, false, &Error{Kind: KindCorrupt, Op: "login", Err: fmt.Errorf("badge owner kind %q", kind)}
}

// badgeSubjectTx finds who holds badge; found is false for an unknown badge.
func badgeSubjectTx(tx *bolt.Tx, badge string) (subject, bool, error) {
	o, found, err := badgeOwnerTx(tx, badge)
	if err != nil || !found {
		return subject{}, false, err
	}
	return subjectTx(tx, o.Kind, o.ID)
}

func loginStateTx(tx *bolt.Tx, id string) (LoginState, error) {
	var st LoginState
	_, err := getJSON(tx, bLogins, id, &st)
	return st, err
}

// clampLocks runs at start: a lock stored as ending more than one Policy.Lockout from now was
// set under a wall clock that has since gone back (a dead RTC battery resets the date), and
// must not last days; it is shortened to one Lockout from now and stored.
func (t *Terminal) clampLocks() error {
	now := t.clock.Now()
	limit := now.Add(t.Policy().Lockout.D()).UTC()
	return t.store.update("check lockouts", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bLogins))
		var fix []string
		if err := b.ForEach(func(k, v []byte) error {
			var st LoginState
			if err := json.Unmarshal(v, &st); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read login state", Err: fmt.Errorf("%q: %w", k, err)}
			}
			if st.LockedUntil.After(limit) {
				fix = append(fix, string(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range fix {
			st, err := loginStateTx(tx, id)
			if err != nil {
				return err
			}
			st.LockedUntil = limit
			if err := putJSON(tx, bLogins, id, st); err != nil {
				return err
			}
		}
		return nil
	})
}

// precheckTx applies every refusal that needs no PIN: suspended, locked, then (inmates) the
// sessions rules. A refusal is returned as refused; err is for storage failures.
// A PREA attempt (prea) is refused only for a lock: a report must be possible whatever the
// account, the balance or the hour (28 CFR 115.51), and only inmates file one.
func (t *Terminal) precheckTx(tx *bolt.Tx, now time.Time, s subject, prea bool) (st LoginState, refused error, err error) {
	if prea && s.kind != PersonInmate {
		return st, errRefused("login", ReasonUnknownBadge, time.Time{}), nil
	}
	if !prea && s.kind == PersonInmate && s.inmate.Status != StatusActive {
		return st, errRefused("login", ReasonSuspended, time.Time{}), nil
	}
	if st, err = loginStateTx(tx, s.id); err != nil {
		return st, nil, err
	}
	if now.Before(st.LockedUntil) {
		return st, errRefused("login", ReasonLocked, st.LockedUntil), nil
	}
	if s.kind == PersonInmate && !prea {
		if _, e := t.eligible(tx, s.inmate, now); e != nil {
			if KindOf(e) == KindRefused {
				return st, e, nil
			}
			return st, nil, e
		}
	}
	return st, nil, nil
}

// loginAttempt is what one badge or PIN attempt found, for its audit event.
type loginAttempt struct {
	via   string // "badge" or "tablet"
	stage string // "badge" or "pin"
	badge string // only for an unknown badge, and only if it cannot be a PIN
	prea  bool   // for a PREA report only: no session follows
	s     subject
	found bool
}

func (a loginAttempt) detail(reason Reason) map[string]string {
	d := map[string]string{"via": a.via, "stage": a.stage}
	if a.prea {
		d["for"] = "prea"
	}
	if reason != "" {
		d["reason"] = string(reason)
	}
	if a.found {
		d["person"] = a.s.kind
	} else if a.badge != "" {
		// Someone may type a PIN into a badge field; a value that could be one is left out.
		if ValidatePIN(a.badge) == nil {
			d["badge"] = "(withheld: could be a PIN)"
		} else {
			d["badge"] = a.badge
		}
	}
	return d
}

// auditRefusal records a refused attempt in its own transaction and returns the refusal.
func (t *Terminal) auditRefusal(now time.Time, a loginAttempt, refusal error) error {
	kind := "login_refused"
	err := t.store.update("audit login", func(tx *bolt.Tx) error {
		d := a.detail(ReasonOf(refusal))
		var e *Error
		if errors.As(refusal, &e) && !e.Until.IsZero() {
			d["until"] = e.Until.UTC().Format(time.RFC3339)
		}
		return appendAudit(tx, now, kind, a.s.id, d)
	})
	if err != nil {
		return err
	}
	return refusal
}

// Badge is the first step of a login: it says who the badge belongs to and refuses, before
// any PIN is typed, an unknown badge, a suspended inmate, a locked person, or an inmate the
// sessions rules turn away (cool-down, curfew, lockdown, balance, offline cap). With a refusal
// for a known badge the result still carries the language to show the refusal in.
func (t *Terminal) Badge(badgeID string) (BadgeResult, error) {
	badgeID = strings.TrimSpace(badgeID)
	return t.precheck(loginAttempt{via: "badge", stage: "badge", badge: badgeID}, func(tx *bolt.Tx) (subject, bool, error) {
		return badgeSubjectTx(tx, badgeID)
	})
}

// PrecheckBound is Badge for a tablet: the screen calls it on wake, before asking for the PIN.
func (t *Terminal) PrecheckBound() (BadgeResult, error) {
	return t.precheck(loginAttempt{via: "tablet", stage: "badge"}, t.boundSubjectTx)
}

func (t *Terminal) precheck(a loginAttempt, find func(*bolt.Tx) (subject, bool, error)) (BadgeResult, error) {
	now := t.clock.Now()
	pol := t.Policy()
	var res BadgeResult
	var refusal error
	err := t.store.view(func(tx *bolt.Tx) error {
		s, found, err := find(tx)
		if err != nil {
			return err
		}
		if !found {
			refusal = t.notFoundRefusal(a)
			return nil
		}
		a.s, a.found = s, true
		st, ref, err := t.precheckTx(tx, now, s, a.prea)
		if err != nil {
			return err
		}
		refusal = ref
		res = BadgeResult{Kind: s.kind, PersonID: s.id, Language: s.language(), AttemptsLeft: max(pol.MaxWrongPINs-st.Failures, 1)}
		return nil
	})
	if err != nil {
		return BadgeResult{}, errIO("login", err)
	}
	if refusal != nil {
		return res, t.auditRefusal(now, a, refusal)
	}
	return res, nil
}

func (t *Terminal) notFoundRefusal(a loginAttempt) error {
	if a.via == "tablet" {
		return errRefused("login", ReasonNotBound, time.Time{})
	}
	return errRefused("login", ReasonUnknownBadge, time.Time{})
}

// boundSubjectTx finds the inmate this tablet is bound to; found is false if it is not
// bound, the inmate left the roster, or the relay took the tablet away from them.
func (t *Terminal) boundSubjectTx(tx *bolt.Tx) (subject, bool, error) {
	id := boundInmateTx(tx)
	if id == "" {
		return subject{}, false, nil
	}
	s, found, err := subjectTx(tx, PersonInmate, id)
	if err != nil || !found || !s.inmate.TabletBound {
		return subject{}, false, err
	}
	return s, true, nil
}

// EnterPIN is the second step: it checks the PIN of the badge's holder. A wrong PIN counts
// toward a lockout (ReasonWrongPIN with AttemptsLeft); the Policy.MaxWrongPINs-th in a row
// locks the person out for Policy.Lockout (ReasonLocked with Until); a right one resets the
// count. Every attempt is audited, never with the PIN.
func (t *Terminal) EnterPIN(badgeID, pin string) (Pending, error) {
	badgeID = strings.TrimSpace(badgeID)
	return t.enterPIN(loginAttempt{via: "badge", stage: "pin", badge: badgeID}, pin, func(tx *bolt.Tx) (subject, bool, error) {
		return badgeSubjectTx(tx, badgeID)
	})
}

// EnterBoundPIN is EnterPIN on a tablet, for the inmate the tablet is bound to.
func (t *Terminal) EnterBoundPIN(pin string) (Pending, error) {
	return t.enterPIN(loginAttempt{via: "tablet", stage: "pin"}, pin, t.boundSubjectTx)
}

func (t *Terminal) enterPIN(a loginAttempt, pin string, find func(*bolt.Tx) (subject, bool, error)) (Pending, error) {
	if pin == "" {
		// An empty entry is a slip of the finger, not a guess; it is neither counted nor audited.
		return Pending{}, errInvalid("login", "no PIN was entered")
	}
	now := t.clock.Now()
	pol := t.Policy()
	t.mu.Lock()
	// A new attempt closes any login left on the notice screen, or on a PREA report.
	t.verified, t.preaVerified = verifiedLogin{}, verifiedLogin{}
	t.mu.Unlock()
	var refusal error
	err := t.store.view(func(tx *bolt.Tx) error {
		s, found, err := find(tx)
		if err != nil {
			return err
		}
		if !found {
			refusal = t.notFoundRefusal(a)
			return nil
		}
		a.s, a.found = s, true
		_, refusal, err = t.precheckTx(tx, now, s, a.prea)
		return err
	})
	if err != nil {
		return Pending{}, errIO("login", err)
	}
	if refusal != nil {
		return Pending{}, t.auditRefusal(now, a, refusal)
	}

	// The slow part, outside every lock and transaction.
	ok := VerifyPIN(a.s.hash, pin)

	var result error
	err = t.store.update("login", func(tx *bolt.Tx) error {
		result = nil
		// Re-read: another attempt or a roster change may have landed while the PIN was hashed.
		s, found, err := subjectTx(tx, a.s.kind, a.s.id)
		if err != nil {
			return err
		}
		if !found || s.hash != a.s.hash {
			result = &Error{Kind: KindConflict, Op: "login", Err: errors.New("the roster changed during the login; please try again")}
			return nil
		}
		if s.kind == PersonInmate && s.inmate.Status != StatusActive && !a.prea {
			result = errRefused("login", ReasonSuspended, time.Time{})
			return appendAudit(tx, now, "login_refused", s.id, a.detail(ReasonSuspended))
		}
		st, err := loginStateTx(tx, s.id)
		if err != nil {
			return err
		}
		if now.Before(st.LockedUntil) {
			result = errRefused("login", ReasonLocked, st.LockedUntil)
			d := a.detail(ReasonLocked)
			d["until"] = st.LockedUntil.UTC().Format(time.RFC3339)
			return appendAudit(tx, now, "login_refused", s.id, d)
		}
		if ok {
			if err := tx.Bucket([]byte(bLogins)).Delete([]byte(s.id)); err != nil {
				return fmt.Errorf("reset login state: %w", err)
			}
			return appendAudit(tx, now, "login_ok", s.id, a.detail(""))
		}
		st.Failures++
		d := a.detail(ReasonWrongPIN)
		if st.Failures >= pol.MaxWrongPINs && pol.Lockout > 0 {
			st = LoginState{LockedUntil: now.Add(pol.Lockout.D()).UTC()}
			result = errRefused("login", ReasonLocked, st.LockedUntil)
			d["locked_until"] = st.LockedUntil.Format(time.RFC3339)
		} else {
			if st.Failures >= pol.MaxWrongPINs {
				st.Failures = 0 // a zero lockout means no lockout
			}
			left := attemptsLeft(pol.MaxWrongPINs - st.Failures)
			result = &Error{Kind: KindRefused, Op: "login", Reason: ReasonWrongPIN, Err: left}
			d["attempts_left"] = strconv.Itoa(int(left))
		}
		if err := putJSON(tx, bLogins, s.id, st); err != nil {
			return err
		}
		return appendAudit(tx, now, "login_failed", s.id, d)
	})
	if err != nil {
		return Pending{}, err
	}
	if result != nil {
		return Pending{}, result
	}
	p := Pending{Kind: a.s.kind, PersonID: a.s.id, Name: a.s.name(), Language: a.s.language(), At: now}
	p.Notice = pol.MonitoringNotice[p.Language]
	if p.Notice == "" {
		p.Notice = pol.MonitoringNotice["en"]
	}
	t.mu.Lock()
	if a.prea {
		t.preaVerified = verifiedLogin{kind: p.Kind, id: p.PersonID, at: p.At}
	} else {
		t.verified = verifiedLogin{kind: p.Kind, id: p.PersonID, at: p.At}
	}
	t.mu.Unlock()
	return p, nil
}

// claimPendingLocked checks that p is the login this terminal last verified, not older than
// the idle timeout, and uses it up; AcceptNotice calls it with t.mu held so that a Pending
// can be neither forged by a screen nor accepted twice.
func (t *Terminal) claimPendingLocked(p Pending, now time.Time) error {
	v := t.verified
	if v.id == "" || v.kind != p.Kind || v.id != p.PersonID || !v.at.Equal(p.At) {
		return &Error{Kind: KindConflict, Op: "accept notice", Err: errors.New("this login is no longer open; please badge again")}
	}
	if now.Sub(v.at) > t.policy.IdleTimeout.D() {
		t.verified = verifiedLogin{}
		return &Error{Kind: KindConflict, Op: "accept notice", Reason: ReasonLoginExpired, Err: errors.New("the login waited too long; please badge again")}
	}
	t.verified = verifiedLogin{}
	return nil
}

// LoginState reports a person's wrong-PIN count and lock, for a technician's screen.
func (t *Terminal) LoginState(personID string) (LoginState, error) {
	var st LoginState
	err := t.store.view(func(tx *bolt.Tx) error {
		var err error
		st, err = loginStateTx(tx, personID)
		return err
	})
	return st, err
}

// ClearLockout lifts a person's lock and wrong-PIN count (a technician's action, audited).
func (t *Terminal) ClearLockout(personID, actor string) error {
	return t.store.update("clear lockout", func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(bLogins)).Delete([]byte(personID)); err != nil {
			return fmt.Errorf("clear lockout: %w", err)
		}
		return appendAudit(tx, t.clock.Now(), "lockout_cleared", actor, map[string]string{"person": personID})
	})
}

// SetPIN gives a person a new PIN, hashed here with the terminal's costs (outside any lock or
// transaction); their wrong-PIN count and lock are cleared. The PIN is not kept or logged.
func (t *Terminal) SetPIN(personID, pin, actor string) error {
	hash, err := HashPINWith(pin, t.pinCost)
	if err != nil {
		return err
	}
	now := t.clock.Now()
	return t.store.update("set pin", func(tx *bolt.Tx) error {
		var in Inmate
		var tc Technician
		if found, err := getJSON(tx, bInmates, personID, &in); err != nil {
			return err
		} else if found {
			in.PINHash = hash
			if err := putJSON(tx, bInmates, personID, in); err != nil {
				return err
			}
		} else if found, err := getJSON(tx, bTechnicians, personID, &tc); err != nil {
			return err
		} else if found {
			tc.PINHash = hash
			if err := putJSON(tx, bTechnicians, personID, tc); err != nil {
				return err
			}
		} else {
			return errNotFound("set pin", "no inmate or technician %q", personID)
		}
		if err := tx.Bucket([]byte(bLogins)).Delete([]byte(personID)); err != nil {
			return fmt.Errorf("reset login state: %w", err)
		}
		return appendAudit(tx, now, "pin_set", actor, map[string]string{"person": personID})
	})
}
