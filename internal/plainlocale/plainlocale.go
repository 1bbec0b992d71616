// Package plainlocale makes Tether's programs quiet under the C locale, the default of a
// systemd service. Fyne reads the user's locale while its packages initialise, before main
// runs, and "C.UTF-8" (what Debian and systemd set when nothing else is configured) is not a
// language tag: every start printed three "Error parsing user locale C" lines. Plain "C" and
// "POSIX" are already understood as "no preference".
//
// A program imports this package for its side effect (import _ ".../internal/plainlocale")
// from its main package. Go initialises packages in import-path order among those whose
// imports are ready (the spec's rule since Go 1.21): this package needs only os, while
// Fyne's lang package needs golang.org/x/text, which needs fmt and so os as well, and
// "github.com/tether-kiosk" sorts before "golang.org", so this init always runs first. The
// test builds the programs and runs them under C to keep that true.
package plainlocale

import (
	"os"
	"strings"
)

// The variables a POSIX program reads for its messages' language, in precedence order.
var localeVars = [...]string{"LC_ALL", "LC_MESSAGES", "LANG"}

func init() {
	Normalize(os.Getenv, os.Setenv)
}

// Normalize rewrites the locale variable that decides the messages' language to plain "C"
// when it names the C or POSIX locale with a codeset ("C.UTF-8", "C.utf8", "POSIX.UTF-8"):
// the meaning is the same, and only the plain form is recognised by Fyne. It returns the
// variable it changed, or "" when nothing needed changing. Any other locale is left alone,
// so a terminal configured for Spanish still starts in Spanish.
func Normalize(getenv func(string) string, setenv func(string, string) error) string {
	for _, name := range localeVars {
		v := getenv(name)
		if v == "" {
			continue
		}
		if IsPlain(v) && v != "C" && v != "POSIX" {
			if err := setenv(name, "C"); err != nil {
				return ""
			}
			return name
		}
		return ""
	}
	return ""
}

// IsPlain reports whether a locale value names the C (or POSIX) locale, with or without a
// codeset or modifier.
func IsPlain(v string) bool {
	base := v
	if i := strings.IndexAny(base, ".@"); i >= 0 {
		base = base[:i]
	}
	return base == "C" || base == "POSIX"
}
