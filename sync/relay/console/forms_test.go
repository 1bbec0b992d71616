package console

import (
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

func TestParseCents(t *testing.T) {
	good := map[string]kiosk.Cents{"12.50": 1250, "12.5": 1250, "12": 1200, "$0.07": 7, " 3.00 ": 300, "0": 0}
	for in, want := range good {
		if got, err := parseCents(in); err != nil || got != want {
			t.Errorf("parseCents(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "12.", ".5", "1.234", "-1", "+1", "1e3", "12,50", "ten", "99999999", "1.-5", "1.+5"} {
		if got, err := parseCents(in); err == nil {
			t.Errorf("parseCents(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseCurfew(t *testing.T) {
	ws, err := parseCurfew("Mon 22:00-06:00\n\nsat 23:30 - 07:00\n")
	if err != nil || len(ws) != 2 || ws[0].Weekday != 1 || ws[0].Start != "22:00" || ws[1].Weekday != 6 || ws[1].End != "07:00" {
		t.Fatalf("parseCurfew: %+v %v", ws, err)
	}
	if got := formatCurfew(ws); got != "Mon 22:00-06:00\nSat 23:30-07:00\n" {
		t.Errorf("formatCurfew: %q", got)
	}
	for _, in := range []string{"Mon", "Funday 22:00-06:00", "Mon 22-06", "Mon 25:00-06:00", "Mon 22:00"} {
		if _, err := parseCurfew(in); err == nil || !strings.Contains(err.Error(), "curfew line 1") {
			t.Errorf("parseCurfew(%q): %v, want an error naming the line", in, err)
		}
	}
}

// Whatever a form sends, the parsers never panic, never give negative cents, and what
// parseCurfew accepts comes back the same through formatCurfew.
func FuzzParseCents(f *testing.F) {
	for _, s := range []string{"12.50", "0", "$1.5", "1.", "-3", "9999999.99", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCents(s)
		if err == nil && (c < 0 || c > 999999999) {
			t.Fatalf("parseCents(%q) = %d", s, c)
		}
	})
}

func FuzzParseCurfew(f *testing.F) {
	for _, s := range []string{"Mon 22:00-06:00", "sun 00:00-23:59\nsat 1:00-2:00", "x", "Mon -", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ws, err := parseCurfew(s)
		if err != nil {
			return
		}
		again, err := parseCurfew(formatCurfew(ws))
		if err != nil || len(again) != len(ws) {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
		for i := range ws {
			if ws[i] != again[i] {
				t.Fatalf("round trip of %q: %+v, want %+v", s, again[i], ws[i])
			}
		}
	})
}

// The review queue offers every reason the terminal translates, each with a label for staff.
func TestEveryReviewReasonHasALabel(t *testing.T) {
	got := rejectReasons()
	if len(got) != len(vocab.ReviewReasons()) {
		t.Fatalf("%d reasons offered, want %d", len(got), len(vocab.ReviewReasons()))
	}
	for _, r := range got {
		if reasonLabels[r.Code] == "" || r.Label == r.Code {
			t.Errorf("reason %s has no label", r.Code)
		}
	}
}
