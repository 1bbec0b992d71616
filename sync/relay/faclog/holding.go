package faclog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Holding is a gateway's hold on one facility: its claim on the facility's log, the held
// state over the kv state caught up to that claim, and the projector behind it, stepped every
// HoldOptions.Every. The gateway serves the facility's terminals on Store, and lets go with
// Release when the facility's home moves, or when Store's Deposed says another gateway took
// it.
type Holding struct {
	facility string
	held     *Held
	proj     *Projector
	clock    clock.Clock
	every    time.Duration
	log      *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	forgetEvery, steps int
	writeOnce          [][]byte

	mu      sync.Mutex
	lastErr error // the last step's error; nil once a step went through
}

// HoldOptions are a Holding's settings; the zero value holds everything (Scope) on the real
// clock, projecting every half second in transactions of up to 64 entries, and forgetting
// what is projected every 20 steps.
type HoldOptions struct {
	Scope  Scope
	Clock  clock.Clock
	Every  time.Duration
	PerTx  int
	Logger *slog.Logger
	// ForgetEvery is how many steps pass between two Forgets of the held state: what was
	// not written in that time is read from the kv state again when next used, so a
	// holder's memory is what its facility touched lately.
	ForgetEvery int
	// WriteOnce names root buckets whose keys the facility writes and never reads back (the
	// relay's item log): what of them is projected is forgotten at every step, not every
	// ForgetEvery, so that the held state does not keep records no one reads until then.
	WriteOnce []string
}

// stepTimeout bounds one projector step: a step stuck on a cluster without quorum is tried
// again at the next, and the entries wait in the log meanwhile.
const stepTimeout = 30 * time.Second

// Hold claims facility for holder, catches base up to the claim and starts the projector.
// Until it returns the facility has no writer: its terminals' batches wait (at the holder
// before, they fail ErrDeposed). If the catch-up fails the claim stands with no one serving
// on it; holding the facility again claims it again.
func Hold(ctx context.Context, l Log, base kv.Store, facility, holder string, o HoldOptions) (*Holding, error) {
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.Every <= 0 {
		o.Every = 500 * time.Millisecond
	}
	if o.PerTx <= 0 {
		o.PerTx = 64
	}
	if o.ForgetEvery <= 0 {
		o.ForgetEvery = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := l.Claim(ctx, facility, holder)
	if err != nil {
		return nil, fmt.Errorf("faclog: hold facility %q: %w", facility, err)
	}
	if _, err := CatchUp(ctx, l, base, facility, w.Term(), o.PerTx); err != nil {
		return nil, fmt.Errorf("faclog: hold facility %q: catch the kv state up to the claim at %d: %w", facility, w.Term(), err)
	}
	// The holder before may have deleted a bucket and made it again while this gateway's
	// store kept the old one's marker (kv.MarkerCache); from the claim on, only this holder
	// writes the facility's buckets, so markers read from now on stay true.
	kv.DropCachedMarkers(base)
	held := NewHeld(w, base, o.Scope)
	h := &Holding{facility: facility, held: held, proj: NewProjector(held, o.PerTx), clock: o.Clock, every: o.Every,
		log: o.Logger.With("facility", facility), stop: make(chan struct{}), done: make(chan struct{}), forgetEvery: o.ForgetEvery}
	for _, root := range o.WriteOnce {
		h.writeOnce = append(h.writeOnce, []byte(root))
	}
	timer := o.Clock.NewTimer(o.Every) // armed before Hold returns, so a clock moved after it fires it
	go h.loop(timer)
	return h, nil
}

// Store is the held state, on which the facility's group commits run.
func (h *Holding) Store() *Held { return h.held }

// Term is the claim's term: the fence its writes carry.
func (h *Holding) Term() uint64 { return h.held.w.Term() }

// Behind is how many entries the kv state lacks of what the held state appended.
func (h *Holding) Behind() int { return h.proj.Behind() }

// Err is the last projector step's error, nil once one went through. ErrGap stays until an
// operator looks: the kv state is not the one the log follows.
func (h *Holding) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

func (h *Holding) loop(timer clock.Timer) {
	defer close(h.done)
	defer timer.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.held.Deposed():
			// What it appended before the claim is the new holder's to project (its catch-up).
			return
		case <-timer.C():
		}
		h.step()
		timer.Reset(h.every)
	}
}

func (h *Holding) step() {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	mark, err := h.proj.Step(ctx)
	switch h.steps++; {
	case err == nil && h.steps%h.forgetEvery == 0:
		h.held.Forget(mark)
	case err == nil && len(h.writeOnce) > 0:
		h.held.ForgetRoots(mark, h.writeOnce...)
	}
	h.mu.Lock()
	was := h.lastErr
	h.lastErr = err
	h.mu.Unlock()
	switch {
	case err != nil && (was == nil || was.Error() != err.Error()):
		level := slog.LevelWarn
		if errors.Is(err, ErrGap) {
			level = slog.LevelError
		}
		h.log.Log(ctx, level, "faclog: the kv state is behind the facility's log", "behind", h.Behind(), "err", err)
	case err == nil && was != nil:
		h.log.Info("faclog: the kv state caught up with the facility's log")
	}
}

// ErrInDoubtStill: Flush found a write in doubt after settling (an Update since, whose append
// got no answer): what is projected cannot be forgotten yet. Try again.
var ErrInDoubtStill = errors.New("faclog: a write is in doubt")

// Flush makes the kv state hold everything the held state appended so far and the held state
// forget it: the writes in doubt settled, the projector stepped, and what is projected dropped
// from memory. An owner the facility's scope let go of (a roster move) then has nothing of
// theirs left in the held state, which would read stale if they came back, and the kv state
// holds their records as this holder last wrote them.
func (h *Holding) Flush(ctx context.Context) error {
	mark, err := h.Project(ctx)
	if err != nil {
		return fmt.Errorf("faclog: flush facility %q: %w", h.facility, err)
	}
	if _, settled := h.held.forgetAt(mark); !settled {
		return fmt.Errorf("faclog: flush facility %q: %w", h.facility, ErrInDoubtStill)
	}
	return nil
}

// Project makes the kv state hold everything the held state appended so far, now: the writes
// in doubt settled and the projector stepped. It returns the projector's mark.
func (h *Holding) Project(ctx context.Context) (uint64, error) {
	if err := h.held.Settle(ctx); err != nil {
		return 0, fmt.Errorf("settle: %w", err)
	}
	return h.proj.Step(ctx)
}

// Release stops the projector and projects what the held state appended, once more: the
// gateway that holds the facility next finds its kv state caught up but for what this one
// could not write. The held state must not be written from now on.
func (h *Holding) Release(ctx context.Context) error {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	if _, err := h.proj.Step(ctx); err != nil {
		return fmt.Errorf("faclog: release facility %q: %w", h.facility, err)
	}
	return nil
}
