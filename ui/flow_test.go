package ui

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/internal/leaktest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

func TestLoginWrongThenRightPIN(t *testing.T) {
	h := newHarness(t)
	h.mustSee("Tether Demo Facility", "Scan your badge", "10:00")
	h.badge(mariaBadge)
	h.mustSee("Enter your PIN")
	h.mustNotSee(mariaName) // a badge alone must not say whose it is
	h.typePIN("1111", "OK")
	h.mustSee("Wrong PIN. 4 tries left")
	h.typePIN(mariaPIN, "OK")
	h.mustSee("Monitoring notice", "This system is monitored")
	h.tap("I accept")
	h.mustSee("Hello, Maria Gonzalez", "Balance: $19.95", "This session: 1 min, $0.05", "Time left: 60 min")
	if got := h.k.win.Title(); got != Title {
		t.Errorf("window title %q names someone", got)
	}
}

// TestPINNeverShownNorLogged: no digit string of a PIN, wrong or right, typed on the glass or
// the serial pad, is ever in the window's tree (shown or hidden) or in a log line.
func TestPINNeverShownNorLogged(t *testing.T) {
	h := newHarness(t)
	const wrong = "9786"
	leaks := func(when string, pins ...string) {
		t.Helper()
		all := strings.Join(h.texts(false), "\n")
		logs := h.logged()
		for _, pin := range pins {
			if leaktest.HasNumber(all, pin) {
				t.Errorf("%s: the window holds %q:\n%s", when, pin, all)
			}
			if leaktest.HasNumber(logs, pin) {
				t.Errorf("%s: a log line holds %q:\n%s", when, pin, logs)
			}
		}
	}
	h.badge(mariaBadge)
	for _, d := range wrong[:3] {
		h.tap(string(d))
	}
	leaks("typing", wrong[:3])
	h.tap(string(wrong[3]))
	h.tap("OK")
	h.mustSee("Wrong PIN")
	leaks("wrong PIN", wrong)
	for _, d := range []byte(mariaPIN) {
		h.k.HandlePINKey(KeyDigit, d)
	}
	h.settle()
	leaks("serial pad", mariaPIN)
	h.k.HandlePINKey(KeyEnter, 0)
	h.settle()
	h.tap("I accept")
	h.mustSee("Hello, " + mariaName)
	leaks("logged in", wrong, mariaPIN)
}

func TestLockoutAfterFiveWrongPINs(t *testing.T) {
	h := newHarness(t)
	h.badge(mariaBadge)
	for i := 1; i <= 4; i++ {
		h.typePIN("0000", "OK")
	}
	h.mustSee("One try left")
	h.typePIN("0000", "OK")
	h.mustSee("Scan your badge", "Too many wrong PINs. You can try again at 10:15.")
	// The lock holds: the badge is refused before any PIN, and the right PIN cannot be typed.
	h.badge(mariaBadge)
	h.mustSee("Too many wrong PINs. You can try again at 10:15.")
	h.mustNotSee("Enter your PIN")
	h.advance(16 * time.Minute)
	h.login()
}

func TestCancelAndDeclineReturnToWelcome(t *testing.T) {
	h := newHarness(t)
	h.badge(mariaBadge)
	h.tap("1")
	h.tap("Cancel")
	h.mustSee("Scan your badge")
	if h.k.login != nil {
		t.Error("cancelled login still held")
	}
	h.badge(mariaBadge)
	h.mustNotSee("●") // the digit typed before Cancel is gone
	h.typePIN(mariaPIN, "OK")
	h.tap("Decline")
	h.mustSee("Scan your badge", "You declined the monitoring notice")
	if _, ok := h.term.Active(); ok {
		t.Error("a session started without the notice accepted")
	}
}

func TestAbandonedLoginIsDropped(t *testing.T) {
	h := newHarness(t)
	h.badge(mariaBadge)
	h.tap("4")
	h.advance(30 * time.Second)
	h.mustSee("Enter your PIN")
	h.advance(45 * time.Second)
	h.mustSee("Scan your badge")
	h.mustNotSee("●")
	h.badge(mariaBadge)
	h.typePIN(mariaPIN, "OK")
	h.advance(2 * time.Minute) // walked away at the notice
	h.mustSee("Scan your badge")
	h.mustNotSee("Monitoring notice")
}

func TestSerialPINPad(t *testing.T) {
	h := newHarness(t)
	h.badge(mariaBadge)
	for _, d := range []byte("43219") {
		h.k.HandlePINKey(KeyDigit, d)
	}
	h.k.HandlePINKey(KeyBackspace, 0)
	h.settle()
	h.mustSee("● ● ● ●")
	h.k.HandlePINKey(KeyEnter, 0)
	h.settle()
	h.mustSee("Monitoring notice")
}

func TestScrambledKeypadChangesEachLogin(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.policy = func(p *kiosk.Policy) { p.ScrambleKeypad = true; p.Cooldown = 0 } })
	layout := func() string {
		var ds []string
		walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
			if b, ok := o.(*widget.Button); ok && len(b.Text) == 1 && b.Text[0] >= '0' && b.Text[0] <= '9' {
				ds = append(ds, b.Text)
			}
		})
		return strings.Join(ds, "")
	}
	h.badge(mariaBadge)
	first := layout()
	h.typePIN(mariaPIN, "OK") // typing by label works whatever the layout
	h.tap("I accept")
	h.tap("Log out")
	h.badge(mariaBadge)
	second := layout()
	if len(first) != 10 || len(second) != 10 {
		t.Fatalf("keypad layouts %q and %q do not have ten digits", first, second)
	}
	if first == second || first == "1234567890" {
		t.Errorf("keypad not scrambled: %q then %q", first, second)
	}
}

func TestTabletKeypadStaysPutWhileTyping(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.tablet = true; s.policy = func(p *kiosk.Policy) { p.ScrambleKeypad = true } })
	digits := func() string {
		var ds []string
		walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
			if b, ok := o.(*widget.Button); ok && len(b.Text) == 1 && b.Text[0] >= '0' && b.Text[0] <= '9' {
				ds = append(ds, b.Text)
			}
		})
		return strings.Join(ds, "")
	}
	before := digits()
	h.tap("4")
	h.k.SetLinkStatus(false) // rebuilds the welcome screen
	h.settle()
	h.mustSee("Offline", "●")
	if after := digits(); after != before {
		t.Errorf("keys moved while a PIN was typed: %s -> %s", before, after)
	}
	h.typePIN("321", "OK")
	h.mustSee("Monitoring notice")
}

func TestRefusalsInPlainWords(t *testing.T) {
	h := newHarness(t)
	h.badge("NOPE")
	h.mustSee("This badge is not known on this kiosk.")

	// Cool-down after a session (30 minutes by default).
	h.login()
	h.tap("Log out")
	h.mustSee("Your session ended: you logged out.")
	h.mustNotSee(mariaName)
	h.badge(mariaBadge)
	h.mustSee("Please take a break. You can log in again at 10:30.")

	p := h.term.Policy()
	p.Lockdown = true
	must(t, h.term.SetPolicy(p, "test"))
	h.advance(31 * time.Minute)
	h.badge(mariaBadge)
	h.mustSee("The facility is in lockdown.")

	p.Lockdown = false
	p.Curfew = []kiosk.CurfewWindow{{Weekday: time.Tuesday, Start: "10:00", End: "12:00"}}
	must(t, h.term.SetPolicy(p, "test"))
	h.badge(mariaBadge)
	h.mustSee("The kiosks are closed for curfew until 12:00.")
}

func TestRefusalWordsForEveryReason(t *testing.T) {
	h := newHarness(t)
	now := h.clk.Now()
	for _, lang := range []string{"en", "es"} {
		w := h.k.words(lang)
		for _, r := range []kiosk.Reason{kiosk.ReasonUnknownBadge, kiosk.ReasonSuspended, kiosk.ReasonLocked,
			kiosk.ReasonCooldown, kiosk.ReasonCurfew, kiosk.ReasonLockdown, kiosk.ReasonInsufficientBalance,
			kiosk.ReasonOfflineLimit, kiosk.ReasonNoMessaging, kiosk.ReasonNoticeNotAccepted, kiosk.ReasonWrongPIN,
			kiosk.ReasonNotBound, kiosk.ReasonLoginExpired, kiosk.ReasonContactNotApproved, kiosk.ReasonContactNotAccepted, kiosk.ReasonContactLimit,
			kiosk.ReasonNoSession, kiosk.ReasonPREABacklog} {
			err := &kiosk.Error{Kind: kiosk.KindRefused, Op: "login", Reason: r, Until: now.Add(35 * time.Minute)}
			got := w.refusal(err)
			if got == w.T("refuse.other") || got == w.T("error.generic") || strings.Contains(got, ".") && strings.HasPrefix(got, "refuse.") {
				t.Errorf("%s %s: no plain words (%q)", lang, r, got)
			}
			if (r == kiosk.ReasonLocked || r == kiosk.ReasonCooldown || r == kiosk.ReasonCurfew) && !strings.Contains(got, "10:35") {
				t.Errorf("%s %s: %q does not say until when", lang, r, got)
			}
		}
		for _, r := range []kiosk.Reason{kiosk.EndLogout, kiosk.EndIdle, kiosk.EndMaxLength, kiosk.EndBalance,
			kiosk.EndCurfew, kiosk.EndLockdown, kiosk.EndTerminalFault, kiosk.EndOfflineLimit} {
			if got := w.endReason(r); got == w.T("end.other") || strings.HasPrefix(got, "end.") {
				t.Errorf("%s end %s: no plain words (%q)", lang, r, got)
			}
		}
	}
	// A refusal that ends another day says which day.
	w := h.k.words("es")
	err := &kiosk.Error{Kind: kiosk.KindRefused, Reason: kiosk.ReasonCurfew, Until: now.Add(20 * time.Hour)}
	if got := w.refusal(err); !strings.Contains(got, "miércoles 06:00") {
		t.Errorf("curfew to tomorrow: %q", got)
	}
}

func TestNotEnoughBalance(t *testing.T) {
	// A facility that makes nothing free: too little money refuses the login.
	h := newHarness(t, func(s *setup) { s.policy = func(p *kiosk.Policy) { p.FreeServices = nil } })
	hash, _ := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	must(t, h.term.UpsertInmate(kiosk.Inmate{ID: "A2002", Name: "Luis Pardo", Badges: []string{"B2002"}, PINHash: hash,
		Language: "es", Status: kiosk.StatusActive, Messaging: true}, "test"))
	h.badge("B2002")
	h.mustSee("Su saldo no alcanza para una sesión.") // told in his own language
	h.mustNotSee("Luis")
	h.advance(61 * time.Second) // the next person finds the kiosk as it was
	h.mustSee("Scan your badge")
	h.mustNotSee("Su saldo")
}

func TestComposeCountdownSendAndSent(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.addContact("Pedro Lima", "pedro@example.com", kiosk.ContactPending)
	h.tap("Write")
	h.mustSee("Choose who to write to", "Ana Ruiz <ana@example.com>", "Medical (department)", "PREA report (free, confidential)")
	h.mustNotSee("Pedro") // only approved contacts
	h.tap("Ana Ruiz <ana@example.com>")
	h.mustSee("13,000 characters left of 13,000")

	h.tap("Send")
	h.mustSee("The message is empty. Type something first.")

	body := h.entry("Type your message here")
	test.Type(body, "Hola ")
	// The on-screen keyboard types into the message too, Spanish letters included.
	for _, key := range []string{"n", "i", "ñ", "a", "¡"} {
		h.tap(key)
	}
	if got := body.Text; got != "Hola niña¡" {
		t.Fatalf("body %q", got)
	}
	h.mustSee("12,990 characters left of 13,000")
	test.Type(h.entry("Subject"), "Sunday")
	h.tap("Send")
	h.mustSee("Sent messages", "Your message to Ana Ruiz is on its way.", "To: Ana Ruiz", "Waiting to be sent", "Hola niña¡")

	// The relay's reports show as they come.
	sent, err := h.term.Sent(mariaID)
	must(t, err)
	must(t, h.term.SetMessageState(sent[0].ID, kiosk.MsgHeld, ""))
	h.settle()
	h.mustSee("Held for review")
	must(t, h.term.SetMessageState(sent[0].ID, kiosk.MsgRejected, "threatening content"))
	h.settle()
	h.mustSee("Rejected by staff. Staff note: threatening content")

	h.tap("Back")
	h.mustSee("Online: messages are being delivered")
}

func TestSendRefusedWithReason(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.policy = func(p *kiosk.Policy) { p.MaxMessageChars = 20 } })
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.tap("Write")
	h.tap("Ana Ruiz <ana@example.com>")
	test.Type(h.entry("Type your message here"), "ñññññññññññññññññññññññ") // 23 code points, 46 bytes
	h.mustSee("3 characters over the limit of 20")
	h.tap("Send")
	h.mustSee("The message is too long. Remove 3 characters.")
	body := h.entry("Type your message here")
	for i := 0; i < 3; i++ {
		body.TypedKey(&fyne.KeyEvent{Name: fyne.KeyBackspace})
	}
	h.mustSee("0 characters left of 20")

	// The contact is declined while the inmate writes: the domain refuses, the screen says why.
	must(t, h.term.SetContactState(mariaID, ana.ID, kiosk.ContactDeclined, "not a verified address"))
	h.settle()
	h.tap("Send")
	h.mustSee("You can only write to approved contacts.")
	if sent, _ := h.term.Sent(mariaID); len(sent) != 0 {
		t.Errorf("refused message was stored: %+v", sent)
	}
}

func TestDraftSavedAtMostEveryInterval(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("Medical (department)")
	h.mustSee("Draft not saved yet")
	body := h.entry("Type your message here")
	test.Type(body, "M")
	h.settle()
	h.mustSee("Draft saved at 10:00")
	test.Type(body, "y knee hurts")
	h.settle()
	draft := func() string {
		d, _, err := h.term.Draft(mariaID)
		must(t, err)
		return d.Body
	}
	if got := draft(); got != "M" {
		t.Errorf("draft saved again within the interval: %q", got)
	}
	h.advance(3 * time.Second)
	if got := draft(); got != "My knee hurts" {
		t.Errorf("draft not saved after the interval: %q", got)
	}
	// Leaving and coming back: the text is still there, and after a logout it is restored.
	h.tap("Back")
	h.tap("Log out")
	h.advance(31 * time.Minute)
	h.login()
	h.tap("Write")
	h.mustSee("Letters you have not sent", "To: Medical (department)")
	h.tapText("My knee hurts")
	if got := h.entry("Type your message here").Text; got != "My knee hurts" {
		t.Errorf("draft not restored: %q", got)
	}
	h.mustSee("To:", "Medical (department)")
}

func TestIdleWarningTouchAndLogoutWipesEverything(t *testing.T) {
	h := newHarness(t)
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.deliver("in-1", ana.ID, "Ana Ruiz", "Visit", "The secret family recipe is in the blue box.")
	h.mustSee("1 unread")
	h.tap("Inbox (1)")
	h.mustSee("From: Ana Ruiz", "NEW", "Visit")
	h.tapText("From: Ana Ruiz")
	h.mustSee("The secret family recipe is in the blue box.")
	h.tap("Reply")
	h.mustSee("To:", "Ana Ruiz", "Re: Visit")
	test.Type(h.entry("Type your message here"), "Unsent words about the blue box")

	if all := strings.Join(h.texts(false), "\n"); !strings.Contains(all, "Unsent words") || !strings.Contains(all, "Ana Ruiz") {
		t.Fatalf("the tree walk misses what is on screen:\n%s", all)
	}

	// 2m30s idle: the full-screen question; a touch anywhere dismisses it.
	h.advance(150 * time.Second)
	h.mustSee("Are you still there?", "logged out in 30 seconds")
	test.TapCanvas(h.k.win.Canvas(), fyne.NewPos(640, 700))
	h.settle()
	h.mustNotSee("Are you still there?")
	h.advance(2 * time.Minute)
	if _, ok := h.term.Active(); !ok {
		t.Fatal("the touch did not keep the session alive")
	}

	// Left alone: warning, then logout for idleness.
	h.advance(35 * time.Second)
	h.mustSee("Are you still there?")
	h.advance(35 * time.Second)
	h.mustSee("Scan your badge", "Your session ended: no activity.")

	// The draft was saved before the screens were cleared.
	d, ok, err := h.term.Draft(mariaID)
	must(t, err)
	if !ok || d.Body != "Unsent words about the blue box" || d.Subject != "Re: Visit" {
		t.Errorf("draft at logout = %+v, %v", d, ok)
	}

	// Nothing of Maria remains anywhere in the window's tree, shown or hidden.
	all := strings.Join(h.texts(false), "\n")
	for _, secret := range []string{"Maria", "Gonzalez", "Ana Ruiz", "ana@example.com", "secret family recipe", "blue box", "Visit", "$19"} {
		if strings.Contains(all, secret) {
			t.Errorf("after logout the window still holds %q:\n%s", secret, all)
		}
	}
	if h.k.sess != nil || h.k.login != nil {
		t.Error("the kiosk still references the last session")
	}
	if got := h.k.win.Title(); got != Title {
		t.Errorf("window title %q", got)
	}
	if got := h.app.Clipboard().Content(); got != "" {
		t.Errorf("clipboard kept %q", got)
	}
}

func TestSessionEndWarnings(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.policy = func(p *kiosk.Policy) { p.MaxSession = kiosk.Duration(10 * time.Minute) } })
	h.login()
	for i := 0; i < 5; i++ { // keep touching so idleness does not end it first
		h.advance(time.Minute)
		h.k.touch()
	}
	h.mustSee("Your session ends in 5 minutes. Save your work.")
	h.tap("OK")
	h.mustNotSee("Your session ends in 5 minutes")
	for i := 0; i < 4; i++ {
		h.advance(time.Minute)
		h.k.touch()
	}
	h.mustSee("Your session ends in 1 minute.")
	h.advance(time.Minute)
	h.mustSee("Scan your badge", "Your session ended: time limit reached.")
}

func TestSpanishRememberedPerInmate(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.policy = func(p *kiosk.Policy) { p.Cooldown = 0 } })
	h.tap("Español")
	h.mustSee("Pase su credencial")
	h.badge(mariaBadge)
	h.mustSee("Escriba su PIN")
	h.typePIN(mariaPIN, "Aceptar")
	h.mustSee("Aviso de vigilancia", "Este sistema está vigilado")
	h.tap("Acepto")
	h.mustSee("Hola, Maria Gonzalez", "Saldo: $19.95", "Recibidos", "Escribir", "Enviados", "Contactos", "Consumo", "Salir")
	in, err := h.term.Inmate(mariaID)
	must(t, err)
	if in.Language != "es" {
		t.Fatalf("language chosen on the welcome screen not remembered: %q", in.Language)
	}
	h.tap("Salir")
	// The next person starts in the default language; Maria is told in hers why she left.
	h.mustSee("Scan your badge", "Su sesión terminó: usted salió.")
	h.badge(mariaBadge)
	h.mustSee("Escriba su PIN") // Maria's own language, without choosing again
	h.typePIN(mariaPIN, "Aceptar")
	h.tap("Acepto")
	h.tap("English")
	h.mustSee("Hello, Maria Gonzalez")
	in, _ = h.term.Inmate(mariaID)
	if in.Language != "en" {
		t.Errorf("language switched at home not remembered: %q", in.Language)
	}
}

func TestTabletAsksForThePINDirectly(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.tablet = true; s.lang = "es" })
	h.mustSee("Escriba su PIN para empezar")
	h.mustNotSee("Pase su credencial")
	h.typePIN("9999", "Aceptar")
	h.mustSee("PIN incorrecto. Le quedan 4 intentos")
	h.typePIN(mariaPIN, "Aceptar")
	h.tap("Acepto")
	h.mustSee("Hola, Maria Gonzalez")
	h.tap("Salir")
	h.mustSee("Escriba su PIN para empezar", "Su sesión terminó: usted salió.")
}

func TestContactsAddAndRemove(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Contacts")
	h.mustSee("No contacts yet.", "0 of 30 contacts")
	h.tap("Add contact")
	test.Type(h.entry("Name"), "José Núñez")
	test.Type(h.entry("Email"), "jose.example.com")
	h.tap("Add contact")
	h.mustSee("Type a valid email address")
	h.entry("Email").SetText("")
	test.Type(h.entry("Email"), "jose@example.com")
	h.tap("Add contact")
	h.mustSee("José Núñez was added and is waiting for approval.", "José Núñez", "jose@example.com", "Waiting for approval", "1 of 30 contacts")

	h.tap("Add contact")
	test.Type(h.entry("Name"), "Jose again")
	test.Type(h.entry("Email"), "JOSE@example.com")
	h.tap("Add contact")
	h.mustSee("This contact is already on your list.")
	h.tap("Back")

	cs, _ := h.term.Contacts(mariaID)
	must(t, h.term.SetContactState(mariaID, cs[0].ID, kiosk.ContactApproved, ""))
	h.settle()
	h.mustSee("Approved")
	h.tap("Remove")
	h.mustSee("José Núñez", "Yes, remove") // one stray tap removes nothing
	if cs, _ := h.term.Contacts(mariaID); len(cs) != 1 {
		t.Fatal("removed on the first tap")
	}
	h.tap("Yes, remove")
	h.mustSee("José Núñez was removed.", "No contacts yet.")
}

func TestTouchTargetsAreFingerSized(t *testing.T) {
	h := newHarness(t)
	check := func(screen string) {
		t.Helper()
		h.settle()
		// Every screen fits a 1024x768 kiosk; nothing is pushed off the glass.
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
	check("welcome")
	h.badge(mariaBadge)
	check("pin")
	h.typePIN(mariaPIN, "OK")
	check("notice")
	h.tap("I accept")
	check("home")
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.deliver("in-1", ana.ID, "Ana Ruiz", "Hi", "Hello")
	for _, tile := range []string{"Inbox (1)", "Sent", "Contacts", "Usage"} {
		h.tap(tile)
		check(tile)
		h.tap("Back")
	}
	h.tap("Write")
	check("choose")
	h.tap("Ana Ruiz <ana@example.com>")
	check("write")
	h.tap("Back")
	h.tap("Contacts")
	h.tap("Add contact")
	check("add contact")
}

// Reply never writes over a letter already begun to the same person, on screen or saved at an
// earlier session; it opens that letter and says why.
func TestReplyKeepsTheLetterAlreadyBegun(t *testing.T) {
	h := newHarness(t)
	h.login()
	ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.deliver("in-1", ana.ID, "Ana Ruiz", "Visit", "See you Sunday.")
	h.tap("Write")
	h.tap("Ana Ruiz <ana@example.com>")
	test.Type(h.entry("Type your message here"), "A long letter about the garden")
	h.tap("Back")
	h.tap("Inbox (1)")
	h.tapText("From: Ana Ruiz")
	h.tap("Reply")
	h.mustSee("You have a letter you have not sent yet.")
	if got := h.entry("Type your message here").Text; got != "A long letter about the garden" {
		t.Fatalf("after Reply the letter reads %q", got)
	}

	// The same from the saved draft, at the next session.
	h.tap("Back")
	h.tap("Log out")
	h.mustSee("Scan your badge")
	h.advance(31 * time.Minute) // the cool-down
	h.login()
	h.tap("Inbox")
	h.tapText("From: Ana Ruiz")
	h.tap("Reply")
	h.mustSee("You have a letter you have not sent yet.")
	if got := h.entry("Type your message here").Text; got != "A long letter about the garden" {
		t.Fatalf("after Reply at the next session the letter reads %q", got)
	}
	if d, ok, err := h.term.Draft(mariaID); err != nil || !ok || d.Body != "A long letter about the garden" {
		t.Fatalf("stored draft = %+v, %v, %v", d, ok, err)
	}
}
