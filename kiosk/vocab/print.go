package vocab

import "strings"

// Printing: an inmate prints a letter or a lesson page on the facility printer and pays
// Policy.PrintPagePrice per page. The terminal holds the price back from the balance (and the
// offline spending cap) while the printer works, and charges it only once the printer reports
// the job completed: a charge whose RecordID is PrintRecordID of the job and whose Pages says
// how many pages it paid for. A job that failed is given back on the terminal before any
// charge is written, so the relay never sees a print refund. The relay takes a print charge
// only at its own policy's price for that many pages, and only within its MaxPrintPages.

// MaxPrintPagePrice refuses absurd page prices (a dollar a page).
const MaxPrintPagePrice Cents = 100

// MaxPrintPagesLimit is the largest max_print_pages a policy may set.
const MaxPrintPagesLimit = 100

// MaxPrintCharge is the largest print charge any policy allows: the bound the relay checks a
// print charge's cents against before it reads the policy.
const MaxPrintCharge = MaxPrintPagePrice * MaxPrintPagesLimit

// PrintRecordPrefix starts the record id of every print charge (and of a terminal's credit
// when the relay refused one).
const PrintRecordPrefix = "print/"

// PrintRecordID is the record id of the charge for print job jobID.
func PrintRecordID(jobID string) string { return PrintRecordPrefix + jobID }

// IsPrintRecord reports whether a charge or credit record id is a print job's.
func IsPrintRecord(recordID string) bool { return strings.HasPrefix(recordID, PrintRecordPrefix) }

// CreditPrintRefused: the terminal gives a print charge back when the relay refused it (the
// relay never took the money: the price or the page count was not its policy's).
const CreditPrintRefused = "print refused"

// PrintsEnabled reports whether the policy lets inmates print at all.
func (p Policy) PrintsEnabled() bool { return p.MaxPrintPages > 0 }

// PrintCost is what a job of pages pages costs under p, or an error naming why it may not
// print: printing off, no pages, or more than max_print_pages. The terminal prices a job with
// it and the relay checks a print charge with it, so both apply one rule.
func (p Policy) PrintCost(pages int) (Cents, error) {
	switch {
	case !p.PrintsEnabled():
		return 0, errInvalid("print", "printing is off at this facility (max_print_pages is 0)")
	case pages < 1:
		return 0, errInvalid("print", "a print job needs at least 1 page, not %d", pages)
	case pages > p.MaxPrintPages:
		return 0, errInvalid("print", "%d pages is more than the %d a job may have", pages, p.MaxPrintPages)
	}
	return p.PrintPagePrice * Cents(pages), nil
}

// validatePrint checks the printing fields; bad names the field.
func (p Policy) validatePrint(bad func(field, format string, args ...any) error) error {
	if p.PrintPagePrice < 0 || p.PrintPagePrice > MaxPrintPagePrice {
		return bad("print_page_price_cents", "%d is outside 0..%d", p.PrintPagePrice, MaxPrintPagePrice)
	}
	if p.MaxPrintPages < 0 || p.MaxPrintPages > MaxPrintPagesLimit {
		return bad("max_print_pages", "%d is outside 0..%d", p.MaxPrintPages, MaxPrintPagesLimit)
	}
	return nil
}
