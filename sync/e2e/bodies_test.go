package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// What a real terminal sends meets the documented uplink schemas (wire.CheckUpBody): a login
// and its audit events, a billed session and its end, a contact request, a technician action
// with a detail longer than the audit limit. The relay refuses none of it as invalid.
func TestRealTerminalBodiesMeetSchemas(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	tm := openFakeTerminal(t, clk)
	en := tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()

	tm.login("B1", "1234")
	if _, err := tm.term.AddContact("A1", "Mom", "mom@example.org"); err != nil {
		t.Fatal(err)
	}
	for range 40 { // 80 s: two begun minutes
		clk.Advance(2 * time.Second)
		tm.term.Touch()
		tm.term.Tick()
	}
	if err := tm.term.Logout(); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, 3000)
	for i := range long {
		long[i] = 'x'
	}
	if err := tm.term.RecordAction("config_set", "kioskctl\u0085", map[string]string{"value": string(long), "line\nbreak": "a\u202eb"}); err != nil {
		t.Fatal(err)
	}
	// A PREA report, named and anonymous: the anonymous one has no inmate_id and must still
	// reach the coordinator (the terminal erases its text once the relay answers).
	if _, err := tm.term.SendPREA("A1", "named report"); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.term.SendPREA("", "anonymous report"); err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()

	kinds := map[string]int{}
	testwait.UntilSaw(t, "the session end and audit on the relay", func() (bool, string) {
		items, err := rl.r.Items(relay.ItemFilter{TerminalID: en.TerminalID})
		if err != nil {
			t.Fatal(err)
		}
		kinds = map[string]int{}
		for _, it := range items {
			kinds[it.Kind]++
		}
		return kinds[wire.UpSessionEnd] == 1 && kinds[wire.UpAudit] >= 3 && kinds[wire.UpCharge] >= 2 &&
			kinds[wire.UpPREA] == 2 && kinds[wire.UpContactRequest] == 1, fmt.Sprint(kinds)
	})
	items, _ := rl.r.Items(relay.ItemFilter{TerminalID: en.TerminalID})
	for _, it := range items {
		if err := wire.CheckUpBody(it.Kind, it.Body); err != nil {
			t.Errorf("item %d (%s) breaks its schema: %v\n%s", it.Seq, it.Kind, err, it.Body)
		}
		if it.Refused != "" {
			t.Errorf("item %d (%s) refused %q: %s", it.Seq, it.Kind, it.Refused, it.Body)
		}
	}
	reports, err := rl.r.PREAReports("")
	if err != nil || len(reports) != 2 {
		t.Fatalf("PREA reports on the relay: %v, %d, want 2 (named and anonymous)", err, len(reports))
	}
}
