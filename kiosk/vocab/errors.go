package vocab

import (
	"errors"
	"fmt"
	"time"
)

// Kind sorts errors into the few classes a caller acts on: retry, tell the user, or give up.
type Kind int

const (
	// KindInternal is a bug or an unexpected state; give up and report.
	KindInternal Kind = iota
	// KindInvalid is bad input from a person, a file or a peer; retrying the same input fails again.
	KindInvalid
	// KindNotFound names a record that does not exist.
	KindNotFound
	// KindRefused is a rule of the facility saying no (login refused, contact not approved...).
	KindRefused
	// KindConflict is a request that clashes with the current state (already logged in...).
	KindConflict
	// KindIO is a storage failure (full disk, read-only file system); nothing was changed.
	KindIO
	// KindCorrupt is a store that cannot be trusted; it is left untouched for a technician.
	KindCorrupt
	// KindTransient is a failure that may clear by itself: a full disk (a log rotated, a
	// compaction freed pages), a relay out of reach, a device unplugged for a moment. Nothing
	// was changed; the same request may succeed later, so a loop retries it (Retryable).
	KindTransient
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not found"
	case KindRefused:
		return "refused"
	case KindConflict:
		return "conflict"
	case KindIO:
		return "storage error"
	case KindCorrupt:
		return "corrupt store"
	case KindTransient:
		return "temporary failure"
	default:
		return "internal error"
	}
}

// Error carries a Kind, the operation that failed and, for refusals, a Reason code the
// screens translate into plain words.
type Error struct {
	Kind   Kind
	Op     string // what was being done, e.g. "login", "send message"
	Reason Reason // machine-readable cause for refusals; empty otherwise
	Until  time.Time
	Err    error // underlying cause, if any
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Reason != "" {
		msg += ": " + string(e.Reason)
		if !e.Until.IsZero() {
			msg += " until " + e.Until.Format("2006-01-02 15:04")
		}
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf reports the Kind of err, KindInternal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Retryable reports whether err is worth retrying as it is (KindTransient). Every other
// kind gives up: bad input, a refusal or a clash fail the same way again, and a store that is
// damaged, read-only or not allowed to us waits for a person.
func Retryable(err error) bool { return err != nil && KindOf(err) == KindTransient }

// ReasonOf reports the refusal reason carried by err, if any.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Reason is a stable code for why something was refused or ended; translations key on it.
type Reason string

// Login refusals: each distinct, each shown in plain words on the welcome screen.
const (
	ReasonUnknownBadge        Reason = "unknown_badge"
	ReasonSuspended           Reason = "suspended"
	ReasonWrongPIN            Reason = "wrong_pin"
	ReasonLocked              Reason = "locked"
	ReasonCooldown            Reason = "cooldown"
	ReasonCurfew              Reason = "curfew"
	ReasonLockdown            Reason = "lockdown"
	ReasonInsufficientBalance Reason = "insufficient_balance"
	ReasonOfflineLimit        Reason = "offline_limit"
	ReasonNoMessaging         Reason = "no_messaging_privilege"
	ReasonNoticeNotAccepted   Reason = "notice_not_accepted"
)

// Mailbox refusals.
const (
	ReasonContactLimit       Reason = "contact_limit"
	ReasonContactNotApproved Reason = "contact_not_approved"
	// ReasonContactNotAccepted: staff approved the contact but the contact has not accepted
	// the relay's invitation (still invited, declined, blocked or expired).
	ReasonContactNotAccepted Reason = "contact_not_accepted"
	ReasonNoSession          Reason = "no_session"
	ReasonPREABacklog        Reason = "prea_backlog" // too many PREA reports still waiting for the relay
	// ReasonNeedsFunds: a free session (Policy.FreeServices) cannot do what only money pays for.
	ReasonNeedsFunds Reason = "needs_funds"
)

// Login refusals of tablets and of the notice step (roster+login).
const (
	ReasonNotBound     Reason = "tablet_not_bound"
	ReasonLoginExpired Reason = "login_expired"
)

// Session end reasons, recorded on every session.
const (
	EndLogout        Reason = "logout"
	EndIdle          Reason = "idle"
	EndMaxLength     Reason = "max_length"
	EndBalance       Reason = "balance_exhausted"
	EndCurfew        Reason = "curfew"
	EndLockdown      Reason = "lockdown"
	EndTerminalFault Reason = "terminal fault"
	EndOfflineLimit  Reason = "offline_limit"
)

// FieldError names the input field at fault, as a JSON path ("inmates[3].badges[0]"), so a
// person sees which value to fix; Error wraps it with the kind and the operation.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// FieldOf reports the input field an error names, "" if none.
func FieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func errInvalid(op, format string, args ...any) error {
	return &Error{Kind: KindInvalid, Op: op, Err: fmt.Errorf(format, args...)}
}
