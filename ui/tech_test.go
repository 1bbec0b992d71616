package ui

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/serialport"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/ui/theme"
)

const (
	techID    = "T1"
	techBadge = "TB1"
	techPIN   = "8642"
)

// techRig is what kioskd wires behind the technician area, made of real parts where they
// can run here: a device manager over simulated readers on ptys, ports listed from a /dev
// of their links. Sync is an in-process stand-in that counts SyncNow calls.
type techRig struct {
	dev     string // stands for /dev
	door    *sim.BadgeReader
	spare   *sim.BadgeReader
	configs []device.Config
	m       *device.Manager
	feed    *DeviceFeed

	mu     sync.Mutex
	syncs  int
	link   status.Link
	sets   []string
	setErr error
	enroll func(ctx context.Context, url, code string) (EnrollInfo, error)
}

func newTechRig(t *testing.T) *techRig {
	t.Helper()
	r := &techRig{dev: t.TempDir(), feed: &DeviceFeed{}}
	byID := filepath.Join(r.dev, "serial", "by-id")
	must(t, os.MkdirAll(byID, 0o755))
	var err error
	r.door, err = sim.NewBadgeReaderWith(badge.EM4100, sim.Options{Dir: byID, Name: "usb-Door_Reader-if00"})
	must(t, err)
	t.Cleanup(func() { r.door.Close() })
	r.spare, err = sim.NewBadgeReaderWith(badge.Wiegand26, sim.Options{Dir: byID, Name: "usb-Spare_Reader-if00"})
	must(t, err)
	t.Cleanup(func() { r.spare.Close() })
	r.configs = []device.Config{{Name: "door", Role: device.RoleBadge, Path: r.door.Path(), Framing: badge.EM4100}}
	events := make(chan device.Event, 64)
	r.m, err = device.New(r.configs, device.Options{Events: events, Logf: t.Logf})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = r.m.Run(ctx) }()
	go func() { // kioskd's device pump, as far as the technician area is concerned
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				r.feed.Publish(uiDeviceEvent(ev))
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	r.link = status.Link{Enrolled: true, Connected: true, RelayURL: "wss://relay.example:8443", TerminalID: "term-1",
		Facility: "North Unit", Mode: "kiosk", LastSuccess: start.Add(-2 * time.Minute), Waiting: 3,
		OldestWaiting: start.Add(-time.Minute)}
	return r
}

// uiDeviceEvent and uiDevices stand in for kioskd's conversions (cmd/internal/kioskapp, which
// ui may not import), so these tests can drive the screens from real simulated devices. The
// real event conversion and port list are tested where they live (kioskapp's
// TestTechnicianAdaptersCarryNoSecret); what these tests show is the screens, not them.
func uiDeviceEvent(ev device.Event) DeviceEvent {
	out := DeviceEvent{Device: ev.Device, Kind: string(ev.Kind), At: ev.At, ID: ev.ID, Reason: ev.Reason}
	if ev.Kind == device.EventKey {
		out.Key = ev.Key.Kind()
	}
	if ev.PIN != nil {
		ev.PIN.Wipe()
	}
	return out
}

func (r *techRig) deps() TechDeps {
	return TechDeps{
		LinkStatus:   func() status.Link { r.mu.Lock(); defer r.mu.Unlock(); return r.link },
		SyncNow:      func() { r.mu.Lock(); r.syncs++; r.mu.Unlock() },
		Devices:      r.m.States,
		DeviceEvents: r.feed.Subscribe,
		Ports: func() ([]PortInfo, error) {
			es, err := serialport.ListIn(r.dev)
			out := make([]PortInfo, 0, len(es))
			for _, e := range es {
				out = append(out, PortInfo{Path: e.Path, Resolved: e.Resolved})
			}
			return out, err
		},
		Framings: badge.Framings(),
		SetDevice: func(name, path, framing string) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.setErr != nil {
				return r.setErr
			}
			r.sets = append(r.sets, name+" "+path+" "+framing)
			return nil
		},
		Enroll: func(ctx context.Context, url, code string) (EnrollInfo, error) {
			if r.enroll == nil {
				return EnrollInfo{}, errors.New("no relay here")
			}
			return r.enroll(ctx, url, code)
		},
	}
}

// techHarness is the usual harness with a technician on the roster and the area wired.
func techHarness(t *testing.T, deps TechDeps) *harness {
	t.Helper()
	h := newHarness(t)
	hash, err := kiosk.HashPINWith(techPIN, kiosk.TestPINParams())
	must(t, err)
	must(t, h.term.UpsertTechnician(kiosk.Technician{ID: techID, Name: "Tom Tech", Badges: []string{techBadge},
		PINHash: hash, Role: "installer"}, "test"))
	h.k.techD = deps // what kioskd passes in Deps.Tech
	return h
}

func (h *harness) techLogin() {
	h.t.Helper()
	h.badge(techBadge)
	h.typePIN(techPIN, "OK")
	h.tap("I accept")
	h.mustSee("Technician area", "Technician "+techID)
}

// eventually settles the screens until cond holds (device events arrive from ptys).
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	testwait.UntilSaw(h.t, what, func() (bool, string) {
		h.settle()
		if cond() {
			return true, ""
		}
		return false, "the screen showing:\n" + h.screenText()
	})
}

// techActions is the domain's audit of technician actions, oldest first, as kind[detail].
func (h *harness) techActions() []kiosk.AuditEvent {
	h.t.Helper()
	evs, err := h.term.RecentTechnicianActions(100)
	must(h.t, err)
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

func (h *harness) mustHaveAction(kind string, detail map[string]string) kiosk.AuditEvent {
	h.t.Helper()
	for _, ev := range h.techActions() {
		if ev.Kind != kind || ev.Actor != techID {
			continue
		}
		ok := true
		for k, v := range detail {
			ok = ok && ev.Detail[k] == v
		}
		if ok {
			return ev
		}
	}
	h.t.Fatalf("no audit event %s %v by %s in %+v", kind, detail, techID, h.techActions())
	return kiosk.AuditEvent{}
}

func (r *techRig) waitConnected(t *testing.T) {
	t.Helper()
	testwait.Until(t, "the door reader to connect", func() bool {
		s, ok := r.m.State("door")
		return ok && s.Connected()
	})
}

func TestTechnicianSeesLinkAndDevices(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	r.waitConnected(t)
	h.techLogin()
	h.mustSee("Online", "Relay: wss://relay.example:8443", "Terminal term-1 · North Unit · kiosk",
		"Waiting to send: 3, the oldest since 2025-11-25 09:59", "Last contact with the relay: 2025-11-25 09:58",
		"door · badge reader", "Port: "+r.door.Path(), "Framing: em4100", "Connected")
	h.mustHaveAction("tech_open_area", nil)

	// The link changes: the next tick shows it.
	r.mu.Lock()
	r.link.Connected, r.link.LastError = false, "dial tcp: connection refused"
	r.mu.Unlock()
	h.advance(time.Second)
	h.mustSee("Offline", "Last error: dial tcp: connection refused")
	h.mustNotSee("Online")

	// The reader is unplugged: the technician sees it go.
	must(t, r.door.Unplug())
	h.eventually("the reader shows disconnected", func() bool {
		h.advance(time.Second)
		return h.see("Disconnected")
	})
}

func TestInmateCannotReachTechnicianArea(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.login()
	for _, s := range []string{"Technician", "Sync now", "Test devices", "Enrollment", "Recent actions"} {
		h.mustNotSee(s)
	}
	// No route either: every way in refuses someone who is not a technician's login.
	for _, open := range []func(){h.k.showTechnician, h.k.showTechHome, h.k.showTechTest, h.k.showTechAudit,
		h.k.showTechEnroll, func() { h.k.showTechDevice(status.Device{Name: "door", Role: "badge"}) }} {
		open()
		h.settle()
		h.mustSee("Hello, " + mariaName)
		h.mustNotSee("Technician area", "Device test", "Recent technician actions")
	}
	if h.k.tech != nil {
		t.Error("an inmate's session holds a technician area")
	}
	if got := h.techActions(); len(got) != 0 {
		t.Errorf("technician actions recorded during an inmate's session: %+v", got)
	}
	// And the domain refuses an inmate's id as a technician.
	if err := h.term.TechnicianAction(mariaID, "sync_now", nil); kiosk.KindOf(err) != kiosk.KindNotFound {
		t.Errorf("inmate as technician: err = %v", err)
	}
	if r.feed.Subscribers() != 0 {
		t.Error("an inmate's session listens to the devices")
	}
}

func TestSyncNowCallsThroughAndIsAudited(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.techLogin()
	h.tap("Sync now")
	h.mustSee("Sync requested.")
	r.mu.Lock()
	n := r.syncs
	r.mu.Unlock()
	if n != 1 {
		t.Errorf("SyncNow called %d times, want 1", n)
	}
	ev := h.mustHaveAction("tech_sync_now", nil)
	if !ev.At.Equal(start) {
		t.Errorf("sync_now audited at %v, want %v", ev.At, start)
	}
}

func TestLiveTestViewShowsABadgeOnASimReader(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	r.waitConnected(t)
	h.techLogin()
	h.tap("Test devices")
	h.mustSee("Device test", "Nothing yet.")
	h.mustHaveAction("tech_device_test", nil)
	if r.feed.Subscribers() != 1 {
		t.Fatalf("subscribers = %d, want 1", r.feed.Subscribers())
	}
	must(t, r.door.Present("0004660001"))
	h.eventually("the badge shows", func() bool { return h.see("door: badge 0004660001") })
	if _, err := r.door.PresentInvalid(badge.InvalidChecksum); err != nil {
		t.Fatal(err)
	}
	h.eventually("the rejection shows", func() bool { return h.see("door: rejected (") })
	// The badge was a test, not a login.
	h.mustSee("Device test")
	if h.k.login != nil {
		t.Error("a badge in the test view started a login")
	}
	h.tap("Back")
	h.mustSee("Technician area")
	h.eventually("the view stops listening", func() bool { return r.feed.Subscribers() == 0 })
}

func TestPortAndFramingChangeIsSetAndAudited(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.techLogin()
	h.advance(time.Second)
	h.tap("Settings")
	h.mustSee("Settings: door", "Serial port", "Framing", "usb-Door_Reader-if00 → "+filepath.Base(r.door.TTY())+"  (current)",
		"usb-Spare_Reader-if00 → "+filepath.Base(r.spare.TTY()))
	h.tapPrefix("usb-Spare_Reader-if00")
	h.tap("wiegand26")
	h.tap("Save")
	h.mustSee("Technician area", "Saved: door on "+r.spare.Path()+".")
	r.mu.Lock()
	sets := append([]string(nil), r.sets...)
	r.mu.Unlock()
	if want := "door " + r.spare.Path() + " wiegand26"; len(sets) != 1 || sets[0] != want {
		t.Errorf("SetDevice calls = %q, want [%q]", sets, want)
	}
	h.mustHaveAction("tech_device_set", map[string]string{"device": "door", "path": r.spare.Path(),
		"framing": "wiegand26", "was_path": r.door.Path(), "was_framing": "em4100"})

	// A refusal stays on the screen and is audited as a failure.
	r.mu.Lock()
	r.setErr = errors.New(`device "door": framing "line": prefix too long`)
	r.mu.Unlock()
	h.tap("Settings")
	h.tap("line")
	h.tap("Save")
	h.mustSee("Settings: door", `Failed: device "door": framing "line": prefix too long`)
	h.mustHaveAction("tech_device_set_failed", map[string]string{"framing": "line", "error": `device "door": framing "line": prefix too long`})
}

func TestAuditListShowsTheLastActions(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.techLogin()
	h.advance(time.Minute)
	h.tap("Sync now")
	h.tap("Recent actions")
	h.mustSee("Recent technician actions", "2025-11-25 10:01  T1  Sync now", "2025-11-25 10:00  T1  Opened the technician area")
	txt := h.screenText()
	if strings.Index(txt, "Sync now") > strings.Index(txt, "Opened the technician area") {
		t.Errorf("newest action is not first:\n%s", txt)
	}
	h.tap("Back")
	h.mustSee("Technician area")
}

func TestTechnicianLogoutClearsTheArea(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.techLogin()
	h.tap("Test devices")
	h.tap("Back")
	h.tap("Log out")
	h.mustSee("Scan your badge")
	h.mustNotSee("Technician", "Sync now", "door")
	if h.k.tech != nil || h.k.sess != nil {
		t.Error("the technician area outlived the logout")
	}
	h.eventually("the live view stops listening", func() bool { return r.feed.Subscribers() == 0 })
	h.mustHaveAction("tech_close_area", map[string]string{"reason": "logout"})
	// The next person is an inmate: nothing of the area is reachable.
	h.login()
	h.k.showTechHome()
	h.settle()
	h.mustSee("Hello, " + mariaName)
}

func TestTechnicianAreaClosesWhenLeftAlone(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	h.techLogin()
	h.tap("Test devices")
	h.advance(2 * time.Minute)
	h.mustSee("Device test") // still there within the idle timeout
	h.advance(2 * time.Minute)
	h.mustSee("Scan your badge")
	h.mustNotSee("Device test", "Technician")
	h.eventually("the live view stops listening", func() bool { return r.feed.Subscribers() == 0 })
	h.mustHaveAction("tech_close_area", map[string]string{"reason": "idle"})
}

func TestEnrollmentNeverKeepsTheCode(t *testing.T) {
	const code = "K7Q2-9XPL-44TR"
	r := newTechRig(t)
	var gotURL, gotCode string
	r.enroll = func(ctx context.Context, url, c string) (EnrollInfo, error) {
		if gotURL == "" {
			gotURL, gotCode = url, c
			return EnrollInfo{}, errors.New("enroll: relay refused code " + c + ": expired")
		}
		return EnrollInfo{TerminalID: "term-9", Facility: "North Unit", Mode: "kiosk"}, nil
	}
	h := techHarness(t, r.deps())
	h.techLogin()
	h.advance(time.Second) // the link is known, so the relay address is filled in
	h.tap("Enrollment")
	h.mustSee("Enroll this terminal")
	codeEntry := h.entry("Enrollment code")
	if got := h.entries()[0].Text; got != "wss://relay.example:8443" {
		t.Errorf("relay address = %q, want the current relay", got)
	}
	test.Type(codeEntry, code)
	h.tap("Enroll")
	if gotURL != "wss://relay.example:8443" || gotCode != code {
		t.Errorf("Enroll(%q, %q)", gotURL, gotCode)
	}
	h.mustSee("Failed: enroll: relay refused code ***: expired")
	if codeEntry.Text != "" {
		t.Error("the code stays in its entry after it was sent")
	}
	h.mustNotSee(code)
	test.Type(codeEntry, code)
	h.tap("Enroll")
	h.mustSee("Technician area", "Enrolled as term-9 (North Unit, kiosk).")
	h.mustHaveAction("tech_enroll", map[string]string{"relay": "wss://relay.example:8443"})
	h.mustHaveAction("tech_enroll_failed", nil)
	evs, err := h.term.Store().RecentAudit(1000, nil)
	must(t, err)
	for _, ev := range evs {
		for k, v := range ev.Detail {
			if strings.Contains(k+v, code) {
				t.Errorf("audit %s keeps the enrollment code in %s", ev.Kind, k)
			}
		}
	}
}

func TestTechnicianAreaWithNothingWired(t *testing.T) {
	h := techHarness(t, TechDeps{})
	h.techLogin()
	h.mustSee("Not available on this terminal")
	for _, label := range []string{"Sync now", "Test devices", "Enrollment"} {
		if !h.button(label).Disabled() {
			t.Errorf("%q is enabled with nothing behind it", label)
		}
	}
	h.tap("Recent actions")
	h.mustSee("Opened the technician area")
}

func TestTechnicianScreensFitAndAreFingerSized(t *testing.T) {
	r := newTechRig(t)
	h := techHarness(t, r.deps())
	check := func(screen string) {
		t.Helper()
		h.settle()
		if m := h.k.win.Canvas().Content().MinSize(); m.Width > 1024 || m.Height > 768 {
			t.Errorf("%s needs %v, more than 1024x768", screen, m)
		}
		walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
			if _, ok := o.(fyne.Tappable); !ok {
				return
			}
			if s := o.Size(); s.Width < theme.MinTarget || s.Height < theme.MinTarget {
				t.Errorf("%s: %T at %v is %v, under %v", screen, o, o.Position(), s, theme.MinTarget)
			}
		})
	}
	r.waitConnected(t)
	h.techLogin()
	h.advance(time.Second)
	check("technician home")
	for _, b := range []string{"Test devices", "Settings", "Enrollment", "Recent actions"} {
		h.tap(b)
		check(b)
		h.tap("Back")
	}
}

func TestDeviceFeed(t *testing.T) {
	var f DeviceFeed
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []string
	f.Subscribe(ctx, func(ev DeviceEvent) { mu.Lock(); got = append(got, ev.Kind); mu.Unlock() })
	f.Publish(DeviceEvent{Kind: "badge"})
	f.Publish(DeviceEvent{Kind: "pin"})
	f.Publish(DeviceEvent{Kind: "key", Key: "digit"})
	cancel()
	testwait.Until(t, "the subscriber to go once its context ended", func() bool { return f.Subscribers() == 0 })
	f.Publish(DeviceEvent{Kind: "badge"})
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "badge,key" {
		t.Errorf("delivered %v, want badge,key (never a PIN, nothing after cancel)", got)
	}
}

func (h *harness) tapPrefix(prefix string) {
	h.t.Helper()
	var found *widget.Button
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		if b, ok := o.(*widget.Button); ok && found == nil && strings.HasPrefix(b.Text, prefix) {
			found = b
		}
	})
	if found == nil {
		h.t.Fatalf("no button starting %q; screen shows:\n%s", prefix, h.screenText())
	}
	test.Tap(found)
	h.settle()
}

// An unenrolled terminal has no relay to reach: Sync now is offered only once it is enrolled.
func TestSyncNowWaitsForEnrollment(t *testing.T) {
	r := newTechRig(t)
	r.link = status.Link{}
	h := techHarness(t, r.deps())
	h.techLogin()
	h.eventually("the link shown as not enrolled", func() bool { return strings.Contains(h.screenText(), "enrolled") })
	if !h.button("Sync now").Disabled() {
		t.Fatal("Sync now is enabled on a terminal that is not enrolled")
	}
	r.mu.Lock()
	r.link = status.Link{Enrolled: true, Connected: true, TerminalID: "term-1"}
	r.mu.Unlock()
	h.eventually("Sync now enabled after enrollment", func() bool {
		h.k.Tick() // kioskd's once-a-second tick re-reads the link
		return !h.button("Sync now").Disabled()
	})
}

// A terminal clock hours off the relay's is named on the link card, with the way it is off;
// a clock within a minute of the relay's is not mentioned.
func TestTechLinkNamesAClockOffTheRelays(t *testing.T) {
	r := newTechRig(t)
	r.link.ClockOffset = 30 * time.Second
	h := techHarness(t, r.deps())
	h.techLogin()
	h.eventually("the link card", func() bool { return strings.Contains(h.screenText(), "Last contact with the relay") })
	if s := h.screenText(); strings.Contains(s, "clock is") {
		t.Fatalf("a clock 30 s off the relay's is reported:\n%s", s)
	}
	r.mu.Lock()
	r.link.ClockOffset = -(3*time.Hour + 12*time.Minute)
	r.mu.Unlock()
	h.eventually("the clock ahead named", func() bool {
		h.k.Tick()
		return strings.Contains(h.screenText(), "This terminal's clock is 3 h 12 min ahead of the relay's")
	})
}
