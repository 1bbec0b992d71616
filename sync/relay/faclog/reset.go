package faclog

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A facility's log and the kv state it is projected into are kept together: the kv state's
// mark names the last entry applied, and each entry names the one before it. Restoring one
// from a backup without the other, or making the log's stream again, parts them, and the
// facility cannot be held (ErrGap): applying the log's entries onto a kv state they do not
// follow would write some of a later state's records over an earlier one. Reset is what an
// operator does then: the kv state is taken as it stands, which is what a restore means.

// ResetReport is what Reset found, and did, for one facility.
type ResetReport struct {
	Facility string `json:"facility"`
	// Mark is the kv state's mark before (0: never projected), Last the log's last entry (0:
	// the log holds none).
	Mark uint64 `json:"mark"`
	Last uint64 `json:"last"`
	// Follows: the log follows the kv state, and nothing was changed.
	Follows bool `json:"follows"`
	// Dropped is how many entries past the mark the log held, which are never projected: what
	// they wrote after the kv state's moment is lost, as the rest of a restore's is.
	Dropped int `json:"dropped"`
	// Reset: the mark was set to Last (false with Follows, or on a dry run).
	Reset bool `json:"reset"`
}

// Check reads facility's log and its kv state's mark and says whether the log follows it:
// every entry after the mark names the one before it, the first the mark, and the log is not
// behind the mark. It changes nothing.
func Check(ctx context.Context, l Log, s kv.Store, facility string) (ResetReport, error) {
	rep := ResetReport{Facility: facility}
	mark, err := Projected(ctx, s, facility)
	if err != nil {
		return rep, err
	}
	rep.Mark = mark
	prev, broken := mark, false
	err = l.Read(ctx, facility, 0, func(e Entry) error {
		rep.Last = e.Seq
		if e.Seq <= mark {
			return nil
		}
		rep.Dropped++
		if e.Prev != prev {
			broken = true
		}
		prev = e.Seq
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("faclog: check facility %q: read its log: %w", facility, err)
	}
	// A log whose last entry is below the mark (or that holds none, with a mark) is another
	// log than the one the kv state followed: its next claim would be skipped as projected.
	rep.Follows = !broken && rep.Last >= mark
	if rep.Follows {
		rep.Dropped = 0
	}
	return rep, nil
}

// Reset sets the kv state's mark of facility to its log's last entry where the log does not
// follow the kv state (Check), so that the next claim follows it; a log that follows is left
// alone. No gateway may hold the facility meanwhile: one that does stopped at the gap, and
// takes the facility up again when started anew. dryRun only checks.
func Reset(ctx context.Context, l Log, s kv.Store, facility string, dryRun bool) (ResetReport, error) {
	rep, err := Check(ctx, l, s, facility)
	if err != nil || rep.Follows || dryRun {
		return rep, err
	}
	err = s.Update(ctx, func(tx kv.Tx) error {
		if at := projectedIn(tx, facility); at != rep.Mark {
			return fmt.Errorf("faclog: reset facility %q: its mark moved from %d to %d meanwhile: a gateway holds it; stop it first", facility, rep.Mark, at)
		}
		b, err := tx.CreateBucketIfNotExists([]byte(bProjected))
		if err != nil {
			return err
		}
		return b.Put([]byte(facility), binary.BigEndian.AppendUint64(nil, rep.Last))
	})
	if err != nil {
		return rep, fmt.Errorf("faclog: reset facility %q: %w", facility, err)
	}
	rep.Reset = true
	return rep, nil
}
