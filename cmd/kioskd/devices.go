package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/tether-kiosk/tether/hardware/device"
)

// deviceHost runs the device manager and replaces it when a technician moves a device.
type deviceHost struct {
	opts device.Options

	mu      sync.Mutex
	m       *device.Manager
	configs []device.Config
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

func newDeviceHost(configs []device.Config, opts device.Options) (*deviceHost, error) {
	m, err := device.New(configs, opts)
	if err != nil {
		return nil, err
	}
	return &deviceHost{opts: opts, m: m, configs: configs}, nil
}

// start runs the current manager until stop or the next replace; h.mu held.
func (h *deviceHost) startLocked(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(ctx)
	h.done = make(chan struct{})
	m, done := h.m, h.done
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
}

// Run starts the devices; they run until Stop.
func (h *deviceHost) Run(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.startLocked(ctx)
}

// Stop closes every device and waits for them (each port closes within a read timeout).
func (h *deviceHost) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
}

// States is the running manager's device states.
func (h *deviceHost) States() []device.State {
	h.mu.Lock()
	m := h.m
	h.mu.Unlock()
	return m.States()
}

// Configs is the configuration in force.
func (h *deviceHost) Configs() []device.Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]device.Config(nil), h.configs...)
}

// Move sets device name to path (and framing, for a badge reader), checks the result, and
// restarts the devices with it; save (if set) records it first, so a restart keeps it.
func (h *deviceHost) Move(ctx context.Context, name, path, framing string, save func([]device.Config) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return fmt.Errorf("devices are stopping")
	}
	next := append([]device.Config(nil), h.configs...)
	found := false
	for i := range next {
		if next[i].Name == name {
			found = true
			next[i].Path = path
			if next[i].Role == device.RoleBadge && framing != "" {
				next[i].Framing = framing
			}
		}
	}
	if !found {
		return fmt.Errorf("device %q is not configured", name)
	}
	m, err := device.New(next, h.opts) // validates every device, naming the bad field
	if err != nil {
		return err
	}
	if save != nil {
		if err := save(next); err != nil {
			return err
		}
	}
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
	h.m, h.configs = m, next
	h.startLocked(ctx)
	return nil
}

// saveConfig rewrites the config file at path with devices in place of the old ones
// atomically, so that a crash leaves the old file or the new one.
func saveConfig(path string, cfg Config, devices []device.Config) error {
	cfg.Devices = make([]DeviceConfig, 0, len(devices))
	for _, d := range devices {
		var km map[string]string
		if d.KeyMap != nil {
			km = make(map[string]string, len(d.KeyMap))
			for b, v := range d.KeyMap {
				km[fmt.Sprintf("0x%02x", b)] = v
			}
		}
		cfg.Devices = append(cfg.Devices, DeviceConfig{Name: d.Name, Role: d.Role, Path: d.Path, Baud: d.Baud,
			DataBits: d.DataBits, Parity: d.Parity, StopBits: d.StopBits, Framing: d.Framing, IDFormat: d.IDFormat,
			Prefix: d.Prefix, Suffix: d.Suffix, MaxLen: d.MaxLen, DedupeWindow: Duration(d.DedupeWindow), KeyMap: km})
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return cfg.Save(path)
}
