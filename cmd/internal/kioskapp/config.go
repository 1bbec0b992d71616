package kioskapp

import "github.com/tether-kiosk/tether/cmd/internal/termconfig"

// kioskd's configuration file is defined once, in termconfig, which kioskctl shares to show,
// edit and check it; these names keep kioskd's code short.
type (
	Config       = termconfig.Config
	RelayConfig  = termconfig.RelayConfig
	DeviceConfig = termconfig.DeviceConfig
	ScreenConfig = termconfig.ScreenConfig
	Duration     = termconfig.Duration
)

// Modes a terminal runs in.
const (
	ModeKiosk  = termconfig.ModeKiosk
	ModeTablet = termconfig.ModeTablet
)

// LoadConfig reads and validates the config file at path.
func LoadConfig(path string) (Config, error) { return termconfig.Load(path) }
