// Package serialport is the kiosk's only door to serial hardware: a small Port interface
// backed by github.com/tarm/serial, so no other package sees the library, plus port listing.
package serialport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tarm/serial"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// ErrDisconnected is wrapped by Read when the device has gone (unplugged, hung up).
var ErrDisconnected = errors.New("device disconnected")

// Read timeout bounds: without one a read on a quiet device never returns, so the owning
// goroutine can never notice shutdown; above half a second shutdown feels stuck.
const (
	MinReadTimeout     = 100 * time.Millisecond
	MaxReadTimeout     = 500 * time.Millisecond
	DefaultReadTimeout = 200 * time.Millisecond
)

// Config says how to open one port.
type Config struct {
	Path     string
	Baud     int    // default 9600
	DataBits int    // 5..8, default 8
	Parity   string // "N", "E" or "O", default "N"
	StopBits int    // 1 or 2, default 1
	// ReadTimeout is clamped to [MinReadTimeout, MaxReadTimeout]; zero means DefaultReadTimeout.
	ReadTimeout time.Duration
}

// Port is an open serial device. It is meant to be owned by one goroutine:
// that goroutine reads, and closes the port when it is done.
type Port interface {
	// Read returns n > 0 with data, (0, nil) when the read timeout passed without data,
	// or an error wrapping ErrDisconnected once the device is gone; no other outcome.
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	// Close releases the device; it waits for a Read in progress, at most the read timeout.
	Close() error
	// Path is the path the port was opened with.
	Path() string
}

// Normalize fills defaults and clamps the read timeout; it does not check values.
func (c Config) Normalize() Config {
	if c.Baud == 0 {
		c.Baud = 9600
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.Parity == "" {
		c.Parity = "N"
	}
	c.Parity = strings.ToUpper(c.Parity)
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	switch {
	case c.ReadTimeout == 0:
		c.ReadTimeout = DefaultReadTimeout
	case c.ReadTimeout < MinReadTimeout:
		c.ReadTimeout = MinReadTimeout
	case c.ReadTimeout > MaxReadTimeout:
		c.ReadTimeout = MaxReadTimeout
	}
	return c
}

// Check reports the first line setting we cannot open, naming it.
func (c Config) Check() error {
	c = c.Normalize()
	if c.Path == "" {
		return errors.New("path is empty")
	}
	if !validBaud(c.Baud) {
		return fmt.Errorf("baud %d unsupported", c.Baud)
	}
	if c.DataBits < 5 || c.DataBits > 8 {
		return fmt.Errorf("data bits %d unsupported (want 5 to 8)", c.DataBits)
	}
	switch c.Parity {
	case "N", "E", "O":
	default:
		return fmt.Errorf("parity %q unsupported (want N, E or O)", c.Parity)
	}
	if c.StopBits != 1 && c.StopBits != 2 {
		return fmt.Errorf("stop bits %d unsupported (want 1 or 2)", c.StopBits)
	}
	return nil
}

func validBaud(b int) bool {
	switch b {
	case 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
		57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000,
		2000000, 2500000, 3000000, 3500000, 4000000:
		return true
	}
	return false
}

// Open opens the device at cfg.Path with a read timeout always set.
func Open(cfg Config) (Port, error) {
	cfg = cfg.Normalize()
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("open port %s: %w", cfg.Path, err)
	}
	sp, err := serial.OpenPort(&serial.Config{
		Name:        cfg.Path,
		Baud:        cfg.Baud,
		ReadTimeout: cfg.ReadTimeout,
		Size:        byte(cfg.DataBits),
		Parity:      serial.Parity(cfg.Parity[0]),
		StopBits:    serial.StopBits(cfg.StopBits),
	})
	if err != nil {
		return nil, fmt.Errorf("open port %s: %w", cfg.Path, err)
	}
	// The kernel times reads out in real time, so a read's duration is measured in real time
	// too; an injected fake clock here would make every timeout look like a hang-up.
	return &port{sp: sp, cfg: cfg, clk: clock.NewReal()}, nil
}

type port struct {
	sp      *serial.Port
	cfg     Config
	clk     clock.Clock
	fastEOF int // consecutive end-of-file results that came back much sooner than the timeout
}

func (p *port) Path() string { return p.cfg.Path }

func (p *port) Write(b []byte) (int, error) {
	n, err := p.sp.Write(b)
	if err != nil {
		return n, fmt.Errorf("write port %s: %w", p.cfg.Path, err)
	}
	return n, nil
}

func (p *port) Close() error {
	if err := p.sp.Close(); err != nil {
		return fmt.Errorf("close port %s: %w", p.cfg.Path, err)
	}
	return nil
}

func (p *port) Read(b []byte) (int, error) {
	start := p.clk.Mono()
	n, err := p.sp.Read(b)
	took := p.clk.Mono() - start
	if n > 0 {
		p.fastEOF = 0
		return n, nil
	}
	outcome := classify(err, took, p.cfg.ReadTimeout, &p.fastEOF)
	switch outcome {
	case readTimeout:
		// The by-id path vanishes on unplug even when the old descriptor still looks quiet.
		if _, serr := os.Stat(p.cfg.Path); serr != nil && errors.Is(serr, os.ErrNotExist) {
			return 0, fmt.Errorf("read port %s: path gone: %w", p.cfg.Path, ErrDisconnected)
		}
		return 0, nil
	case readRetry:
		return 0, nil
	default:
		if err == nil {
			err = io.EOF
		}
		return 0, fmt.Errorf("read port %s: %w (%w)", p.cfg.Path, ErrDisconnected, err)
	}
}

type readOutcome int

const (
	readTimeout readOutcome = iota // the timeout passed quietly
	readRetry                      // one suspicious early end-of-file: look again before judging
	readGone                       // the device has gone
)

// classify turns a zero-byte read into an outcome. On Linux, tarm's VMIN=0/VTIME read
// reports a timeout as (0, io.EOF); a hung-up tty (unplugged USB adapter, closed pty master)
// also reports (0, io.EOF) but at once, usually after one EIO; so an EOF that comes back
// in well under the timeout twice in a row means the device is gone.
func classify(err error, took, timeout time.Duration, fastEOF *int) readOutcome {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		if took >= timeout/2 {
			*fastEOF = 0
			return readTimeout
		}
		*fastEOF++
		if *fastEOF >= 2 {
			return readGone
		}
		return readRetry
	case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN):
		return readRetry
	default:
		// EIO, ENXIO, ENODEV, a closed file: nothing more will come from this descriptor.
		return readGone
	}
}
