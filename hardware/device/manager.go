// Package device runs the kiosk's serial devices: one goroutine per configured port opens
// it, decodes what arrives into events, reconnects with backoff after an unplug, and keeps
// a state a technician can read. Events go to a channel the consumer supplies; the manager
// never waits on it (a full channel drops the event and counts it).
package device

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/hardware/serialport"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
)

// EventKind says what happened.
type EventKind string

// Event kinds.
const (
	EventBadge        EventKind = "badge"        // ID holds the badge id
	EventRejected     EventKind = "rejected"     // Reason says why a frame was rejected
	EventKey          EventKind = "key"          // Key is the kind of key (never its digit); Len the digits held
	EventPIN          EventKind = "pin"          // PIN holds a completed entry, for the login only
	EventPINDropped   EventKind = "pin-dropped"  // a half-typed PIN was dropped; Reason says why
	EventConnected    EventKind = "connected"    // the device was opened
	EventDisconnected EventKind = "disconnected" // the device went away; Reason says how
)

// Event is one thing a device did.
type Event struct {
	Device string
	Kind   EventKind
	At     time.Time   // wall clock, for display
	ID     string      // EventBadge
	Reason string      // EventRejected, EventPINDropped, EventDisconnected
	Key    pinpad.Key  // EventKey; prints as its kind only
	Len    int         // EventKey: digits held after the key
	PIN    *pinpad.PIN // EventPIN; prints redacted; call Reveal in the login, then Wipe
}

// Options for a Manager; zero values give the defaults.
type Options struct {
	// Events receives every event. The manager never blocks on it: when it is full the
	// event is dropped and counted in status.Device.Dropped, so give it room (64 is plenty).
	// The manager does not close it. Nil discards events (states still count).
	Events      chan<- Event
	Clock       clock.Clock                      // nil = real; paces the reconnects, dedupe and PIN expiry
	Logf        func(format string, args ...any) // nil = silent; never given PIN digits
	ReadTimeout time.Duration                    // per read, clamped to 100-500 ms; default 200 ms
	BackoffMin  time.Duration                    // first retry after a failure; default 200 ms
	BackoffMax  time.Duration                    // retry interval cap; default 5 s
}

// Manager owns the configured devices. Create with New, run with Run.
type Manager struct {
	opt  Options
	devs []*dev
	pads []*pinpad.Pad // dropped when any badge is read
}

type dev struct {
	cfg Config
	pad *pinpad.Pad // PIN pads only

	mu    sync.Mutex
	state status.Device
}

// New checks every config and prepares the devices; nothing is opened until Run.
func New(configs []Config, o Options) (*Manager, error) {
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 200 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	m := &Manager{opt: o}
	seen := map[string]bool{}
	for _, c := range configs {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("device %q: name used twice", c.Name)
		}
		seen[c.Name] = true
		d := &dev{cfg: c, state: status.Device{Name: c.Name, Role: c.Role, Path: c.Path, Framing: c.Framing,
			State: status.DeviceDisconnected, Rejected: map[string]uint64{}}}
		if c.Role == RolePinPad {
			km, _ := pinpad.ParseKeyMap(c.KeyMap) // checked by Validate
			d.pad = pinpad.New(pinpad.Options{Clock: o.Clock, KeyMap: km})
			m.pads = append(m.pads, d.pad)
		}
		m.devs = append(m.devs, d)
	}
	return m, nil
}

// Run opens every device and serves them until ctx is done, then closes every port and
// returns; with the read timeout at most 500 ms that takes well under a second.
func (m *Manager) Run(ctx context.Context) error {
	start := m.opt.Clock.Now()
	var wg sync.WaitGroup
	for _, d := range m.devs {
		d.mu.Lock()
		d.state.DisconnectedSince = start
		d.state.LastError = "not opened yet"
		d.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.serve(ctx, d)
		}()
	}
	wg.Wait()
	return nil
}

// States returns every device's state, in config order.
func (m *Manager) States() []status.Device {
	out := make([]status.Device, 0, len(m.devs))
	for _, d := range m.devs {
		out = append(out, d.snapshot())
	}
	return out
}

// State returns one device's state by name.
func (m *Manager) State(name string) (status.Device, bool) {
	for _, d := range m.devs {
		if d.cfg.Name == name {
			return d.snapshot(), true
		}
	}
	return status.Device{}, false
}

func (d *dev) snapshot() status.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state
	s.Rejected = make(map[string]uint64, len(d.state.Rejected))
	for k, v := range d.state.Rejected {
		s.Rejected[k] = v
	}
	return s
}

// serve is the one goroutine that owns d's port: open, read until gone, back off, repeat.
func (m *Manager) serve(ctx context.Context, d *dev) {
	backoff := m.opt.BackoffMin
	everConnected := false
	lastErr := ""
	for ctx.Err() == nil {
		p, err := serialport.Open(d.cfg.portConfig(m.opt.ReadTimeout))
		if err != nil {
			err = openErr(err)
			if !kiosk.Retryable(err) {
				// The same open fails until a technician acts; retry at the slowest pace only,
				// so the fix is still noticed without a restart.
				backoff = m.opt.BackoffMax
			}
			d.mu.Lock()
			d.state.LastError = err.Error()
			d.state.FailedOpens++
			d.state.NextRetry = m.opt.Clock.Now().Add(backoff)
			d.mu.Unlock()
			if err.Error() != lastErr {
				// Log a failure once, not on every retry, so a missing device cannot flood the log.
				if kiosk.Retryable(err) {
					m.opt.Logf("device %q: %v; retrying", d.cfg.Name, err)
				} else {
					m.opt.Logf("device %q: %v; a technician must fix the path or its permissions; retrying every %v", d.cfg.Name, err, backoff)
				}
				lastErr = err.Error()
			}
			m.sleep(ctx, backoff)
			backoff = min(backoff*2, m.opt.BackoffMax)
			continue
		}
		backoff, lastErr = m.opt.BackoffMin, ""
		d.mu.Lock()
		d.state.State, d.state.DisconnectedSince, d.state.LastError = status.DeviceConnected, time.Time{}, ""
		d.state.FailedOpens, d.state.NextRetry = 0, time.Time{}
		if everConnected {
			d.state.Reconnects++
		}
		d.mu.Unlock()
		everConnected = true
		m.opt.Logf("device %q: connected on %s", d.cfg.Name, d.cfg.Path)
		m.emit(d, Event{Kind: EventConnected})

		err = m.readLoop(ctx, d, p)
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if ctx.Err() != nil {
			d.mu.Lock()
			d.state.State, d.state.DisconnectedSince, d.state.LastError = status.DeviceDisconnected, m.opt.Clock.Now(), "shut down"
			d.mu.Unlock()
			return
		}
		reason := "disconnected"
		if err != nil {
			reason = err.Error()
		}
		d.mu.Lock()
		d.state.State, d.state.DisconnectedSince, d.state.LastError = status.DeviceDisconnected, m.opt.Clock.Now(), reason
		d.state.NextRetry = d.state.DisconnectedSince.Add(backoff)
		d.mu.Unlock()
		m.opt.Logf("device %q: %s; retrying", d.cfg.Name, reason)
		m.emit(d, Event{Kind: EventDisconnected, Reason: reason})
		if d.pad != nil && d.pad.Drop() {
			m.emit(d, Event{Kind: EventPINDropped, Reason: "pin pad disconnected"})
		}
		m.sleep(ctx, backoff)
	}
}

// openErr sorts a failed open. A path we may not open, or that is not a serial device (a
// directory, a plain file), stays so until a technician fixes the configuration or the
// permissions; anything else (the device not plugged in yet, busy, an I/O error) may clear.
func openErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTTY):
		return &kiosk.Error{Kind: kiosk.KindRefused, Op: "open device", Err: err}
	}
	return &kiosk.Error{Kind: kiosk.KindTransient, Op: "open device", Err: err}
}

func (m *Manager) sleep(ctx context.Context, d time.Duration) {
	t := m.opt.Clock.NewTimer(d) // on the manager's clock, so tests drive the backoff
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C():
	}
}

// readLoop reads until ctx is done (nil) or the device goes away (the error).
func (m *Manager) readLoop(ctx context.Context, d *dev, p serialport.Port) error {
	var dec badge.Decoder
	var dd dedupe
	if d.cfg.Role == RoleBadge {
		dec, _ = badge.NewDecoder(d.cfg.Framing, d.cfg.badgeOptions()) // checked by Validate
	}
	buf := make([]byte, 256)
	var results []badge.Result
	for ctx.Err() == nil {
		n, err := p.Read(buf)
		if err != nil {
			if errors.Is(err, serialport.ErrDisconnected) {
				return err
			}
			return fmt.Errorf("device %q: %w", d.cfg.Name, err)
		}
		if dec != nil {
			if n > 0 {
				results = dec.Feed(buf[:n], results[:0])
			} else {
				results = dec.Flush(results[:0])
			}
			m.badgeResults(d, dec, &dd, results)
		} else {
			m.padBytes(d, buf[:n])
		}
	}
	return nil
}

// dedupe remembers the last id and when it was last seen; a held card repeats it.
type dedupe struct {
	id   string
	seen time.Duration
	any  bool
}

func (m *Manager) badgeResults(d *dev, dec badge.Decoder, dd *dedupe, results []badge.Result) {
	now := m.opt.Clock.Mono()
	d.mu.Lock()
	d.state.Noise = dec.Noise()
	d.mu.Unlock()
	for _, r := range results {
		if !r.OK() {
			d.mu.Lock()
			d.state.Rejected[string(r.Reason)]++
			d.mu.Unlock()
			m.opt.Logf("device %q: rejected frame: %s", d.cfg.Name, r.Reason)
			m.emit(d, Event{Kind: EventRejected, Reason: string(r.Reason)})
			continue
		}
		// Sliding window: the card counts as held while its repeats keep arriving.
		repeat := dd.any && dd.id == r.ID && now-dd.seen < d.cfg.dedupeWindow()
		dd.id, dd.seen, dd.any = r.ID, now, true
		d.mu.Lock()
		d.state.Accepted++
		if repeat {
			d.state.Duplicates++
		}
		d.mu.Unlock()
		if repeat {
			continue
		}
		m.emit(d, Event{Kind: EventBadge, ID: r.ID})
		for _, pd := range m.devs {
			if pd.pad != nil && pd.pad.Drop() {
				m.emit(pd, Event{Kind: EventPINDropped, Reason: "badge read"})
			}
		}
	}
}

func (m *Manager) padBytes(d *dev, b []byte) {
	for _, c := range b {
		o := d.pad.Press(c)
		switch o.Kind {
		case pinpad.Unknown:
			d.mu.Lock()
			d.state.UnknownBytes++
			d.mu.Unlock()
		case pinpad.Bounced:
			d.mu.Lock()
			d.state.Bounced++
			d.mu.Unlock()
		case pinpad.Pressed:
			d.mu.Lock()
			d.state.Keys++
			d.mu.Unlock()
			m.emit(d, Event{Kind: EventKey, Key: o.Key, Len: o.Len})
			if o.PIN != nil {
				m.emit(d, Event{Kind: EventPIN, PIN: o.PIN})
			}
		}
	}
	if d.pad.Expire() {
		m.emit(d, Event{Kind: EventPINDropped, Reason: "no key for 30 s"})
	}
}

// emit stamps and sends ev without blocking; a full channel drops it and counts the loss.
func (m *Manager) emit(d *dev, ev Event) {
	ev.Device, ev.At = d.cfg.Name, m.opt.Clock.Now()
	d.mu.Lock()
	if ev.Kind != EventConnected && ev.Kind != EventDisconnected && ev.Kind != EventPINDropped {
		d.state.LastEvent, d.state.LastEventKind = ev.At, string(ev.Kind)
	}
	d.mu.Unlock()
	if m.opt.Events == nil {
		return
	}
	select {
	case m.opt.Events <- ev:
	default:
		d.mu.Lock()
		d.state.Dropped++
		d.mu.Unlock()
		if ev.PIN != nil {
			ev.PIN.Wipe() // nobody will ever read it
		}
	}
}
