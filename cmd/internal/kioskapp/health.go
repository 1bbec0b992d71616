package kioskapp

import (
	"context"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
)

// healthEvery is how often kioskd looks at its devices for a change to report.
const healthEvery = 10 * time.Second

// healthReporter queues a device_status item for the relay when the terminal's devices
// change (and once at start): the relay shows the fleet's devices to technicians and exports
// them as metrics. It reports changes only, since the relay keeps every item.
type healthReporter struct {
	term     *kiosk.Terminal
	store    *kiosk.Store
	clock    clock.Clock
	devices  func() []status.Device
	software string
	logf     kiosk.Logf
	last     string // the devices last reported, as compared
	sent     bool
}

// check reports the devices if they changed since the last report.
func (h *healthReporter) check() {
	var devs []kiosk.DeviceHealth
	key := ""
	for _, d := range h.devices() {
		devs = append(devs, kiosk.DeviceHealth{Name: d.Name, Role: d.Role, State: string(d.State)})
		key += d.Name + "\x00" + d.Role + "\x00" + string(d.State) + "\x00"
	}
	if h.sent && key == h.last {
		return
	}
	waiting, _, err := h.store.QueueStats()
	if err != nil {
		h.logf("health: read the queue: %v", err)
		return
	}
	if err := h.term.ReportHealth(kiosk.Health{Software: h.software, ItemsWaiting: waiting, Devices: devs}); err != nil {
		h.logf("health: report failed: %v", err)
		return
	}
	h.last, h.sent = key, true
}

// run checks at once and then every healthEvery of the terminal's clock until ctx ends.
func (h *healthReporter) run(ctx context.Context) {
	h.check()
	t := h.clock.NewTimer(healthEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			h.check()
			t.Reset(healthEvery)
		}
	}
}
