package ui

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/ui/keyboard"
	"github.com/tether-kiosk/tether/ui/theme"
)

// techArea is the technician logged in, as far as the screens know; touched only on the
// UI goroutine, and dropped (its subscription and enrollment cancelled) by wipe.
type techArea struct {
	id        string
	lastInput time.Duration
	stop      context.CancelFunc // the live view's subscription or an enrollment in flight
	polling   bool
	link      *status.Link // last seen, to prefill the relay address
	msg       string       // the result of the last action, shown on the area's home
	msgBad    bool
}

const (
	techAuditRows  = 20 // rows of the recent actions screen
	techEventRows  = 14 // rows of the live device view
	enrollTimeout  = time.Minute
	techMsgMaxText = 300
)

// errNoAudit: the domain cannot record technician actions, so none is offered.
var errNoAudit = errors.New("technician actions cannot be recorded on this terminal")

// notRecorded is an action refused because its audit event could not be written.
type notRecorded struct{ err error }

func (e *notRecorded) Error() string { return "not recorded: " + e.err.Error() }
func (e *notRecorded) Unwrap() error { return e.err }

// isTech reports whether the person at the screen is a logged-in technician: the only way
// into the area is a technician's accepted login (SessionInfo.Technician from AcceptNotice).
func (k *Kiosk) isTech() bool {
	return k.sess != nil && k.sess.info.Technician && k.sess.info.TechnicianID != "" &&
		k.tech != nil && k.tech.id == k.sess.info.TechnicianID
}

func (k *Kiosk) techAudit() (TechAudit, bool) {
	ta, ok := k.d.(TechAudit)
	return ta, ok
}

// showTechnician opens the technician area after a technician's login; for anyone else it
// does nothing.
func (k *Kiosk) showTechnician() {
	s := k.sess
	if s == nil || !s.info.Technician || s.info.TechnicianID == "" {
		k.logf("ui: technician area refused: not a technician's login")
		return
	}
	if k.tech == nil || k.tech.id != s.info.TechnicianID {
		k.closeTech()
		k.tech = &techArea{id: s.info.TechnicianID, lastInput: k.clk.Mono()}
		k.techAct("open_area", nil, nil, func(err error) {
			if err != nil {
				k.techMessage(k.words(s.lang), err)
			}
		})
	}
	k.showTechHome()
}

// closeTech forgets the technician area; wipe calls it at every logout.
func (k *Kiosk) closeTech() {
	if k.tech != nil && k.tech.stop != nil {
		k.tech.stop()
	}
	k.tech = nil
}

// techStop ends what the last screen of the area left running (live view, enrollment).
func (k *Kiosk) techStop() {
	if k.tech != nil && k.tech.stop != nil {
		k.tech.stop()
		k.tech.stop = nil
	}
}

// techAct records action as an audit event and only then, if that worked, runs do on the
// worker: nothing a technician does goes unrecorded. A failure of do is recorded too, as
// action+"_failed". done runs on the UI goroutine unless the technician has gone.
func (k *Kiosk) techAct(action string, detail map[string]string, do func() error, done func(error)) {
	if k.tech == nil {
		return
	}
	id := k.tech.id
	ta, ok := k.techAudit()
	if !ok {
		if done != nil {
			done(errNoAudit)
		}
		return
	}
	k.run(func() func() {
		var err error
		if e := ta.TechnicianAction(id, action, detail); e != nil {
			err = &notRecorded{e}
		} else if do != nil {
			if err = do(); err != nil {
				fd := map[string]string{"error": err.Error()}
				for key, val := range detail {
					fd[key] = val
				}
				if e := ta.TechnicianAction(id, action+"_failed", fd); e != nil {
					k.logf("ui: record failed %s: %v", action, e)
				}
			}
		}
		if done == nil {
			return nil
		}
		return func() { done(err) }
	})
}

// techInput is a technician's tap or key: the area closes when left alone.
func (k *Kiosk) techInput() {
	k.touch()
	if k.tech != nil {
		k.tech.lastInput = k.clk.Mono()
	}
}

func (k *Kiosk) techButton(label string, icon fyne.Resource, fn func()) *widget.Button {
	b := widget.NewButtonWithIcon(label, icon, nil)
	b.OnTapped = func() {
		k.techInput()
		fn()
	}
	return b
}

// techView is a view of the area: on each tick it closes the area when idle, else refresh.
func (k *Kiosk) techView(name string, refresh func()) (*view, words) {
	w := k.words(k.sess.lang)
	v := &view{name: name, lang: k.sess.lang}
	v.onTick = func() {
		if !k.isTech() || k.v != v {
			return
		}
		if k.clk.Mono()-k.tech.lastInput > k.d.Policy().IdleTimeout.D() {
			k.leaveTech(kiosk.EndIdle)
			return
		}
		if refresh != nil {
			refresh()
		}
	}
	return v, w
}

// leaveTech records the technician leaving and wipes the screen.
func (k *Kiosk) leaveTech(reason kiosk.Reason) {
	if k.tech != nil {
		k.techAct("close_area", map[string]string{"reason": string(reason)}, nil, nil)
	}
	k.endSession(reason)
}

// techFrame is a screen of the area: its bar names the technician by id, never by name.
func (k *Kiosk) techFrame(w words, title string, back func(), body fyne.CanvasObject) fyne.CanvasObject {
	who := text(w.T("tech.who", "id", k.tech.id), theme.Yellow)
	var left fyne.CanvasObject = layout.NewSpacer()
	if back != nil {
		left = big(k.techButton(w.T("common.back"), fynetheme.NavigateBackIcon(), back), 160, 60)
	}
	bar := container.NewBorder(nil, nil, left, container.NewCenter(who), container.NewCenter(heading(title)))
	top := container.NewStack(canvas.NewRectangle(theme.Panel), container.NewPadded(bar))
	return container.NewBorder(top, nil, nil, nil, container.NewPadded(body))
}

// techMessage shows the result of an action on the area's home.
func (k *Kiosk) techMessage(w words, err error) {
	if k.tech == nil {
		return
	}
	if err == nil {
		return
	}
	k.tech.msg, k.tech.msgBad = k.techErrText(w, err), true
	if k.v != nil && k.v.name == "tech" {
		k.showTechHome()
	}
}

func (k *Kiosk) techErrText(w words, err error) string {
	var nr *notRecorded
	if errors.As(err, &nr) {
		return w.T("tech.not_recorded", "error", clip(nr.err.Error()))
	}
	if errors.Is(err, errNoAudit) {
		return w.T("tech.unavailable")
	}
	return w.T("tech.failed", "error", clip(err.Error()))
}

func clip(s string) string {
	if r := []rune(s); len(r) > techMsgMaxText {
		return string(r[:techMsgMaxText]) + "…"
	}
	return s
}

// techPoll reads link and devices on the worker (one read in flight) and hands them to show.
func (k *Kiosk) techPoll(v *view, show func(link *status.Link, devs []status.Device)) {
	t := k.tech
	if t == nil || t.polling {
		return
	}
	t.polling = true
	deps := k.techD
	k.run(func() func() {
		var link *status.Link
		var devs []status.Device
		if deps.LinkStatus != nil {
			l := deps.LinkStatus()
			link = &l
		}
		if deps.Devices != nil {
			devs = deps.Devices()
		}
		return func() {
			t.polling = false
			if k.tech != t {
				return
			}
			if link != nil {
				t.link = link
			}
			if k.v == v {
				show(link, devs)
			}
		}
	})
}

// showTechHome is the area's home: link, devices, and the way to every tool.
func (k *Kiosk) showTechHome() {
	if !k.isTech() {
		return
	}
	k.techStop()
	deps := k.techD
	linkBox := container.NewVBox()
	devBox := container.NewVBox()
	var shown struct {
		link *status.Link
		devs []status.Device
		done bool
	}
	var v *view
	var w words
	var scroll *container.Scroll
	var syncB *widget.Button
	// Sync now needs a relay: an unenrolled terminal has none to reach.
	syncable := func(link *status.Link) {
		if syncB == nil {
			return
		}
		if deps.SyncNow == nil || link == nil || !link.Enrolled {
			syncB.Disable()
		} else {
			syncB.Enable()
		}
	}
	render := func(link *status.Link, devs []status.Device) {
		syncable(link)
		if shown.done && reflect.DeepEqual(shown.link, link) && reflect.DeepEqual(shown.devs, devs) {
			return // redraw only on change
		}
		shown.link, shown.devs, shown.done = link, devs, true
		linkBox.Objects = k.techLinkRows(w, deps, link)
		linkBox.Refresh()
		devBox.Objects = k.techDeviceRows(w, deps, devs)
		devBox.Refresh()
		if scroll != nil { // the cards grew or shrank: lay the whole column out again
			scroll.Content.Refresh()
			scroll.Refresh()
		}
	}
	v, w = k.techView("tech", func() { k.techPoll(v, render) })
	render(k.tech.link, nil)

	syncB = k.techButton(w.T("tech.sync_now"), fynetheme.ViewRefreshIcon(), func() {})
	syncB.Importance = widget.HighImportance
	syncB.OnTapped = func() {
		k.techInput()
		syncB.Disable()
		k.techAct("sync_now", nil, func() error { deps.SyncNow(); return nil }, func(err error) {
			k.tech.msg, k.tech.msgBad = w.T("tech.sync_requested"), false
			if err != nil {
				k.tech.msg, k.tech.msgBad = k.techErrText(w, err), true
			}
			if k.v == v {
				k.showTechHome()
			}
		})
	}
	syncable(k.tech.link)
	linkHead := theme.Text(w.T("tech.link"), theme.SubHeadingSize, theme.Yellow, true)
	linkCard := card(theme.Panel, container.NewBorder(nil, nil, nil, container.NewVBox(big(syncB, 260, 64)),
		container.NewVBox(linkHead, linkBox)))
	devCard := card(theme.Panel, theme.Text(w.T("tech.devices"), theme.SubHeadingSize, theme.Yellow, true), devBox)

	testB := k.techButton(w.T("tech.test"), fynetheme.MediaPlayIcon(), k.showTechTest)
	if deps.DeviceEvents == nil {
		testB.Disable()
	}
	enrollB := k.techButton(w.T("tech.enroll"), fynetheme.LoginIcon(), k.showTechEnroll)
	if deps.Enroll == nil {
		enrollB.Disable()
	}
	auditB := k.techButton(w.T("tech.audit"), fynetheme.ListIcon(), k.showTechAudit)
	outB := k.techButton(w.T("tile.logout"), fynetheme.LogoutIcon(), func() { k.leaveTech(kiosk.EndLogout) })
	outB.Importance = widget.HighImportance
	buttons := container.NewGridWithColumns(4, big(testB, 0, 80), big(enrollB, 0, 80), big(auditB, 0, 80), big(outB, 0, 80))

	msg := label(k.tech.msg)
	if k.tech.msgBad {
		msg.Importance = widget.WarningImportance
	} else {
		msg.Importance = widget.SuccessImportance
	}
	bottom := container.NewVBox(msg, buttons)
	scroll = k.vscroll(container.NewVBox(linkCard, devCard))
	body := container.NewBorder(nil, bottom, nil, nil, scroll)
	k.setScreen(v, k.techFrame(w, w.T("tech.area"), nil, body))
	k.techPoll(v, render)
}

// techLinkRows describes the sync link.
func (k *Kiosk) techLinkRows(w words, deps TechDeps, l *status.Link) []fyne.CanvasObject {
	if deps.LinkStatus == nil {
		return []fyne.CanvasObject{text(w.T("tech.unavailable"), theme.Grey)}
	}
	if l == nil {
		return []fyne.CanvasObject{text(w.T("tech.loading"), theme.Grey)}
	}
	var rows []fyne.CanvasObject
	switch {
	case !l.Enrolled:
		rows = append(rows, theme.Text(w.T("tech.link.not_enrolled"), theme.SubHeadingSize, theme.Orange, true))
	case l.Connected:
		rows = append(rows, theme.Text(w.T("tech.link.online"), theme.SubHeadingSize, theme.Green, true))
	default:
		rows = append(rows, theme.Text(w.T("tech.link.offline"), theme.SubHeadingSize, theme.Orange, true))
	}
	if l.RelayURL != "" {
		rows = append(rows, text(w.T("tech.link.relay", "url", l.RelayURL), theme.White))
	}
	if l.TerminalID != "" {
		rows = append(rows, text(w.T("tech.link.terminal", "id", l.TerminalID, "facility", l.Facility, "mode", l.Mode), theme.White))
	}
	if l.LastSuccess.IsZero() {
		rows = append(rows, text(w.T("tech.link.never"), theme.White))
	} else {
		rows = append(rows, text(w.T("tech.link.last", "when", w.stamp(l.LastSuccess)), theme.White))
	}
	if off := l.ClockOffset; off >= status.ClockOffsetShown || off <= -status.ClockOffsetShown {
		key, by := "tech.link.clock_behind", off
		if off < 0 {
			key, by = "tech.link.clock_ahead", -off
		}
		by = by.Round(time.Minute)
		c := text(w.T(key, "h", w.num(int(by/time.Hour)), "m", w.num(int(by%time.Hour/time.Minute))), theme.Orange)
		rows = append(rows, c)
	}
	if l.Waiting > 0 && !l.OldestWaiting.IsZero() {
		rows = append(rows, text(w.T("tech.link.oldest", "n", w.num(l.Waiting), "when", w.stamp(l.OldestWaiting)), theme.White))
	} else {
		rows = append(rows, text(w.T("tech.link.waiting", "n", w.num(l.Waiting)), theme.White))
	}
	if l.LastError != "" {
		// A long error wraps; a wrapped label sizes itself right only at the end of a VBox.
		e := label(w.T("tech.link.error", "error", clip(l.LastError)))
		e.Importance = widget.WarningImportance
		rows = append(rows, e)
	}
	return rows
}

// techDeviceRows is one card a device: what it is, where, its state and its settings.
func (k *Kiosk) techDeviceRows(w words, deps TechDeps, devs []status.Device) []fyne.CanvasObject {
	if deps.Devices == nil {
		return []fyne.CanvasObject{text(w.T("tech.unavailable"), theme.Grey)}
	}
	if devs == nil {
		return []fyne.CanvasObject{text(w.T("tech.loading"), theme.Grey)}
	}
	if len(devs) == 0 {
		return []fyne.CanvasObject{label(w.T("tech.devices.none"))}
	}
	var rows []fyne.CanvasObject
	for _, d := range devs {
		d := d
		name := theme.Text(d.Name+" · "+w.techRole(d.Role), theme.TextSize, theme.White, true)
		state, c := w.techDeviceState(d)
		head := container.NewHBox(name, text(state, c))
		about := w.T("tech.device.counts", "accepted", strconv.FormatUint(d.Accepted, 10),
			"rejected", strconv.FormatUint(d.RejectedTotal(), 10), "presses", strconv.FormatUint(d.Keys, 10))
		if d.Framing != "" {
			about = w.T("tech.device.framing", "framing", d.Framing) + " · " + about
		}
		// A long path is cut at the edge rather than widening the screen past the glass.
		path := container.New(clipLayout{}, text(w.T("tech.device.path", "path", d.Path), theme.White))
		lines := container.NewVBox(head, path, text(about, theme.Grey))
		set := k.techButton(w.T("tech.settings"), fynetheme.SettingsIcon(), func() { k.showTechDevice(d) })
		if deps.SetDevice == nil {
			set.Disable()
		}
		if len(rows) > 0 {
			rows = append(rows, widget.NewSeparator())
		}
		rows = append(rows, container.NewBorder(nil, nil, nil, container.NewCenter(big(set, 200, 60)), lines))
	}
	return rows
}

func (w words) techRole(role string) string {
	switch role {
	case "badge", "pinpad":
		return w.T("tech.role." + role)
	}
	return role
}

func (w words) techDeviceState(d status.Device) (string, color.Color) {
	switch {
	case d.Connected():
		return w.T("tech.device.connected"), theme.Green
	case d.LastError != "":
		return w.T("tech.device.disconnected", "error", clip(d.LastError)), theme.Orange
	}
	return w.T("tech.device.disconnected_plain"), theme.Orange
}

// techEvent says what a device did, in one line.
func (w words) techEvent(ev DeviceEvent) (string, color.Color) {
	at := ev.At.In(w.loc).Format("15:04:05")
	var s string
	c := color.Color(theme.White)
	switch ev.Kind {
	case "badge":
		s, c = w.T("tech.ev.badge", "device", ev.Device, "id", ev.ID), theme.Yellow
	case "rejected":
		s, c = w.T("tech.ev.rejected", "device", ev.Device, "reason", ev.Reason), theme.Orange
	case "key":
		s = w.T("tech.ev.key", "device", ev.Device, "kind", ev.Key)
	case "pin-dropped":
		s, c = w.T("tech.ev.pin_dropped", "device", ev.Device, "reason", ev.Reason), theme.Orange
	case "connected":
		s, c = w.T("tech.ev.connected", "device", ev.Device), theme.Green
	case "disconnected":
		s, c = w.T("tech.ev.disconnected", "device", ev.Device, "reason", ev.Reason), theme.Orange
	default:
		s = ev.Device + ": " + ev.Kind
	}
	return at + "  " + s, c
}

// showTechTest is the live device view: every badge, rejection and key as it happens.
func (k *Kiosk) showTechTest() {
	if !k.isTech() {
		return
	}
	k.techStop()
	deps := k.techD
	states := container.NewVBox()
	var body *fyne.Container
	var v *view
	var w words
	var lastDevs []status.Device
	v, w = k.techView("tech_test", func() {
		k.techPoll(v, func(_ *status.Link, devs []status.Device) {
			if devs == nil || reflect.DeepEqual(devs, lastDevs) {
				return
			}
			lastDevs = devs
			states.Objects = nil
			for _, d := range devs {
				s, c := w.techDeviceState(d)
				states.Add(text(d.Name+": "+s, c))
			}
			body.Refresh() // the header grew: lay the events out below it again
		})
	})
	events := container.NewVBox(label(w.T("tech.test.none")))
	n := 0
	add := func(ev DeviceEvent) {
		if n == 0 {
			events.Objects = nil
		}
		n++
		s, c := w.techEvent(ev)
		row := theme.Text(s, theme.SubHeadingSize, c, ev.Kind == "badge")
		events.Objects = append([]fyne.CanvasObject{row}, events.Objects...)
		if len(events.Objects) > techEventRows {
			events.Objects = events.Objects[:techEventRows]
		}
		events.Refresh()
	}
	hint := label(w.T("tech.test.hint"))
	body = container.NewBorder(container.NewVBox(hint, states, widget.NewSeparator()), nil, nil, nil, k.vscroll(events))
	k.setScreen(v, k.techFrame(w, w.T("tech.test.title"), k.showTechHome, body))
	if deps.DeviceEvents == nil {
		events.Objects = []fyne.CanvasObject{text(w.T("tech.unavailable"), theme.Grey)}
		events.Refresh()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.tech.stop = cancel
	gen := k.gen
	k.techAct("device_test", nil, func() error {
		deps.DeviceEvents(ctx, func(ev DeviceEvent) {
			if ev.Kind == "pin" {
				return
			}
			k.do(func() {
				if k.gen == gen && k.v == v {
					add(ev)
				}
			})
		})
		return nil
	}, func(err error) {
		if err != nil && k.v == v {
			cancel()
			events.Objects = []fyne.CanvasObject{text(k.techErrText(w, err), theme.Orange)}
			events.Refresh()
		}
	})
	v.onTick()
}

// showTechDevice picks a device's serial port and framing.
func (k *Kiosk) showTechDevice(d status.Device) {
	if !k.isTech() {
		return
	}
	k.techStop()
	deps := k.techD
	v, w := k.techView("tech_device", nil)
	path, framing := d.Path, d.Framing
	portBox := container.NewVBox(text(w.T("tech.loading"), theme.Grey))
	frameBox := container.NewGridWithColumns(4)
	status := label("")
	var scroll *container.Scroll
	relayout := func() {
		if scroll != nil {
			scroll.Content.Refresh()
			scroll.Refresh()
		}
	}
	var drawPorts func(ports []PortInfo, err error)
	var lastPorts []PortInfo
	var lastErr error
	drawPorts = func(ports []PortInfo, err error) {
		lastPorts, lastErr = ports, err
		portBox.Objects = nil
		if err != nil {
			portBox.Add(text(k.techErrText(w, err), theme.Orange))
		}
		seen := false
		for _, p := range ports {
			seen = seen || p.Path == path
		}
		if !seen && path != "" {
			ports = append([]PortInfo{{Path: path}}, ports...)
		}
		if len(ports) == 0 {
			portBox.Add(label(w.T("tech.settings.no_ports")))
		}
		for _, p := range ports {
			p := p
			// by-id names are long: the base names fit a button; the full path is audited.
			l := filepath.Base(p.Path)
			if p.Resolved != "" && p.Resolved != p.Path {
				l += " → " + filepath.Base(p.Resolved)
			}
			if p.Path == d.Path {
				l += "  " + w.T("tech.settings.current")
			}
			b := k.techButton(l, nil, func() {
				path = p.Path
				drawPorts(lastPorts, lastErr)
			})
			b.Alignment = widget.ButtonAlignLeading
			if p.Path == path {
				b.Importance = widget.HighImportance
			}
			portBox.Add(big(b, 0, 60))
		}
		portBox.Refresh()
		relayout()
	}
	var drawFramings func()
	drawFramings = func() {
		frameBox.Objects = nil
		opts := append([]string(nil), deps.Framings...)
		if framing != "" && !contains(opts, framing) {
			opts = append([]string{framing}, opts...)
		}
		for _, f := range opts {
			f := f
			b := k.techButton(f, nil, func() { framing = f; drawFramings() })
			if f == framing {
				b.Importance = widget.HighImportance
			}
			frameBox.Add(big(b, 200, 60))
		}
		frameBox.Refresh()
		relayout()
	}
	drawFramings()

	var save *widget.Button
	save = k.techButton(w.T("tech.settings.save"), fynetheme.DocumentSaveIcon(), func() {
		if path == "" {
			return
		}
		save.Disable()
		p, f := path, framing
		detail := map[string]string{"device": d.Name, "path": p, "framing": f, "was_path": d.Path, "was_framing": d.Framing}
		k.techAct("device_set", detail, func() error { return deps.SetDevice(d.Name, p, f) }, func(err error) {
			if k.v != v {
				return
			}
			save.Enable()
			if err != nil {
				status.SetText(k.techErrText(w, err))
				status.Importance = widget.WarningImportance
				status.Refresh()
				return
			}
			k.tech.msg, k.tech.msgBad = w.T("tech.settings.saved", "device", d.Name, "path", p), false
			k.showTechHome()
		})
	})
	save.Importance = widget.HighImportance
	if deps.SetDevice == nil {
		save.Disable()
	}
	sections := []fyne.CanvasObject{
		theme.Text(w.T("tech.settings.port"), theme.SubHeadingSize, theme.Yellow, true), portBox,
	}
	if d.Role == "badge" {
		sections = append(sections, theme.Text(w.T("tech.settings.framing"), theme.SubHeadingSize, theme.Yellow, true), frameBox)
	}
	bottom := container.NewBorder(nil, nil, nil, big(save, 240, 72), status)
	scroll = k.vscroll(container.NewVBox(sections...))
	body := container.NewBorder(nil, bottom, nil, nil, scroll)
	k.setScreen(v, k.techFrame(w, w.T("tech.settings.title", "device", d.Name), k.showTechHome, body))
	if deps.Ports == nil {
		drawPorts(nil, nil)
		return
	}
	k.run(func() func() {
		ports, err := deps.Ports()
		return func() {
			if k.v == v {
				drawPorts(ports, err)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// showTechEnroll enrolls the terminal with a relay; the code is typed, sent, then cleared.
func (k *Kiosk) showTechEnroll() {
	if !k.isTech() {
		return
	}
	k.techStop()
	deps := k.techD
	v, w := k.techView("tech_enroll", nil)
	relay := k.newEntry(false, "wss://relay.example:8443")
	relay.onTouch = k.techInput
	if l := k.tech.link; l != nil {
		relay.SetText(l.RelayURL)
	}
	code := k.newEntry(false, w.T("tech.enroll.code"))
	code.onTouch = k.techInput
	// Not a password entry: its reveal button is under the touch minimum. The code is
	// one-time and the entry is emptied as soon as it is sent.
	status := label("")

	kb := keyboard.New(keyboard.Labels{Space: w.T("kbd.space")})
	target := &relay.Entry
	kb.OnRune = func(r rune) { k.techInput(); target.TypedRune(r) }
	kb.OnKey = func(n fyne.KeyName) { k.techInput(); target.TypedKey(&fyne.KeyEvent{Name: n}) }
	relay.onFocus = func() { target = &relay.Entry }
	code.onFocus = func() { target = &code.Entry }
	symbols := container.NewGridWithColumns(6)
	for _, r := range ":/-_.=" {
		r := r
		symbols.Add(big(k.techButton(string(r), nil, func() { target.TypedRune(r) }), 0, keyboard.KeyHeight))
	}

	var enrollB *widget.Button
	enrollB = k.techButton(w.T("tech.enroll.go"), fynetheme.ConfirmIcon(), func() {
		url, secret := strings.TrimSpace(relay.Text), strings.TrimSpace(code.Text)
		code.SetText("")
		if url == "" || secret == "" {
			status.SetText(w.T("tech.enroll.missing"))
			return
		}
		enrollB.Disable()
		status.SetText(w.T("tech.enroll.busy"))
		ctx, cancel := context.WithTimeout(context.Background(), enrollTimeout)
		k.tech.stop = cancel
		var info EnrollInfo
		k.techAct("enroll", map[string]string{"relay": url}, func() error {
			defer cancel()
			var err error
			info, err = deps.Enroll(ctx, url, secret)
			if err != nil {
				// The code is a secret: it must not come back in an error on screen or in the audit.
				return errors.New(strings.ReplaceAll(err.Error(), secret, "***"))
			}
			return nil
		}, func(err error) {
			if k.v != v {
				return
			}
			enrollB.Enable()
			if err != nil {
				status.SetText(k.techErrText(w, err))
				return
			}
			k.tech.msg, k.tech.msgBad = w.T("tech.enroll.done", "id", info.TerminalID, "facility", info.Facility, "mode", info.Mode), false
			k.showTechHome()
		})
	})
	enrollB.Importance = widget.HighImportance
	if deps.Enroll == nil {
		enrollB.Disable()
	}
	form := container.NewVBox(
		theme.Text(w.T("tech.enroll.relay"), theme.TextSize, theme.Yellow, true), relay,
		theme.Text(w.T("tech.enroll.code"), theme.TextSize, theme.Yellow, true), code,
		container.NewBorder(nil, nil, nil, big(enrollB, 240, 64), status),
	)
	body := container.NewBorder(form, container.NewVBox(symbols, kb.Object()), nil, nil, nil)
	k.setScreen(v, k.techFrame(w, w.T("tech.enroll.title"), k.showTechHome, body))
	k.win.Canvas().Focus(relay)
}

// showTechAudit lists the newest technician actions, from the domain's audit trail.
func (k *Kiosk) showTechAudit() {
	if !k.isTech() {
		return
	}
	k.techStop()
	v, w := k.techView("tech_audit", nil)
	list := container.NewVBox(text(w.T("tech.loading"), theme.Grey))
	k.setScreen(v, k.techFrame(w, w.T("tech.audit.title"), k.showTechHome, k.vscroll(list)))
	ta, ok := k.techAudit()
	if !ok {
		list.Objects = []fyne.CanvasObject{text(w.T("tech.unavailable"), theme.Grey)}
		list.Refresh()
		return
	}
	k.run(func() func() {
		evs, err := ta.RecentTechnicianActions(techAuditRows)
		return func() {
			if k.v != v {
				return
			}
			list.Objects = nil
			if err != nil {
				list.Add(text(k.techErrText(w, err), theme.Orange))
			} else if len(evs) == 0 {
				list.Add(label(w.T("tech.audit.none")))
			}
			for _, ev := range evs {
				row := []fyne.CanvasObject{theme.Text(w.stamp(ev.At)+"  "+ev.Actor+"  "+w.techAction(ev.Kind), theme.TextSize, theme.White, true)}
				if len(ev.Detail) > 0 {
					row = append(row, text(techDetail(ev.Detail), theme.Grey))
				}
				list.Add(card(theme.Panel, row...))
			}
			list.Refresh()
		}
	})
}

// techAction names an audited technician action.
func (w words) techAction(kind string) string {
	a := strings.TrimPrefix(kind, kiosk.TechAuditPrefix)
	id := "tech.action." + a
	if s := w.T(id); s != id {
		return s
	}
	return a
}

// techDetail shows an audit event's detail as key=value, in key order.
func techDetail(d map[string]string) string {
	if len(d) == 0 {
		return " "
	}
	keys := make([]string, 0, len(d))
	for key := range d {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, key := range keys {
		parts = append(parts, fmt.Sprintf("%s=%s", key, d[key]))
	}
	return clip(strings.Join(parts, ", "))
}
