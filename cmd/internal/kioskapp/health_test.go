package kioskapp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
)

// TestHealthReportedOnChange: kioskd queues a device_status item for the relay at start and
// when a device comes or goes, not at every look: the relay keeps each item.
func TestHealthReportedOnChange(t *testing.T) {
	st, err := kiosk.OpenStore(t.TempDir(), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	devs := []status.Device{{Name: "badge reader", Role: "badge", Path: "/dev/ttyUSB0", State: status.DeviceConnected}}
	h := &healthReporter{term: term, store: st, devices: func() []status.Device { return devs }, software: Software, logf: t.Logf}
	reports := func() []kiosk.Health {
		t.Helper()
		items, err := st.Pending(0, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var out []kiosk.Health
		for _, it := range items {
			if it.Kind != kiosk.ItemDeviceStatus {
				continue
			}
			var hl kiosk.Health
			if err := json.Unmarshal(it.Body, &hl); err != nil {
				t.Fatal(err)
			}
			out = append(out, hl)
		}
		return out
	}
	h.check()
	h.check()
	if r := reports(); len(r) != 1 || len(r[0].Devices) != 1 || r[0].Devices[0].State != "connected" || r[0].Software != Software {
		t.Fatalf("after two looks: %+v, want one report of the connected reader", r)
	}
	devs = []status.Device{{Name: "badge reader", Role: "badge", Path: "/dev/ttyUSB0", State: status.DeviceDisconnected}}
	h.check()
	h.check()
	r := reports()
	if len(r) != 2 || r[1].Devices[0].State != "disconnected" || r[1].ItemsWaiting != 1 {
		t.Fatalf("after the reader went: %+v, want a second report, disconnected, with the first waiting", r)
	}
	// The relay needs the name, role and state, not where the device is plugged in.
	if raw, _ := json.Marshal(r); strings.Contains(string(raw), "/dev/") {
		t.Fatalf("a report carries a device path: %s", raw)
	}
}
