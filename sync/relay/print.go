package relay

import (
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Prints: a kiosk charges a print job only once its printer reported the job completed
// (kiosk/print.go), as a charge item whose record id is vocab.PrintRecordID(job id) and whose
// pages say what it paid for. A failed job never reaches the relay: the kiosk gives the held
// price back itself, so the relay refuses any credit of a print record. The relay does not
// take the kiosk's word for the price: it records a print charge only for 1..max_print_pages
// pages of its own policy for the kiosk's facility, at exactly pages x its own page price.
// A refused charge comes back on the kiosk (a credit it writes and does not forward), like a
// refused stamp, so a price the relay does not know is never charged.

// checkPrint decides a new print charge c under the facility's policy pol ("" lets it
// through). A resent charge the relay holds already was let through before, whatever the
// policy says now.
func checkPrint(pol vocab.Policy, c vocab.Charge) string {
	if !vocab.IsPrintRecord(c.RecordID) || len(c.RecordID) == len(vocab.PrintRecordPrefix) ||
		c.SessionID != "" || c.Minute != 0 || c.MessageID != "" {
		return wire.RefuseInvalid
	}
	cost, err := pol.PrintCost(c.Pages)
	if err != nil {
		return wire.RefusePrintPages
	}
	if c.Cents != cost || cost <= 0 {
		// A free job (price 0) writes no charge on the kiosk: one that arrives is not the rule.
		return wire.RefusePrintPrice
	}
	return ""
}
