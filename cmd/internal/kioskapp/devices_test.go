package kioskapp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/testwait"
)

// A technician moves the badge reader to another port and framing: the move is saved in
// the config file, the devices restart on it, and the new reader's cards are read.
func TestMoveDeviceSavesAndRestarts(t *testing.T) {
	a, err := sim.NewBadgeReader(badge.EM4100)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sim.NewBadgeReader(badge.Wiegand26)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	events := make(chan device.Event, 64)
	h, err := newDeviceHost([]device.Config{{Name: "reader", Role: device.RoleBadge, Path: a.Path(), Framing: badge.EM4100}},
		device.Options{Events: events, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.Run(ctx)
	defer h.Stop()

	path := filepath.Join(t.TempDir(), "kioskd.json")
	cfg := Config{Mode: ModeKiosk, Devices: []DeviceConfig{{Name: "reader", Role: device.RoleBadge, Path: a.Path(), Framing: badge.EM4100}}}
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	// A change made in the file after kioskd loaded it (kioskctl config set) must survive the move.
	edited, err := cfg.Set("screen.language", "es")
	if err != nil {
		t.Fatal(err)
	}
	if err := edited.Save(path); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	save := func(name, p, framing string) error { return saveMove(path, name, p, framing) }

	if err := h.Move(ctx, "reader", b.Path(), "barcode", save); err == nil || !strings.Contains(err.Error(), "framing") {
		t.Fatalf("bad framing: %v", err)
	}
	if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
		t.Fatalf("a refused move changed the config file: %v\n%s", err, after)
	}
	if err := h.Move(ctx, "door", b.Path(), "", save); err == nil {
		t.Fatal("moved a device that is not configured")
	}
	if err := h.Move(ctx, "reader", b.Path(), badge.Wiegand26, save); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := saved.Devices[0]; d.Path != b.Path() || d.Framing != badge.Wiegand26 {
		t.Fatalf("saved device = %+v", d)
	}
	if saved.Screen.Language != "es" {
		t.Fatalf("the move overwrote a change made in the file since start: %+v", saved.Screen)
	}
	testwait.Until(t, "the moved reader connected", func() bool {
		s := h.States()
		return len(s) == 1 && s[0].Connected() && s[0].Path == b.Path()
	})
	if err := b.Present("123-45678"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Kind == device.EventBadge {
				if ev.ID != "123-45678" {
					t.Fatalf("badge %q", ev.ID)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no badge from the moved reader")
		}
	}
}
