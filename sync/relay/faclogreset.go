package relay

import (
	"context"
	"fmt"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// ResetFacilityLogs makes each facility's log in l agree with the kv state db again where a
// restore of one without the other, or a log made again, parted them (faclog.Reset): the kv
// state is taken as it stands. facility "" is every facility db has a record of. dryRun only
// checks. The gateways must be stopped (relayd faclog-reset, docs/OPERATIONS.md).
func ResetFacilityLogs(ctx context.Context, db kv.Store, l faclog.Log, facility string, dryRun bool) ([]faclog.ResetReport, error) {
	const op = "reset facility logs"
	facilities := []string{facility}
	if facility == "" {
		facilities = nil
		if err := db.View(ctx, func(tx kv.Tx) error {
			facilities = facilities[:0]
			return forEachRaw(tx, bFacilities, "", func(k string, _ []byte) bool {
				facilities = append(facilities, k)
				return true
			})
		}); err != nil {
			return nil, ioErr(op, fmt.Errorf("list the facilities: %w", err))
		}
	} else if err := checkID(op, "facility", facility); err != nil {
		return nil, err
	}
	var reps []faclog.ResetReport
	for _, f := range facilities {
		rep, err := faclog.Reset(ctx, l, db, f, dryRun)
		if err != nil {
			return reps, ioErr(op, err)
		}
		reps = append(reps, rep)
	}
	return reps, nil
}
