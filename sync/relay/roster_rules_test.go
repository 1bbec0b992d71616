package relay

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The relay takes a roster by the terminals' rules for a person (kiosk.RosterFieldError):
// what it accepts a kiosk accepts. Before, it took an id with '@', a name of 110 characters and
// a role "Installer", which every kiosk then refused when the person arrived.
func TestRosterTakesTheTerminalsRules(t *testing.T) {
	e := newEnv(t)
	e.seed()
	person := func(id, name string) RosterInmate {
		return RosterInmate{ID: id, Name: name, Badges: []string{"B-" + strings.ReplaceAll(id, "@", "")}, PIN: "1234",
			Language: "en", Status: kiosk.StatusActive}
	}
	for _, tc := range []struct {
		name  string
		ro    Roster
		field string
	}{
		{"id with @", Roster{Inmates: []RosterInmate{person("a@b", "Ana")}}, "inmates[0].id"},
		{"name too long", Roster{Inmates: []RosterInmate{person("A9", strings.Repeat("n", 110))}}, "inmates[0].name"},
		{"role not a kiosk role", Roster{Technicians: []RosterTechnician{{ID: "T9", Name: "Tess", Badges: []string{"TB9"},
			PIN: "9999", Role: "Installer"}}}, "technicians[0].role"},
	} {
		status, raw := e.call("PUT", "/admin/v1/facilities/north/roster", tc.ro)
		var er struct{ Field string }
		json.Unmarshal(raw, &er)
		if status != http.StatusBadRequest || er.Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, status, raw, tc.field)
		}
	}

	// A technician listed without a role arrives as a plain technician, and a kiosk takes it.
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	ro := Roster{Inmates: []RosterInmate{person("A1", "Ana")},
		Technicians: []RosterTechnician{{ID: "T2", Name: "Theo", Badges: []string{"TB2"}, PIN: "9999"}}}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/roster", ro, nil)
	it := c.waitDown(wire.DownTechnician, func(b json.RawMessage) bool { return decodeAs[kiosk.Technician](t, b).ID == "T2" })
	tech := decodeAs[kiosk.Technician](t, it.Body)
	if tech.Role != DefaultTechnicianRole {
		t.Fatalf("technician without a role arrives as %q", tech.Role)
	}
	if err := kiosk.ValidateTechnician(tech); err != nil {
		t.Fatalf("a kiosk would refuse the technician the relay sent: %v", err)
	}
}
