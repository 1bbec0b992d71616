package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Parsers of the console's form fields: each refuses anything it does not fully understand,
// naming what it expected, so a typo never becomes a different rule.

// parseCents reads "12.50", "12.5", "12" or "$12.50" as cents, refusing anything else.
func parseCents(s string) (vocab.Cents, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	whole, frac, hasFrac := strings.Cut(s, ".")
	bad := fmt.Errorf("amount %q: write dollars and cents, like 12.50", s)
	if whole == "" || len(whole) > 7 || (hasFrac && (len(frac) == 0 || len(frac) > 2)) {
		return 0, bad
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, bad
			}
		}
	}
	switch len(frac) {
	case 0:
		frac = "00"
	case 1:
		frac += "0"
	}
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, bad
	}
	return vocab.Cents(w*100 + f), nil
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// formatCurfew writes curfew windows one a line, as parseCurfew reads them.
func formatCurfew(ws []vocab.CurfewWindow) string {
	var b strings.Builder
	for _, w := range ws {
		name := "?"
		if w.Weekday >= 0 && int(w.Weekday) < len(weekdays) {
			name = strings.ToUpper(weekdays[w.Weekday][:1]) + weekdays[w.Weekday][1:]
		}
		fmt.Fprintf(&b, "%s %s-%s\n", name, w.Start, w.End)
	}
	return b.String()
}

// parseCurfew reads one window a line, "Mon 22:00-06:00" (the weekday the window starts on;
// an end before the start runs past midnight). The policy's own check then validates the times.
func parseCurfew(s string) ([]vocab.CurfewWindow, error) {
	var out []vocab.CurfewWindow
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		day, span, ok := strings.Cut(line, " ")
		start, end, ok2 := strings.Cut(strings.TrimSpace(span), "-")
		wd := -1
		for j, d := range weekdays {
			if strings.EqualFold(day, d) {
				wd = j
			}
		}
		if !ok || !ok2 || wd < 0 {
			return nil, fmt.Errorf("curfew line %d %q: write a weekday and hours, like Mon 22:00-06:00", i+1, line)
		}
		for _, hm := range []string{start, end} {
			if _, err := time.Parse("15:04", strings.TrimSpace(hm)); err != nil {
				return nil, fmt.Errorf("curfew line %d %q: %q is not a time like 22:00", i+1, line, hm)
			}
		}
		out = append(out, vocab.CurfewWindow{Weekday: time.Weekday(wd), Start: strings.TrimSpace(start), End: strings.TrimSpace(end)})
	}
	return out, nil
}
