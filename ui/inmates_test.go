package ui

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
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
