package vocab

import (
	"strings"
	"testing"
)

// A policy with bad print fields is refused naming the field, and PrintCost applies the
// policy's page limit and price: the one rule both the terminal and the relay use.
func TestPrintPolicy(t *testing.T) {
	for _, tc := range []struct {
		json, field string
	}{
		{`{"print_page_price_cents": -1}`, "print_page_price_cents"},
		{`{"print_page_price_cents": 101}`, "print_page_price_cents"},
		{`{"max_print_pages": -1}`, "max_print_pages"},
		{`{"max_print_pages": 101}`, "max_print_pages"},
	} {
		_, err := ParsePolicy([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		}
	}
	p, err := ParsePolicy([]byte(`{"print_page_price_cents": 15, "max_print_pages": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := p.PrintCost(3); err != nil || c != 45 {
		t.Errorf("3 pages at 15: %v, %v; want 45", c, err)
	}
	for _, pages := range []int{0, -1, 4} {
		if _, err := p.PrintCost(pages); err == nil || KindOf(err) != KindInvalid {
			t.Errorf("%d pages of at most 3: %v, want invalid", pages, err)
		}
	}
	p.MaxPrintPages = 0
	if _, err := p.PrintCost(1); err == nil || !strings.Contains(err.Error(), "off") {
		t.Errorf("printing off: %v", err)
	}
	p.PrintPagePrice, p.MaxPrintPages = 0, 2
	if c, err := p.PrintCost(2); err != nil || c != 0 {
		t.Errorf("free printing: %v, %v", c, err)
	}
	if !IsPrintRecord(PrintRecordID("j1")) || IsStampRecord(PrintRecordID("j1")) {
		t.Error("a print record id is a print's and not a stamp's")
	}
}
