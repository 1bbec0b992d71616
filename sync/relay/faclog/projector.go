package faclog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Projector keeps the kv state of a held facility behind its log: each Step applies what the
// holder appended since the last (Held.TakeAppended) and then trims the log through the mark
// it reached. Entries it could not apply stay with it, and in the log, for the next Step.
type Projector struct {
	held     *Held
	w        Writer
	store    kv.Store
	facility string

	mu      sync.Mutex // one Step at a time; guards the fields below
	pending []Entry    // taken from the holder, not yet in the kv state
	perTx   int
	mark    uint64 // the kv state's mark, as the last Step left it
}

// NewProjector projects what held appends into the kv state it reads through to. perTx
// bounds the entries of one projection transaction (halved while the store finds one too
// large).
func NewProjector(held *Held, perTx int) *Projector {
	return &Projector{held: held, w: held.w, store: held.base, facility: held.w.Facility(), perTx: max(1, perTx)}
}

// Step projects what is pending and trims the log through the mark. It returns the mark; an
// error says what is still behind and why (ErrGap: the kv state is not the one the log
// follows, and nothing more is applied or trimmed until someone looks).
func (p *Projector) Step(ctx context.Context) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, p.held.TakeAppended()...)
	if len(p.pending) > 0 {
		// A View of the held state reads base for what it has not loaded; it must not see
		// the entries after its state land there meanwhile.
		p.held.projecting.Lock()
		at, perTx, err := ProjectEach(ctx, p.store, p.facility, p.pending, p.perTx)
		p.held.projecting.Unlock()
		p.perTx = perTx
		if at != 0 {
			p.mark = at
			p.pending = dropProjected(p.pending, at)
		}
		if err != nil {
			err = fmt.Errorf("faclog: facility %q: %d entries not projected: %w", p.facility, len(p.pending), err)
			if errors.Is(err, ErrGap) {
				// The held state reads base for what it has not loaded: not from this base.
				p.held.stopAtGap(err)
			}
			return p.mark, err
		}
	}
	if p.mark == 0 {
		return 0, nil
	}
	// Only what the kv state holds is trimmed; Trim itself keeps the log's last entry. The
	// Writer is the holder's, and not safe for use beside its Updates' appends.
	p.held.mu.Lock()
	err := p.w.Trim(ctx, p.mark)
	p.held.mu.Unlock()
	if err != nil && !errors.Is(err, ErrDeposed) {
		return p.mark, fmt.Errorf("faclog: facility %q: projected to %d, not trimmed: %w", p.facility, p.mark, err)
	}
	return p.mark, nil
}

// dropProjected is pending without its entries up to at, which the kv state now holds. The
// slots they leave are cleared, and an empty list let go of: a burst of entries (a facility's
// enrollments) kept their data alive in the slice's array after they were projected, for as
// long as the facility stayed quiet (9 MB of an idle gateway's heap, stop 43).
func dropProjected(pending []Entry, at uint64) []Entry {
	n := 0
	for n < len(pending) && pending[n].Seq <= at {
		n++
	}
	pending = slices.Delete(pending, 0, n) // zeroes the slots past the new end
	if len(pending) == 0 {
		return nil
	}
	return pending
}

// Behind is how many entries the holder appended that the kv state does not hold yet.
func (p *Projector) Behind() int {
	p.mu.Lock()
	n := len(p.pending)
	p.mu.Unlock()
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	return n + len(p.held.appended)
}
