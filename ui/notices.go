package ui

import (
	"strings"
	"time"

	"fyne.io/fyne/v2"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// pickNotices keeps the notices a person reading lang should see. A notice with no language
// is for everyone. A facility posts a notice once per language, so one in another language is
// a translation this person does not need, unless nothing at all was posted in theirs: then
// they see the others rather than nothing (an untranslated notice beats a missing one).
func pickNotices(ns []kiosk.Notice, lang string) []kiosk.Notice {
	mine := false
	for _, n := range ns {
		if n.Language == lang {
			mine = true
			break
		}
	}
	var out []kiosk.Notice
	for _, n := range ns {
		if n.Language == "" || n.Language == lang || !mine {
			out = append(out, n)
		}
	}
	return out
}

// noticeCards is the notice panel of a screen: the facility bulletin kioskd sets
// (SetFacilityNotice) then the notices the relay sent, in force now.
func (k *Kiosk) noticeCards(w words, ns []kiosk.Notice, bulletin string) []fyne.CanvasObject {
	var out []fyne.CanvasObject
	if strings.TrimSpace(bulletin) != "" {
		out = append(out, card(theme.Panel, theme.Text(w.T("welcome.notice"), theme.SubHeadingSize, theme.Yellow, true), label(bulletin)))
	}
	for _, n := range ns {
		title := w.T("welcome.notice")
		if n.InmateID != "" {
			title = w.T("home.notice_personal")
		}
		out = append(out, card(theme.Panel, theme.Text(title, theme.SubHeadingSize, theme.Yellow, true), label(n.Text)))
	}
	return out
}

// loadNotices puts the notices in force for inmateID ("" only those to everyone) in lang
// after the first base objects of box, off the UI goroutine; they are reloaded when the first
// of them expires, while v shows. They go straight into the screen's own box, not a box of
// their own: a wrapping label nested one box deeper is measured before its width is known.
func (k *Kiosk) loadNotices(v *view, w words, box *fyne.Container, base int, inmateID, lang, bulletin string) {
	k.run(func() func() {
		ns, err := k.d.Notices(inmateID)
		return func() {
			if k.v != v {
				return
			}
			if err != nil {
				k.logf("ui: read notices: %v", err)
			}
			ns = pickNotices(ns, lang)
			if len(ns) > 0 || len(box.Objects) > base+len(k.noticeCards(w, nil, bulletin)) {
				box.Objects = append(box.Objects[:base:base], k.noticeCards(w, ns, bulletin)...)
				// From the screen's root down: a parent must learn the notices' new height.
				k.screen.Refresh()
			}
			var next time.Time
			for _, n := range ns {
				if !n.Until.IsZero() && (next.IsZero() || n.Until.Before(next)) {
					next = n.Until
				}
			}
			v.noticesUntil = next
			v.reloadNotices = func() { k.loadNotices(v, w, box, base, inmateID, lang, bulletin) }
		}
	})
}

// noticesDue reloads the notices of the view on show when one of them has expired.
func (k *Kiosk) noticesDue() {
	v := k.v
	if v == nil || v.reloadNotices == nil || v.noticesUntil.IsZero() || k.clk.Now().Before(v.noticesUntil) {
		return
	}
	v.noticesUntil = time.Time{}
	v.reloadNotices()
}
