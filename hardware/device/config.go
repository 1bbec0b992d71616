package device

import (
	"fmt"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/hardware/serialport"
)

// Roles a device can play.
const (
	RoleBadge  = "badge"
	RolePinPad = "pinpad"
)

// DefaultDedupeWindow: a reader repeats a held card; the same id within this is one event.
const DefaultDedupeWindow = 2 * time.Second

// Config describes one configured device.
type Config struct {
	Name     string // shown to technicians and in events; unique
	Role     string // "badge" or "pinpad"
	Path     string // prefer /dev/serial/by-id/..., which survives replugging
	Baud     int    // default 9600
	DataBits int    // default 8
	Parity   string // "N" (default), "E" or "O"
	StopBits int    // default 1

	// Badge readers.
	Framing      string        // em4100, wiegand26, magstripe or line
	IDFormat     string        // em4100: decimal (default) or hex; wiegand26: fc-card (default) or card
	Prefix       string        // line: stripped from each line
	Suffix       string        // line: stripped from each line
	MaxLen       int           // line: longest id, default 64
	DedupeWindow time.Duration // default 2 s

	// PIN pads: overrides of the default key map, byte -> "0".."9", "enter", "backspace",
	// "clear", "cancel" or "ignore".
	KeyMap map[byte]string
}

// Validate reports the first bad field, naming the device and the field.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("device at %q: name is empty", c.Path)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("device %q: %s", c.Name, fmt.Sprintf(format, args...))
	}
	if c.Path == "" {
		return bad("path is empty")
	}
	if err := c.portConfig(0).Check(); err != nil {
		return bad("%v", err)
	}
	if c.DedupeWindow < 0 {
		return bad("dedupe window %v is negative", c.DedupeWindow)
	}
	switch c.Role {
	case RoleBadge:
		if c.Framing == "" {
			return bad("framing is empty (want %s)", strings.Join(badge.Framings(), ", "))
		}
		if err := badge.CheckOptions(c.Framing, c.badgeOptions()); err != nil {
			return bad("%v", err)
		}
		if c.KeyMap != nil {
			return bad("key map applies to PIN pads only")
		}
	case RolePinPad:
		if c.Framing != "" || c.IDFormat != "" || c.Prefix != "" || c.Suffix != "" || c.MaxLen != 0 || c.DedupeWindow != 0 {
			return bad("framing, id format, prefix, suffix, max length and dedupe window apply to badge readers only")
		}
		if _, err := pinpad.ParseKeyMap(c.KeyMap); err != nil {
			return bad("%v", err)
		}
	default:
		return bad("role %q unknown (want badge, pinpad)", c.Role)
	}
	return nil
}

func (c Config) portConfig(readTimeout time.Duration) serialport.Config {
	return serialport.Config{Path: c.Path, Baud: c.Baud, DataBits: c.DataBits, Parity: c.Parity,
		StopBits: c.StopBits, ReadTimeout: readTimeout}
}

func (c Config) badgeOptions() badge.Options {
	return badge.Options{IDFormat: c.IDFormat, Prefix: c.Prefix, Suffix: c.Suffix, MaxLen: c.MaxLen}
}

func (c Config) dedupeWindow() time.Duration {
	if c.DedupeWindow == 0 {
		return DefaultDedupeWindow
	}
	return c.DedupeWindow
}
