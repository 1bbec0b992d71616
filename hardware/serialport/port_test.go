package serialport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/tarm/serial"

	"github.com/tether-kiosk/tether/hardware/sim"
)

func newSim(t *testing.T) *sim.BadgeReader {
	t.Helper()
	r, err := sim.NewBadgeReaderWith("line", sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func open(t *testing.T, path string) Port {
	t.Helper()
	p, err := Open(Config{Path: path, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// readUntil reads until want bytes arrived or a read fails; (0, nil) timeouts are skipped.
func readUntil(t *testing.T, p Port, want int) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 64)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		n, err := p.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// Trap: on Linux a timed-out read is (0, io.EOF). Our Port reports (0, nil) and stays usable.
func TestQuietReadIsNotEOF(t *testing.T) {
	r := newSim(t)
	p := open(t, r.Path())
	for i := 0; i < 3; i++ {
		n, err := p.Read(make([]byte, 16))
		if n != 0 || err != nil {
			t.Fatalf("quiet read %d: (%d, %v), want (0, nil)", i, n, err)
		}
	}
	if err := r.Write([]byte("ABC\r")); err != nil {
		t.Fatal(err)
	}
	got, err := readUntil(t, p, 4)
	if err != nil || string(got) != "ABC\r" {
		t.Fatalf("after quiet reads: %q, %v", got, err)
	}
}

// The same trap shown on the library itself, so we notice if its behaviour changes.
func TestLibraryTimeoutIsEOF(t *testing.T) {
	r := newSim(t)
	sp, err := serial.OpenPort(&serial.Config{Name: r.Path(), Baud: 9600, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if n, err := sp.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("tarm quiet read: (%d, %v), want (0, io.EOF)", n, err)
	}
}

// Trap: with no read timeout a read on a quiet device never returns, and Close waits for
// it (the library makes the descriptor blocking behind Go's back), so Close never returns
// and the goroutine owning the port never sees shutdown. Open always sets a timeout.
func TestNoTimeoutBlocksClose(t *testing.T) {
	r := newSim(t)
	sp, err := serial.OpenPort(&serial.Config{Name: r.Path(), Baud: 9600}) // no ReadTimeout
	if err != nil {
		t.Fatal(err)
	}
	readDone, closeDone := make(chan struct{}), make(chan struct{})
	go func() {
		sp.Read(make([]byte, 8))
		close(readDone)
	}()
	time.Sleep(100 * time.Millisecond)
	go func() {
		sp.Close()
		close(closeDone)
	}()
	select {
	case <-closeDone:
		t.Fatal("Close returned under a read without timeout; the trap this guards against is gone")
	case <-time.After(700 * time.Millisecond):
	}
	r.Write([]byte("x")) // release the stuck read so the test leaves nothing behind
	<-readDone
	<-closeDone

	// Ours: a zero timeout becomes the default, so Close under a quiet read returns.
	p, err := Open(Config{Path: r.Path()})
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	go func() {
		close(reading)
		p.Read(make([]byte, 8))
	}()
	<-reading
	// Nothing is ever written: Close returns only because the read times out. The bound below
	// only turns a hang into a failure; it is not a speed assertion (a loaded CI machine may
	// take seconds).
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close under a quiet read never returned")
	}
}

func TestTimeoutClamped(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: DefaultReadTimeout, time.Millisecond: MinReadTimeout,
		time.Hour: MaxReadTimeout, 300 * time.Millisecond: 300 * time.Millisecond} {
		if got := (Config{ReadTimeout: in}).Normalize().ReadTimeout; got != want {
			t.Errorf("timeout %v -> %v, want %v", in, got, want)
		}
	}
}

// Trap: after an unplug the tty hangs up (EIO once, then immediate EOF) and the by-id path
// vanishes. Our Port reports ErrDisconnected instead of an endless stream of EOFs.
func TestUnplugIsDisconnected(t *testing.T) {
	r := newSim(t)
	p := open(t, r.Path())
	r.Write([]byte("A\r"))
	if _, err := readUntil(t, p, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.Unplug(); err != nil {
		t.Fatal(err)
	}
	_, err := readUntil(t, p, 1)
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("read after unplug: %v, want ErrDisconnected", err)
	}
	if _, err := Open(Config{Path: r.Path()}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open after unplug: %v, want not exist", err)
	}
	if err := r.Replug(); err != nil {
		t.Fatal(err)
	}
	p2 := open(t, r.Path())
	r.Write([]byte("B\r"))
	if got, err := readUntil(t, p2, 2); err != nil || string(got) != "B\r" {
		t.Fatalf("after replug: %q, %v", got, err)
	}
}

// Read outcomes the kernel gives an unplugged USB adapter, which a pty cannot reproduce.
func TestClassify(t *testing.T) {
	const timeout = 200 * time.Millisecond
	eio := &os.PathError{Op: "read", Path: "/dev/ttyUSB0", Err: syscall.EIO}
	cases := []struct {
		name  string
		err   error
		took  time.Duration
		prior int
		want  readOutcome
	}{
		{"timeout", io.EOF, timeout, 0, readTimeout},
		{"first early EOF", io.EOF, time.Microsecond, 0, readRetry},
		{"second early EOF (hung up)", io.EOF, time.Microsecond, 1, readGone},
		{"EIO", eio, time.Microsecond, 0, readGone},
		{"ENXIO", &os.PathError{Op: "read", Err: syscall.ENXIO}, 0, 0, readGone},
		{"closed", os.ErrClosed, 0, 0, readGone},
		{"EINTR", syscall.EINTR, 0, 0, readRetry},
	}
	for _, c := range cases {
		n := c.prior
		if got := classify(c.err, c.took, timeout, &n); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "/dev/x", Baud: 1234}, "baud 1234 unsupported"},
		{Config{Path: "/dev/x", DataBits: 9}, "data bits 9 unsupported"},
		{Config{Path: "/dev/x", Parity: "M"}, `parity "M" unsupported`},
		{Config{Path: "/dev/x", StopBits: 3}, "stop bits 3 unsupported"},
		{Config{}, "path is empty"},
	} {
		if err := c.cfg.Check(); err == nil || err.Error()[:len(c.want)] != c.want {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{Path: "/dev/x", Parity: "e", StopBits: 2, DataBits: 7, Baud: 115200}).Check(); err != nil {
		t.Errorf("7E2 115200: %v", err)
	}
}

// Open honours line settings the library supports (7E1 here) on a real tty.
func TestOpenSettings(t *testing.T) {
	r := newSim(t)
	p, err := Open(Config{Path: r.Path(), Baud: 19200, DataBits: 7, Parity: "E", StopBits: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "nope")}); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing path: %v", err)
	}
}

func TestList(t *testing.T) {
	dev := t.TempDir()
	byID := filepath.Join(dev, "serial", "by-id")
	os.MkdirAll(byID, 0o755)
	for _, n := range []string{"ttyUSB10", "ttyUSB2", "ttyACM0", "ttyS0", "ttyS1", "ttyUSBx", "tty0"} {
		os.WriteFile(filepath.Join(dev, n), nil, 0o644)
	}
	os.Symlink("../../ttyUSB2", filepath.Join(byID, "usb-FTDI_FT232R-if00-port0"))
	os.Symlink("../../ttyUSB9", filepath.Join(byID, "usb-gone-if00"))
	got, err := ListIn(dev)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range got {
		lines = append(lines, e.String())
	}
	p := func(s string) string { return filepath.Join(dev, s) }
	want := []string{
		fmt.Sprintf("%s -> %s", filepath.Join(byID, "usb-FTDI_FT232R-if00-port0"), p("ttyUSB2")),
		fmt.Sprintf("%s -> ../../ttyUSB9 (missing)", filepath.Join(byID, "usb-gone-if00")),
		p("ttyUSB2"), p("ttyUSB10"), p("ttyACM0"), p("ttyS0"), p("ttyS1"),
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("list:\n%q\nwant\n%q", lines, want)
	}
}
