package kiosk

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func rosterJSON(t testing.TB, r Roster) []byte {
	t.Helper()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRosterAppliesDefaults(t *testing.T) {
	h := testHash(t, pinAna)
	data := `{"inmates": [{"id": "I-1", "name": "Ana Ruiz", "badges": ["B-1001"], "pin_hash": "` + h + `"}],
		"technicians": []}`
	r, err := ParseRoster("roster.json", []byte(data))
	if err != nil {
		t.Fatalf("ParseRoster: %v", err)
	}
	if len(r.Inmates) != 1 || r.Inmates[0].Language != "en" || r.Inmates[0].Status != StatusActive {
		t.Fatalf("ParseRoster = %+v; want one active inmate in English", r)
	}
}

func TestParseRosterNamesTheBadField(t *testing.T) {
	base := testRoster(t)
	h := func(pin string) string { return testHash(t, pin) }
	cases := []struct {
		name string
		data func() []byte
		want string
	}{
		{"syntax", func() []byte { return []byte("{\n  \"inmates\": [\n    {\"id\": \"I-1\",}\n  ]\n}") },
			"roster.json: bad JSON at line 3, column 18"},
		{"top-level syntax", func() []byte { return []byte("{\"inmates\": [}") }, "roster.json: bad JSON at line 1, column 14"},
		{"empty file", func() []byte { return nil }, "roster.json: is empty"},
		{"two values", func() []byte { return []byte(`{} {}`) }, "roster.json: has more after the end"},
		{"not an object", func() []byte { return []byte(`[1]`) }, "roster.json: must be a JSON object, not array"},
		{"unknown top field", func() []byte { return []byte(`{"inmate": []}`) }, `roster.json: inmate: is not a field`},
		{"clear PIN", func() []byte {
			return []byte(`{"inmates": [{"id": "I-1", "name": "A", "badges": ["B"], "pin": "739158264027"}]}`)
		}, "roster.json: inmates[0].pin: is not a field; PINs are never stored in clear"},
		{"wrong type", func() []byte { return []byte(`{"inmates": [{"id": 7}]}`) }, "roster.json: inmates[0].id: must be a string, not number"},
		{"badges not a list", func() []byte { return []byte(`{"inmates": [{"badges": "B-1"}]}`) }, "roster.json: inmates[0].badges: must be a list, not string"},
		{"missing id", func() []byte {
			r := testRoster(t)
			r.Inmates[2].ID = ""
			return rosterJSON(t, r)
		}, "roster.json: inmates[2].id: must not be empty"},
		{"duplicate id", func() []byte {
			r := testRoster(t)
			r.Inmates[2].ID = "I-1"
			return rosterJSON(t, r)
		}, `roster.json: inmates[2].id: "I-1" is also the id of inmates[0]`},
		{"technician with an inmate's id", func() []byte {
			r := testRoster(t)
			r.Technicians[0].ID = "I-2"
			return rosterJSON(t, r)
		}, `roster.json: technicians[0].id: "I-2" is also the id of inmates[1]`},
		{"badge held by another inmate", func() []byte {
			r := base
			r.Inmates = append(append([]Inmate(nil), base.Inmates...),
				Inmate{ID: "I-4", Name: "Dee", Badges: []string{"X"}, PINHash: h("1234"), Language: "en", Status: StatusActive})
			r.Inmates[3].Badges = []string{"B-2002"}
			return rosterJSON(t, r)
		}, `roster.json: inmates[3].badges[0]: badge "B-2002" already belongs to inmate I-2`},
		{"badge held by a technician's", func() []byte {
			r := testRoster(t)
			r.Technicians[0].Badges = []string{"B-3001"}
			return rosterJSON(t, r)
		}, `roster.json: technicians[0].badges[0]: badge "B-3001" already belongs to inmate I-3`},
		{"copied hash", func() []byte {
			r := testRoster(t)
			r.Inmates[1].PINHash = r.Inmates[0].PINHash
			return rosterJSON(t, r)
		}, "roster.json: inmates[1].pin_hash: is the same hash and salt as inmates[0]"},
		{"bad hash", func() []byte {
			r := testRoster(t)
			r.Technicians[0].PINHash = "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"
			return rosterJSON(t, r)
		}, `roster.json: technicians[0].pin_hash: parameters out of range`},
		{"language", func() []byte {
			r := testRoster(t)
			r.Inmates[0].Language = "EN"
			return rosterJSON(t, r)
		}, `roster.json: inmates[0].language: "EN" is not one of en, es`},
		{"status", func() []byte {
			r := testRoster(t)
			r.Inmates[1].Status = "gone"
			return rosterJSON(t, r)
		}, `roster.json: inmates[1].status: "gone" is not active or suspended`},
		{"role", func() []byte {
			r := testRoster(t)
			r.Technicians[0].Role = ""
			return rosterJSON(t, r)
		}, `roster.json: technicians[0].role: needs 1 to 32 characters`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.data()
			_, err := ParseRoster("roster.json", data)
			if err == nil || KindOf(err) != KindInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseRoster = %v; want invalid containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), pinAna) || strings.Contains(err.Error(), "739158264027") {
				t.Fatalf("error %q repeats a PIN", err)
			}
		})
	}
}

func TestImportRosterAllOrNothing(t *testing.T) {
	f := newLoginFixture(t)
	before, _ := f.store.Roster()
	// Three good new inmates, then one whose badge a stored technician holds.
	var r Roster
	for i, id := range []string{"I-10", "I-11", "I-12", "I-13"} {
		r.Inmates = append(r.Inmates, Inmate{ID: id, Name: "New " + id, Badges: []string{"N-" + id},
			PINHash: testHash(t, "2468"+string(rune('0'+i))+"0"), Language: "es", Status: StatusActive})
	}
	r.Inmates[3].Badges = []string{"N-x", "T-9001"}
	_, err := f.term.ImportRoster("roster.json", rosterJSON(t, r), "tester")
	want := `roster.json: inmates[3].badges[1]: badge "T-9001" already belongs to technician T-1`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ImportRoster = %v; want %q", err, want)
	}
	after, _ := f.store.Roster()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused import changed the roster:\nbefore %+v\nafter  %+v", before, after)
	}
	if _, err := f.term.Badge("N-I-10"); ReasonOf(err) != ReasonUnknownBadge {
		t.Fatalf("badge from a refused import: %v", err)
	}

	r.Inmates[3].Badges = []string{"N-x"}
	st, err := f.term.ImportRoster("roster.json", rosterJSON(t, r), "tester")
	if err != nil || st != (ImportStats{Inmates: 4}) {
		t.Fatalf("ImportRoster = %+v, %v", st, err)
	}
	evs, _ := f.store.RecentAudit(1, nil)
	if evs[0].Kind != "roster_imported" || evs[0].Detail["inmates"] != "4" || evs[0].Actor != "tester" {
		t.Fatalf("import audit %+v", evs[0])
	}
	if res, err := f.term.Badge("N-x"); err != nil && ReasonOf(err) != ReasonInsufficientBalance || res.PersonID != "I-13" {
		t.Fatalf("badge from the import: %+v, %v", res, err)
	}
}

func TestImportRosterSwapsBadges(t *testing.T) {
	f := newLoginFixture(t)
	// Two people trade badges in one roster; order within the file must not matter.
	r := testRoster(t)
	r.Inmates[0].Badges, r.Inmates[2].Badges = r.Inmates[2].Badges, r.Inmates[0].Badges
	r.Technicians = nil
	if _, err := f.store.ImportRoster(f.clk.Now(), "swap.json", r, "tester"); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if res, _ := f.term.Badge("B-1001"); res.PersonID != "I-3" {
		t.Fatalf("B-1001 belongs to %q; want I-3", res.PersonID)
	}
	if _, err := f.term.EnterPIN("B-3001", pinAna); err != nil {
		t.Fatalf("Ana with her new badge: %v", err)
	}
}

func FuzzParseRoster(f *testing.F) {
	f.Add(rosterJSON(f, testRoster(f)))
	f.Add([]byte(`{"inmates": [{"id": "I-1", "name": "A", "badges": ["B"], "pin_hash": "` + testHash(f, "1234") + `"}]}`))
	f.Add([]byte(`{"inmates": null, "technicians": [{}]}`))
	f.Add([]byte(`{"inmates": [{"id": "I-1", "pin": "1234"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"inmates": [{"badges": ["a", "a"]}]} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRoster("fuzz.json", data)
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("refusal of kind %v: %v", KindOf(err), err)
			}
			return
		}
		if err := r.Validate("fuzz.json"); err != nil {
			t.Fatalf("accepted roster does not re-validate: %v", err)
		}
		again, err := ParseRoster("fuzz.json", rosterJSON(t, r))
		if err != nil {
			t.Fatalf("accepted roster does not parse again once written: %v", err)
		}
		if !reflect.DeepEqual(normalizeNil(r), normalizeNil(again)) {
			t.Fatalf("round trip changed the roster:\n%+v\n%+v", r, again)
		}
	})
}

// normalizeNil treats an empty list and a missing one alike for comparison.
func normalizeNil(r Roster) Roster {
	if len(r.Inmates) == 0 {
		r.Inmates = nil
	}
	if len(r.Technicians) == 0 {
		r.Technicians = nil
	}
	return r
}
