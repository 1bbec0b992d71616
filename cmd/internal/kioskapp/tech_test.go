package kioskapp

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/ui"
)

// TestTechnicianAdaptersCarryNoSecret drives kioskd's own wiring of the technician area
// (pumpDevices, uiDeviceEvent, techWiring.ports) with real simulated devices on ptys: the live
// test view sees the card read and each key's kind, never a digit or the PIN, and the port
// list offers the configured devices. (ui's tests wire the area with stand-ins; these are the
// adapters a facility runs.)
func TestTechnicianAdaptersCarryNoSecret(t *testing.T) {
	reader, err := sim.NewBadgeReader(badge.EM4100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() }) // after kioskd stopped (cleanups run last first)
	pad, err := sim.NewPinPad()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pad.Close() })
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	seedMaria(t, data)
	cfg := Config{Mode: ModeKiosk, Devices: []DeviceConfig{
		{Name: "badge reader", Role: device.RoleBadge, Path: reader.Path(), Framing: badge.EM4100},
		{Name: "PIN pad", Role: device.RolePinPad, Path: pad.Path()},
	}}
	a, err := Open(Options{DataDir: data, Config: cfg, Logf: t.Logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})

	var mu sync.Mutex
	var seen []ui.DeviceEvent
	a.tech.deps().DeviceEvents(ctx, func(ev ui.DeviceEvent) { mu.Lock(); seen = append(seen, ev); mu.Unlock() })
	events := func() []ui.DeviceEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	testwait.Until(t, "the devices connected", func() bool {
		for _, s := range a.devs.States() {
			if !s.Connected() {
				return false
			}
		}
		return true
	})
	if err := reader.Present("0004198231"); err != nil {
		t.Fatal(err)
	}
	if err := pad.TypePIN("2468"); err != nil {
		t.Fatal(err)
	}
	keys := func(evs []ui.DeviceEvent) int {
		n := 0
		for _, ev := range evs {
			if ev.Kind == "key" {
				n++
			}
		}
		return n
	}
	testwait.UntilSaw(t, "the card and five keys in the live view", func() (bool, string) {
		evs := events()
		badges := slices.IndexFunc(evs, func(ev ui.DeviceEvent) bool { return ev.Kind == "badge" })
		return badges >= 0 && keys(evs) >= 5, fmt.Sprintf("%+v", evs)
	})
	for _, ev := range events() {
		switch {
		case ev.Kind == "badge" && (ev.Device != "badge reader" || ev.ID != "0004198231"):
			t.Errorf("badge event %+v, want the card 0004198231 from the badge reader", ev)
		case ev.Kind == "key" && ev.Key != "digit" && ev.Key != "enter":
			t.Errorf("key event %+v names more than the key's kind", ev)
		case ev.Kind == "pin":
			t.Errorf("a PIN event reached the live view: %+v", ev)
		}
		// Everything the event shows but its time, whose digits can hold the PIN's by chance
		// (13:06:32.824682597 does).
		shown := ev
		shown.At = time.Time{}
		if s := fmt.Sprintf("%+v", shown); strings.ContainsAny(ev.Key+ev.Reason, "2468") || strings.Contains(s, "2468") {
			t.Errorf("a digit of the PIN reached the live view: %s", s)
		}
	}

	ports, err := a.tech.deps().Ports()
	if err != nil {
		t.Logf("listing the machine's serial ports: %v (the configured ones must be offered anyway)", err)
	}
	for _, want := range []string{reader.Path(), pad.Path()} {
		if !slices.ContainsFunc(ports, func(p ui.PortInfo) bool { return p.Path == want }) {
			t.Errorf("ports %+v do not offer the configured %s", ports, want)
		}
	}
}
