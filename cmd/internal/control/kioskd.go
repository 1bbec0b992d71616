package control

// This file connects the control API to the terminal's other parts: the sync engine, the
// device manager, the config file and enrollment. kioskd calls Serve; kioskctl calls the
// same functions when no kioskd runs, so both give one answer.

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/client"
)

// ServeOptions are what a running kioskd has.
type ServeOptions struct {
	DataDir    string                  // the terminal's data directory (store, key, enrollment, socket)
	ConfigPath string                  // the config file kioskd loaded ("" in a demo)
	Config     termconfig.Config       // as loaded
	Terminal   *kiosk.Terminal         // required
	Link       func() status.Link      // asked at each status (an engine started by a live enrollment shows too); nil: no sync
	Devices    func() []status.Device  // the device manager's states; nil when kioskd runs no devices
	Logf       kiosk.Logf              // nil = silent
	Software   string                  // the build name sent to the relay at enrollment
	OnEnrolled func(client.Enrollment) // optional: kioskd may start sync after `kioskctl enroll`
}

// Serve starts the control API on DataDir/control.sock; Close the server before the store.
func Serve(o ServeOptions) (*Server, error) {
	if o.Terminal == nil {
		return nil, errors.New("control: terminal is required")
	}
	link, devs := o.Link, o.Devices
	if link == nil {
		link = func() status.Link { return status.Link{} }
	}
	if devs == nil {
		devs = func() []status.Device { return nil }
	}
	return Listen(Options{
		DataDir:  o.DataDir,
		Terminal: o.Terminal,
		Logf:     o.Logf,
		Sources: func() Sources {
			src := StoppedSources(o.DataDir, o.Config)
			src.Link, src.Devices = link, devs
			return src
		},
		Enroll: func(ctx context.Context, actor string, r EnrollRequest) (EnrollResult, error) {
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
func StoppedSources(dataDir string, cfg termconfig.Config) Sources {
	src := Sources{DataDir: dataDir, RelayURL: cfg.Relay.URL, Mode: cfg.Mode}
	if src.RelayURL == "" {
		if e, err := client.LoadEnrollment(dataDir); err == nil {
			src.RelayURL = e.RelayURL
		}
	}
	for _, d := range cfg.Devices {
		src.Configured = append(src.Configured, status.Device{Name: d.Name, Role: d.Role, Path: d.Path, Framing: d.Framing,
			State: status.DeviceUnknown})
	}
	return src
}

// Enroll enrolls the terminal with sync/client's enrollment and audits who did it.
func Enroll(ctx context.Context, dataDir string, term *kiosk.Terminal, actor, software string, r EnrollRequest) (EnrollResult, client.Enrollment, error) {
	if r.RelayURL == "" || r.Code == "" {
		return EnrollResult{}, client.Enrollment{}, &kiosk.Error{Kind: kiosk.KindInvalid, Op: "enroll", Err: errors.New("--relay and --code are required")}
	}
	if r.CAFile != "" && r.PinSHA256 != "" {
		return EnrollResult{}, client.Enrollment{}, &kiosk.Error{Kind: kiosk.KindInvalid, Op: "enroll", Err: errors.New("give --ca or --pin-sha256, not both")}
	}
	e, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dataDir, RelayURL: r.RelayURL, Code: r.Code, Terminal: term,
		Transport: client.Transport{CAFile: r.CAFile, PinSHA256: r.PinSHA256, Insecure: r.Insecure}, Label: r.Label, Software: software})
	if err != nil {
		var ee *client.EnrollError
		if errors.As(err, &ee) {
			err = &kiosk.Error{Kind: kiosk.KindRefused, Op: "enroll", Err: fmt.Errorf("relay refused the code (%s): %s", ee.Code, ee.Message)}
		}
		return EnrollResult{}, client.Enrollment{}, err
	}
	if err := term.RecordAction("enroll", actor, map[string]string{"terminal": e.TerminalID, "facility": e.Facility,
		"mode": e.Mode, "relay": e.RelayURL}); err != nil {
		return EnrollResult{}, e, err
	}
	return EnrollResult{TerminalID: e.TerminalID, Facility: e.Facility, Mode: e.Mode, InmateID: e.InmateID, RelayURL: e.RelayURL}, e, nil
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
