package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A relay given a facility log holds its facilities: one made after Open at the next beat,
// every one at Open. A kiosk's batch of a letter, a charge and a status report then goes
// through the holder: nothing of north's moves in the kv state (the projector's clock is the
// test's, which does not move) until north is let go at Close, after which the kv state holds
// it all and verifies clean. A relay with other gateways is refused the log.
func TestARelayWithAFacilityLogHoldsItsFacilities(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openFacLog(ctx, t, c, 1)
	e := newEnv(t, func(cfg *Config) { cfg.FacilityIDs = true; cfg.FacilityLog = l })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	if e.r.held.of("north") != nil {
		t.Fatal("north is held before a beat: it was made after Open")
	}
	beat := make(chan struct{}, 1)
	e.r.hooks.holdBeat = func() { beat <- struct{}{} }
	e.clock.Advance(holdBeat)
	select {
	case <-beat:
	case <-ctx.Done():
		t.Fatal("no beat")
	}
	if hf := e.r.held.of("north"); hf == nil || hf.holding == nil {
		t.Fatalf("north is not held after a beat:\n%s", e.logText())
	}
	wrote := secondWrites(t, e, "north", func() {
		tc := k.connect(t, 0)
		if ack := tc.batch(k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "my tooth hurts")),
			k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
			k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 0})); ack.Seq != 3 || len(ack.Rejected) != 0 {
			t.Fatalf("the kiosk's batch: ack %+v", ack)
		}
		tc.c.CloseNow()
	})
	noSecondWrites(t, wrote)

	e.close() // lets north go: its entries are projected
	e.open()
	if hf := e.r.held.of("north"); hf == nil || hf.holding == nil {
		t.Fatal("north is not held at Open")
	}
	if b, err := e.r.Balance("A1"); err != nil || b.Charges != 5 {
		t.Fatalf("A1's account after a restart: %+v %v, want the 5¢ charge", b, err)
	}
	if mine, err := e.r.Outbound(OutboundFilter{InmateID: "A1"}); err != nil || len(mine) != 1 || mine[0].Status != "delivered" {
		t.Fatalf("A1's letters after a restart: %v %v, want the one, delivered", letterIDs(mine), err)
	}
	verifyClean(t, e)

	cfg := e.cfg
	cfg.DataDir = t.TempDir()
	cfg.Gateways = []string{"https://gw1.example", "https://gw2.example"}
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "facility_log") {
		t.Fatalf("a facility log with two gateways: %v, want it refused naming facility_log", err)
	}
}
