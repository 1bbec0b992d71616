package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Held facilities (docs/SCALE.md, "A status report on a held facility" and "The second
// writer"). A gateway that holds a facility (faclog.Hold) commits its terminals' batches and
// acknowledgements on the facility's held state, one log entry a group commit, through a
// committer of its own; the kv state follows by the holding's projection. The hello's
// positions are read from the held state too, since the kv state is behind it.
//
// The console's calls go to the facility's writer too (updateFor, updateAt), or do what they
// would do to a held facility's records after their kv transaction, through its writer
// (fanoutdue.go); a deposit and a refund are two transactions (depositdue.go, refunddue.go).
// A held transaction writes the state's records written once (a PREA report, a letter's index)
// or on a condition (a terminal's contact request or removal) under the facility, due to the
// state (statedue.go). What remains before a gateway may hold its facilities (moves between
// held facilities are refused) is listed in SCALE.md ("What remains before a gateway may hold
// a facility"): until then only tests call holdFacility.

// heldFacility is one facility this relay holds.
type heldFacility struct {
	facility string
	holding  *faclog.Holding
	rec      holdRecord // what names this relay the holder in the kv state (heldelsewhere.go)
	writes   *committer
	nums     *itemNumbers
	// members are the facility's terminals and inmates as the kv state listed them at the
	// claim (fac_terms, fac_revoked, fac_inmates), and the terminals found since (ours): the
	// scope's owners. others are terminals found in other facilities (an inmate may come here
	// later). Under mu.
	mu      sync.Mutex
	members map[ownerKind]map[string]bool
	others  map[string]bool
	// placed reads a terminal's or an inmate's facility from the state's records ("" for
	// none).
	placed func(kind ownerKind, id string) (string, error)
	// released is closed when this relay lets the facility go (releaseFacility).
	released chan struct{}
	// ready is closed once the claim stood (holding and writes set) or failed (they stay
	// nil, and the hold is out of the relay's set). Until then the facility counts as held
	// (a kv-path call defers what it would do to it), and its writes and reads wait.
	ready chan struct{}
}

// ours says whether the facility holds owner id's records: an owner listed at the claim, or a
// terminal or inmate the state's records place in the facility. A terminal enrolled while the
// facility is held is the state's record first (Enroll's first half), then the holder's to
// write (SCALE.md, "The second writer"); its facility never changes, so the answer is kept
// either way. An inmate put on the roster since the claim is likewise: an inmate moves between
// facilities only where no relay holds either (PutRoster refuses it otherwise), and one taken
// off the roster is forgotten (forget).
func (hf *heldFacility) ours(kind ownerKind, id string) bool {
	hf.mu.Lock()
	known, other := hf.members[kind][id], kind == terminalRecords && hf.others[id]
	hf.mu.Unlock()
	if known || other || hf.placed == nil {
		return known
	}
	facility, err := hf.placed(kind, id)
	if err != nil || facility == "" {
		return false // unknown yet, or unreadable now: asked again next time
	}
	hf.mu.Lock()
	defer hf.mu.Unlock()
	if facility != hf.facility {
		if kind == terminalRecords { // an inmate may come here later, by a roster put here
			if hf.others == nil {
				hf.others = map[string]bool{}
			}
			hf.others[id] = true
		}
		return false
	}
	hf.members[kind][id] = true
	return true
}

// forget takes inmate id off the facility's owners: a roster put took them off its roster.
func (hf *heldFacility) forget(id string) {
	hf.mu.Lock()
	defer hf.mu.Unlock()
	delete(hf.members[inmateRecords], id)
}

// testHooks are points a test may stop the relay at, to order what it races; nil in use.
type testHooks struct {
	// beforeClaimBarrier is called as holdFacility waits for the kv writes under way.
	beforeClaimBarrier func()
	// stateDrain is asked before a drain of facility's state_due; false leaves it undrained
	// (a crash between an entry and its drain).
	stateDrain func(facility string) bool
	// holdBeat is called as a beat of holding the facilities ends (holdall.go).
	holdBeat func()
	// dueDrain is asked before a drain of facility's fan-outs due; false leaves them
	// undrained (a holder that stopped before it drained them).
	dueDrain func(facility string) bool
}

// holdSet is the facilities a relay holds.
type holdSet struct {
	mu sync.Mutex
	m  map[string]*heldFacility
	// claiming is the facilities a holdFacility is claiming now: a second claim of one waits
	// for none, it is refused.
	claiming map[string]bool
}

// empty says whether the relay holds no facility (the common case, and every relay's today).
func (s *holdSet) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m) == 0
}

// facilities is the facilities held here, sorted.
func (s *holdSet) facilities() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

// standing is how many facilities are held here with a claim that stood (tether_facilities_held).
func (s *holdSet) standing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, hf := range s.m {
		if hf.writes != nil {
			n++
		}
	}
	return n
}

// of is facility's hold, or nil.
func (s *holdSet) of(facility string) *heldFacility {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[facility]
}

// holdFacility claims facility's log in l and serves its terminals' batches and
// acknowledgements on its held state from now on. A claim of a facility this relay holds, or
// is claiming now, is refused: the claim takes network round trips, and the hold is entered
// once it stands.
func (r *Relay) holdFacility(ctx context.Context, l faclog.Log, facility, holder string, o faclog.HoldOptions) (*heldFacility, error) {
	hf, err := r.claimFacility(ctx, l, facility, holder, o)
	if err != nil {
		return nil, err
	}
	// What an earlier holder's entries wrote of the state's records and did not drain (it
	// stopped in between) is written now.
	if err := r.drainStateDue(facility); err != nil {
		r.logf("relay: hold facility %s: write the state's records due: %v (written later)", facility, err)
	}
	return hf, nil
}

// claimFacility is holdFacility up to the hold's standing.
func (r *Relay) claimFacility(ctx context.Context, l faclog.Log, facility, holder string, o faclog.HoldOptions) (*heldFacility, error) {
	r.held.mu.Lock()
	if r.held.claiming[facility] {
		r.held.mu.Unlock()
		return nil, fmt.Errorf("hold facility %s: being claimed already", facility)
	}
	old := r.held.m[facility]
	if old != nil {
		select {
		case <-old.holding.Store().Deposed():
			// Claimed by another gateway since: this claim replaces the one that lost.
		default:
			r.held.mu.Unlock()
			return nil, fmt.Errorf("hold facility %s: held already", facility)
		}
	}
	if r.held.claiming == nil {
		r.held.claiming = map[string]bool{}
	}
	if r.held.m == nil {
		r.held.m = map[string]*heldFacility{}
	}
	hf := &heldFacility{facility: facility, nums: &itemNumbers{block: r.itemNums.block, keep: true, gate: r.numberBlocks}, released: make(chan struct{}),
		ready: make(chan struct{}), members: map[ownerKind]map[string]bool{terminalRecords: {}, inmateRecords: {}}}
	if hf.nums.block <= 1 {
		hf.nums.block = defaultItemNumberBlock // a block of 1 would take its numbers in the held state
	}
	// Entered at once, pending: from here a kv-path call defers what it would do to the
	// facility, and its writes and reads wait for the claim (writerFor, viewFor).
	r.held.claiming[facility] = true
	r.held.m[facility] = hf
	r.held.mu.Unlock()
	defer func() {
		r.held.mu.Lock()
		delete(r.held.claiming, facility)
		if hf.writes == nil && r.held.m[facility] == hf { // failed: as it was before the claim
			if old != nil {
				r.held.m[facility] = old
			} else {
				delete(r.held.m, facility)
			}
		}
		r.held.mu.Unlock()
		close(hf.ready)
	}()
	// The claim's moment: a kv-path call whose transaction ran before the hold was entered may
	// not have committed yet, and the held state must not read what it writes before it
	// lands. Group commit runs calls in order, so once an empty call through the kv committer
	// returns, every such call has committed.
	if h := r.hooks.beforeClaimBarrier; h != nil {
		h()
	}
	if err := r.update("hold facility "+facility, func(kv.Tx, *fanout) error { return nil }); err != nil {
		return nil, fmt.Errorf("hold facility %s: wait for the kv writes under way: %w", facility, err)
	}
	err := r.db.View(ctx, func(tx kv.Tx) error {
		terms, err := listedUnder(tx, []string{facility}, bFacTerms, bFacRevoked)
		if err != nil {
			return err
		}
		inmates, err := listedUnder(tx, []string{facility}, bFacInmates)
		if err != nil {
			return err
		}
		clear(hf.members[terminalRecords])
		clear(hf.members[inmateRecords])
		for _, id := range terms {
			hf.members[terminalRecords][id] = true
		}
		for _, id := range inmates {
			hf.members[inmateRecords][id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hold facility %s: list its terminals and inmates: %w", facility, err)
	}
	hf.placed = func(kind ownerKind, id string) (string, error) {
		ctx, cancel := r.txContext()
		defer cancel()
		var facility string
		err := r.db.View(ctx, func(tx kv.Tx) error {
			var rec struct {
				FacilityID string `json:"facility_id"`
				MovingFrom string `json:"moving_from"`
			}
			root := bTerminals
			if kind == inmateRecords {
				root = bInmates
			}
			_, err := getJSON(tx, root, id, &rec)
			facility = rec.FacilityID
			if rec.MovingFrom != "" {
				facility = "" // the old facility's holder is handing their records over
			}
			return err
		})
		return facility, err
	}
	o.Scope = facilityScope(facility, hf.ours, hf.nums.reserved)
	// The item log's records are read from the kv state, never from the held state
	// (storedItemRaw): kept until the next whole forget they were most of its memory.
	o.WriteOnce = []string{bItems}
	holding, err := faclog.Hold(ctx, l, r.db, facility, holder, o)
	if err != nil {
		return nil, err
	}
	// Other gateways' kv-path calls are refused from here (heldelsewhere.go); one that
	// committed before is in the kv state the held state reads.
	rec := holdRecord{Holder: holder, Term: holding.Term()}
	if err := r.recordHold(facility, rec); err != nil {
		if rerr := holding.Release(ctx); rerr != nil {
			r.logf("relay: hold facility %s: let the claim go: %v", facility, rerr)
		}
		return nil, fmt.Errorf("hold facility %s: record its holder: %w", facility, err)
	}
	r.held.mu.Lock()
	hf.holding, hf.rec = holding, rec
	// Its commits keep the facility's downlink tail (downtail.go) whatever the store: this relay
	// alone writes the facility's downlink while it holds it, and its terminals read it from
	// the tail, not the feed (readDown).
	hf.writes = &committer{facility: facility, db: holding.Store(), ctx: r.ctx, txs: func() { r.writeTxs.Add(1) },
		nums: hf.nums, began: hf.nums.began, ended: hf.nums.ended, applied: r.downTails.committed, ids: r.writes.ids,
		reserve: func(ctx context.Context, n int) error { return hf.nums.reserve(ctx, r.db, n) },
		linger:  r.cfg.GroupLinger, clock: r.clock}
	r.held.mu.Unlock()
	go r.watchDeposed(hf)
	return hf, nil
}

// watchDeposed waits for another gateway to claim hf's facility while this relay holds it. The
// hold stays in place, so that the facility's writes keep going to its committer, which
// refuses them (faclog.ErrDeposed): sent through kv transactions instead they would be a
// second writer beside the new holder. What it appended is the new holder's to project (its
// catch-up). The facility's connections here close with ReasonMoved, so that their terminals
// go where it is held now (its home).
func (r *Relay) watchDeposed(hf *heldFacility) {
	select {
	case <-hf.released:
		return
	case <-hf.holding.Store().Deposed():
	}
	r.logf("relay: facility %s was claimed by another gateway: its terminals' writes here are refused, and its connections close", hf.facility)
	var moving []*session
	r.hub.each(func(s *session) bool {
		if s.facility == hf.facility {
			moving = append(moving, s)
		}
		return true
	})
	for _, s := range moving {
		go s.conn.Close(websocket.StatusGoingAway, wire.ReasonMoved)
	}
}

// releaseFacility lets facility go: what its held state appended is projected into the kv
// state once more, and its writes go through kv transactions again.
func (r *Relay) releaseFacility(ctx context.Context, facility string) error {
	r.held.mu.Lock()
	hf := r.held.m[facility]
	delete(r.held.m, facility)
	r.held.mu.Unlock()
	if hf == nil {
		return fmt.Errorf("release facility %s: not held", facility)
	}
	<-hf.ready
	close(hf.released)
	if hf.holding == nil {
		return nil // a claim that failed: nothing to let go
	}
	if err := hf.holding.Release(ctx); err != nil {
		// Its log may hold what the kv state lacks: the record keeps other gateways'
		// calls off until a relay holds it again.
		return err
	}
	if err := r.forgetHold(facility, hf.rec); err != nil {
		return fmt.Errorf("release facility %s: %w", facility, err)
	}
	return nil
}

// releaseAll lets every held facility go (Close).
func (r *Relay) releaseAll() error {
	r.held.mu.Lock()
	facilities := make([]string, 0, len(r.held.m))
	for f := range r.held.m {
		facilities = append(facilities, f)
	}
	r.held.mu.Unlock()
	var errs []error
	for _, f := range facilities {
		ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
		errs = append(errs, r.releaseFacility(ctx, f))
		cancel()
	}
	return errors.Join(errs...)
}

// writerFor is the committer of facility's writes: its held state's where this relay holds
// it, the kv state's otherwise.
func (r *Relay) writerFor(facility string) *committer {
	if hf := r.ready(facility); hf != nil {
		return hf.writes
	}
	return r.writes
}

// ready is facility's hold once its claim stood, waiting for a claim under way; nil where this
// relay does not hold it (a claim that failed leaves the relay as it was before).
func (r *Relay) ready(facility string) *heldFacility {
	for {
		hf := r.held.of(facility)
		if hf == nil {
			return nil
		}
		<-hf.ready
		r.held.mu.Lock()
		writes := hf.writes
		r.held.mu.Unlock()
		if writes != nil {
			return hf
		}
	}
}

// viewFor reads facility's records as they stand: from its held state where this relay holds
// it (the kv state is behind it by the projection), from the kv state otherwise.
func (r *Relay) viewFor(facility, op string, fn func(tx kv.Tx) error) error {
	hf := r.ready(facility)
	if hf == nil {
		return r.view(op, fn)
	}
	ctx, cancel := r.txContext()
	defer cancel()
	return ioErr(op, hf.holding.Store().View(ctx, fn))
}

// viewOfInmate reads inmate's records as they stand, as viewFor does a facility's: from the
// held state of the inmate's facility where this relay holds it (one read more, to find the
// facility, and none on a relay that holds nothing).
func (r *Relay) viewOfInmate(inmateID, op string, fn func(tx kv.Tx) error) error {
	if r.held.empty() {
		return r.view(op, fn)
	}
	var facility string
	if err := r.view(op, func(tx kv.Tx) error {
		var in inmateRec
		if ok, err := getJSON(tx, bInmates, inmateID, &in); err != nil || !ok {
			return err
		}
		// While the inmate's records are handed over, their old facility's holder has them.
		facility = cmp.Or(in.MovingFrom, in.FacilityID)
		return nil
	}); err != nil {
		return err
	}
	return r.viewFor(facility, op, fn)
}

// viewsFor reads facilities' records as they stand, as viewFor does one's: fn is called for
// those this relay does not hold (all of them if facilities is nil: every facility, from the
// kv state) in a view of the kv state, and for each it holds in a view of its held state,
// each time with the facilities it is to read; done is called after each view, once what fn
// read in it stands (a view may run fn again).
func (r *Relay) viewsFor(facilities []string, op string, fn func(tx kv.Tx, facilities []string) error, done func()) error {
	return r.viewsVia(r.view, facilities, op, fn, done)
}

// viewsVia is viewsFor with the facilities not held here read through read (view, or
// staleView for a page a person looks at).
func (r *Relay) viewsVia(read func(op string, fn func(tx kv.Tx) error) error, facilities []string, op string, fn func(tx kv.Tx, facilities []string) error, done func()) error {
	var rest, held []string
	for _, f := range facilities {
		if r.held.of(f) != nil {
			held = append(held, f)
		} else {
			rest = append(rest, f)
		}
	}
	if facilities == nil || len(rest) > 0 {
		if err := read(op, func(tx kv.Tx) error { return fn(tx, rest) }); err != nil {
			return err
		}
		done()
	}
	for _, f := range held {
		if err := r.viewFor(f, op, func(tx kv.Tx) error { return fn(tx, []string{f}) }); err != nil {
			return err
		}
		done()
	}
	return nil
}

// updateFor is update for a call that writes facility's records ("" for a call that writes
// only the state's): on facility's held state where this relay holds it, in a kv
// transaction otherwise (SCALE.md, "The second writer"). A call routed to a held state that
// writes the state's records too is refused faclog.ErrNotHeld: such a call is two, the
// state's transaction and then the facility's.
func (r *Relay) updateFor(facility, op string, fn func(tx kv.Tx, f *fanout) error) error {
	w := r.writerFor(facility)
	if w == r.writes {
		fn = r.fenced(facility, fn)
	}
	return r.updateOn(w, op, nil, 0, fn)
}

// errPlacedElsewhere: the owner a routed call writes for is in another facility than the one
// it was routed by (moved meanwhile); updateAt routes it again.
var errPlacedElsewhere = errors.New("relay: the owner is in another facility now")

// placeTries bounds how often updateAt routes a call again after its owner moved: a roster
// moving the same inmate back and forth each time is a fight updateAt leaves to the caller.
const placeTries = 4

// updateAt is updateFor for a call whose facility is that of one owner (an inmate, a
// terminal), which place reads from the state's records: once before the call, to route it,
// and again inside it, where another answer (the owner moved meanwhile) runs the call again on
// its new facility's writer. fn is told the facility. An owner place finds in no facility is
// written for "" (in a kv transaction), as before.
func (r *Relay) updateAt(op string, place func(tx kv.Tx) (string, error), fn func(tx kv.Tx, f *fanout, facility string) error) error {
	var err error
	for range placeTries {
		var facility string
		if err = r.view(op, func(tx kv.Tx) error {
			var perr error
			facility, perr = place(tx)
			return perr
		}); err != nil {
			return err
		}
		err = r.updateFor(facility, op, func(tx kv.Tx, f *fanout) error {
			now, err := place(tx)
			if err != nil {
				return err
			}
			if now != facility {
				return errPlacedElsewhere
			}
			return fn(tx, f, facility)
		})
		if !errors.Is(err, errPlacedElsewhere) {
			return err
		}
	}
	return ioErr(op, fmt.Errorf("moved between facilities %d times while being written: %w", placeTries, err))
}
