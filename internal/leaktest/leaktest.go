// Package leaktest is how tests look for a secret number (a PIN, a badge id) in what a
// program wrote: a log, a status page, the texts of a window. It is for tests only; no
// production package imports it.
//
// A plain substring search is not enough: timestamps with nanoseconds, durations, sizes and
// random ids are long runs of digits, and "2026-12-02T00:48:51.246820583Z" holds the PIN
// 2468 by chance. So a number counts only as a whole run of digits, and the random ids Tether
// writes (UUIDs, hex epochs and hashes) are set aside before looking.
package leaktest

import "regexp"

// ids matches the random identifiers Tether prints: UUIDs, alone or in a prefixed terminal id,
// and long lowercase hex strings such as a store's epoch.
var ids = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{16,}`)

// digitRuns matches each maximal run of ASCII digits.
var digitRuns = regexp.MustCompile(`[0-9]+`)

// HasNumber reports whether text holds number as a whole run of digits, outside the random
// ids described above. It is what a test calls to ask "did this PIN or badge id leak here?".
func HasNumber(text, number string) bool {
	text = ids.ReplaceAllString(text, " ")
	for _, run := range digitRuns.FindAllString(text, -1) {
		if run == number {
			return true
		}
	}
	return false
}
