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

// A relay given a facility log (Config.FacilityLog) holds the facilities of its store in it
// (docs/SCALE.md, "The per-facility log"): each group commit of a facility's terminals is
// then one entry of the facility's log, which the holding projects into the kv state, rather
// than the group's kv writes. A relay that is its store's only gateway holds every facility;
// one of several (homes.go) holds its home facilities, and lets one go when its home moves
// to another gateway. A call made through a gateway for a facility another holds is sent
// there (heldelsewhere.go).
//
// A single gateway holds its facilities at Open, before it serves anything; one of several
// first waits to have heard the others (homeLapse), or it would take itself for the home of
// every facility. A facility made since (its first policy or roster) is held at the next beat
// (holdBeat), as is one whose claim failed. One whose hold another process took is left to
// it on a single gateway (a relayd started while this one stops: claimed back, the two would
// take it from each other every beat; watchDeposed logs the loss), and claimed back by its
// home among several. Until a facility is held, its calls go through kv transactions, as on
// any relay.

// holdBeat is how often a relay holding its facilities looks for one it does not hold yet, and
// drains what a failed drain left due to the state.
const holdBeat = 5 * time.Second

// holdTimeout bounds one facility's claim: its catch-up of the kv state included.
const holdTimeout = time.Minute

// errHoldGateways: Config.FacilityLog with other gateways and no URL of its own among them.
var errHoldGateways = errors.New("a relay holding its facilities among other gateways holds its home facilities, and needs its own URL for that")

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
	homesOn := r.homes.on()
	if homesOn && !r.homes.heardAll() && r.clock.Mono()-r.holding.since < homeLapse {
		// Until it has heard the live gateways (every one, or for a lapse), a gateway would
		// take itself for the home of every facility, and claim them from the others.
		return 0, nil
	}
	var claim []string
	var errs []error
	for _, facility := range facilities {
		mine := !homesOn || r.homes.of(facility, false) == r.cfg.GatewayURL
		if hf := r.held.of(facility); hf != nil {
			<-hf.ready
			if hf.holding != nil {
				deposed := isDone(hf.holding.Store().Deposed())
				switch {
				case mine && !deposed:
					continue // held here
				case !homesOn && deposed:
					continue // taken by another process, which keeps it
				case !mine:
					// Its home is another gateway now (one came back, or this one's view
					// changed): let go, its log projected, for the home to claim; or, taken
					// already, its calls sent there (heldelsewhere.go).
					if err := r.releaseFacility(ctx, facility); err != nil && !deposed {
						errs = append(errs, fmt.Errorf("let facility %s go to its home: %w", facility, err))
					} else if !deposed {
						r.logf("relay: let facility %s go to its home gateway", facility)
					}
					continue
				}
				// Taken by another gateway while this one is its home: claimed back. Two
				// gateways whose views of the live ones differ take it from each other at
				// their beats until the views agree, a few seconds.
			}
		}
		if mine && !r.holding.logApart(facility) {
			claim = append(claim, facility)
		}
	}
	// Several claims at once: under load a claim waits for the kv committer's group in
	// flight and catches the facility's log up, a second or more, and a gateway that took
	// over another's facilities, or started while terminals poured in, served them on kv
	// transactions for as long as one claim after another took.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		next = make(chan string)
	)
	for range min(claimsAtOnce, len(claim)) {
		wg.Go(func() {
			for facility := range next {
				hctx, cancel := context.WithTimeout(ctx, holdTimeout)
				_, err := r.holdFacility(hctx, r.cfg.FacilityLog, facility, r.holder(), faclog.HoldOptions{Clock: r.clock, Every: projectEvery})
				cancel()
				mu.Lock()
				switch {
				case errors.Is(err, faclog.ErrGap):
					r.holding.setApart(facility)
					r.logf("relay: facility %s is not held: %v; it is served by kv transactions until the gateways are stopped, "+
						"relayd faclog-reset is run and they are started again (docs/OPERATIONS.md)", facility, err)
				case err != nil:
					errs = append(errs, fmt.Errorf("facility %s: %w", facility, err))
				default:
					n++
				}
				mu.Unlock()
				if err == nil {
					r.logf("relay: holding facility %s in its log", facility)
				}
			}
		})
	}
	for _, facility := range claim {
		next <- facility
	}
	close(next)
	wg.Wait()
	return n, errors.Join(errs...)
}

// projectEvery is how often a held facility's projector writes what its log took into the kv
// state. Measured (tetherload, two gateways, the default mix; SCALE.md, stop 39): every 500 ms
// a batch cost 1,878 µs of the machine's CPU, every 2 s 1,438 and every 5 s 1,265. A longer
// interval writes a key that several entries wrote once, and forgets the held state less
// often (faclog's ForgetEvery counts steps), so it reads back less; it keeps more in memory
// (the gateways' peak RSS 485, 649 and 806 MiB) and leaves the kv state further behind, which
// another gateway's console lists and a new holder's catch-up read. Two seconds is the middle.
const projectEvery = 2 * time.Second

// claimsAtOnce bounds the claims a beat makes at once.
const claimsAtOnce = 8

// holdLoop is a relay's beats of holding its facilities. Its context ends at Close, before
// the facilities are let go, and Close waits for a beat under way (wg).
type holdLoop struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	timer  clock.Timer // the next beat, under mu
	// since is when the holding began (the monotonic clock): with homes, nothing is claimed
	// before the gateways were heard (holdEvery).
	since time.Duration
	// apart are the facilities whose log does not follow the kv state (faclog.ErrGap at
	// their claim: a restore of one without the other, a log made again), under mu. They are
	// not claimed again by this process: each claim would append to the log and fail the same
	// way, and they are served by kv transactions until an operator runs relayd faclog-reset
	// and starts the gateways again.
	apart map[string]bool
}

// logApart is whether facility's log was found apart from the kv state.
func (h *holdLoop) logApart(facility string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.apart[facility]
}

// setApart records that facility's log was found apart from the kv state.
func (h *holdLoop) setApart(facility string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.apart == nil {
		h.apart = map[string]bool{}
	}
	h.apart[facility] = true
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// startHolding holds every facility, then beats (Open, with Config.FacilityLog).
func (r *Relay) startHolding() {
	r.holding.ctx, r.holding.cancel = context.WithCancel(r.ctx)
	r.holding.since = r.clock.Mono()
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
