package ui

import (
	"strconv"
	"strings"
	"time"
	"unicode"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/keypad"
	"github.com/tether-kiosk/tether/ui/theme"
)

// loginState is a login between the badge and the session: the PIN being typed lives here.
type loginState struct {
	badge   string // "" on a tablet
	res     kiosk.BadgeResult
	lang    string
	pin     []byte
	busy    bool
	msg     error // why the last PIN was refused
	pending *kiosk.Pending
	prea    bool // the PIN is for a PREA report only (preaState), not a session

	order  string // the keypad's digit layout for this login
	dots   *canvas.Text
	status *canvas.Text
	// lastInput is when the person last pressed a key here; a login left alone is dropped.
	lastInput time.Duration
}

// loginIdle is how long a half-done login (PIN or notice screen) waits for its person.
const loginIdle = time.Minute

// welcomeLanguage is the language of the welcome screen right now.
func (k *Kiosk) welcomeLanguage() string {
	if k.welcomeLang != "" {
		return k.welcomeLang
	}
	if k.note != nil && k.note.lang != "" {
		return k.note.lang
	}
	if k.tablet && k.login != nil && k.login.lang != "" {
		return k.login.lang
	}
	return k.lang0
}

// showWelcome builds the welcome screen from scratch.
func (k *Kiosk) showWelcome() {
	k.prea = nil // the welcome screen on show: no report is being made
	lang := k.welcomeLanguage()
	w := k.words(lang)
	pol := k.d.Policy()
	v := &view{name: "welcome", lang: lang}

	clockT := theme.Text(w.clock(k.clk.Now()), 64, theme.White, true)
	dayT := theme.Text(capitalize(w.T("day."+strconv.Itoa(int(k.clk.Now().In(w.loc).Weekday())))), theme.SubHeadingSize, theme.Grey, false)
	dayT.Alignment, clockT.Alignment = fyne.TextAlignTrailing, fyne.TextAlignTrailing
	facility := theme.Text(pol.FacilityName, theme.HeadingSize, theme.White, true)
	top := container.NewBorder(nil, nil, container.NewVBox(facility, k.linkText(w)), container.NewVBox(clockT, dayT))
	inCurfew, curfewEnd := pol.CurfewAt(k.clk.Now())
	v.onTick = func() {
		now := k.clk.Now()
		clockT.Text = w.clock(now)
		clockT.Refresh()
		if c, _ := pol.CurfewAt(now); c != inCurfew && k.v == v {
			k.showWelcome() // curfew began or ended: say so before anyone scans a badge
		}
	}
	v.onLink = func() { k.showWelcome() }

	var center []fyne.CanvasObject
	if k.tablet {
		if k.login == nil {
			k.login = &loginState{lang: lang}
			k.precheckTablet()
		}
		center = append(center, k.pinBlock(w, theme.Text(w.T("welcome.tablet_pin"), 48, theme.Yellow, true))...)
		center = append(center, k.preaButton(w, lang))
	} else {
		scan := theme.Text(w.T("welcome.scan"), 64, theme.Yellow, true)
		scan.Alignment = fyne.TextAlignCenter
		hint := label(w.T("welcome.scan_hint"))
		hint.Alignment = fyne.TextAlignCenter
		center = append(center, scan, hint, k.preaButton(w, lang))
		if k.login != nil && k.login.busy {
			center = append(center, text(w.T("welcome.checking"), theme.White))
		}
	}
	// Closed for everyone: said before anyone scans a badge, not only after.
	switch {
	case pol.Lockdown:
		center = append(center, k.closedBanner(w.refusal(&kiosk.Error{Kind: kiosk.KindRefused, Reason: kiosk.ReasonLockdown})))
	case inCurfew:
		center = append(center, k.closedBanner(w.refusal(&kiosk.Error{Kind: kiosk.KindRefused, Reason: kiosk.ReasonCurfew, Until: curfewEnd})))
	}
	if n := k.note; n != nil {
		w := w
		if n.msgLang != "" {
			w = k.words(n.msgLang)
		}
		var msgs []string
		if n.ended != "" {
			msgs = append(msgs, w.T("welcome.session_ended", "reason", w.endReason(n.ended)))
		}
		if n.refused != nil {
			msgs = append(msgs, w.refusal(n.refused))
		}
		if n.misread {
			msgs = append(msgs, w.T("welcome.misread"))
		}
		t := label(strings.Join(msgs, "\n"))
		t.Alignment = fyne.TextAlignCenter
		t.Importance = widget.WarningImportance
		center = append(center, theme.Banner(t, theme.Panel))
	}
	base := len(center)
	center = append(center, k.noticeCards(w, nil, k.notice[lang])...)

	langs := k.langButtons(w, lang, 200, 64, func(code string) {
		k.welcomeLang = code
		if k.login != nil {
			k.login.lang = code
		}
		k.showWelcome()
	})
	centerBox := container.New(layout.NewVBoxLayout(), center...)
	body := container.NewBorder(top, langs, nil, nil, container.NewCenter(centerBox))
	k.setScreen(v, container.NewPadded(body))
	k.loadNotices(v, w, centerBox, base, "", lang, k.notice[lang])
}

// closedBanner says that the kiosks are closed to everyone right now.
func (k *Kiosk) closedBanner(msg string) fyne.CanvasObject {
	t := label(msg)
	t.Alignment = fyne.TextAlignCenter
	t.TextStyle = fyne.TextStyle{Bold: true}
	t.Importance = widget.WarningImportance
	return theme.Banner(t, theme.Panel)
}

// linkText says when the kiosk is offline (nothing when all is well).
func (k *Kiosk) linkText(w words) fyne.CanvasObject {
	if k.online {
		return layout.NewSpacer()
	}
	return text(w.T("link.offline_none"), theme.Orange)
}

// onBadge starts a login, unless someone is already logged in.
func (k *Kiosk) onBadge(id string) {
	k.touch()
	if k.sess != nil {
		k.logf("ui: badge read during a session; ignored")
		return
	}
	if k.prea != nil {
		if k.prea.scanning && !k.tablet {
			k.preaBadge(id)
		}
		return
	}
	if k.tablet {
		return // a tablet logs in its bound inmate by PIN only
	}
	k.login = &loginState{badge: id, busy: true}
	k.note = nil
	k.showWelcome()
	k.run(func() func() {
		res, err := k.d.Badge(id)
		return func() {
			if k.login == nil || k.login.badge != id {
				return // cancelled, or another badge came since
			}
			lang := k.welcomeLang
			if lang == "" {
				lang = res.Language
			}
			if err != nil {
				k.login = nil
				// A known person's refusal is told in their language.
				k.note = &note{refused: err, at: k.clk.Mono(), lang: res.Language}
				k.showWelcome()
				return
			}
			k.login = &loginState{badge: id, res: res, lang: lang, lastInput: k.clk.Mono()}
			k.showPIN()
		}
	})
}

// onBadgeMisread tells whoever is at the welcome screen to scan again; a session, a PIN
// being typed or a tablet ignore it.
func (k *Kiosk) onBadgeMisread() {
	if k.sess != nil || k.login != nil || k.tablet || k.v == nil {
		return
	}
	switch k.v.name {
	case "welcome":
		k.note = &note{misread: true, at: k.clk.Mono()}
		k.showWelcome()
	case "prea_scan":
		k.showPREAScanNote(k.preaWords().T("welcome.misread"))
	}
}

// refuse returns to the welcome screen saying why, in lang (the person's; "" the screen's).
func (k *Kiosk) refuse(err error, lang string) {
	k.note = &note{refused: err, at: k.clk.Mono(), msgLang: lang}
	if k.tablet {
		k.login = nil
	}
	k.showWelcome()
}

// precheckTablet learns the bound inmate's language and any refusal before the PIN.
func (k *Kiosk) precheckTablet() {
	l := k.login
	k.run(func() func() {
		res, err := k.d.PrecheckBound()
		return func() {
			if k.login != l || k.sess != nil {
				return
			}
			l.res = res
			if k.welcomeLang == "" && res.Language != "" && res.Language != l.lang {
				l.lang = res.Language
				k.showWelcome()
			}
			if err != nil && (k.note == nil || k.note.refused == nil) {
				if k.note == nil {
					k.note = &note{at: k.clk.Mono()}
				}
				k.note.refused = err
				k.showWelcome()
			}
		}
	})
}

// showPIN asks for the PIN of the badge just read.
func (k *Kiosk) showPIN() {
	l := k.login
	w := k.words(l.lang)
	v := &view{name: "pin", lang: l.lang}
	title := theme.Text(w.T("pin.title"), 48, theme.Yellow, true)
	block := k.pinBlock(w, title)
	cancel := big(k.button(w.T("pin.cancel"), fynetheme.CancelIcon(), func() {
		k.login = nil
		k.showWelcome()
	}), 240, 72)
	facility := theme.Text(k.d.Policy().FacilityName, theme.HeadingSize, theme.White, true)
	body := container.NewBorder(facility, container.NewCenter(cancel), nil, nil,
		container.NewCenter(container.NewVBox(block...)))
	k.setScreen(v, container.NewPadded(body))
}

// pinBlock is the title, dots, status line and keypad that take a PIN.
func (k *Kiosk) pinBlock(w words, title *canvas.Text) []fyne.CanvasObject {
	l := k.login
	title.Alignment = fyne.TextAlignCenter
	hint := label(w.T("pin.hint"))
	hint.Alignment = fyne.TextAlignCenter
	l.dots = theme.Text(dots(len(l.pin)), 48, theme.White, true)
	l.dots.Alignment = fyne.TextAlignCenter
	l.status = theme.Text("", theme.TextSize, theme.Orange, true)
	l.status.Alignment = fyne.TextAlignCenter
	if l.msg != nil {
		l.status.Text = w.refusal(l.msg)
	}
	if l.order == "" { // once per login: the keys must not move while a PIN is typed
		l.order = keypad.Standard
		if k.d.Policy().ScrambleKeypad {
			l.order = keypad.Scramble(k.rng)
		}
	}
	pad, err := keypad.New(l.order, w.T("pin.ok"), func(kind keypad.Key, d byte) {
		k.touch()
		k.onPINKey(kind, d)
	})
	if err != nil {
		k.logf("ui: keypad: %v", err) // cannot happen: both orders are valid
	}
	dotsBox := theme.MinSize(l.dots, 400, 60)
	return []fyne.CanvasObject{title, hint, dotsBox, l.status, container.NewCenter(pad)}
}

// capitalize makes a weekday a heading ("martes" -> "Martes").
func capitalize(s string) string {
	r := []rune(s)
	if len(r) > 0 {
		r[0] = unicode.ToUpper(r[0])
	}
	return string(r)
}

// dots shows how many digits are typed, never which.
func dots(n int) string {
	if n == 0 {
		return " "
	}
	return strings.TrimSpace(strings.Repeat("● ", n))
}

// maxPIN matches kiosk.ValidatePIN's upper bound.
const maxPIN = 12

func (k *Kiosk) onPINKey(kind keypad.Key, d byte) {
	l := k.login
	if l == nil || l.busy || l.pending != nil || l.dots == nil {
		return
	}
	l.lastInput = k.clk.Mono()
	switch kind {
	case keypad.Digit:
		if d >= '0' && d <= '9' && len(l.pin) < maxPIN {
			l.pin = append(l.pin, d)
		}
	case keypad.Backspace:
		if len(l.pin) > 0 {
			l.pin[len(l.pin)-1] = 0
			l.pin = l.pin[:len(l.pin)-1]
		}
	case keypad.Clear:
		clearPIN(l)
	case keypad.Cancel:
		clearPIN(l)
		if !k.tablet {
			k.login = nil
			k.showWelcome()
			return
		}
	case keypad.Enter:
		k.submitPIN()
		return
	}
	l.dots.Text = dots(len(l.pin))
	l.dots.Refresh()
}

func clearPIN(l *loginState) {
	for i := range l.pin {
		l.pin[i] = 0
	}
	l.pin = l.pin[:0]
}

func (k *Kiosk) submitPIN() {
	l := k.login
	if len(l.pin) == 0 {
		return
	}
	pin := string(l.pin)
	clearPIN(l)
	l.busy = true
	w := k.words(l.lang)
	l.dots.Text = dots(0)
	l.dots.Refresh()
	l.status.Text = w.T("pin.checking")
	l.status.Refresh()
	if l.prea {
		k.submitPREAPIN(l, pin)
		return
	}
	k.run(func() func() {
		var p kiosk.Pending
		var err error
		if k.tablet {
			p, err = k.d.EnterBoundPIN(pin)
		} else {
			p, err = k.d.EnterPIN(l.badge, pin)
		}
		return func() {
			if k.login != l {
				return
			}
			l.busy = false
			if err != nil {
				if kiosk.ReasonOf(err) == kiosk.ReasonWrongPIN || kiosk.KindOf(err) == kiosk.KindInvalid {
					l.msg = err
					l.status.Text = k.words(l.lang).refusal(err)
					l.status.Refresh()
					return
				}
				k.login = nil
				k.refuse(err, l.lang)
				return
			}
			l.pending = &p
			l.lastInput = k.clk.Mono()
			k.showNotice()
		}
	})
}

// submitPREAPIN checks a PIN for a PREA report only: no session follows.
func (k *Kiosk) submitPREAPIN(l *loginState, pin string) {
	k.run(func() func() {
		var rep kiosk.PREAReporter
		var err error
		if k.tablet {
			rep, err = k.d.VerifyBoundPREA(pin)
		} else {
			rep, err = k.d.VerifyPREA(l.badge, pin)
		}
		return func() {
			if k.login != l {
				return
			}
			l.busy = false
			if err != nil && (kiosk.ReasonOf(err) == kiosk.ReasonWrongPIN || kiosk.KindOf(err) == kiosk.KindInvalid) {
				l.msg = err
				l.status.Text = k.words(l.lang).refusal(err)
				l.status.Refresh()
				return
			}
			k.preaVerified(rep, err)
		}
	})
}

// showNotice asks the person to accept the monitoring notice.
func (k *Kiosk) showNotice() {
	l := k.login
	w := k.words(l.lang)
	v := &view{name: "notice", lang: l.lang}
	txt := k.d.Policy().MonitoringNotice[l.lang]
	if txt == "" {
		txt = l.pending.Notice
	}
	body := label(txt)
	body.TextStyle = fyne.TextStyle{Bold: true}
	var accept, decline *widget.Button
	accept = k.primary(w.T("notice.accept"), fynetheme.ConfirmIcon(), func() {
		accept.Disable()
		decline.Disable()
		k.acceptNotice()
	})
	decline = k.button(w.T("notice.decline"), fynetheme.CancelIcon(), func() {
		k.login = nil
		k.refuse(&kiosk.Error{Kind: kiosk.KindRefused, Op: "login", Reason: kiosk.ReasonNoticeNotAccepted}, l.lang)
	})
	buttons := container.NewGridWithColumns(2, big(decline, 300, 90), big(accept, 300, 90))
	title := heading(w.T("notice.title"))
	content := container.NewBorder(container.NewCenter(title), container.NewPadded(buttons), nil, nil,
		container.NewPadded(card(theme.Panel, body)))
	k.setScreen(v, container.NewPadded(content))
}

func (k *Kiosk) acceptNotice() {
	l := k.login
	p := *l.pending
	remember := k.welcomeLang != "" && k.welcomeLang != l.res.Language && p.Kind == kiosk.PersonInmate
	lang := l.lang // the worker reads a copy, never the login the UI goroutine owns
	k.run(func() func() {
		info, err := k.d.AcceptNotice(p)
		if err == nil && remember {
			if e := k.d.SetLanguage(p.PersonID, lang); e != nil {
				k.logf("ui: remember language: %v", e)
			}
		}
		return func() {
			if k.login != l {
				return
			}
			if err != nil {
				k.login = nil
				k.refuse(err, l.lang)
				return
			}
			k.login = nil
			if info.Technician {
				k.sess = &session{inmateID: "", name: "", lang: l.lang, info: info}
				k.showTechnician()
				return
			}
			k.sess = &session{inmateID: info.InmateID, name: info.InmateName, lang: l.lang, info: info}
			k.welcomeLang = ""
			k.showHome()
		}
	})
}
