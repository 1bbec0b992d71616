package ui

import (
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// refreshSession reloads minutes, cost, balance and time left (one call in flight at most).
func (k *Kiosk) refreshSession() {
	s := k.sess
	if s == nil || s.refreshing || s.info.Technician {
		return
	}
	s.refreshing = true
	k.run(func() func() {
		info, ok := k.d.Active()
		return func() {
			s.refreshing = false
			if k.sess != s || !ok || info.SessionID != s.info.SessionID {
				return
			}
			s.info = info
			if k.v != nil && k.v.onSession != nil {
				k.v.onSession(info)
			}
		}
	})
}

// refreshCounts reloads the unread count and how many messages wait for the relay.
func (k *Kiosk) refreshCounts() {
	s := k.sess
	if s == nil || s.inmateID == "" {
		return
	}
	id := s.inmateID
	k.run(func() func() {
		unread := k.d.Unread(id)
		sent, err := k.d.Sent(id)
		queued := 0
		for _, m := range sent {
			if m.State == kiosk.MsgQueued && k.listed(m) {
				queued++
			}
		}
		return func() {
			if k.sess != s {
				return
			}
			s.unread = unread
			if err == nil {
				s.queued = queued
			}
			if k.v != nil && k.v.onLink != nil {
				k.v.onLink()
			}
		}
	})
}

// logout is the inmate's own logout: the draft is saved first, then the domain ends the
// session and its EventSessionEnded wipes the screen.
func (k *Kiosk) logout() {
	s := k.sess
	if s == nil {
		return
	}
	var draft *kiosk.Draft
	if s.compose != nil {
		if d, ok := s.compose.pendingDraft(s.inmateID); ok {
			draft = &d
		}
		s.compose.dirty = false
	}
	k.run(func() func() {
		if draft != nil {
			if err := k.d.SaveDraft(*draft); err != nil {
				k.logf("ui: save draft at logout: %v", err)
			}
		}
		if err := k.d.Logout(); err != nil {
			k.logf("ui: logout: %v", err)
		}
		return func() {
			// Normally the session-ended event wiped the screen already and this is dropped.
			if k.sess == s {
				k.endSession(kiosk.EndLogout)
			}
		}
	})
}

// setLanguage switches the session's language and remembers it for next time.
func (k *Kiosk) setLanguage(lang string) {
	s := k.sess
	if s == nil || s.lang == lang {
		return
	}
	s.lang = lang
	id := s.inmateID
	k.run(func() func() {
		if err := k.d.SetLanguage(id, lang); err != nil {
			k.logf("ui: remember language: %v", err)
		}
		return nil
	})
	k.showHome()
}

// showWarning puts a band across the top: the session ends soon.
func (k *Kiosk) showWarning(left time.Duration, why kiosk.Reason) {
	w := k.words(k.sess.lang)
	n := minutesLeft(left)
	msg := w.T("warn.minutes", "n", strconv.Itoa(n))
	if n <= 1 {
		msg = w.T("warn.one_minute")
	}
	t := theme.Text(msg, theme.SubHeadingSize, theme.Black, true)
	lines := []fyne.CanvasObject{t}
	switch why { // why it ends, first: a person can act on it (save, ask for funds)
	case kiosk.EndMaxLength, kiosk.EndBalance, kiosk.EndCurfew, kiosk.EndOfflineLimit:
		lines = append([]fyne.CanvasObject{theme.Text(w.T("warn.why."+string(why)), theme.SubHeadingSize, theme.Black, true)}, lines...)
	}
	ok := k.button(w.T("warn.ok"), nil, func() {
		k.warnLayer.Objects = nil
		k.warnLayer.Refresh()
	})
	band := theme.Banner(container.NewBorder(nil, nil, nil, big(ok, 140, 64), container.NewCenter(container.NewVBox(lines...))), theme.Yellow)
	k.warnLayer.Objects = []fyne.CanvasObject{band}
	k.warnLayer.Refresh()
}

// showIdle covers the whole screen with "Are you still there?"; any touch takes it away.
func (k *Kiosk) showIdle(left time.Duration) {
	w := k.words(k.sess.lang)
	k.idleUntil = k.clk.Mono() + left
	title := theme.Text(w.T("idle.title"), 64, theme.Yellow, true)
	title.Alignment = fyne.TextAlignCenter
	body := theme.Text("", theme.SubHeadingSize, theme.White, false)
	body.Alignment = fyne.TextAlignCenter
	k.idleText = body
	k.updateIdle()
	bg := canvas.NewRectangle(theme.Overlay)
	content := container.NewStack(bg, container.NewVBox(layout.NewSpacer(), title, body, layout.NewSpacer()))
	k.idleLayer.Objects = []fyne.CanvasObject{newTappable(content, k.touch)}
	k.idleLayer.Refresh()
}

func (k *Kiosk) updateIdle() {
	t := k.idleText
	if t == nil || k.sess == nil {
		return
	}
	secs := int((k.idleUntil - k.clk.Mono() + time.Second - 1) / time.Second)
	t.Text = k.words(k.sess.lang).T("idle.body", "n", strconv.Itoa(max(secs, 0)))
	t.Refresh()
}

// sessionView makes the view of a session screen and the "time left" text for its bar.
func (k *Kiosk) sessionView(name string) (*view, words, fyne.CanvasObject) {
	s := k.sess
	w := k.words(s.lang)
	v := &view{name: name, lang: s.lang}
	left := text("", theme.White)
	v.onSession = func(info kiosk.SessionInfo) {
		left.Text = w.T("home.time_left", "minutes", strconv.Itoa(minutesLeft(info.TimeLeft)))
		left.Refresh()
	}
	v.onSession(s.info)
	return v, w, container.NewCenter(left)
}
