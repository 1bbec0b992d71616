package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/kiosk/status"
)

// kioskctl status names a terminal clock that is off the relay's by more than
// status.ClockOffsetShown, and which way; a small offset is not worth a line.
func TestStatusNamesAClockOffTheRelays(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		offset time.Duration
		want   string
	}{
		{time.Minute, ""},
		{-(5*time.Hour + 29*time.Second), "clock 5h0m0s ahead of the relay's"},
		{26 * time.Minute, "clock 26m0s behind the relay's"},
	} {
		st := control.Status{Enrolled: true, TerminalID: "t-1", Kioskd: "running"}
		st.Relay.Sync = &status.Link{Enrolled: true, Connected: true, LastSuccess: now, ClockOffset: c.offset}
		var b strings.Builder
		if err := printStatus(&b, st, now); err != nil {
			t.Fatal(err)
		}
		out := strings.Join(strings.Fields(b.String()), " ") // the columns' padding aside
		if c.want == "" && strings.Contains(out, "clock") || c.want != "" && !strings.Contains(out, c.want) {
			t.Errorf("offset %v: status reads %q; want %q", c.offset, out, c.want)
		}
	}
}
