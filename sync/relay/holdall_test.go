package relay

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
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
	// The holder lists what it acknowledged at once, its projector's clock standing still.
	if items, err := e.r.Items(ItemFilter{TerminalID: k.id}); err != nil || len(items) != 3 {
		t.Fatalf("the holder lists %d of the kiosk's 3 items it acknowledged (%v)", len(items), err)
	}

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
		t.Fatalf("a facility log with two gateways, none its own: %v, want it refused naming facility_log", err)
	}
}

// holdsNow reports whether e's relay holds facility now: claimed, and not taken since.
func holdsNow(e *env, facility string) bool {
	hf := e.r.held.of(facility)
	if hf == nil || !isDone(hf.ready) {
		return false
	}
	e.r.held.mu.Lock()
	h := hf.holding
	e.r.held.mu.Unlock()
	return h != nil && !isDone(h.Store().Deposed())
}

// Gateways of one store, each given the facility log, hold their home facilities: every
// facility is held by its home gateway alone, which the kv state names its holder, once the
// gateways have heard every gateway listed or been up for a lapse (one listed never starts
// here, so nothing is claimed at the first beat: each would take itself for the home of
// facilities not its own). A gateway that stops lets its facilities go, and the other, their
// home now, holds them.
func TestGatewaysHoldTheirHomeFacilities(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := []faclog.Log{openFacLog(ctx, t, c, 0), openFacLog(ctx, t, c, 1)}
	n := 0
	// A third gateway listed that never starts: the two cannot have heard every gateway, so
	// they wait a lapse before they claim.
	clk, gw, urls, _ := homeGatewaysOn(t, c, func(cfg *Config) {
		cfg.FacilityLog = logs[n]
		n++
		cfg.Gateways = append(slices.Clip(cfg.Gateways), "http://127.0.0.1:1")
	})
	// Facilities enough that each gateway is the home of two: homes are a hash of the
	// facility's name and the gateway's URL, whose port is new each run.
	var facilities []string
	homes := map[string]int{}
	for i := 0; homes[urls[0]] < 2 || homes[urls[1]] < 2; i++ {
		f := fmt.Sprintf("unit-%d", i)
		home := urls[0]
		if homeRank(f, urls[1]) > homeRank(f, urls[0]) {
			home = urls[1]
		}
		homes[home]++
		facilities = append(facilities, f)
		if err := gw[0].r.PutPolicy(f, kiosk.DefaultPolicy()); err != nil {
			t.Fatal(err)
		}
	}
	// The first beat, before the gateways were up for a lapse: nothing claimed.
	beats := make(chan struct{}, 2)
	for _, e := range gw {
		e.r.hooks.holdBeat = func() { beats <- struct{}{} }
	}
	clk.Advance(holdBeat)
	for range gw {
		select {
		case <-beats:
		case <-ctx.Done():
			t.Fatal("no beat")
		}
	}
	for _, e := range gw {
		e.r.hooks.holdBeat = nil
		for _, f := range facilities {
			if holdsNow(e, f) {
				t.Fatalf("%s holds %s before the gateways were up for a lapse", e.cfg.GatewayURL, f)
			}
		}
	}
	hearEachOther(t, clk, gw, urls, false)
	// byHome says how each facility stands: "" once its home alone holds it and the kv state
	// names it so.
	byHome := func(live []int) string {
		for _, f := range facilities {
			home := gw[live[0]].r.homes.of(f, false)
			var holders []string
			for _, i := range live {
				if holdsNow(gw[i], f) {
					holders = append(holders, urls[i])
				}
			}
			var rec holdRecord
			if err := gw[live[0]].r.view("read the holder", func(tx kv.Tx) error {
				_, err := getJSON(tx, bHolds, f, &rec)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(holders) != 1 || holders[0] != home || rec.Holder != home {
				return fmt.Sprintf("%s: home %s, held by %v, recorded %q", f, home, holders, rec.Holder)
			}
		}
		return ""
	}
	held := func(what string, live ...int) {
		t.Helper()
		testwait.UntilSaw(t, what, func() (bool, string) {
			saw := byHome(live)
			if saw != "" {
				clk.Advance(holdBeat)
			}
			return saw == "", saw
		})
	}
	held("each facility held by its home", 0, 1)
	gone := 0
	if gw[1].r.homes.of(facilities[0], false) == urls[1] {
		gone = 1
	}
	gw[gone].close()
	held("every facility held by the gateway left", 1-gone)
}
