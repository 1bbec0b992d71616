package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/tether-kiosk/tether/kiosk"
)

const reissueUsage = `usage: kioskctl reissue [--data DIR] [--json]

Prepares a tablet for another inmate: refuses while anything waits to be forwarded, otherwise
removes every record of the last inmate in one transaction and keeps the enrollment and the
identity key. Then enroll it again (kioskctl enroll) with a tablet code of the same facility for
the next inmate: the relay replaces this terminal's record with a new one under the same key.
`

func runReissue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newFlags("reissue", reissueUsage, stderr)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	var rep kiosk.ReissueReport
	if c != nil {
		defer c.Close()
		rep, err = c.Reissue(ctx)
	} else {
		err = withTerminal(cf.data, func(t *kiosk.Terminal) error {
			rep, err = t.Reissue(actorName())
			return err
		})
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, rep)
	}
	keys := make([]string, 0, len(rep.Removed))
	total := 0
	for k, n := range rep.Removed {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	fmt.Fprintf(stdout, "reissued: %d records removed; enrollment kept (epoch %s, next seq %d)\n", total, rep.Epoch, rep.NextSeq)
	for _, k := range keys {
		if rep.Removed[k] > 0 {
			fmt.Fprintf(stdout, "  %-10s %d\n", k, rep.Removed[k])
		}
	}
	fmt.Fprintln(stdout, "next: kioskctl enroll --relay URL --code - with a tablet code of this facility for the next inmate;"+
		" the relay replaces this terminal's record (same key)")
	return nil
}
