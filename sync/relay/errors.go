package relay

import (
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// FieldError names the input field that was wrong, so an admin sees which value to fix; it is
// the terminal's too (vocab.FieldError), so both name a field the same way.
type FieldError = vocab.FieldError

// invalid is a bad admin or wire input, naming the field.
func invalid(op, field, format string, args ...any) error {
	return &vocab.Error{Kind: vocab.KindInvalid, Op: op, Err: &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}}
}

func notFound(op, field, format string, args ...any) error {
	return &vocab.Error{Kind: vocab.KindNotFound, Op: op, Err: &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}}
}

func conflict(op, field, format string, args ...any) error {
	return &vocab.Error{Kind: vocab.KindConflict, Op: op, Err: &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}}
}

// FieldOf reports the input field an error names, "" if none.
func FieldOf(err error) string { return vocab.FieldOf(err) }

// ioErr marks a storage failure that is not already a classified error.
func ioErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ke *vocab.Error
	var ee *EnrollError
	var he *HeldElsewhereError
	if errors.As(err, &ke) || errors.As(err, &ee) || errors.As(err, &he) {
		return err
	}
	return &vocab.Error{Kind: vocab.KindIO, Op: op, Err: err}
}
