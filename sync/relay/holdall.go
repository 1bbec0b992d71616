package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A relay given a facility log (Config.FacilityLog) holds every facility of its store in it
// (docs/SCALE.md, "The per-facility log"): each group commit of a facility's terminals is
// then one entry of the facility's log, which the holding projects into the kv state, rather
// than the group's kv writes. The relay must be the store's only gateway: a
// console call made through another gateway would write the records of a facility this one
// holds beside it (SCALE.md, "What remains before a gateway may hold a facility"), so Open
// refuses a facility log with more than one gateway.
//
// The facilities are held at Open, before the relay serves anything, and a facility made
// since (its first policy or roster) at the next beat (holdBeat), as is one whose claim
// failed. One whose hold another process took (a relayd started while this one stops) is
// left to it: claimed back, two processes would take it from each other every beat
// (watchDeposed logs the loss). Until a facility is held, its calls go through kv
// transactions, as on any relay.

// holdBeat is how often a relay holding its facilities looks for one it does not hold yet, and
// drains what a failed drain left due to the state.
const holdBeat = 5 * time.Second

// holdTimeout bounds one facility's claim: its catch-up of the kv state included.
const holdTimeout = time.Minute

// errHoldGateways: Config.FacilityLog with other gateways.
var errHoldGateways = errors.New("a relay holding its facilities must be its store's only gateway")

// holder is this relay's name in the facility log's claims.
func (r *Relay) holder() string {
	if r.cfg.GatewayURL != "" {
		return r.cfg.GatewayURL
	}
	return "relay"
}

// holdEvery holds each facility of the store this relay does not hold, or whose claim
// failed; it says how many it holds now that it did not before.
func (r *Relay) holdEvery(ctx context.Context) (int, error) {
	var facilities []string
	if err := r.view("list the facilities to hold", func(tx kv.Tx) error {
		facilities = facilities[:0]
		return forEachRaw(tx, bFacilities, "", func(k string, _ []byte) bool {
			facilities = append(facilities, k)
			return true
		})
	}); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, facility := range facilities {
		if hf := r.held.of(facility); hf != nil {
			<-hf.ready
			if hf.holding != nil {
				continue // held here, or taken by another process, which keeps it
			}
		}
		hctx, cancel := context.WithTimeout(ctx, holdTimeout)
		_, err := r.holdFacility(hctx, r.cfg.FacilityLog, facility, r.holder(), faclog.HoldOptions{Clock: r.clock})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("facility %s: %w", facility, err))
			continue
		}
		r.logf("relay: holding facility %s in its log", facility)
		n++
	}
	return n, errors.Join(errs...)
}

// holdLoop is a relay's beats of holding its facilities. Its context ends at Close, before
// the facilities are let go, and Close waits for a beat under way (wg).
type holdLoop struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	timer  clock.Timer // the next beat, under mu
}

// startHolding holds every facility, then beats (Open, with Config.FacilityLog).
func (r *Relay) startHolding() {
	r.holding.ctx, r.holding.cancel = context.WithCancel(r.ctx)
	if _, err := r.holdEvery(r.holding.ctx); err != nil {
		r.logf("relay: hold the facilities: %v (tried again in %s)", err, holdBeat)
	}
	r.holding.mu.Lock()
	defer r.holding.mu.Unlock()
	r.holding.wg.Add(1)
	r.holding.timer = r.clock.AfterFunc(holdBeat, r.holdingBeat)
}

// holdingBeat holds the facilities made since, and writes what failed drains left due.
func (r *Relay) holdingBeat() {
	defer r.holding.wg.Done()
	ctx := r.holding.ctx
	if ctx.Err() != nil {
		return
	}
	if _, err := r.holdEvery(ctx); err != nil && ctx.Err() == nil {
		r.logf("relay: hold the facilities: %v (tried again in %s)", err, holdBeat)
	}
	if err := r.finishStateDue(); err != nil && ctx.Err() == nil {
		r.logf("relay: write the state's records due: %v (tried again in %s)", err, holdBeat)
	}
	r.holding.mu.Lock()
	if ctx.Err() == nil {
		r.holding.wg.Add(1)
		r.holding.timer = r.clock.AfterFunc(holdBeat, r.holdingBeat)
	}
	r.holding.mu.Unlock()
	if h := r.hooks.holdBeat; h != nil {
		h()
	}
}

// stopHolding ends the beats and waits for one under way (Close, before the facilities are let
// go).
func (r *Relay) stopHolding() {
	if r.holding.cancel == nil {
		return
	}
	r.holding.cancel()
	r.holding.mu.Lock()
	if r.holding.timer != nil && r.holding.timer.Stop() {
		r.holding.wg.Done() // the beat that will not run
	}
	r.holding.mu.Unlock()
	r.holding.wg.Wait()
}
