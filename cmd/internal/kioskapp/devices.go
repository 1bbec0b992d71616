package kioskapp

import (
	"context"
	"fmt"
	"sync"

	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/kiosk/status"
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
func (h *deviceHost) States() []status.Device {
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
// restarts the devices with it; save (if set) records the move first, so a restart keeps it.
func (h *deviceHost) Move(ctx context.Context, name, path, framing string, save func(name, path, framing string) error) error {
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
		if err := save(name, path, framing); err != nil {
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

// saveMove records a moved device in the config file as it is on disk now, not as kioskd
// loaded it, so a change made since (kioskctl config set) is kept; the write is atomic.
func saveMove(path, name, port, framing string) error {
	cfg, err := termconfig.Load(path)
	if err != nil {
		return fmt.Errorf("save the move: %w", err)
	}
	found := false
	for i := range cfg.Devices {
		if d := &cfg.Devices[i]; d.Name == name {
			found = true
			d.Path = port
			if d.Role == device.RoleBadge && framing != "" {
				d.Framing = framing
			}
		}
	}
	if !found {
		return fmt.Errorf("save the move: device %q is no longer in %s", name, path)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("save the move: %w", err)
	}
	return cfg.Save(path)
}
