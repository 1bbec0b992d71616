package kioskapp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
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

// The reporter looks again every healthEvery of the terminal's clock: a reader unplugged
// between two looks is reported at the next one, and not before.
func TestHealthLooksOnTheTerminalsClock(t *testing.T) {
	st, err := kiosk.OpenStore(t.TempDir(), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	state := status.DeviceConnected
	h := &healthReporter{term: term, store: st, clock: clk, software: Software, logf: t.Logf,
		devices: func() []status.Device {
			mu.Lock()
			defer mu.Unlock()
			return []status.Device{{Name: "badge reader", Role: "badge", State: state}}
		}}
	count := func() int {
		items, err := st.Pending(0, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.Kind == kiosk.ItemDeviceStatus {
				n++
			}
		}
		return n
	}
	armed := clk.Timers() // the terminal's own, if any
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	clk.WaitTimers(armed + 1) // the first look is made and the next one armed
	if n := count(); n != 1 {
		t.Fatalf("%d reports at start, want 1", n)
	}
	mu.Lock()
	state = status.DeviceDisconnected
	mu.Unlock()
	clk.Advance(healthEvery - time.Second)
	if n := count(); n != 1 {
		t.Fatalf("%d reports before the next look, want 1", n)
	}
	clk.Advance(time.Second)
	testwait.UntilSaw(t, "the unplugged reader reported at the next look", func() (bool, string) {
		n := count()
		return n == 2, fmt.Sprint(n, " reports")
	})
}
