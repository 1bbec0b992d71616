package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/ui"
	"github.com/tether-kiosk/tether/ui/i18n"
	"github.com/tether-kiosk/tether/ui/keypad"
)

// uiLoop stands in for Fyne's UI goroutine under the test driver: one goroutine runs
// every queued function in order, as fyne.Do would.
type uiLoop struct {
	q    chan func()
	done chan struct{}
}

func newUILoop(t *testing.T) *uiLoop {
	l := &uiLoop{q: make(chan func(), 4096), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for f := range l.q {
			f()
		}
	}()
	t.Cleanup(func() { close(l.q); <-l.done })
	return l
}

func (l *uiLoop) do(f func()) { l.q <- f }

func (l *uiLoop) doWait(f func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	l.q <- func() { defer wg.Done(); f() }
	wg.Wait()
}

// A card on the serial reader and a PIN on the serial PIN pad log Maria in: the real
// simulators write frames into ptys, the device manager decodes them, pumpDevices hands them
// to the screens, and the window goes welcome -> PIN -> notice -> home.
func TestSerialLoginReachesTheScreens(t *testing.T) {
	a := test.NewTempApp(t)
	st, err := kiosk.OpenStore(t.TempDir(), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub := &screenHub{}
	clk := clock.NewReal()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clk, OnEvent: hub.event, PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := term.UpsertInmate(kiosk.Inmate{ID: "A100001", Name: "Maria Lopez", Badges: []string{"0004198231"},
		PINHash: hash, Language: "es", Status: kiosk.StatusActive, Messaging: true}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := term.Deposit("A100001", 1200, "dep-1"); err != nil {
		t.Fatal(err)
	}
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	loop := newUILoop(t)
	k, err := ui.New(a, ui.Deps{Domain: term, Clock: clk, Logf: t.Logf, Catalog: cat, Do: loop.do})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	hub.k.Store(k)
	defer hub.k.Store(nil)

	reader, err := sim.NewBadgeReader(badge.EM4100)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pad, err := sim.NewPinPad()
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	events := make(chan device.Event, 64)
	devs, err := device.New([]device.Config{
		{Name: "badge reader", Role: device.RoleBadge, Path: reader.Path(), Framing: badge.EM4100},
		{Name: "PIN pad", Role: device.RolePinPad, Path: pad.Path()},
	}, device.Options{Events: events, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = devs.Run(ctx) }()
	go func() { defer wg.Done(); pumpDevices(ctx, events, k, nil, t.Logf) }()
	defer func() { cancel(); wg.Wait() }()

	scr := newScreens(k.Window(), cat, t.Logf, time.Now(), time.Now(), loop.do, loop.doWait)
	go scr.watch(ctx)
	step := func(screen string) {
		t.Helper()
		if _, err := scr.wait(ctx, screen, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	step("welcome")
	if err := poll(ctx, "the devices to connect", func() bool {
		for _, s := range devs.States() {
			if !s.Connected {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := reader.Present("0004198231"); err != nil {
		t.Fatal(err)
	}
	step("pin")
	if err := pad.TypePIN("2468"); err != nil {
		t.Fatal(err)
	}
	step("notice")
	if err := scr.tap("notice.accept"); err != nil {
		t.Fatal(err)
	}
	step("home")
	if info, ok := term.Active(); !ok || info.InmateID != "A100001" {
		t.Fatalf("active session = %+v, %v", info, ok)
	}
	// A tap on a button that is not on screen is an error, not a silent no-op.
	if err := scr.tap("notice.accept"); err == nil {
		t.Fatal("tapped a button that is not on the home screen")
	}
}

func TestPINPadKeysMapToScreenKeys(t *testing.T) {
	for d := 0; d <= 9; d++ {
		kind, digit, ok := uiKey(pinpad.Key0 + pinpad.Key(d))
		if !ok || kind != keypad.Digit || digit != byte('0'+d) {
			t.Errorf("digit %d -> %v %q %v", d, kind, digit, ok)
		}
	}
	for k, want := range map[pinpad.Key]keypad.Key{pinpad.KeyEnter: keypad.Enter, pinpad.KeyBackspace: keypad.Backspace,
		pinpad.KeyClear: keypad.Clear, pinpad.KeyCancel: keypad.Cancel} {
		if kind, _, ok := uiKey(k); !ok || kind != want {
			t.Errorf("%v -> %v %v, want %v", k, kind, ok, want)
		}
	}
	if _, _, ok := uiKey(pinpad.KeyNone); ok {
		t.Error("KeyNone mapped to a screen key")
	}
}
