package kiosk

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Health and its limits are shared with the relay (kiosk/vocab), which exports them as metrics.
type (
	DeviceHealth = vocab.DeviceHealth
	Health       = vocab.Health
)

const (
	MaxHealthDevices   = vocab.MaxHealthDevices
	MaxHealthNameBytes = vocab.MaxHealthNameBytes
)

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
