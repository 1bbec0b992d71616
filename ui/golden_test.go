package ui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
)

// goldenPNGs are the few screens also compared as images, for the look (theme, fonts,
// colours, accents drawn); every screen is compared as Fyne markup, for its structure: which
// widgets, texts and sizes, in a diff a reviewer can read. Images stay few because each
// depends on the renderer's every pixel.
var goldenPNGs = map[string]bool{"welcome_en": true, "home_en": true, "write_es": true, "tech_en": true}

// assertGolden compares the window with testdata/golden/name.xml and, for goldenPNGs, with
// name.png. After a deliberate change, run the test, look at what it writes under
// testdata/failed, and move it over the golden files.
func assertGolden(t *testing.T, h *harness, name string) {
	t.Helper()
	h.settle()
	test.AssertRendersToMarkup(t, "golden/"+name+".xml", h.k.win.Canvas())
	if goldenPNGs[name] {
		test.AssertImageMatches(t, "golden/"+name+".png", h.k.win.Canvas().Capture())
	}
}

// TestGoldenScreens renders the main screens in English and Spanish and compares them with
// the goldens under testdata/golden (see assertGolden).
func TestGoldenScreens(t *testing.T) {
	for _, lang := range []string{"en", "es"} {
		t.Run(lang, func(t *testing.T) {
			h := newHarness(t, func(s *setup) {
				s.lang = lang
				s.policy = func(p *kiosk.Policy) { p.Cooldown = 0 }
			})
			h.k.SetFacilityNotice(map[string]string{
				"en": "Kiosks close at 21:00 on Thursday for maintenance.",
				"es": "Los quioscos cierran a las 21:00 el jueves por mantenimiento.",
			})
			snap := func(name string) {
				t.Helper()
				assertGolden(t, h, name+"_"+lang)
			}
			ok, accept, write := "OK", "I accept", "Write"
			if lang == "es" {
				h.tap("Español")
				ok, accept, write = "Aceptar", "Acepto", "Escribir"
			}
			snap("welcome")
			// An earlier session, so the statement has a finished row.
			h.badge(mariaBadge)
			h.typePIN(mariaPIN, ok)
			h.tap(accept)
			h.advance(150 * time.Second)
			h.tap(map[string]string{"en": "Log out", "es": "Salir"}[lang])
			h.advance(time.Hour)
			h.badge(mariaBadge)
			h.tap("4")
			h.tap("3")
			snap("pin")
			h.tap("2")
			h.tap("1")
			h.tap(ok)
			h.tap(accept)
			ana := h.addContact("Ana Ruiz", "ana@example.com", kiosk.ContactApproved)
			h.deliver("in-1", ana.ID, "Ana Ruiz", "Visit", "See you Sunday.")
			h.advance(90 * time.Second)
			h.k.SetLinkStatus(false)
			h.settle()
			snap("home")
			h.tap(write)
			h.tap("Ana Ruiz <ana@example.com>")
			body := map[string]string{"en": "Type your message here", "es": "Escriba su mensaje aquí"}[lang]
			test.Type(h.entry(body), "Hola Ana, ¿cómo está la niña? Nos vemos el domingo.")
			snap("write")
			h.tap(map[string]string{"en": "Back", "es": "Volver"}[lang])
			h.tap(map[string]string{"en": "Usage", "es": "Consumo"}[lang])
			snap("usage")
		})
	}
}
