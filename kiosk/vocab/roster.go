package vocab

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Languages are the languages the screens are translated into: a person's language, a
// notice's and a policy's texts are one of these, on the terminal and on the relay alike.
func Languages() []string { return []string{"en", "es"} }

// QuotedLanguages lists Languages for a message, quoted: "en", "es".
func QuotedLanguages() string {
	q := make([]string, 0, len(Languages()))
	for _, l := range Languages() {
		q = append(q, strconv.Quote(l))
	}
	return strings.Join(q, ", ")
}

// KnownLanguage reports whether lang is one of Languages.
func KnownLanguage(lang string) bool { return slices.Contains(Languages(), lang) }

// Limits on roster fields; generous for real rosters, small enough for a bbolt key and a screen.
const (
	maxIDLen    = 64
	maxBadgeLen = 128
	maxNameLen  = 100 // runes
	maxRoleLen  = 32
	maxBadges   = 8
)

func badField(path, format string, args ...any) error {
	return &FieldError{Field: path, Msg: fmt.Sprintf(format, args...)}
}

// FieldPath makes a JSON path: FieldPath("inmates[3]", "badges[0]") is "inmates[3].badges[0]".
func FieldPath(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

func CheckID(path, id string) error {
	if id == "" {
		return badField(path, "must not be empty")
	}
	if len(id) > maxIDLen {
		return badField(path, "is longer than %d characters", maxIDLen)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
		if !ok {
			// Ids become bbolt keys and parts of "id/..." keys, so a slash or a space would be ambiguous.
			return badField(path, "%q may hold only letters, digits and - _ . :", id)
		}
	}
	return nil
}

func checkName(path, name string) error {
	if strings.TrimSpace(name) == "" {
		return badField(path, "must not be empty")
	}
	if !utf8.ValidString(name) {
		return badField(path, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(name) > maxNameLen {
		return badField(path, "is longer than %d characters", maxNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return badField(path, "must not contain control characters")
		}
	}
	return nil
}

func checkBadges(path string, badges []string) error {
	if len(badges) == 0 {
		return badField(path, "needs at least one badge")
	}
	if len(badges) > maxBadges {
		return badField(path, "has %d badges, at most %d are allowed", len(badges), maxBadges)
	}
	for i, b := range badges {
		p := fmt.Sprintf("%s[%d]", path, i)
		if b == "" {
			return badField(p, "must not be empty")
		}
		if len(b) > maxBadgeLen {
			return badField(p, "is longer than %d characters", maxBadgeLen)
		}
		for j := 0; j < len(b); j++ {
			if b[j] <= ' ' || b[j] > '~' {
				return badField(p, "may hold only printable ASCII without spaces")
			}
		}
		if j := slices.Index(badges[:i], b); j >= 0 {
			return badField(p, "badge %q is listed twice (also %s[%d])", b, path, j)
		}
	}
	return nil
}

// ValidateInmateFields checks every field of in but its PIN hash; path (e.g. "inmates[3]")
// prefixes the field names in the *FieldError it returns.
func ValidateInmateFields(path string, in Inmate) error {
	if err := CheckID(FieldPath(path, "id"), in.ID); err != nil {
		return err
	}
	if err := checkName(FieldPath(path, "name"), in.Name); err != nil {
		return err
	}
	if err := checkBadges(FieldPath(path, "badges"), in.Badges); err != nil {
		return err
	}
	if !KnownLanguage(in.Language) {
		return badField(FieldPath(path, "language"), "%q is not one of %s", in.Language, strings.Join(Languages(), ", "))
	}
	if in.Status != StatusActive && in.Status != StatusSuspended {
		return badField(FieldPath(path, "status"), "%q is not %s or %s", in.Status, StatusActive, StatusSuspended)
	}
	return nil
}

// ValidateTechnicianFields checks every field of tc but its PIN hash, as ValidateInmateFields.
func ValidateTechnicianFields(path string, tc Technician) error {
	if err := CheckID(FieldPath(path, "id"), tc.ID); err != nil {
		return err
	}
	if err := checkName(FieldPath(path, "name"), tc.Name); err != nil {
		return err
	}
	if err := checkBadges(FieldPath(path, "badges"), tc.Badges); err != nil {
		return err
	}
	if tc.Role == "" || len(tc.Role) > maxRoleLen {
		return badField(FieldPath(path, "role"), "needs 1 to %d characters", maxRoleLen)
	}
	for _, r := range tc.Role {
		if !(r >= 'a' && r <= 'z' || r == '_' || r == '-') {
			return badField(FieldPath(path, "role"), "%q may hold only lowercase letters, - and _", tc.Role)
		}
	}
	return nil
}

// RosterFieldError names the roster field a person breaks and how, for one person at path
// (e.g. "inmates[3]"), checking every field but the PIN hash. The relay checks the rosters it
// takes with it before it hashes their plain PINs, so it refuses exactly what a terminal would
// refuse when the person arrives (an id with '@', a name of 110 characters, a role "Installer").
func RosterFieldError(path string, person any) (field, problem string, bad bool) {
	var err error
	switch p := person.(type) {
	case Inmate:
		err = ValidateInmateFields(path, p)
	case Technician:
		err = ValidateTechnicianFields(path, p)
	default:
		return path, fmt.Sprintf("is a %T, not an inmate or a technician", person), true
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, fe.Msg, true
	}
	return "", "", false
}
