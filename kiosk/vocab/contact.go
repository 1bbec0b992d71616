package vocab

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A contact's address and name are checked by the same rules on the terminal, where the
// inmate types them, and on the relay, where a terminal's contact request arrives: an address
// the kiosk accepted is never refused upstream, and one a hostile terminal made up is.

// Address limits from RFC 5321 (path 254 usable, local part 64, domain 253, label 63).
const (
	MaxEmailLen         = 254
	MaxEmailLocalLen    = 64
	MaxEmailDomainLen   = 253
	MaxEmailLabelLen    = 63
	MaxContactNameRunes = 100 // code points
)

// ValidateEmail checks an address an inmate typed and returns it as it will be stored
// (surrounding spaces trimmed, domain lower-cased). It accepts only one plain address: no
// display name, no angle brackets, no comments, no quoted local part, no IP literal, ASCII only,
// so what staff approve is exactly where the mail goes.
func ValidateEmail(addr string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", errInvalid("email address", format, args...)
	}
	a := strings.TrimSpace(addr)
	if a == "" {
		return bad("is empty")
	}
	// Display names, lists, comments, quoting and IP literals all need one of these.
	if i := strings.IndexAny(a, `<>"(),;:[]\`); i >= 0 {
		return bad("character %q is not allowed: enter one plain address like name@example.com", a[i])
	}
	for i, r := range a {
		if r == utf8.RuneError || r > unicode.MaxASCII {
			return bad("character %q at position %d is not allowed (plain letters, digits and . _ - + only)", r, utf8.RuneCountInString(a[:i])+1)
		}
		if r <= ' ' || r == 0x7f {
			return bad("must not contain spaces or control characters (position %d)", utf8.RuneCountInString(a[:i])+1)
		}
	}
	if len(a) > MaxEmailLen {
		return bad("is %d characters long; the limit is %d", len(a), MaxEmailLen)
	}
	at := strings.Count(a, "@")
	if at == 0 {
		return bad("has no @")
	}
	if at > 1 {
		return bad("has more than one @")
	}
	local, domain, _ := strings.Cut(a, "@")
	if local == "" {
		return bad("has nothing before the @")
	}
	if len(local) > MaxEmailLocalLen {
		return bad("the part before the @ is %d characters; the limit is %d", len(local), MaxEmailLocalLen)
	}
	if domain == "" {
		return bad("has no domain after the @")
	}
	if len(domain) > MaxEmailDomainLen {
		return bad("the domain is %d characters; the limit is %d", len(domain), MaxEmailDomainLen)
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return bad("the part before the @ must not start or end with a dot or have two dots in a row")
	}
	if !strings.Contains(domain, ".") {
		return bad("the domain %q has no dot (like example.com)", domain)
	}
	labels := strings.Split(domain, ".")
	for _, l := range labels {
		if l == "" {
			return bad("the domain %q has an empty part between dots", domain)
		}
		if len(l) > MaxEmailLabelLen {
			return bad("the domain part %q is longer than %d characters", l, MaxEmailLabelLen)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("the domain part %q must not start or end with a hyphen", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad("the domain %q may hold only letters, digits, hyphens and dots", domain)
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return bad("the domain %q ends in a number, not a name like .com", domain)
	}
	// net/mail has the last word on syntax; it must read back exactly one bare address.
	parsed, err := mail.ParseAddress(a)
	if err != nil {
		return bad("is not a valid address (%v)", err)
	}
	if parsed.Name != "" || parsed.Address != a {
		return bad("enter only the address itself, like name@example.com")
	}
	return local + "@" + strings.ToLower(domain), nil
}

// ValidateContactName checks the name an inmate gives a contact and returns it trimmed.
func ValidateContactName(name string) (string, error) {
	n := strings.TrimSpace(name)
	if n == "" {
		return "", errInvalid("contact name", "is empty")
	}
	if !utf8.ValidString(n) {
		return "", errInvalid("contact name", "is not valid text")
	}
	if c := utf8.RuneCountInString(n); c > MaxContactNameRunes {
		return "", errInvalid("contact name", "is %d characters; the limit is %d", c, MaxContactNameRunes)
	}
	for i, r := range []rune(n) {
		if unicode.IsControl(r) {
			return "", errInvalid("contact name", "character U+%04X at position %d is not allowed", r, i+1)
		}
	}
	return n, nil
}
