package ui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// down applies one downlink item as the sync engine would, and lets the screens react.
func (h *harness) down(kind string, body any) {
	h.t.Helper()
	raw, err := json.Marshal(body)
	must(h.t, err)
	seq, err := h.term.DownlinkApplied()
	must(h.t, err)
	refused, err := h.term.ApplyDownlink(seq+1, kind, raw)
	must(h.t, err)
	if refused != "" {
		h.t.Fatalf("downlink %s refused: %s", kind, refused)
	}
	h.settle()
}

// TestNoticesShownUntilTheyExpire: a facility notice sent by the relay shows on the welcome
// screen at once, in the language chosen there, and on the home screen with the notices for
// that person only; each goes when its time is up, without a restart.
func TestNoticesShownUntilTheyExpire(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) { p.IdleTimeout = kiosk.Duration(20 * time.Minute) }
	})
	h.mustNotSee("Notice from the facility")
	h.down(kiosk.DownNotice, kiosk.Notice{ID: "n-en", Text: "Visiting hours change on Friday.", Language: "en",
		At: start, Until: start.Add(30 * time.Minute)})
	h.down(kiosk.DownNotice, kiosk.Notice{ID: "n-es", Text: "El horario de visitas cambia el viernes.", Language: "es",
		At: start, Until: start.Add(30 * time.Minute)})
	h.down(kiosk.DownNotice, kiosk.Notice{ID: "n-all", Text: "Commissary closed today.", At: start})
	h.mustSee("Notice from the facility", "Visiting hours change on Friday.", "Commissary closed today.")
	h.mustNotSee("El horario de visitas")
	h.tap("Español")
	h.mustSee("Aviso del centro", "El horario de visitas cambia el viernes.", "Commissary closed today.")
	h.mustNotSee("Visiting hours change")
	h.tap("English")

	h.down(kiosk.DownNotice, kiosk.Notice{ID: "p-1", InmateID: mariaID, Text: "Your property is ready for pickup.",
		At: start, Until: start.Add(10 * time.Minute)})
	h.down(kiosk.DownNotice, kiosk.Notice{ID: "p-2", InmateID: "A9999", Text: "Someone else's notice.", At: start})
	h.mustNotSee("Your property is ready") // personal notices only after login
	h.login()
	h.mustSee("Notice for you", "Your property is ready for pickup.", "Visiting hours change on Friday.", "Commissary closed today.")
	h.mustNotSee("Someone else's notice.")
	h.advance(10 * time.Minute)
	h.mustNotSee("Your property is ready")
	h.mustSee("Visiting hours change on Friday.")
	h.tap("Log out")
	h.advance(20 * time.Minute)
	h.mustNotSee("Visiting hours change")
	h.mustSee("Commissary closed today.")
}

// TestPolicyFromSyncShowsAtOnce: a new facility name and a lockdown sent by the relay show on
// the welcome screen without a restart, before anyone scans a badge.
func TestPolicyFromSyncShowsAtOnce(t *testing.T) {
	h := newHarness(t)
	p := h.term.Policy()
	p.FacilityName = "North Unit"
	h.down(kiosk.DownPolicy, p)
	h.mustSee("North Unit")
	h.mustNotSee("Tether Demo Facility")
	p.Lockdown = true
	h.down(kiosk.DownPolicy, p)
	h.mustSee("The facility is in lockdown. The kiosks are closed.")
	p.Lockdown = false
	h.down(kiosk.DownPolicy, p)
	h.mustNotSee("lockdown")
}

// TestClosedSaidBeforeABadge: curfew shows on the welcome screen when it begins, with when it
// ends, and goes when it ends, without anyone scanning a badge.
func TestClosedSaidBeforeABadge(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) {
			p.Curfew = []kiosk.CurfewWindow{{Weekday: time.Tuesday, Start: "10:05", End: "10:30"}}
		}
	})
	h.mustNotSee("curfew")
	h.advance(5 * time.Minute)
	h.mustSee("The kiosks are closed for curfew until 10:30.")
	h.advance(25 * time.Minute)
	h.mustNotSee("curfew")
}

// preaQueued is the PREA reports waiting for the relay, as the domain holds them.
func (h *harness) preaSent(inmateID string) []kiosk.Message {
	h.t.Helper()
	ms, err := h.term.Sent(inmateID)
	must(h.t, err)
	var out []kiosk.Message
	for _, m := range ms {
		if m.Peer == kiosk.PREAChannel {
			out = append(out, m)
		}
	}
	return out
}

// TestPREAFromWelcomeWhenLoginIsRefused: Maria has no money and the facility is in lockdown,
// so her badge is refused; from the welcome screen she still reports with badge and PIN, in
// Spanish, free, with no session, and keeps a reference. Her report is not in Sent on the
// shared kiosk, nor counted as "sending".
func TestPREAFromWelcomeWhenLoginIsRefused(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.lang = "es"
		s.policy = func(p *kiosk.Policy) { p.Lockdown = true }
	})
	bal, err := h.term.Balance(mariaID)
	must(t, err)
	h.badge(mariaBadge)
	h.mustSee("El centro está en cierre total")
	h.tap("Denunciar abuso sexual (PREA)")
	h.mustSee("Siempre puede denunciar abuso o acoso sexual, sin costo")
	h.tap("Denunciar con mi credencial y PIN")
	h.mustSee("Pase su credencial")
	h.badge(mariaBadge)
	h.mustSee("Escriba su PIN")
	h.typePIN("1111", "Aceptar")
	h.mustSee("PIN incorrecto")
	h.typePIN(mariaPIN, "Aceptar")
	h.mustSee("Denunciar abuso sexual (PREA)", "Esta denuncia se envía a su nombre, Maria Gonzalez. No cuesta nada.")
	if _, ok := h.term.Active(); ok {
		t.Fatal("a PREA report opened a session")
	}
	h.tap("Enviar denuncia")
	h.mustSee("El mensaje está vacío")
	h.entry("Escriba lo que pasó. Tómese el tiempo que necesite.").SetText("Un guardia me amenazó.")
	h.tap("Enviar denuncia")
	ms := h.preaSent(mariaID)
	if len(ms) != 1 {
		t.Fatalf("%d PREA reports filed, want 1", len(ms))
	}
	ref := kiosk.PREAReference(ms[0].ID)
	h.mustSee("Su denuncia fue enviada.", "Referencia: "+ref)
	if after, _ := h.term.Balance(mariaID); after != bal {
		t.Fatalf("balance %v -> %v: the report cost money", bal, after)
	}
	h.advance(2 * time.Minute) // the reference does not wait for the next person
	h.mustSee("Scan your badge")
	h.mustNotSee(ref)

	p := h.term.Policy()
	p.Lockdown = false
	must(t, h.term.SetPolicy(p, "test"))
	h.settle()
	h.login2("es")
	h.tap("Enviados")
	h.mustNotSee(ref, "PREA", "Un guardia")
	h.tap("Volver")
	h.mustSee("Hola, " + mariaName)
	h.mustNotSee("enviando")
}

// TestPREAAnonymousWithoutAnyAccount: anyone, known or not, files an anonymous report from the
// welcome screen; it names no one, and the reference shows.
func TestPREAAnonymousWithoutAnyAccount(t *testing.T) {
	h := newHarness(t)
	h.tap("Report sexual abuse (PREA)")
	h.tap("Report anonymously")
	h.mustSee("Anonymous: your name is not sent with this report.")
	h.entry("Write what happened. Take the time you need.").SetText("It happened in the laundry room.")
	h.tap("Send report")
	ms := h.preaSent("")
	if len(ms) != 0 {
		t.Fatalf("an anonymous report is listed under an inmate: %+v", ms)
	}
	h.mustSee("Your report was sent.", "Reference: PREA-")
	h.tap("Done")
	h.mustSee("Scan your badge")
}

// TestPREALockedBadgeOffersAnonymous: a locked badge cannot report by PIN, is told why, and
// can still report anonymously.
func TestPREALockedBadgeOffersAnonymous(t *testing.T) {
	h := newHarness(t)
	h.badge(mariaBadge)
	for i := 0; i < 5; i++ {
		h.typePIN("0000", "OK")
	}
	h.mustSee("Too many wrong PINs")
	h.tap("Report sexual abuse (PREA)")
	h.tap("Report with my badge and PIN")
	h.badge(mariaBadge)
	h.mustSee("Too many wrong PINs. You can try again at 10:15.", "You can still report anonymously.")
	h.tap("Report anonymously")
	h.mustSee("Anonymous: your name is not sent")
}

// login2 logs Maria in with the words of lang.
func (h *harness) login2(lang string) {
	h.t.Helper()
	if lang != "es" {
		h.login()
		return
	}
	h.badge(mariaBadge)
	h.typePIN(mariaPIN, "Aceptar")
	h.tap("Acepto")
	h.mustSee("Hola, " + mariaName)
}

// TestRejectionSaysWhyInWords: a rejection shows a translated reason, never a raw code, with
// the reviewer's note when there is one, and never the relay's technical detail.
func TestRejectionSaysWhyInWords(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.lang = "es" })
	h.login2("es")
	send := func(body string) string {
		t.Helper()
		m, err := h.term.Send(mariaID, "dept-medical", "", body)
		must(t, err)
		return m.ID
	}
	a, b, c := send("uno"), send("dos"), send("tres")
	must(t, h.term.SetMessageState(a, kiosk.MsgRejected, "content_policy"))
	must(t, h.term.SetMessageState(b, kiosk.MsgRejected, "content_policy: nombra a otro interno"))
	must(t, h.term.SetMessageState(c, kiosk.MsgRejected, "invalid: body: control character U+0007"))
	h.tap("Enviados")
	h.mustSee("Rechazado: no cumple las normas del centro sobre el contenido de los mensajes.",
		"Nota del personal: nombra a otro interno",
		"Rechazado: el sistema del centro no pudo aceptarlo. Consulte a un oficial.")
	h.mustNotSee("content_policy", "U+0007", "invalid")
	h.tap("Volver")
	h.tap("English")
	h.tap("Sent")
	h.mustSee("Rejected: it breaks the facility's rules on what messages may say. Staff note: nombra a otro interno")
}

// TestEndAndLockoutInThePersonsLanguage: Maria reads Spanish; the welcome screen is in
// English. Her lockout and the end of her session are told in Spanish.
func TestEndAndLockoutInThePersonsLanguage(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.lang = "es" })
	h.mustSee("Scan your badge")
	h.badge(mariaBadge)
	for i := 0; i < 5; i++ {
		h.typePIN("0000", "Aceptar")
	}
	h.mustSee("Demasiados PIN incorrectos. Puede volver a intentarlo a las 10:15.")
	h.advance(16 * time.Minute)
	h.mustSee("Scan your badge")
	h.login2("es")
	h.tap("Salir")
	h.mustSee("Su sesión terminó: usted salió.")
	h.mustNotSee("Your session ended")
}

// TestWriteWithSymbols: the on-screen keyboard types a dash, quotes, a colon, a slash,
// brackets, a plus and an ampersand into a letter.
func TestWriteWithSymbols(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("Medical (department)")
	h.tap("#+=")
	for _, r := range `-_'":/()+&` {
		h.tap(string(r))
	}
	h.tap("abc")
	h.tap("o")
	if got := h.entry("Type your message here").Text; got != `-_'":/()+&o` {
		t.Fatalf("typed %q", got)
	}
}

// TestCooldownUntilRoundsUp: a cool-down that ends at 10:33:44 says 10:34, and the badge is
// let in at 10:34, not refused after the time shown.
func TestCooldownUntilRoundsUp(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.advance(2 * time.Minute)
	h.tap("English") // a touch: not idle
	h.advance(104 * time.Second)
	h.tap("Log out") // 10:03:44, so the 30-minute break ends at 10:33:44
	h.badge(mariaBadge)
	h.mustSee("Please take a break. You can log in again at 10:34.")
	h.advance(29*time.Minute + 50*time.Second) // 10:33:34
	h.badge(mariaBadge)
	h.mustSee("You can log in again at 10:34.")
	h.advance(26 * time.Second) // 10:34:00
	h.badge(mariaBadge)
	h.mustSee("Enter your PIN")
}

// TestMisreadBadgeSaysTryAgain: a badge the reader could not decode is told to the person, in
// the welcome screen's language, on the welcome screen and while a PREA report waits for it.
func TestMisreadBadgeSaysTryAgain(t *testing.T) {
	h := newHarness(t)
	h.k.HandleBadgeMisread()
	h.settle()
	h.mustSee("Your badge was not read. Please hold it to the reader again.")
	h.tap("Español")
	h.k.HandleBadgeMisread()
	h.settle()
	h.mustSee("No se pudo leer su credencial. Acérquela al lector otra vez.")
	h.tap("Denunciar abuso sexual (PREA)")
	h.tap("Denunciar con mi credencial y PIN")
	h.k.HandleBadgeMisread()
	h.settle()
	h.mustSee("Pase su credencial", "No se pudo leer su credencial.")
	h.badge(mariaBadge)
	h.mustSee("Escriba su PIN")
}

// TestWarningSaysWhy: the warning before a forced end says what ends it.
func TestWarningSaysWhy(t *testing.T) {
	for _, c := range []struct {
		name, lang string
		policy     func(*kiosk.Policy)
		want       []string
	}{
		{"time limit", "en", func(p *kiosk.Policy) { p.MaxSession = kiosk.Duration(10 * time.Minute) },
			[]string{"You are reaching the time limit for one session.", "Your session ends in 5 minutes."}},
		{"curfew", "es", func(p *kiosk.Policy) {
			p.Curfew = []kiosk.CurfewWindow{{Weekday: time.Tuesday, Start: "10:08", End: "11:00"}}
		}, []string{"Los quioscos cierran por el toque de queda.", "Su sesión termina en 5 minutos."}},
		{"balance", "en", func(p *kiosk.Policy) { p.RatePerMinute = 100; p.OfflineSpendCap = 5000 }, // $20.00 lasts 20 minutes
			[]string{"Your balance is running out.", "Your session ends in 5 minutes."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(s *setup) {
				s.lang = c.lang
				s.policy = func(p *kiosk.Policy) {
					p.IdleTimeout = kiosk.Duration(10 * time.Minute)
					c.policy(p)
				}
			})
			h.login2(c.lang)
			for i := 0; i < 20 && !h.see(c.want[1]); i++ {
				h.advance(time.Minute)
				h.tap(map[string]string{"en": "English", "es": "Español"}[c.lang]) // still there
			}
			h.mustSee(c.want...)
		})
	}
}

// TestFreeSessionWithNoMoney: Luis has no money; the facility makes requests to staff free
// (the default). He logs in, is told his session is free and what it allows, can write to a
// department but not read mail or write to a contact, and is charged nothing.
func TestFreeSessionWithNoMoney(t *testing.T) {
	h := newHarness(t)
	hash, _ := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	must(t, h.term.UpsertInmate(kiosk.Inmate{ID: "A2002", Name: "Luis Pardo", Badges: []string{"B2002"}, PINHash: hash,
		Language: "es", Status: kiosk.StatusActive, Messaging: true}, "test"))
	h.badge("B2002")
	h.typePIN("2468", "Aceptar")
	h.tap("Acepto")
	h.mustSee("Hola, Luis Pardo", "Saldo: $0.00",
		"Sesión gratuita (no hay dinero suficiente para el uso pagado): escribir al personal, denunciar abusos (PREA).")
	if !h.button("Recibidos").Disabled() {
		t.Error("the inbox opens in a free session where reading mail is paid")
	}
	c, err := h.term.AddContact("A2002", "Ana Ruiz", "ana@example.com")
	must(t, err)
	must(t, h.term.SetContactState("A2002", c.ID, kiosk.ContactApproved, ""))
	h.settle()
	h.tap("Escribir")
	h.mustSee("Medical (departamento)")
	h.mustNotSee("Ana Ruiz")
	h.tap("Medical (departamento)")
	h.entry("Escriba su mensaje aquí").SetText("Me duele una muela.")
	h.tap("Enviar")
	h.mustSee("Su mensaje para Medical está en camino.")
	h.advance(2 * time.Minute)
	if bal, _ := h.term.Balance("A2002"); bal != 0 {
		t.Fatalf("balance %v after a free session", bal)
	}
}

// TestDraftsList: a letter begun to Ana stays hers when Maria starts one to Medical; both are
// listed under Write, each opens with its own text, sending one leaves the other, and they are
// still there at the next session.
func TestDraftsList(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
	h.tap("Write")
	h.mustNotSee("Letters you have not sent")
	h.tap("Ana Ruiz <ana@example.com>")
	h.entry("Type your message here").SetText("Dear Ana, the garden is green.")
	h.tap("Back")
	h.tap("Write")
	h.mustSee("Letters you have not sent", "To: Ana Ruiz <ana@example.com>", "Dear Ana, the garden is green.")
	h.tap("Medical (department)")
	if got := h.entry("Type your message here").Text; got != "" {
		t.Fatalf("a new letter to Medical opens with %q", got)
	}
	h.entry("Type your message here").SetText("My knee hurts.")
	h.tap("Back")
	h.tap("Write")
	h.mustSee("To: Medical (department)", "My knee hurts.", "To: Ana Ruiz <ana@example.com>", "Dear Ana, the garden is green.")
	h.tapText("Dear Ana")
	if got := h.entry("Type your message here").Text; got != "Dear Ana, the garden is green." {
		t.Fatalf("Ana's letter reads %q", got)
	}
	h.tap("Send")
	h.mustSee("Your message to Ana Ruiz is on its way.")
	h.tap("Back")
	h.tap("Write")
	h.mustSee("My knee hurts.")
	h.mustNotSee("Dear Ana")
	h.tap("Back")
	h.tap("Log out")
	h.advance(31 * time.Minute)
	h.login()
	h.tap("Write")
	h.mustSee("Letters you have not sent", "To: Medical (department)", "My knee hurts.")
	// Choosing Medical again opens the letter begun to Medical, not a blank one.
	h.tap("Medical (department)")
	if got := h.entry("Type your message here").Text; got != "My knee hurts." {
		t.Fatalf("Medical's letter reads %q", got)
	}
}

// TestPREADraftNotListedOnASharedKiosk: a PREA report begun in the Write screen is not in the
// list of letters not sent on a shared kiosk; choosing the PREA channel opens it.
func TestPREADraftNotListedOnASharedKiosk(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.tap("Write")
	h.tap("PREA report (free, confidential)")
	h.entry("Type your message here").SetText("Something happened in the yard.")
	h.tap("Back")
	h.tap("Write")
	h.mustNotSee("Letters you have not sent", "Something happened")
	h.tap("PREA report (free, confidential)")
	if got := h.entry("Type your message here").Text; got != "Something happened in the yard." {
		t.Fatalf("the PREA draft reads %q", got)
	}
}

// TestPREAOnATablet: on a tablet the report is made with the bound inmate's PIN, in her
// language, with no session.
func TestPREAOnATablet(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.tablet = true
		s.lang = "es"
		s.policy = func(p *kiosk.Policy) { p.Lockdown = true }
	})
	h.mustSee("El centro está en cierre total")
	h.tap("Denunciar abuso sexual (PREA)")
	h.tap("Denunciar con mi PIN")
	h.mustSee("Escriba su PIN")
	h.typePIN(mariaPIN, "Aceptar")
	h.mustSee("Esta denuncia se envía a su nombre, Maria Gonzalez.")
	h.entry("Escriba lo que pasó. Tómese el tiempo que necesite.").SetText("Informe.")
	h.tap("Enviar denuncia")
	h.mustSee("Su denuncia fue enviada.")
	if _, ok := h.term.Active(); ok {
		t.Fatal("a PREA report opened a session on the tablet")
	}
	if ms := h.preaSent(mariaID); len(ms) != 1 {
		t.Fatalf("%d reports filed", len(ms))
	}
	h.tap("Listo")
	h.mustSee("Escriba su PIN para empezar")
}

// TestTabletWelcomeFollowsSync: on a tablet, whose welcome screen is its PIN pad, a notice and
// a lockdown arriving by sync show at once, and the digits already typed stay.
func TestTabletWelcomeFollowsSync(t *testing.T) {
	h := newHarness(t, func(s *setup) { s.tablet = true })
	h.mustSee("Enter your PIN to start")
	h.tap("4")
	h.down(kiosk.DownNotice, kiosk.Notice{ID: "n-1", Text: "Library open until 20:00.", At: start})
	h.mustSee("Library open until 20:00.", "●")
	p := h.term.Policy()
	p.Lockdown = true
	h.down(kiosk.DownPolicy, p)
	h.mustSee("The facility is in lockdown. The kiosks are closed.", "●")
}

// FuzzRejection: any reason the relay or a reviewer sends reads as words, never empty, and a
// relay code's technical detail is never shown.
func FuzzRejection(f *testing.F) {
	for _, s := range []string{"", "content_policy", "content_policy: names another inmate", "invalid: body: U+0007",
		"too_large", "threatening content", ":", "content_policy:", " unknown_contact : x"} {
		f.Add(s)
	}
	cat := i18n.MustLoad()
	f.Fuzz(func(t *testing.T, reason string) {
		for _, lang := range cat.Languages() {
			w := words{Lang: cat.For(lang), loc: time.UTC, now: start}
			got := w.rejection(reason)
			if strings.TrimSpace(got) == "" {
				t.Fatalf("%s: rejection %q reads as nothing", lang, reason)
			}
			code, detail, _ := strings.Cut(reason, ":")
			if rejectKind(strings.TrimSpace(code)) == "relay" && strings.TrimSpace(detail) != "" &&
				strings.Contains(got, strings.TrimSpace(detail)) && !strings.Contains(w.T("reject."+strings.TrimSpace(code)), strings.TrimSpace(detail)) {
				t.Fatalf("%s: relay detail %q shown: %q", lang, detail, got)
			}
		}
	})
}

// Every reason a reviewer may choose reads, in each language, as its own sentence, never as
// the code, with the reviewer's note after it when there is one.
func TestEveryReviewReasonInWords(t *testing.T) {
	cat := i18n.MustLoad()
	for _, lang := range cat.Languages() {
		w := words{Lang: cat.For(lang), loc: time.UTC, now: start}
		seen := map[string]string{}
		for _, code := range vocab.ReviewReasons() {
			got := w.rejection(code)
			// A code is never shown: not the code itself, no translation key, no underscores.
			if got == "" || got == code || strings.Contains(got, "reject.") || strings.Contains(got, "_") || got == w.T("reject.staff") {
				t.Errorf("%s: %s reads %q", lang, code, got)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("%s: %s and %s read the same: %q", lang, code, other, got)
			}
			seen[got] = code
			if withNote := w.rejection(code + ": names another person"); !strings.Contains(withNote, got) || !strings.Contains(withNote, "names another person") {
				t.Errorf("%s: %s with a note reads %q", lang, code, withNote)
			}
		}
	}
}
