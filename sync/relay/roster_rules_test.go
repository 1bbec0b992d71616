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

// A letter is taken by the rules Send applies on the terminal (kiosk.ValidateLetter): a body a
// terminal would refuse (a control character, a line break in the subject) is refused invalid,
// one too long is too_large, and a good one is taken.
func TestLettersTakeTheTerminalsRules(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	letter := func(id, subject, body string) wire.Item {
		return k.item(wire.UpMessage, kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-records",
			Subject: subject, Body: body})
	}
	ack := c.batch(
		letter("m-bell", "", "ring \a ring"),
		letter("m-subject", "two\nlines", "fine"),
		letter("m-long", "", strings.Repeat("x", kiosk.DefaultPolicy().MaxMessageChars+1)),
		letter("m-good", "Records", "Please send my file.\nThank you."),
	)
	want := map[uint64]string{1: wire.RefuseInvalid, 2: wire.RefuseInvalid, 3: wire.RefuseTooLarge}
	got := map[uint64]string{}
	for _, r := range ack.Rejected {
		got[r.Seq] = r.Reason
	}
	if ack.Seq != 4 || len(got) != len(want) || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("ack = %+v, want refusals %v and the good letter taken", ack, want)
	}
	for seq, body := range map[uint64]string{1: "ring \a ring", 2: "fine"} {
		if kiosk.ValidateLetter(body, map[uint64]string{1: "", 2: "two\nlines"}[seq], 13000) == nil {
			t.Errorf("seq %d: the terminal's rule takes what the relay refused", seq)
		}
	}
}
