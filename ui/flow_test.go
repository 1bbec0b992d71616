package ui

import (
	"testing"
)

func TestLoginWrongThenRightPIN(t *testing.T) {
	h := newHarness(t)
	h.mustSee("Tether Demo Facility", "Scan your badge", "10:00")
	h.badge(mariaBadge)
	h.mustSee("Enter your PIN")
	h.mustNotSee(mariaName) // no name before the PIN: a found badge must not say whose it is
	h.typePIN("1111", "OK")
	h.mustSee("Wrong PIN. 4 tries left")
	h.typePIN(mariaPIN, "OK")
	h.mustSee("Monitoring notice", "This system is monitored")
	h.tap("I accept")
	h.mustSee("Hello, Maria Gonzalez", "Balance: $19.95", "This session: 1 min, $0.05", "Time left: 60 min")
}
