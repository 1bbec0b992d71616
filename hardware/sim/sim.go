// Package sim simulates badge readers and PIN pads on pseudo-terminals: it writes the real
// frames of every framing into a pty master, so whatever opens the path it gives (the demo
// kiosk, the tests, kioskctl) runs the real decoders through a real tty.
//
// Each simulator exposes a stable path: a symlink standing for /dev/serial/by-id/...
// that Unplug removes (closing the pty, as pulling the USB adapter does) and Replug points
// at a fresh pty.
package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/tether-kiosk/tether/hardware/badge"
)

// ErrUnplugged is returned by writes to an unplugged simulator.
var ErrUnplugged = errors.New("simulated device is unplugged")

// Options place a simulator; zero values are fine.
type Options struct {
	// Dir holds the stable link, standing for /dev/serial/by-id; "" makes a temporary
	// directory that Close removes.
	Dir string
	// Name is the link's file name; "" picks one after the device kind.
	Name string
	// Badge holds the encoding options (id format, line prefix and suffix) of a badge reader.
	Badge badge.Options
}

// Device is one simulated serial device.
type Device struct {
	mu     sync.Mutex
	dir    string
	ownDir bool
	link   string
	master *os.File // what the simulator writes
	slave  *os.File // held open so the tty and its raw settings survive between opens
}

func newDevice(o Options, defaultName string) (*Device, error) {
	d := &Device{dir: o.Dir}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "tether-sim-")
		if err != nil {
			return nil, fmt.Errorf("sim: make link dir: %w", err)
		}
		d.dir, d.ownDir = dir, true
	}
	name := o.Name
	if name == "" {
		name = defaultName
	}
	d.link = filepath.Join(d.dir, name)
	if err := d.plug(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Path is the stable path to configure, like /dev/serial/by-id/usb-...-if00.
func (d *Device) Path() string { return d.link }

// TTY is the pty slave currently behind Path ("" while unplugged).
func (d *Device) TTY() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.slave == nil {
		return ""
	}
	return d.slave.Name()
}

// plug opens a fresh raw pty and points the link at it; d.mu held or not yet shared.
func (d *Device) plug() error {
	m, s, err := pty.Open()
	if err != nil {
		return fmt.Errorf("sim: open pty: %w", err)
	}
	// A fresh pty is in cooked mode: it would echo, turn CR into LF and hold bytes until
	// a newline before the port under test sets its own mode.
	if err := makeRaw(s); err != nil {
		m.Close()
		s.Close()
		return fmt.Errorf("sim: raw mode on %s: %w", s.Name(), err)
	}
	tmp := d.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		m.Close()
		s.Close()
		return fmt.Errorf("sim: link %s: %w", d.link, err)
	}
	// Rename over the old link so the path never points at nothing once plugged.
	if err := os.Rename(tmp, d.link); err != nil {
		m.Close()
		s.Close()
		return fmt.Errorf("sim: link %s: %w", d.link, err)
	}
	d.master, d.slave = m, s
	return nil
}

func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Write sends raw bytes down the line, as the device would.
func (d *Device) Write(b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.master == nil {
		return ErrUnplugged
	}
	if _, err := d.master.Write(b); err != nil {
		return fmt.Errorf("sim: write %s: %w", d.link, err)
	}
	return nil
}

// Unplug closes the pty, which hangs up whoever has it open, and removes the path.
func (d *Device) Unplug() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unplug()
}

func (d *Device) unplug() error {
	if d.master == nil {
		return nil
	}
	err := errors.Join(d.master.Close(), d.slave.Close())
	d.master, d.slave = nil, nil
	if rerr := os.Remove(d.link); rerr != nil && !os.IsNotExist(rerr) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("sim: unplug %s: %w", d.link, err)
	}
	return nil
}

// Replug brings the device back at the same path on a new pty.
func (d *Device) Replug() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.master != nil {
		return nil
	}
	return d.plug()
}

// Close unplugs the device and removes the directory it made.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.unplug()
	if d.ownDir {
		err = errors.Join(err, os.RemoveAll(d.dir))
		d.ownDir = false
	}
	return err
}

// BadgeReader simulates a badge reader of one framing.
type BadgeReader struct {
	*Device
	framing string
	opt     badge.Options
}

// NewBadgeReader starts a reader of framing with default options; configure its Path.
func NewBadgeReader(framing string) (*BadgeReader, error) {
	return NewBadgeReaderWith(framing, Options{})
}

// NewBadgeReaderWith starts a reader of framing placed and encoded as o says.
func NewBadgeReaderWith(framing string, o Options) (*BadgeReader, error) {
	if err := badge.CheckOptions(framing, o.Badge); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	d, err := newDevice(o, "usb-Tether_Sim_"+framing+"-if00-port0")
	if err != nil {
		return nil, err
	}
	return &BadgeReader{Device: d, framing: framing, opt: o.Badge}, nil
}

// Framing is the reader's framing.
func (r *BadgeReader) Framing() string { return r.framing }

// Frame is the frame this reader sends for id.
func (r *BadgeReader) Frame(id string) ([]byte, error) { return badge.Encode(r.framing, id, r.opt) }

// Present sends one read of id.
func (r *BadgeReader) Present(id string) error {
	f, err := r.Frame(id)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return r.Write(f)
}

// Hold sends id n times, every apart, as a reader does while a card stays on it
// (an RDM6300 repeats about every 50 ms).
func (r *BadgeReader) Hold(id string, n int, every time.Duration) error {
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(every)
		}
		if err := r.Present(id); err != nil {
			return err
		}
	}
	return nil
}

// PresentInvalid sends a bad frame of kind and returns the reason a decoder should give.
func (r *BadgeReader) PresentInvalid(kind badge.Invalid) (badge.Reason, error) {
	f, reason, err := badge.EncodeInvalid(r.framing, kind, r.opt)
	if err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	return reason, r.Write(f)
}

// PinPad simulates a one-byte-per-key PIN pad with the default key map.
// Press and TypePIN are for one goroutine at a time.
type PinPad struct {
	*Device
	// KeyGap is the pause before a key that repeats the previous one, so the pad's
	// debounce does not merge two real presses; default 40 ms.
	KeyGap time.Duration
	last   int
}

// NewPinPad starts a PIN pad; configure its Path.
func NewPinPad() (*PinPad, error) { return NewPinPadWith(Options{}) }

// NewPinPadWith starts a PIN pad placed as o says.
func NewPinPadWith(o Options) (*PinPad, error) {
	d, err := newDevice(o, "usb-Tether_Sim_pinpad-if00-port0")
	if err != nil {
		return nil, err
	}
	return &PinPad{Device: d, KeyGap: 40 * time.Millisecond, last: -1}, nil
}

// Key bytes of the default key map, for Press.
const (
	Enter     byte = '\r'
	Backspace byte = 0x08
	Clear     byte = '*'
	Cancel    byte = 0x1B
)

// Press sends one key byte.
func (p *PinPad) Press(key byte) error {
	if int(key) == p.last {
		time.Sleep(p.KeyGap)
	}
	p.last = int(key)
	return p.Write([]byte{key})
}

// TypePIN presses each digit of pin, then Enter.
func (p *PinPad) TypePIN(pin string) error {
	for i := 0; i < len(pin); i++ {
		if err := p.Press(pin[i]); err != nil {
			return err
		}
	}
	return p.Press(Enter)
}
