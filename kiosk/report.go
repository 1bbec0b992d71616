package kiosk

import (
	"fmt"
	"io"
)

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
