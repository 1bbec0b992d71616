package ui

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// The usage screen itemises Maria's money: each minute charged (here and on another kiosk),
// the minute refunded when the kiosk froze, her deposits, each with the balance after it, in
// the facility's time, a page at a time, and her deposits alone at a tap.
func TestUsageItemisesMinutesCreditsAndDeposits(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.policy = func(p *kiosk.Policy) {
			p.Cooldown = 0
			p.IdleTimeout = kiosk.Duration(time.Hour)
			p.Timezone = "America/Chicago" // 10:00 UTC is 04:00 there in November
		}
	})
	h.login()
	h.advance(9*time.Minute + 30*time.Second) // minutes 1 to 10 charged
	must(t, h.term.ReportStall(20*time.Second))
	h.tap("Log out")
	h.advance(time.Hour)
	must(t, h.term.Deposit(mariaID, 500, "jpay-7"))
	raw, err := json.Marshal(kiosk.Charge{RecordID: "S-east/000000", SessionID: "S-east", InmateID: mariaID,
		Cents: 5, At: h.clk.Now().Add(30 * time.Second)})
	must(t, err)
	if refused, err := h.term.ApplyDownlink(1, kiosk.DownRemoteCharge, raw); err != nil || refused != "" {
		t.Fatalf("remote charge: %q %v", refused, err)
	}
	h.advance(time.Minute)
	h.login()
	h.tap("Usage")

	// 2000 + 500 - 10 minutes here + 1 refunded - 1 elsewhere - the minute in progress.
	bal, err := h.term.Balance(mariaID)
	must(t, err)
	if bal != 2500-50+5-5-5 {
		t.Fatalf("balance %v", bal)
	}
	h.mustSee("Usage statement", "Balance: $24.45", "When", "What", "Amount", "Balance",
		"Page 1 of 2", "Minute 1 charged", "-$0.05", "$24.45",
		"Minute 1 charged (other kiosk)", "$24.50",
		"2025-11-25 05:10", "2025-11-25 05:09", "Deposit", "+$5.00", "$24.55",
		"Minute 10 refunded: kiosk froze", "+$0.05", "$19.55",
		"Minute 10 charged", "$19.50", "2025-11-25 04:09",
		"Minute 3 charged", "$19.85")
	h.mustNotSee("Minute 2 charged", "+$20.00", "Page 2 of 2")

	h.tap("Older")
	h.mustSee("Page 2 of 2", "Minute 2 charged", "$19.90", "Minute 1 charged", "$19.95", "Deposit", "+$20.00", "$20.00", "2025-11-25 04:00")
	h.mustNotSee("Minute 10 refunded", "+$5.00")
	h.tap("Newer")
	h.mustSee("Page 1 of 2", "Minute 10 refunded: kiosk froze")

	h.tap("Deposits only")
	h.mustSee("Page 1 of 1", "+$5.00", "$24.55", "+$20.00", "$20.00", "Show everything")
	h.mustNotSee("charged", "refunded")
	h.tap("Show everything")
	h.mustSee("Minute 10 refunded: kiosk froze")
}

// The statement speaks the inmate's language.
func TestUsageInSpanish(t *testing.T) {
	h := newHarness(t, func(s *setup) {
		s.lang = "es"
		s.policy = func(p *kiosk.Policy) { p.Cooldown = 0 }
	})
	h.badge(mariaBadge)
	h.typePIN(mariaPIN, "Aceptar")
	h.tap("Acepto")
	h.advance(100 * time.Second) // minutes 1 and 2 charged; the freeze is all in minute 2
	must(t, h.term.ReportStall(20*time.Second))
	h.tap("Consumo")
	h.mustSee("Estado de consumo", "Saldo: $19.95", "Cuándo", "Qué", "Importe",
		"Minuto 2 devuelto: el quiosco se congeló", "+$0.05", "Minuto 2 cobrado", "-$0.05",
		"Depósito", "+$20.00", "Página 1 de 1", "Solo depósitos")
}
