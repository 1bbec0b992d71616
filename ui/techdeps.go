package ui

import (
	"context"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
)

// TechDeps is what the technician area reaches beyond the domain: sync and the serial
// devices, as plain funcs kioskd wires to client.Engine and device.Manager, so ui imports
// neither. A nil func shows "not available" where it would be used. The funcs are called
// off the UI goroutine (on the kiosk's worker) and may block briefly.
type TechDeps struct {
	// LinkStatus is the sync link as it stands (client.Engine.Status; the zero Link while the
	// terminal is not enrolled).
	LinkStatus func() status.Link
	// SyncNow wakes the sync engine (client.Engine.SyncNow).
	SyncNow func()
	// Devices lists the configured devices and their state (device.Manager.States).
	Devices func() []status.Device
	// DeviceEvents sends every device event to send, from any goroutine, until ctx ends
	// (DeviceFeed.Subscribe does this for events kioskd publishes).
	DeviceEvents func(ctx context.Context, send func(DeviceEvent))
	// Ports lists the serial ports a device may be moved to (serialport.List).
	Ports func() ([]PortInfo, error)
	// Framings are the badge framings a reader can be set to (badge.Framings()).
	Framings []string
	// SetDevice moves device name to path with framing ("" for a PIN pad), saves the
	// configuration and restarts the device; the error names what was wrong.
	SetDevice func(name, path, framing string) error
	// Enroll enrolls the terminal with the relay at relayURL using a one-time code
	// (client.Enroll). The code is a secret: the screens never log, show back or audit it.
	Enroll func(ctx context.Context, relayURL, code string) (EnrollInfo, error)
}

// DeviceEvent is one thing a device did, for the live test view. A PIN never travels in
// one: a key event carries the key's kind ("digit", "enter", ...), never which digit.
type DeviceEvent struct {
	Device string
	Kind   string // "badge", "rejected", "key", "pin-dropped", "connected", "disconnected"
	At     time.Time
	ID     string // badge id
	Reason string // why rejected, dropped or disconnected
	Key    string // key kind
}

// PortInfo is a serial port a device can be set to.
type PortInfo struct {
	Path     string // as configured, preferably /dev/serial/by-id/...
	Resolved string // what it points to now
}

// EnrollInfo is what an enrollment gave the terminal.
type EnrollInfo struct {
	TerminalID, Facility, Mode string
}

// TechAudit is the domain's record of technician actions; *kiosk.Terminal satisfies it.
// Without it the technician area offers nothing: no action may go unrecorded.
type TechAudit interface {
	TechnicianAction(techID, action string, detail map[string]string) error
	RecentTechnicianActions(n int) ([]kiosk.AuditEvent, error)
}

var _ TechAudit = (*kiosk.Terminal)(nil)

// DeviceFeed fans device events out to the live test views that subscribe; kioskd publishes
// what the device manager reports and passes Subscribe as TechDeps.DeviceEvents. The zero
// value is ready; it is safe for concurrent use.
type DeviceFeed struct {
	mu   sync.Mutex
	next int
	subs map[int]func(DeviceEvent)
}

// Publish hands ev to every subscriber now; PIN events are never passed on.
func (f *DeviceFeed) Publish(ev DeviceEvent) {
	if ev.Kind == "pin" {
		return
	}
	f.mu.Lock()
	subs := make([]func(DeviceEvent), 0, len(f.subs))
	for _, s := range f.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		s(ev)
	}
}

// Subscribe sends every published event to send until ctx ends.
func (f *DeviceFeed) Subscribe(ctx context.Context, send func(DeviceEvent)) {
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[int]func(DeviceEvent){}
	}
	id := f.next
	f.next++
	f.subs[id] = send
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}()
}

// Subscribers reports how many views listen now (for tests and kioskd's status).
func (f *DeviceFeed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
