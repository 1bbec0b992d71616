package vocab

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ControlRune reports the characters the sync protocol calls control characters
// (docs/PROTOCOL.md, "Control characters"): C0 (U+0000-U+001F), DEL (U+007F), C1
// (U+0080-U+009F, e.g. U+0085 NEXT LINE), the line and paragraph separators U+2028 and
// U+2029, and the bidirectional formatting characters (U+061C, U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069), which reorder how the text around them is displayed and so
// can make an id or an audit entry read as something it is not.
func ControlRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Limits of an audit event on the wire; the relay refuses an audit item beyond them, so
// appendAudit makes every event fit before it is queued.
const (
	MaxAuditKindLen     = 64   // bytes of kind
	MaxAuditActorLen    = 64   // bytes of actor
	MaxAuditDetail      = 64   // entries in detail
	MaxAuditDetailKey   = 64   // bytes of one detail key
	MaxAuditDetailValue = 2000 // bytes of one detail value
)

// MaxNoticeText bounds a notice's text in bytes, as a terminal stores and shows it.
const MaxNoticeText = 2000

// ValidateNoticeText checks a notice's text by the rule a terminal applies before it shows it
// (1 to MaxNoticeText bytes); the relay applies the same when the notice is posted, so it never
// sends a notice no screen would show.
func ValidateNoticeText(text string) error {
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("is empty")
	}
	if len(text) > MaxNoticeText {
		return fmt.Errorf("is %d bytes, limit %d", len(text), MaxNoticeText)
	}
	return nil
}

// MaxSubjectChars bounds a subject line in code points.
const MaxSubjectChars = 200

// ValidateLetter checks an outgoing letter's body and subject by the rules Send applies on the
// terminal; the relay applies the same to every letter it takes, so neither side accepts what
// the other refuses.
func ValidateLetter(body, subject string, maxChars int) error {
	if err := ValidateMessageBody(body, maxChars); err != nil {
		return err
	}
	return ValidateSubject(subject)
}

// LetterTooLong reports whether body is over maxChars as ValidateLetter counts it, in Unicode
// code points; the relay refuses such a letter as too large rather than as invalid.
func LetterTooLong(body string, maxChars int) bool {
	// A text has at most as many code points as bytes: a short one needs no count.
	return len(body) > maxChars && chars(body) > maxChars
}

// chars is how a letter's body and subject are measured against their limits.
func chars(s string) int { return utf8.RuneCountInString(s) }

// ValidateMessageBody checks a message body before it is sent: valid text, not empty, at most
// max Unicode code points, and no control characters other than newline and tab. The error
// says what and where, e.g. "character U+0007 at position 12 is not allowed".
func ValidateMessageBody(body string, max int) error {
	return validateText("message", body, max, true)
}

// ValidateSubject checks a one-line subject (it may be empty).
func ValidateSubject(subject string) error {
	if subject == "" {
		return nil
	}
	return validateText("subject", subject, MaxSubjectChars, false)
}

func validateText(what, s string, max int, multiline bool) error {
	if printableASCII(s, max, multiline) {
		return nil
	}
	return checkText(what, s, max, multiline)
}

// printableASCII is validateText's quick yes: printable ASCII (and newline and tab in multiline
// text), not blank, at most max bytes, so at most max code points. It looks at each byte once,
// where checkText decodes the text three times; a letter's 1 KiB is checked on the terminal and
// again on the relay. Anything else (or any doubt) goes to checkText, which says what is wrong.
func printableASCII(s string, max int, multiline bool) bool {
	if len(s) > max {
		return false
	}
	blank := true
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b > 0x20 && b < 0x7f:
			blank = false
		case b == ' ':
		case multiline && (b == '\n' || b == '\t'):
		default:
			return false
		}
	}
	return !multiline || !blank
}

func checkText(what, s string, max int, multiline bool) error {
	op := "check " + what
	if i := invalidUTF8At(s); i >= 0 {
		return errInvalid(op, "%s holds bytes that are not text (at byte %d)", what, i)
	}
	if multiline && strings.TrimSpace(s) == "" {
		return errInvalid(op, "%s is empty", what)
	}
	if n := chars(s); n > max {
		return errInvalid(op, "%s is %d characters; the limit is %d (%d too many)", what, n, max, n-max)
	}
	pos := 0
	for _, r := range s {
		pos++
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return errInvalid(op, "character U+%04X at position %d is not allowed", r, pos)
		}
	}
	return nil
}

// invalidUTF8At is the byte offset of the first invalid UTF-8 sequence, or -1.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return -1
}
