package kiosk

import (
	"strings"
	"testing"
)

func TestUpsertInmateNamesTheBadField(t *testing.T) {
	f := newLoginFixture(t)
	good := func() Inmate {
		return Inmate{ID: "I-9", Name: "Dee Vance", Badges: []string{"B-9001"}, PINHash: testHash(t, "24681357"),
			Language: "en", Status: StatusActive}
	}
	cases := []struct {
		name   string
		change func(*Inmate)
		kind   Kind
		want   string
	}{
		{"empty id", func(in *Inmate) { in.ID = "" }, KindInvalid, "id: must not be empty"},
		{"slash in id", func(in *Inmate) { in.ID = "I/9" }, KindInvalid, `id: "I/9" may hold only`},
		{"long id", func(in *Inmate) { in.ID = strings.Repeat("x", 65) }, KindInvalid, "id: is longer than 64"},
		{"blank name", func(in *Inmate) { in.Name = "  " }, KindInvalid, "name: must not be empty"},
		{"control in name", func(in *Inmate) { in.Name = "Dee\x1b[2J" }, KindInvalid, "name: must not contain control"},
		{"no badges", func(in *Inmate) { in.Badges = nil }, KindInvalid, "badges: needs at least one badge"},
		{"empty badge", func(in *Inmate) { in.Badges = []string{"B-9001", ""} }, KindInvalid, "badges[1]: must not be empty"},
		{"space in badge", func(in *Inmate) { in.Badges = []string{"B 9001"} }, KindInvalid, "badges[0]: may hold only printable"},
		{"badge twice", func(in *Inmate) { in.Badges = []string{"B-9001", "B-9001"} }, KindInvalid, `badges[1]: badge "B-9001" is listed twice`},
		{"no pin hash", func(in *Inmate) { in.PINHash = "" }, KindInvalid, "pin_hash: is missing (make one with kioskctl hash-pin)"},
		{"clear PIN as hash", func(in *Inmate) { in.PINHash = "24681357" }, KindInvalid, "pin_hash: not an argon2id hash"},
		{"bcrypt hash", func(in *Inmate) { in.PINHash = "$2a$10$abcdefghijklmnopqrstuv" }, KindInvalid, "pin_hash: not an argon2id hash"},
		{"language", func(in *Inmate) { in.Language = "fr" }, KindInvalid, `language: "fr" is not one of en, es`},
		{"status", func(in *Inmate) { in.Status = "released" }, KindInvalid, `status: "released" is not active or suspended`},
		{"badge of an inmate", func(in *Inmate) { in.Badges = []string{"B-9001", "B-1001"} }, KindConflict, `badges[1]: badge "B-1001" already belongs to inmate I-1`},
		{"badge of a technician", func(in *Inmate) { in.Badges = []string{"T-9001"} }, KindConflict, `badges[0]: badge "T-9001" already belongs to technician T-1`},
		{"technician's id", func(in *Inmate) { in.ID = "T-1" }, KindConflict, `id: "T-1" is already a technician's id`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := good()
			c.change(&in)
			err := f.term.UpsertInmate(in, "tester")
			if err == nil || KindOf(err) != c.kind || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("UpsertInmate = %v (kind %v); want %v containing %q", err, KindOf(err), c.kind, c.want)
			}
			if _, err := f.term.Badge("B-9001"); ReasonOf(err) != ReasonUnknownBadge {
				t.Fatalf("after a refused upsert B-9001 gives %v; want unknown badge", err)
			}
		})
	}
	if err := f.term.UpsertInmate(good(), "tester"); err != nil {
		t.Fatalf("valid inmate: %v", err)
	}
}

func TestUpsertTechnicianNamesTheBadField(t *testing.T) {
	f := newLoginFixture(t)
	good := Technician{ID: "T-2", Name: "Kim Ito", Badges: []string{"T-9002"}, PINHash: testHash(t, "97531864"), Role: "supervisor"}
	cases := []struct {
		name   string
		change func(*Technician)
		want   string
	}{
		{"empty role", func(tc *Technician) { tc.Role = "" }, "role: needs 1 to 32 characters"},
		{"odd role", func(tc *Technician) { tc.Role = "Root!" }, `role: "Root!" may hold only lowercase`},
		{"inmate's badge", func(tc *Technician) { tc.Badges = []string{"B-2002"} }, `badges[0]: badge "B-2002" already belongs to inmate I-2`},
		{"inmate's id", func(tc *Technician) { tc.ID = "I-1" }, `id: "I-1" is already an inmate's id`},
		{"no hash", func(tc *Technician) { tc.PINHash = "" }, "pin_hash: is missing"},
	}
	for _, c := range cases {
		tc := good
		c.change(&tc)
		if err := f.term.UpsertTechnician(tc, "tester"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: UpsertTechnician = %v; want %q", c.name, err, c.want)
		}
	}
	if err := f.term.UpsertTechnician(good, "tester"); err != nil {
		t.Fatalf("valid technician: %v", err)
	}
	if tc, err := f.term.Technician("T-2"); err != nil || tc.Role != "supervisor" || tc.PINHash != "" {
		t.Fatalf("Technician(T-2) = %+v, %v; want the record without its hash", tc, err)
	}
}

func TestChangingBadgesReleasesTheOldOnes(t *testing.T) {
	f := newLoginFixture(t)
	ana, err := f.term.Inmate("I-1")
	if err != nil {
		t.Fatal(err)
	}
	ana.PINHash = testHash(t, pinAna)
	ana.Badges = []string{"B-1009"}
	if err := f.term.UpsertInmate(ana, "relay"); err != nil {
		t.Fatalf("new badge: %v", err)
	}
	if _, err := f.term.Badge("B-1001"); ReasonOf(err) != ReasonUnknownBadge {
		t.Fatalf("old badge after the change: %v; want unknown", err)
	}
	if res, err := f.term.Badge("B-1009"); err != nil || res.PersonID != "I-1" {
		t.Fatalf("new badge: %+v, %v", res, err)
	}
	// The released badge may go to someone else.
	cy, _ := f.term.Inmate("I-3")
	cy.PINHash = testHash(t, pinCy)
	cy.Badges = append(cy.Badges, "B-1001")
	if err := f.term.UpsertInmate(cy, "relay"); err != nil {
		t.Fatalf("reuse of a released badge: %v", err)
	}
	if res, _ := f.term.Badge("B-1001"); res.PersonID != "I-3" {
		t.Fatalf("B-1001 now belongs to %q; want I-3", res.PersonID)
	}
}

func TestInmateAccessorsAndLanguage(t *testing.T) {
	f := newLoginFixture(t)
	in, err := f.term.Inmate("I-1")
	if err != nil || in.Name != "Ana Ruiz" || in.Language != "es" || !in.Messaging || in.PINHash != "" {
		t.Fatalf("Inmate(I-1) = %+v, %v; want Ana without her hash", in, err)
	}
	if _, err := f.term.Inmate("I-404"); KindOf(err) != KindNotFound {
		t.Fatalf("Inmate(unknown) = %v; want not found", err)
	}
	if err := f.term.SetLanguage("I-1", "en"); err != nil {
		t.Fatal(err)
	}
	if err := f.term.SetLanguage("I-1", "de"); KindOf(err) != KindInvalid {
		t.Fatalf("SetLanguage(de) = %v; want invalid", err)
	}
	if err := f.term.SetLanguage("I-404", "es"); KindOf(err) != KindNotFound {
		t.Fatalf("SetLanguage(unknown) = %v; want not found", err)
	}
	f.reopen()
	if res, _ := f.term.Badge("B-1001"); res.Language != "en" {
		t.Fatalf("language after restart = %q; want en", res.Language)
	}
	p, err := f.term.EnterPIN("B-1001", pinAna)
	if err != nil || p.Notice != DefaultPolicy().MonitoringNotice["en"] {
		t.Fatalf("notice after switching to English = %q, %v", p.Notice, err)
	}
	// The PIN still works: SetLanguage kept the hash the accessor hid.
	r, err := f.store.Roster()
	if err != nil || len(r.Inmates) != 3 || len(r.Technicians) != 1 || r.Inmates[0].PINHash != "" {
		t.Fatalf("Roster() = %+v, %v", r, err)
	}
}

func TestSuspendReinstateRemove(t *testing.T) {
	f := newLoginFixture(t)
	if err := f.term.SuspendInmate("I-1", "T-1"); err != nil {
		t.Fatal(err)
	}
	_, err := f.term.Badge("B-1001")
	wantReason(t, "suspended", err, ReasonSuspended)
	evs, _ := f.store.RecentAudit(2, func(ev AuditEvent) bool { return ev.Kind == "inmate_status" })
	if len(evs) != 1 || evs[0].Actor != "T-1" || evs[0].Detail["status"] != StatusSuspended {
		t.Fatalf("status audit %+v", evs)
	}
	if err := f.term.ReinstateInmate("I-1", "T-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.term.Badge("B-1001"); err != nil {
		t.Fatalf("reinstated: %v", err)
	}
	if err := f.term.SuspendInmate("I-404", "T-1"); KindOf(err) != KindNotFound {
		t.Fatalf("suspend unknown = %v; want not found", err)
	}

	f.term.EnterPIN("B-3001", pinWrong)
	if err := f.term.BindTablet("I-3"); err != nil {
		t.Fatal(err)
	}
	if err := f.term.RemoveInmate("I-3", "relay"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.term.Badge("B-3001"); ReasonOf(err) != ReasonUnknownBadge {
		t.Fatalf("badge of a removed inmate: %v", err)
	}
	if st, _ := f.term.LoginState("I-3"); st != (LoginState{}) {
		t.Fatalf("login state of a removed inmate: %+v", st)
	}
	if _, ok, _ := f.term.BoundInmate(); ok {
		t.Fatal("tablet still bound to a removed inmate")
	}
	if err := f.term.RemoveTechnician("T-1", "relay"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.term.Badge("T-9001"); ReasonOf(err) != ReasonUnknownBadge {
		t.Fatalf("badge of a removed technician: %v", err)
	}
}

func TestSetPINAndClearLockout(t *testing.T) {
	f := newLoginFixture(t)
	for i := 0; i < 5; i++ {
		f.term.EnterPIN("B-1001", pinWrong)
	}
	if err := f.term.ClearLockout("I-1", "T-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.term.EnterPIN("B-1001", pinAna); err != nil {
		t.Fatalf("after ClearLockout: %v", err)
	}
	const newPIN = "55667788"
	if err := f.term.SetPIN("I-1", "12", "T-1"); KindOf(err) != KindInvalid {
		t.Fatalf("SetPIN(too short) = %v; want invalid", err)
	}
	if err := f.term.SetPIN("I-404", newPIN, "T-1"); KindOf(err) != KindNotFound {
		t.Fatalf("SetPIN(unknown) = %v; want not found", err)
	}
	if err := f.term.SetPIN("I-1", newPIN, "T-1"); err != nil {
		t.Fatal(err)
	}
	_, err := f.term.EnterPIN("B-1001", pinAna)
	wantReason(t, "old PIN", err, ReasonWrongPIN)
	if _, err := f.term.EnterPIN("B-1001", newPIN); err != nil {
		t.Fatalf("new PIN: %v", err)
	}
	if err := f.term.SetPIN("T-1", newPIN, "T-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.term.EnterPIN("T-9001", newPIN); err != nil {
		t.Fatalf("technician's new PIN: %v", err)
	}
	scanStoreFor(t, f.store, newPIN)
}
