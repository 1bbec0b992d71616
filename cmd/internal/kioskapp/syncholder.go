package kioskapp

import (
	"context"
	"errors"
	"sync"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/client"
)

// syncHolder owns kioskd's one sync engine: none while the terminal is not enrolled, then the
// one Start made, at start or after a live enrollment, run until Stop. The technician screens
// and the control API ask it for the engine each time, so they see one that started late.
type syncHolder struct {
	cfg    client.Config // client.New's config: the same at start and after a live enrollment
	mode   string        // the mode kioskd runs in (screens built for it)
	logf   kiosk.Logf
	ctx    context.Context // the engine runs until it ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	engine  *client.Engine
	stopped bool
}

func newSyncHolder(parent context.Context, cfg client.Config, mode string, logf kiosk.Logf) *syncHolder {
	ctx, cancel := context.WithCancel(parent)
	return &syncHolder{cfg: cfg, mode: mode, logf: logf, ctx: ctx, cancel: cancel}
}

// Engine is the running engine, or nil before the terminal is enrolled.
func (h *syncHolder) Engine() *client.Engine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engine
}

// Link is the sync link as the screens and the control API show it: the engine's, or the
// zero Link (not enrolled) while none runs.
func (h *syncHolder) Link() status.Link {
	if e := h.Engine(); e != nil {
		return e.Status()
	}
	return status.Link{}
}

// Start makes the engine from the enrollment in the data directory and runs it; once one
// runs it returns that one (started false). After Stop it starts nothing.
func (h *syncHolder) Start() (e *client.Engine, started bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.engine != nil {
		return h.engine, false, nil
	}
	if h.stopped {
		return nil, false, errors.New("sync engine: kioskd is stopping")
	}
	e, err = client.New(h.cfg)
	if err != nil {
		return nil, false, err
	}
	h.engine = e
	// Added under mu, which Stop takes before it waits: no Add races the Wait.
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = e.Run(h.ctx)
	}()
	return e, true, nil
}

// enrolled starts sync after a technician enrolled the running terminal (technician screen
// or `kioskctl enroll`); what cannot change live is said, not hidden.
func (h *syncHolder) enrolled(enr client.Enrollment) {
	_, started, err := h.Start()
	switch {
	case err != nil:
		h.logf("sync: enrolled as %s, but sync did not start: %v", enr.TerminalID, err)
		return
	case !started:
		h.logf("sync: enrolled again as %s; the running sync keeps its enrollment until kioskd restarts", enr.TerminalID)
		return
	}
	h.logf("sync: enrolled as %s in facility %s; sync started", enr.TerminalID, enr.Facility)
	if enr.Mode != h.mode {
		h.logf("sync: enrolled as a %s; the screens stay those of a %s until kioskd restarts", enr.Mode, h.mode)
	}
}

// Stop ends the engine and waits for it; nothing starts after it. Calling it again is harmless.
func (h *syncHolder) Stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}
