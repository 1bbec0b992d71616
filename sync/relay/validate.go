package relay

import (
	"strings"
	"unicode/utf8"
)

// maxIDLen bounds every id an admin or a terminal names.
const maxIDLen = 64

// checkID accepts 1..64 bytes of letters, digits and . _ - : @ (no "/", which keys use as a separator).
func checkID(op, field, s string) error {
	if s == "" {
		return invalid(op, field, "is required")
	}
	if len(s) > maxIDLen {
		return invalid(op, field, "is %d bytes, limit %d", len(s), maxIDLen)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:@", r)
		if !ok {
			return invalid(op, field, "may hold only letters, digits and . _ - : @")
		}
	}
	return nil
}

// checkText accepts valid UTF-8 without control characters other than newline and tab, up to max runes.
func checkText(op, field, s string, required bool, max int) error {
	if strings.TrimSpace(s) == "" {
		if required {
			return invalid(op, field, "is required")
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return invalid(op, field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(op, field, "is %d characters, limit %d", n, max)
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || r == 0x7f {
			return invalid(op, field, "holds a control character")
		}
	}
	return nil
}
