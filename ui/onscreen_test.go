package ui

import (
	"slices"
	"testing"
)

// OnScreen names each view as it comes, on the UI goroutine, once per change: a person
// walking through welcome -> PIN -> notice -> home is reported in that order; a wrong PIN
// leaves the PIN screen up (no second "pin"), and logging out returns to "welcome".
func TestOnScreenNamesEachViewInOrder(t *testing.T) {
	var got []string
	h := newHarness(t, func(s *setup) {
		s.onScreen = func(h *harness, name string) {
			if !h.onUI {
				t.Errorf("OnScreen(%q) called off the UI goroutine", name)
			}
			got = append(got, name)
		}
	})
	h.mustSee("Scan your badge")
	if want := []string{"welcome"}; !slices.Equal(got, want) {
		t.Fatalf("after New: %q, want %q", got, want)
	}
	h.badge(mariaBadge)
	h.mustSee("Enter your PIN")
	h.typePIN("1111", "OK")
	h.mustSee("Wrong PIN")
	h.typePIN(mariaPIN, "OK")
	h.mustSee("Monitoring notice")
	h.tap("I accept")
	h.mustSee("Hello, " + mariaName)
	h.tap("Inbox")
	h.mustSee("No messages yet.")
	h.tap("Back")
	h.tap("Log out")
	h.mustSee("Scan your badge")
	if want := []string{"welcome", "pin", "notice", "home", "inbox", "home", "welcome"}; !slices.Equal(got, want) {
		t.Fatalf("screens reported %q, want %q", got, want)
	}
}
