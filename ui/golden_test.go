package ui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/kiosk"
)

// TestGoldenScreens renders the main screens in English and Spanish and compares them with
// the images under testdata/golden. After a deliberate change, run the test, look at the
// images it writes under testdata/failed, and move them over the golden ones.
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
				h.settle()
				test.AssertImageMatches(t, "golden/"+name+"_"+lang+".png", h.k.win.Canvas().Capture())
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
