package kioskapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/leaktest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/ui/keypad"
)

// testDriver is Fyne's test driver for the widgets, and the goroutine that calls Run as
// the event loop: what the kiosk hands to Do runs there, in order, until Quit.
type testDriver struct {
	app  fyne.App
	q    chan func()
	quit chan struct{}
	once sync.Once
}

func newTestDriver(t *testing.T) *testDriver {
	return &testDriver{app: test.NewTempApp(t), q: make(chan func(), 4096), quit: make(chan struct{})}
}

func (d *testDriver) App() fyne.App { return d.app }

func (d *testDriver) Do(f func()) {
	select {
	case d.q <- f:
	case <-d.quit:
	}
}

func (d *testDriver) DoAndWait(f func()) {
	done := make(chan struct{})
	d.Do(func() { defer close(done); f() })
	select {
	case <-done:
	case <-d.quit:
	}
}

func (d *testDriver) Run(win fyne.Window, started func()) {
	win.Show()
	started()
	for {
		select {
		case f := <-d.q:
			f()
		case <-d.quit:
			return
		}
	}
}

func (d *testDriver) Quit() { d.once.Do(func() { close(d.quit) }) }

// logBuf collects the app's log lines.
type logBuf struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	l.t.Log(s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// seedMaria puts Maria (badge 0004198231, PIN 2468, $12.00) in the store of dir, as the
// roster sync would, and closes it.
func seedMaria(t *testing.T, dir string) {
	t.Helper()
	st, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := term.UpsertInmate(kiosk.Inmate{ID: "A100001", Name: "Maria Lopez", Badges: []string{"0004198231"},
		PINHash: hash, Language: "es", Status: kiosk.StatusActive, Messaging: true}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := term.Deposit("A100001", 1200, "dep-1"); err != nil {
		t.Fatal(err)
	}
}

// tap taps the enabled button labelled label on the kiosk's window, on the UI goroutine.
func tap(t *testing.T, a *App, label string) {
	t.Helper()
	found := false
	a.DoAndWait(func() {
		var walk func(o fyne.CanvasObject)
		walk = func(o fyne.CanvasObject) {
			switch v := o.(type) {
			case *fyne.Container:
				for _, c := range v.Objects {
					walk(c)
				}
			case *widget.Button:
				if !found && v.Visible() && !v.Disabled() && v.Text == label {
					found = true
					test.Tap(v)
				}
			}
		}
		walk(a.Window().Content())
	})
	if !found {
		t.Fatalf("no button %q on screen", label)
	}
}

// Open on a data directory with a config builds a kiosk that Run brings to life: a card on
// the serial reader and a PIN on the serial PIN pad log Maria in (the real simulators write
// frames into ptys, the device manager decodes them, the screens go welcome -> PIN ->
// notice -> home). Cancelling Run's context stops in order, her session ended as a logout;
// Stop releases the store and the control socket, so both open again.
func TestOpenRunStop(t *testing.T) {
	reader, err := sim.NewBadgeReader(badge.EM4100)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pad, err := sim.NewPinPad()
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	seedMaria(t, data)
	cfg := Config{Mode: ModeKiosk, Devices: []DeviceConfig{
		{Name: "badge reader", Role: device.RoleBadge, Path: reader.Path(), Framing: badge.EM4100},
		{Name: "PIN pad", Role: device.RolePinPad, Path: pad.Path()},
	}}
	cfgPath := filepath.Join(dir, "kioskd.json")
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadConfig(cfgPath); err != nil {
		t.Fatal(err)
	}

	lb := &logBuf{t: t}
	shown := make(chan string, 64)
	a, err := Open(Options{DataDir: data, ConfigPath: cfgPath, Config: cfg, Logf: lb.logf, Driver: newTestDriver(t),
		OnScreen: func(name string) { shown <- name }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	var seen []string
	step := func(want string) {
		t.Helper()
		name := <-shown
		seen = append(seen, name)
		if name != want {
			t.Fatalf("screens %q, want %q next", seen, want)
		}
	}
	step("welcome")
	testwait.Until(t, "the devices connected", func() bool {
		for _, s := range a.devs.States() {
			if !s.Connected() {
				return false
			}
		}
		return true
	})
	if err := reader.Present("0004198231"); err != nil {
		t.Fatal(err)
	}
	step("pin")
	if err := pad.TypePIN("2468"); err != nil {
		t.Fatal(err)
	}
	step("notice")
	tap(t, a, "Acepto") // Maria reads Spanish
	step("home")
	if info, ok := a.term.Active(); !ok || info.InmateID != "A100001" {
		t.Fatalf("active session = %+v, %v", info, ok)
	}
	// The technician screen and kioskctl status read the devices as one model: the PIN pad's
	// keys are keys, not accepted badge frames, and the reader's framing shows, on both.
	ctl, err := control.Dial(data)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctlSt, err := ctl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	onScreen, _ := json.Marshal(a.tech.deps().Devices())
	if got, _ := json.Marshal(ctlSt.Devices); !bytes.Equal(got, onScreen) {
		t.Errorf("kioskctl status devices %s, the screen's %s", got, onScreen)
	}
	for _, d := range ctlSt.Devices {
		if d.Role == device.RolePinPad && (d.Keys != 5 || d.Accepted != 0) || d.Role == device.RoleBadge && (d.Accepted != 1 || d.Framing != badge.EM4100) {
			t.Errorf("device %+v: want the pad with 5 keys and no frames, the reader with 1 frame in em4100", d)
		}
	}

	cancel(errors.New("the test is over"))
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop again: %v", err)
	}
	log := lb.String()
	at := 0
	for _, want := range []string{"screen: welcome (", "screen: pin", "screen: notice", "screen: home",
		"stopping: the test is over", "stopping: session", "stopping: devices closed", "stopped"} {
		i := strings.Index(log[at:], want)
		if i < 0 {
			t.Fatalf("log lacks %q after offset %d:\n%s", want, at, log)
		}
		at += i
	}
	if leaktest.HasNumber(log, "2468") || leaktest.HasNumber(log, "0004198231") {
		t.Errorf("a PIN or badge reached the log:\n%s", log)
	}

	// The store is free again: her session ended as a logout.
	st, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatalf("reopen the store after Stop: %v", err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := term.Usage("A100001")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].EndReason != kiosk.EndLogout {
		t.Fatalf("sessions = %+v, want one ended by logout", sessions)
	}
	// And so is everything else: a second kioskd opens on the same directory.
	b, err := Open(Options{DataDir: data, ConfigPath: cfgPath, Config: cfg, Logf: t.Logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatalf("open again after Stop: %v", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Stop without Run releases the store; while Run runs, Stop stops it first.
func TestStopReleasesTheStore(t *testing.T) {
	data := t.TempDir()
	lb := &logBuf{t: t}
	a, err := Open(Options{DataDir: data, Logf: lb.logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kiosk.OpenStore(data, kiosk.StoreOptions{}); err == nil {
		t.Fatal("a second open of the store succeeded while kioskd holds it")
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	st, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatalf("the store is still held after Stop: %v", err)
	}
	st.Close()

	b, err := Open(Options{DataDir: data, Logf: lb.logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- b.Run(context.Background()) }()
	testwait.Until(t, "the window shown", func() bool { return strings.Contains(lb.String(), "window shown") })
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st, err := kiosk.OpenStore(data, kiosk.StoreOptions{}); err != nil {
		t.Fatalf("the store is still held after Stop: %v", err)
	} else {
		st.Close()
	}
}

// A damaged store makes Open fail with boltfile.ErrDamaged (kioskd's exit status 3), naming
// the file, and the file is left as it was.
func TestOpenDamagedStoreFails(t *testing.T) {
	data := t.TempDir()
	st, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	path := filepath.Join(data, kiosk.StoreFile)
	if err := os.Truncate(path, 3*4096+100); err != nil {
		t.Fatal(err)
	}
	a, err := Open(Options{DataDir: data, Logf: t.Logf, Driver: newTestDriver(t)})
	if !errors.Is(err, boltfile.ErrDamaged) || a != nil {
		t.Fatalf("Open = %v, %v; want ErrDamaged", a, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name the file: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 3*4096+100 {
		t.Fatalf("the damaged store was changed: %v %v", fi, err)
	}
}

// The stop asks the window loop to end, again every retry, and gives up (Hung) when it
// has not ended one retry after the third ask; a loop that ends stops the asking.
func TestEndLoopAsksAgainThenGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var asks atomic.Int32
		var hung atomic.Bool
		ended := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			endLoop(func() { asks.Add(1) }, ended, quitRetry, t.Logf, func() { hung.Store(true) })
		}()
		synctest.Wait()
		if asks.Load() != 1 {
			t.Fatalf("asked %d times at once", asks.Load())
		}
		time.Sleep(quitRetry) // the bubble's clock
		synctest.Wait()
		if asks.Load() != 2 || hung.Load() {
			t.Fatalf("after one retry: %d asks, hung %v", asks.Load(), hung.Load())
		}
		time.Sleep(2*quitRetry - time.Millisecond)
		synctest.Wait()
		if asks.Load() != 3 || hung.Load() {
			t.Fatalf("just before giving up: %d asks, hung %v", asks.Load(), hung.Load())
		}
		time.Sleep(time.Millisecond)
		<-done
		if !hung.Load() || asks.Load() != 3 {
			t.Fatalf("a loop that never ends: %d asks, hung %v", asks.Load(), hung.Load())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		var asks atomic.Int32
		ended := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			endLoop(func() {
				if asks.Add(1) == 2 {
					close(ended) // the second ask is heard
				}
			}, ended, quitRetry, t.Logf, func() { t.Error("gave up on a loop that ended") })
		}()
		<-done
		if asks.Load() != 2 {
			t.Fatalf("asked %d times", asks.Load())
		}
	})
}

func TestModeComesFromEnrollmentOrConfig(t *testing.T) {
	tablet := client.Enrollment{Mode: ModeTablet, InmateID: "A100001"}
	cases := []struct {
		cfg      string
		enrolled bool
		want     string
		fails    bool
	}{
		{"", false, ModeKiosk, false},
		{ModeTablet, false, ModeTablet, false},
		{"", true, ModeTablet, false},
		{ModeTablet, true, ModeTablet, false},
		{ModeKiosk, true, "", true},
	}
	for _, c := range cases {
		got, err := resolveMode(c.cfg, tablet, c.enrolled)
		if (err != nil) != c.fails || got != c.want {
			t.Errorf("config %q, enrolled %v: got %q, %v", c.cfg, c.enrolled, got, err)
		}
	}
}

func TestPINPadKeysMapToScreenKeys(t *testing.T) {
	for d := 0; d <= 9; d++ {
		kind, digit, ok := uiKey(pinpad.Key0 + pinpad.Key(d))
		if !ok || kind != keypad.Digit || digit != byte('0'+d) {
			t.Errorf("digit %d -> %v %q %v", d, kind, digit, ok)
		}
	}
	for k, want := range map[pinpad.Key]keypad.Key{pinpad.KeyEnter: keypad.Enter, pinpad.KeyBackspace: keypad.Backspace,
		pinpad.KeyClear: keypad.Clear, pinpad.KeyCancel: keypad.Cancel} {
		if kind, _, ok := uiKey(k); !ok || kind != want {
			t.Errorf("%v -> %v %v, want %v", k, kind, ok, want)
		}
	}
	if _, _, ok := uiKey(pinpad.KeyNone); ok {
		t.Error("KeyNone mapped to a screen key")
	}
}

// A kiosk that went down while a letter's photo was open starts without that person's photo:
// Open releases the viewing claims a crashed session left in content.db. A tablet's own photos
// (claims of its letters) are not viewing claims and stay.
func TestOpenReleasesPhotosOfACrashedSession(t *testing.T) {
	data := t.TempDir()
	cs, err := content.Open(filepath.Join(data, content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	photo := bytes.Repeat([]byte("a photo of the family "), 20_000)
	kept := bytes.Repeat([]byte("a letter's own photo "), 20_000)
	mv, err := cs.Put(bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := cs.Put(bytes.NewReader(kept))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Retain(mv.Ref(), content.ViewingHolder+"m-1", false); err != nil {
		t.Fatal(err)
	}
	if err := cs.Retain(mk.Ref(), "msg:m-2", false); err != nil {
		t.Fatal(err)
	}
	cs.Close()

	lb := &logBuf{t: t}
	a, err := Open(Options{DataDir: data, Logf: lb.logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	cs, err = content.Open(filepath.Join(data, content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if st, _ := cs.State(mv.Object); st != content.Absent {
		t.Fatalf("the crashed session's photo is still on the kiosk: %v", st)
	}
	if st, _ := cs.State(mk.Object); st != content.Whole {
		t.Fatalf("a photo another claim holds was dropped: %v", st)
	}
	if !strings.Contains(lb.String(), "released 1 photo claims") {
		t.Fatalf("no log line of the release:\n%s", lb.String())
	}
}

// A stop that gives up says why in the log, writes where every goroutine is to Stderr (a hung
// window loop left nothing to go on before), and then calls Hung, which ends the process.
func TestGivingUpWritesTheGoroutines(t *testing.T) {
	var stderr, logged bytes.Buffer
	hung := false
	a := &App{o: Options{Stderr: &stderr, Hung: func() {
		if !strings.Contains(stderr.String(), "goroutine ") {
			t.Error("Hung was called before the goroutines were written")
		}
		hung = true
	}}, logf: func(format string, args ...any) { fmt.Fprintf(&logged, format+"\n", args...) }}
	a.giveUp("the window loop did not end")
	if !hung {
		t.Fatal("Hung was not called")
	}
	if !strings.Contains(logged.String(), "the window loop did not end; giving up") {
		t.Errorf("the log says %q", logged.String())
	}
	if !strings.Contains(stderr.String(), "TestGivingUpWritesTheGoroutines") {
		t.Errorf("the goroutines written do not show this test's own:\n%.400s", stderr.String())
	}
}
