package ui

import (
	"strings"
	"time"
	"unicode/utf8"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/keyboard"
	"github.com/tether-kiosk/tether/ui/theme"
)

// preaState is a PREA report being made from the welcome screen, outside any session: with
// the badge (or tablet) and PIN, or anonymously. It is free and needs no balance, and works
// in lockdown, curfew and cool-down (28 CFR 115.51: reporting must always be possible).
type preaState struct {
	lang      string
	scanning  bool                // waiting for the badge
	reporter  *kiosk.PREAReporter // nil: anonymous (once writing)
	writing   bool                // the report screen is up
	body      string              // the report being typed; never saved as a draft
	msg       error               // why the last badge or PIN was refused
	done      bool                // the reference is on show
	lastInput time.Duration       // a report left alone is dropped, text and all
}

// preaIdle is how long the reference stays on screen after a report, for the next person
// in line must not learn that someone reported.
const preaIdle = time.Minute

// preaDue drops a PREA report left alone: its screen must not greet the next person.
func (k *Kiosk) preaDue() {
	p := k.prea
	if p == nil || k.login != nil {
		return
	}
	limit := k.d.Policy().IdleTimeout.D()
	if p.done || !p.writing {
		limit = preaIdle
	}
	if k.clk.Mono()-p.lastInput > limit {
		k.showWelcome()
	}
}

// preaButton is the welcome screen's way to a PREA report.
func (k *Kiosk) preaButton(w words, lang string) fyne.CanvasObject {
	b := k.button(w.T("prea.start"), fynetheme.WarningIcon(), func() {
		k.login = nil
		k.prea = &preaState{lang: lang, lastInput: k.clk.Mono()}
		k.showPREAStart()
	})
	b.Importance = widget.WarningImportance
	return container.NewCenter(big(b, 520, 72))
}

// preaWords is the vocabulary of the PREA screens.
func (k *Kiosk) preaWords() words { return k.words(k.prea.lang) }

// showPREAStart says what a report is and offers the two ways to make one.
func (k *Kiosk) showPREAStart() {
	p := k.prea
	p.scanning, p.writing = false, false
	w := k.preaWords()
	v := &view{name: "prea", lang: p.lang}
	title := theme.Text(w.T("prea.title"), theme.HeadingSize, theme.Yellow, true)
	title.Alignment = fyne.TextAlignCenter
	explain := label(w.T("prea.explain"))
	explain.Alignment = fyne.TextAlignCenter
	objs := []fyne.CanvasObject{title, explain}
	if p.msg != nil {
		m := label(w.refusal(p.msg) + "\n" + w.T("prea.anonymous_still"))
		m.Alignment = fyne.TextAlignCenter
		m.Importance = widget.WarningImportance
		objs = append(objs, theme.Banner(m, theme.Panel))
	}
	withID := "prea.with_badge"
	if k.tablet {
		withID = "prea.with_pin"
	}
	with := k.primary(w.T(withID), fynetheme.AccountIcon(), func() {
		p.msg = nil
		p.lastInput = k.clk.Mono()
		if k.tablet {
			k.login = &loginState{lang: p.lang, prea: true, lastInput: k.clk.Mono()}
			k.showPIN()
			return
		}
		k.showPREAScan()
	})
	anon := k.button(w.T("prea.anonymous"), fynetheme.VisibilityOffIcon(), func() {
		p.msg, p.reporter = nil, nil
		k.showPREAWrite()
	})
	cancel := k.button(w.T("pin.cancel"), fynetheme.CancelIcon(), k.showWelcome)
	objs = append(objs, container.NewCenter(container.NewVBox(big(with, 560, 80), big(anon, 560, 80), big(cancel, 560, 64))))
	k.setScreen(v, container.NewPadded(container.NewCenter(container.NewVBox(objs...))))
}

// showPREAScan waits for the badge of the person reporting.
func (k *Kiosk) showPREAScan() { k.showPREAScanNote("") }

// showPREAScanNote is showPREAScan with a line saying why the last scan did not go through.
func (k *Kiosk) showPREAScanNote(msg string) {
	p := k.prea
	p.scanning = true
	w := k.preaWords()
	v := &view{name: "prea_scan", lang: p.lang}
	scan := theme.Text(w.T("welcome.scan"), 64, theme.Yellow, true)
	scan.Alignment = fyne.TextAlignCenter
	hint := label(w.T("prea.scan_hint"))
	hint.Alignment = fyne.TextAlignCenter
	back := k.button(w.T("common.back"), fynetheme.NavigateBackIcon(), k.showPREAStart)
	objs := []fyne.CanvasObject{scan, hint}
	if msg != "" {
		m := label(msg)
		m.Alignment = fyne.TextAlignCenter
		m.Importance = widget.WarningImportance
		objs = append(objs, m)
	}
	objs = append(objs, container.NewCenter(big(back, 240, 72)))
	k.setScreen(v, container.NewPadded(container.NewCenter(container.NewVBox(objs...))))
}

// preaBadge checks a badge scanned for a report: only an unknown badge or a lock refuse it.
func (k *Kiosk) preaBadge(id string) {
	p := k.prea
	p.scanning = false
	p.lastInput = k.clk.Mono()
	k.run(func() func() {
		res, err := k.d.PREABadge(id)
		return func() {
			if k.prea != p {
				return
			}
			if k.welcomeLang == "" && res.Language != "" {
				p.lang = res.Language
			}
			if err != nil {
				p.msg = err
				k.showPREAStart()
				return
			}
			k.login = &loginState{badge: id, res: res, lang: p.lang, prea: true, lastInput: k.clk.Mono()}
			k.showPIN()
		}
	})
}

// preaVerified is the PIN check's answer for a report.
func (k *Kiosk) preaVerified(rep kiosk.PREAReporter, err error) {
	p := k.prea
	k.login = nil
	if p == nil {
		return
	}
	p.lastInput = k.clk.Mono()
	if err != nil {
		p.msg = err
		k.showPREAStart()
		return
	}
	if k.welcomeLang == "" && rep.Language != "" {
		p.lang = rep.Language
	}
	p.reporter = &rep
	k.showPREAWrite()
}

// showPREAWrite takes the report's text.
func (k *Kiosk) showPREAWrite() {
	p := k.prea
	p.writing = true
	p.lastInput = k.clk.Mono()
	w := k.preaWords()
	v := &view{name: "prea_write", lang: p.lang}
	max := k.d.Policy().MaxMessageChars
	who := w.T("prea.anonymous_note")
	if p.reporter != nil {
		who = w.T("prea.named_note", "name", p.reporter.Name)
	}
	whoT := label(who)
	body := k.newEntry(true, w.T("prea.body"))
	body.SetText(p.body)
	errT := label("")
	errT.Importance = widget.WarningImportance
	body.OnChanged = func(s string) {
		k.touch()
		p.body, p.lastInput = s, k.clk.Mono()
	}
	kb := keyboard.New(keyboard.Labels{Space: w.T("kbd.space")})
	kb.OnRune = func(r rune) { k.touch(); body.TypedRune(r) }
	kb.OnKey = func(n fyne.KeyName) { k.touch(); body.TypedKey(&fyne.KeyEvent{Name: n}) }
	var send *widget.Button
	send = k.primary(w.T("prea.send"), fynetheme.MailSendIcon(), func() {
		switch {
		case strings.TrimSpace(p.body) == "":
			errT.SetText(w.T("write.err.empty"))
			return
		case utf8.RuneCountInString(p.body) > max:
			errT.SetText(w.T("write.err.too_long", "n", w.num(utf8.RuneCountInString(p.body)-max)))
			return
		}
		send.Disable()
		errT.SetText(w.T("write.sending"))
		txt, rep := p.body, p.reporter
		k.run(func() func() {
			var m kiosk.Message
			var err error
			if rep != nil {
				m, err = k.d.FilePREA(*rep, txt)
			} else {
				m, err = k.d.SendPREA("", txt)
			}
			return func() {
				if k.prea != p {
					return
				}
				if err != nil {
					send.Enable()
					errT.SetText(w.refusal(err))
					return
				}
				p.body = ""
				k.showPREADone(m)
			}
		})
	})
	cancel := k.button(w.T("pin.cancel"), fynetheme.CancelIcon(), k.showWelcome)
	actions := container.NewHBox(big(cancel, 220, 60), big(send, 260, 60))
	top := container.NewVBox(theme.Text(w.T("prea.title"), theme.HeadingSize, theme.Yellow, true), whoT)
	bottom := container.NewVBox(container.NewBorder(nil, nil, nil, actions, errT), kb.Object())
	k.setScreen(v, container.NewPadded(container.NewBorder(top, bottom, nil, nil, body)))
	k.win.Canvas().Focus(body)
}

// showPREADone gives the reference to keep; it goes after a minute or at "Done".
func (k *Kiosk) showPREADone(m kiosk.Message) {
	p := k.prea
	p.writing, p.done, p.reporter = false, true, nil
	p.lastInput = k.clk.Mono()
	w := k.preaWords()
	v := &view{name: "prea_done", lang: p.lang}
	sent := theme.Text(w.T("prea.sent"), theme.HeadingSize, theme.Green, true)
	sent.Alignment = fyne.TextAlignCenter
	ref := theme.Text(w.T("prea.reference", "ref", kiosk.PREAReference(m.ID)), 48, theme.Yellow, true)
	ref.Alignment = fyne.TextAlignCenter
	keep := label(w.T("prea.keep"))
	keep.Alignment = fyne.TextAlignCenter
	done := k.primary(w.T("prea.done"), fynetheme.ConfirmIcon(), k.showWelcome)
	k.setScreen(v, container.NewPadded(container.NewCenter(container.NewVBox(sent, ref, keep, container.NewCenter(big(done, 240, 72))))))
}

// listed says whether a sent message shows in Sent and in the "sending" count: on a shared
// kiosk a PREA report does not, so no one made to open Sent can be shown that they reported.
func (k *Kiosk) listed(m kiosk.Message) bool { return k.tablet || m.Peer != kiosk.PREAChannel }
