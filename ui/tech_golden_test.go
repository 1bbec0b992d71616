package ui

import (
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/status"
)

// TestGoldenTechnician renders the technician area's home in English; see assertGolden for
// how to update the goldens after a deliberate change.
func TestGoldenTechnician(t *testing.T) {
	syncs := 0
	h := techHarness(t, TechDeps{
		LinkStatus: func() status.Link {
			return status.Link{Enrolled: true, Connected: false, RelayURL: "wss://relay.example:8443", TerminalID: "term-1",
				Facility: "North Unit", Mode: "kiosk", LastSuccess: start.Add(-12 * time.Minute), Waiting: 42,
				OldestWaiting: start.Add(-11 * time.Minute), LastError: "dial tcp 10.0.0.5:8443: connect: connection refused"}
		},
		SyncNow: func() { syncs++ },
		Devices: func() []status.Device {
			return []status.Device{
				{Name: "door", Role: "badge", Path: "/dev/serial/by-id/usb-FTDI_FT232R_A10K3XJ2-if00-port0", Framing: "em4100",
					State: status.DeviceConnected, Accepted: 128, Rejected: map[string]uint64{"checksum": 2, "too short": 1}, LastEvent: start.Add(-time.Minute)},
				{Name: "pad", Role: "pinpad", Path: "/dev/serial/by-id/usb-Prolific_PL2303-if00-port0",
					State: status.DeviceDisconnected, LastError: "device disconnected", Keys: 512},
			}
		},
		Ports:     func() ([]PortInfo, error) { return nil, nil },
		SetDevice: func(name, path, framing string) error { return nil },
	})
	h.techLogin()
	h.tap("Sync now")
	h.advance(time.Second)
	assertGolden(t, h, "tech_en")
	if syncs != 1 {
		t.Errorf("syncs = %d", syncs)
	}
}
