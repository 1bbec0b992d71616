package vocab

import (
	"fmt"
	"io"
)

// Problem is one broken rule found by Verify.
type Problem struct {
	Check  string `json:"check"`  // e.g. "charge_session", "balance"
	Detail string `json:"detail"` // names the record
}

// VerifyReport is Verify's answer; OK when Problems is empty.
type VerifyReport struct {
	OK       bool           `json:"ok"`
	Problems []Problem      `json:"problems"`
	Records  map[string]int `json:"records"` // keys per bucket
}

// MaxProblems keeps a badly broken store's report readable: a verify stops listing there.
const MaxProblems = 200

// WriteText prints a verify report as `kioskctl verify` and `relayd verify` show it: each problem
// on its own line, or "<what> ok (N records)" when there is none.
func (r VerifyReport) WriteText(w io.Writer, what string) error {
	for _, p := range r.Problems {
		if _, err := fmt.Fprintf(w, "%s: %s\n", p.Check, p.Detail); err != nil {
			return err
		}
	}
	if !r.OK {
		return nil
	}
	total := 0
	for _, n := range r.Records {
		total += n
	}
	_, err := fmt.Fprintf(w, "%s ok (%d records)\n", what, total)
	return err
}
