package kiosk

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Limits of a health report: the relay turns it into metric labels, so a terminal must not
// be able to mint series without end.
const (
	MaxHealthDevices   = 8
	MaxHealthNameBytes = 40
)

// DeviceHealth is one device of the terminal as the relay sees it: no path, no last badge.
type DeviceHealth struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	State string `json:"state"` // "connected", "disconnected" or "unknown"
}

// Health is the body of a device_status item: the terminal's devices, its forwarding queue
// and its build. The relay keeps the newest per terminal, shows it to technicians and
// exports it as metrics.
type Health struct {
	Software     string         `json:"software,omitempty"`
	ItemsWaiting int            `json:"items_waiting"`
	Devices      []DeviceHealth `json:"devices"`
}

// ReportHealth queues h for the relay as a device_status item. Names and states are cut to
// MaxHealthNameBytes and the list to MaxHealthDevices. The caller reports on a change, not
// on a timer: every item is kept by the relay.
func (t *Terminal) ReportHealth(h Health) error {
	const op = "report health"
	if h.ItemsWaiting < 0 {
		return errInvalid(op, "items_waiting %d is negative", h.ItemsWaiting)
	}
	if len(h.Devices) > MaxHealthDevices {
		h.Devices = h.Devices[:MaxHealthDevices]
	}
	devs := make([]DeviceHealth, len(h.Devices))
	for i, d := range h.Devices {
		devs[i] = DeviceHealth{Name: capText(d.Name, MaxHealthNameBytes), Role: capText(d.Role, MaxHealthNameBytes),
			State: capText(d.State, MaxHealthNameBytes)}
	}
	h.Devices = devs
	h.Software = capText(h.Software, 2*MaxHealthNameBytes)
	return t.store.update(op, func(tx *bolt.Tx) error {
		if _, err := enqueue(tx, t.clock.Now(), ItemDeviceStatus, h); err != nil {
			return fmt.Errorf("queue health: %w", err)
		}
		return nil
	})
}
