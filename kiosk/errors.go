package kiosk

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// The error kinds and reasons are kiosk/vocab's (re-exported in vocab.go), shared with the
// relay; these build them for the terminal's own operations.

func errInvalid(op, format string, args ...any) error {
	return &Error{Kind: KindInvalid, Op: op, Err: fmt.Errorf(format, args...)}
}

func errRefused(op string, r Reason, until time.Time) error {
	return &Error{Kind: KindRefused, Op: op, Reason: r, Until: until}
}

func errNotFound(op, format string, args ...any) error {
	return &Error{Kind: KindNotFound, Op: op, Err: fmt.Errorf(format, args...)}
}

// errIO marks a storage failure so the screens can say "not saved" rather than "invalid"; a
// full disk or quota is KindTransient, as it may clear, the rest KindIO.
func errIO(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &Error{Kind: KindTransient, Op: op, Err: err}
	}
	return &Error{Kind: KindIO, Op: op, Err: err}
}
