package sim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/serialport"
)

// What the sim writes arrives unchanged at whoever opens Path: raw mode, no CR->LF, no echo.
func TestFramesArriveUnchanged(t *testing.T) {
	for _, f := range badge.Framings() {
		r, err := NewBadgeReaderWith(f, Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		p, err := serialport.Open(serialport.Config{Path: r.Path()})
		if err != nil {
			t.Fatal(err)
		}
		id := map[string]string{badge.EM4100: "0000000042", badge.Wiegand26: "001-00042", badge.Magstripe: "42", badge.Line: "42"}[f]
		want, _ := r.Frame(id)
		if err := r.Present(id); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 64)
		for deadline := time.Now().Add(5 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
			n, err := p.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		if string(got) != string(want) {
			t.Errorf("%s: port read %q, sim sent %q", f, got, want)
		}
		p.Close()
		r.Close()
	}
}

func TestUnplugReplugClose(t *testing.T) {
	dir := t.TempDir()
	r, err := NewBadgeReaderWith(badge.Line, Options{Dir: dir, Name: "usb-Reader-if00"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Path() != filepath.Join(dir, "usb-Reader-if00") {
		t.Fatalf("path %s", r.Path())
	}
	if target, err := os.Readlink(r.Path()); err != nil || target != r.TTY() {
		t.Fatalf("link -> %q (%v), want %q", target, err, r.TTY())
	}
	r.Unplug()
	if _, err := os.Lstat(r.Path()); !os.IsNotExist(err) {
		t.Errorf("path still there after unplug: %v", err)
	}
	if err := r.Present("X"); !errors.Is(err, ErrUnplugged) {
		t.Errorf("present while unplugged: %v", err)
	}
	if err := r.Replug(); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(r.Path()); target == "" || target != r.TTY() {
		t.Errorf("after replug link -> %q, tty %q", target, r.TTY())
	}
	r.Close()
	if _, err := os.Lstat(r.Path()); !os.IsNotExist(err) {
		t.Errorf("path still there after close: %v", err)
	}

	// Without a Dir the sim makes its own and removes it.
	r2, err := NewBadgeReader(badge.EM4100)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Dir(r2.Path())
	r2.Close()
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Errorf("own dir %s left behind: %v", d, err)
	}
	if _, err := NewBadgeReader("foo"); err == nil {
		t.Error("unknown framing accepted")
	}
}

func TestPinPadTypesWithGaps(t *testing.T) {
	p, err := NewPinPadWith(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	port, err := serialport.Open(serialport.Config{Path: p.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	typed := make(chan error, 1)
	go func() { typed <- p.TypePIN("1123") }()
	var got []byte
	var at []time.Time
	buf := make([]byte, 1)
	for deadline := time.Now().Add(5 * time.Second); len(got) < 5 && time.Now().Before(deadline); {
		if n, _ := port.Read(buf); n == 1 {
			got = append(got, buf[0])
			at = append(at, time.Now())
		}
	}
	if err := <-typed; err != nil {
		t.Fatal(err)
	}
	if string(got) != "1123\r" {
		t.Fatalf("pad sent %q", got)
	}
	if gap := at[1].Sub(at[0]); gap < 30*time.Millisecond {
		t.Errorf("repeated key only %v after the first: a pad would take it for bounce", gap)
	}
}
