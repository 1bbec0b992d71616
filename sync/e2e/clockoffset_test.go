package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A terminal whose clock runs hours ahead of the relay's learns the relay's time at the
// welcome: technicians see the offset in the link status, and what the terminal destroys by
// date (photo expiry) goes by the earlier of the two clocks.
func TestTerminalLearnsTheRelaysClock(t *testing.T) {
	const behind = 3 * time.Hour
	rl := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, clock: clock.NewFake(time.Now().Add(-behind))}
	if onJetStream() {
		rl.store, rl.flog = jetStore(t)
	}
	rl.open()
	t.Cleanup(rl.stop)
	rl.seed()
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	tm.start()

	var st status.Link
	testwait.UntilSaw(t, "the terminal connected", func() (bool, string) {
		st = tm.eng.Status()
		return st.Connected, fmt.Sprintf("%+v", st)
	})
	if off := st.ClockOffset; off > -behind+time.Minute || off < -behind-time.Minute {
		t.Fatalf("link status clock offset = %v; want about -%v (the terminal ahead)", off, behind)
	}
	agreed, err := tm.term.AgreedNow()
	if err != nil {
		t.Fatal(err)
	}
	if lag := time.Since(agreed); lag < behind-time.Minute || lag > behind+time.Minute {
		t.Fatalf("agreed time is %v behind the terminal's clock; want about %v", lag, behind)
	}
}
