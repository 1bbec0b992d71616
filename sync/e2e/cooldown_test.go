package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestLoweredCooldownLetsTheWaitingIn: Ana logs out of a kiosk and must wait 30 minutes; staff
// lower the facility's cool-down to 5 minutes on the relay; the new policy reaches the kiosk by
// sync and Ana, 6 minutes after her session, is let in without waiting out the old 30.
func TestLoweredCooldownLetsTheWaitingIn(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxSession = kiosk.Duration(24 * time.Hour)
	p.Cooldown = kiosk.Duration(30 * time.Minute)
	p.OfflineSpendCap = 100000
	p.Curfew = nil
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	k := openFakeTerminal(t, clk)
	k.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	k.start()
	k.waitRoster()
	testwait.UntilSaw(t, "the 30-minute cool-down on the kiosk", func() (bool, string) {
		got := k.term.Policy().Cooldown.D()
		return got == 30*time.Minute, fmt.Sprint(got)
	})

	k.login("B1", "1234")
	clk.Advance(40 * time.Second)
	k.term.Touch()
	k.term.Tick()
	if err := k.term.Logout(); err != nil {
		t.Fatal(err)
	}
	end := lastSession(t, k, "A1").End
	clk.Advance(6 * time.Minute)
	if reason, until := refusal(k, "B1"); reason != kiosk.ReasonCooldown || !until.Equal(end.Add(30*time.Minute)) {
		t.Fatalf("6 minutes after logout: %q until %v, want a cool-down until %v", reason, until, end.Add(30*time.Minute))
	}

	p.Cooldown = kiosk.Duration(5 * time.Minute)
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "Ana let in once the lowered cool-down arrives", func() (bool, string) {
		reason, until := refusal(k, "B1")
		return reason == "", fmt.Sprintf("%q until %v", reason, until)
	})
	k.login("B1", "1234")
}
