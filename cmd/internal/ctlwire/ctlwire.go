// Package ctlwire connects the control API (kiosk/control) to the parts only commands may
// import: the sync engine, the device manager, the config file and enrollment. kioskd calls
// Serve; kioskctl calls the same functions when no kioskd runs, so both give one answer.
package ctlwire

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/control"
	"github.com/tether-kiosk/tether/sync/client"
)

// Options are what a running kioskd has.
type Options struct {
	DataDir    string                  // the terminal's data directory (store, key, enrollment, socket)
	ConfigPath string                  // the config file kioskd loaded ("" in a demo)
	Config     termconfig.Config       // as loaded
	Terminal   *kiosk.Terminal         // required
	Engine     func() *client.Engine   // asked at each status: nil (or it returns nil) until the terminal is enrolled
	Devices    DeviceStates            // nil when kioskd runs no devices
	Logf       kiosk.Logf              // nil = silent
	Software   string                  // the build name sent to the relay at enrollment
	OnEnrolled func(client.Enrollment) // optional: kioskd may start sync after `kioskctl enroll`
}

// Serve starts the control API on DataDir/control.sock; Close the server before the store.
func Serve(o Options) (*control.Server, error) {
	if o.Terminal == nil {
		return nil, errors.New("control: terminal is required")
	}
	var devs control.DeviceSource = deviceSource{o.Devices}
	return control.Listen(control.Options{
		DataDir:  o.DataDir,
		Terminal: o.Terminal,
		Logf:     o.Logf,
		Sources: func() control.Sources {
			src := StoppedSources(o.DataDir, o.Config)
			src.Devices = devs
			if o.Engine != nil {
				if e := o.Engine(); e != nil { // an engine started by a live enrollment shows too
					src.Link = engineSource{e}
				}
			}
			return src
		},
		Enroll: func(ctx context.Context, actor string, r control.EnrollRequest) (control.EnrollResult, error) {
			res, enr, err := Enroll(ctx, o.DataDir, o.Terminal, actor, o.Software, r)
			if err == nil && o.OnEnrolled != nil {
				o.OnEnrolled(enr)
			}
			return res, err
		},
		Config: func() (any, error) { return ShowConfig(o.DataDir, o.ConfigPath, o.Config) },
	})
}

// StoppedSources is what a status knows with no kioskd running: the relay from the config or
// the enrollment file, the configured devices (their state unknown).
func StoppedSources(dataDir string, cfg termconfig.Config) control.Sources {
	src := control.Sources{DataDir: dataDir, RelayURL: cfg.Relay.URL, Mode: cfg.Mode}
	if src.RelayURL == "" {
		if e, err := client.LoadEnrollment(dataDir); err == nil {
			src.RelayURL = e.RelayURL
		}
	}
	for _, d := range cfg.Devices {
		src.Configured = append(src.Configured, control.Device{Name: d.Name, Role: d.Role, Path: d.Path})
	}
	return src
}

type engineSource struct{ e *client.Engine }

func (s engineSource) Link() control.Link {
	st := s.e.Status()
	return control.Link{Connected: st.Connected, LastSuccess: st.LastSuccess, LastError: st.LastError}
}

// DeviceStates is what the status needs of the devices: a device.Manager, or kioskd's host
// that restarts one when a technician moves a device.
type DeviceStates interface{ States() []device.State }

type deviceSource struct{ m DeviceStates }

func (s deviceSource) Devices() []control.Device {
	if s.m == nil {
		return nil
	}
	var out []control.Device
	for _, st := range s.m.States() {
		d := control.Device{Name: st.Name, Role: st.Role, Path: st.Path, State: control.DeviceDisconnected,
			LastEvent: st.LastEvent, LastEventKind: string(st.LastEventKind), LastError: st.LastError}
		if st.Connected {
			d.State = control.DeviceConnected
		}
		d.Accepted = st.Accepted + st.Keys
		for _, n := range st.Rejected {
			d.Rejected += n
		}
		out = append(out, d)
	}
	return out
}

// Enroll enrolls the terminal with sync/client's enrollment and audits who did it.
func Enroll(ctx context.Context, dataDir string, term *kiosk.Terminal, actor, software string, r control.EnrollRequest) (control.EnrollResult, client.Enrollment, error) {
	if r.RelayURL == "" || r.Code == "" {
		return control.EnrollResult{}, client.Enrollment{}, &kiosk.Error{Kind: kiosk.KindInvalid, Op: "enroll", Err: errors.New("--relay and --code are required")}
	}
	if r.CAFile != "" && r.PinSHA256 != "" {
		return control.EnrollResult{}, client.Enrollment{}, &kiosk.Error{Kind: kiosk.KindInvalid, Op: "enroll", Err: errors.New("give --ca or --pin-sha256, not both")}
	}
	e, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dataDir, RelayURL: r.RelayURL, Code: r.Code, Terminal: term,
		Transport: client.Transport{CAFile: r.CAFile, PinSHA256: r.PinSHA256, Insecure: r.Insecure}, Label: r.Label, Software: software})
	if err != nil {
		var ee *client.EnrollError
		if errors.As(err, &ee) {
			err = &kiosk.Error{Kind: kiosk.KindRefused, Op: "enroll", Err: fmt.Errorf("relay refused the code (%s): %s", ee.Code, ee.Message)}
		}
		return control.EnrollResult{}, client.Enrollment{}, err
	}
	if err := term.RecordAction("enroll", actor, map[string]string{"terminal": e.TerminalID, "facility": e.Facility,
		"mode": e.Mode, "relay": e.RelayURL}); err != nil {
		return control.EnrollResult{}, e, err
	}
	return control.EnrollResult{TerminalID: e.TerminalID, Facility: e.Facility, Mode: e.Mode, InmateID: e.InmateID, RelayURL: e.RelayURL}, e, nil
}

// Shown is `kioskctl config show`: the file as loaded and what takes effect.
type Shown struct {
	Path          string            `json:"path"`
	Config        termconfig.Config `json:"config"`
	EffectiveMode string            `json:"effective_mode"`
	RelayURL      string            `json:"effective_relay_url"`
}

// ShowConfig is the config answer: the enrollment decides the mode and, unless the file
// overrides it, the relay.
func ShowConfig(dataDir, path string, cfg termconfig.Config) (Shown, error) {
	sh := Shown{Path: path, Config: cfg, EffectiveMode: cfg.Mode, RelayURL: cfg.Relay.URL}
	if e, err := client.LoadEnrollment(dataDir); err == nil {
		sh.EffectiveMode = e.Mode
		if sh.RelayURL == "" {
			sh.RelayURL = e.RelayURL
		}
	} else if !errors.Is(err, client.ErrNotEnrolled) {
		return sh, err
	}
	if sh.EffectiveMode == "" {
		sh.EffectiveMode = termconfig.ModeKiosk
	}
	if sh.Config.Devices == nil {
		sh.Config.Devices = []termconfig.DeviceConfig{}
	}
	return sh, nil
}
