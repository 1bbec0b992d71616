package main

import (
	"fmt"
	"io"
)

// repairIDs rebuilds the facilities' item id records that a look-up cannot read whole
// (relay.RepairItemIDs): a damaged record stops every batch carrying an id of its second.
func repairIDs(args []string, stdout, stderr io.Writer) error {
	r, closeRelay, asJSON, err := openWholeRead("relayd repair-ids", "usage: relayd repair-ids -data DIR [-json]\n       relayd repair-ids -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] [-verify-max-mib N] [-json]\n\n"+
		"Rebuilds each span of the facilities' item id records that relayd verify names (id_records):\n"+
		"what its records still hold, then the ids the items log holds of it. A damaged record stops\n"+
		"every batch carrying an id of its second until it is rebuilt. With -data the relay must be\n"+
		"stopped; with -store the gateways may keep running.", "print what was rebuilt as JSON", args, stderr)
	if err != nil {
		return err
	}
	defer closeRelay()
	rep, err := r.RepairItemIDs()
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return fmt.Errorf("print what was rebuilt: %w", err)
		}
		return nil
	}
	if !rep.ByFacility {
		_, err := fmt.Fprintln(stdout, "item id records: none on this store, which keeps item ids in item_ids: nothing to repair")
		return err
	}
	if len(rep.Spans) == 0 {
		_, err := fmt.Fprintln(stdout, "item id records: nothing to repair")
		return err
	}
	for _, s := range rep.Spans {
		if _, err := fmt.Fprintf(stdout, "facility %s, span %s rebuilt (%s): %d entries kept, %d recovered from the items log\n",
			s.Facility, s.Span, s.Why, s.Kept, s.Recovered); err != nil {
			return err
		}
	}
	return nil
}
