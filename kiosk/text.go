package kiosk

import (
	"sort"
	"strings"
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

// plainText makes s valid UTF-8 without control characters ('?' for each) of at most n bytes.
func plainText(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if ControlRune(r) {
			return '?'
		}
		return r
	}, s)
	return capText(s, n)
}

// fitAudit makes an event meet the wire limits without dropping it: kind, actor and detail
// keys lose control characters and excess bytes, values excess bytes (they may hold line
// breaks), and beyond MaxAuditDetail entries the first ones in key order are kept.
func fitAudit(ev AuditEvent) AuditEvent {
	ev.Kind = plainText(ev.Kind, MaxAuditKindLen)
	if ev.Kind == "" {
		ev.Kind = "unnamed"
	}
	ev.Actor = plainText(ev.Actor, MaxAuditActorLen)
	if len(ev.Detail) == 0 {
		ev.Detail = nil
		return ev
	}
	keys := make([]string, 0, len(ev.Detail))
	for k := range ev.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := make(map[string]string, min(len(keys), MaxAuditDetail))
	for _, k := range keys {
		if len(d) == MaxAuditDetail {
			break
		}
		fk := plainText(k, MaxAuditDetailKey)
		if fk == "" {
			fk = "?"
		}
		d[fk] = capText(strings.ToValidUTF8(ev.Detail[k], "?"), MaxAuditDetailValue)
	}
	ev.Detail = d
	return ev
}

// ValidateLetter checks an outgoing letter's body and subject by the rules Send applies on the
// terminal; the relay applies the same to every letter it takes, so neither side accepts what
// the other refuses.
func ValidateLetter(body, subject string, maxChars int) error {
	if err := ValidateMessageBody(body, maxChars); err != nil {
		return err
	}
	return validateSubject(subject)
}
