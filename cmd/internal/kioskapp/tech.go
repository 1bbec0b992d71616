package kioskapp

import (
	"context"
	"errors"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/serialport"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/ui"
)

// techWiring is what the technician area reaches beyond the domain (ui.TechDeps).
type techWiring struct {
	termDir string
	term    *kiosk.Terminal
	syncs   *syncHolder // its engine is nil until the terminal is enrolled
	relay   RelayConfig
	devs    *deviceHost
	feed    *ui.DeviceFeed
	logf    kiosk.Logf
	ctx     context.Context                        // the devices run until it ends
	save    func(name, path, framing string) error // records a moved device in the config file (nil: demo)
}

func (w *techWiring) deps() ui.TechDeps {
	d := ui.TechDeps{
		LinkStatus:   w.syncs.Link,
		Devices:      w.devs.States,
		DeviceEvents: w.feed.Subscribe,
		Ports:        w.ports,
		Framings:     badge.Framings(),
		Enroll:       w.enroll,
		SetDevice:    w.setDevice,
		SyncNow:      w.syncNow, // set even unenrolled: a live enrollment starts an engine
	}
	return d
}

func (w *techWiring) syncNow() {
	if e := w.syncs.Engine(); e != nil {
		e.SyncNow()
	} else {
		w.logf("technician: sync now: this terminal is not enrolled")
	}
}

// ports lists the machine's serial ports, and the configured paths that are not under /dev
// (the demo's simulated devices).
func (w *techWiring) ports() ([]ui.PortInfo, error) {
	list, err := serialport.List()
	configs := w.devs.Configs()
	out := make([]ui.PortInfo, 0, len(list)+len(configs))
	seen := map[string]bool{}
	for _, e := range list {
		out = append(out, ui.PortInfo{Path: e.Path, Resolved: e.Resolved})
		seen[e.Path] = true
	}
	for _, c := range configs {
		if !seen[c.Path] {
			out = append(out, ui.PortInfo{Path: c.Path, Resolved: c.Path})
			seen[c.Path] = true
		}
	}
	return out, err
}

// enroll runs client.Enroll; the code is never logged. Sync starts with the new enrollment
// right away.
func (w *techWiring) enroll(ctx context.Context, relayURL, code string) (ui.EnrollInfo, error) {
	var tr client.Transport
	if t := w.relay.Transport(); t != nil {
		tr = *t
	}
	e, err := client.Enroll(ctx, client.EnrollConfig{DataDir: w.termDir, RelayURL: relayURL, Code: code,
		Transport: tr, Terminal: w.term, Software: Software})
	if err != nil {
		var ee *client.EnrollError
		if errors.As(err, &ee) {
			w.logf("technician: enrollment refused by the relay: %s", ee.Code)
		} else {
			w.logf("technician: enrollment failed")
		}
		return ui.EnrollInfo{}, err
	}
	w.logf("technician: enrolled as %s in facility %s (%s)", e.TerminalID, e.Facility, e.Mode)
	w.syncs.enrolled(e)
	return ui.EnrollInfo{TerminalID: e.TerminalID, Facility: e.Facility, Mode: e.Mode}, nil
}

// setDevice moves a device to another port (and framing), saves the config and restarts the
// devices; the error names what was wrong and changes nothing.
func (w *techWiring) setDevice(name, path, framing string) error {
	if err := w.devs.Move(w.ctx, name, path, framing, w.save); err != nil {
		w.logf("technician: move device %q: %v", name, err)
		return err
	}
	w.logf("technician: device %q now on %s", name, path)
	return nil
}

// uiDeviceEvent is a device event for the technician's live test view: a key's kind, never
// its digit, and never a PIN.
func uiDeviceEvent(ev device.Event) ui.DeviceEvent {
	out := ui.DeviceEvent{Device: ev.Device, Kind: string(ev.Kind), At: ev.At, ID: ev.ID, Reason: ev.Reason}
	if ev.Kind == device.EventKey {
		out.Key = ev.Key.Kind()
	}
	return out
}
