package kiosk

import (
	"regexp"
	"testing"
	"time"
)

// TestPREAWithBadgeWhenEverythingElseRefuses: an inmate the sessions rules turn away (no money,
// lockdown, curfew, cool-down, suspended) still files a PREA report with badge and PIN: no
// session opens, nothing is billed, the report is queued in their name, and they get a
// reference to keep.
func TestPREAWithBadgeWhenEverythingElseRefuses(t *testing.T) {
	cases := map[string]func(r *rig){
		"zero balance": func(r *rig) {},
		"lockdown":     func(r *rig) { r.setPolicy(func(p *Policy) { p.Lockdown = true }) },
		"curfew": func(r *rig) {
			r.setPolicy(func(p *Policy) {
				p.Curfew = []CurfewWindow{{Weekday: rigStart.Weekday(), Start: "00:00", End: "23:59"}}
			})
		},
		"cool-down": func(r *rig) {
			r.deposit("I1", 500, "d1")
			r.mustLogin("I1")
			if err := r.term.Logout(); err != nil {
				r.tb.Fatal(err)
			}
		},
		"suspended": func(r *rig) {
			in := Inmate{ID: "I1", Name: "Inmate I1", Badges: []string{"B-I1"}, PINHash: testHash(r.tb, rigPIN),
				Language: "en", Status: StatusSuspended}
			if err := r.term.UpsertInmate(in, "test"); err != nil {
				r.tb.Fatal(err)
			}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, nil)
			r.addInmate("I1", 0)
			setup(r)
			if _, err := r.term.Badge("B-I1"); err == nil {
				t.Fatal("the case does not refuse a login; the test proves nothing")
			}
			before, _ := r.term.Balance("I1")
			res, err := r.term.PREABadge("B-I1")
			if err != nil || res.PersonID != "I1" || res.Language != "en" {
				t.Fatalf("PREABadge = %+v, %v", res, err)
			}
			rep, err := r.term.VerifyPREA("B-I1", rigPIN)
			if err != nil {
				t.Fatalf("VerifyPREA: %v", err)
			}
			if _, ok := r.term.Active(); ok {
				t.Fatal("a PREA report opened a session")
			}
			m, err := r.term.FilePREA(rep, "an officer threatened me")
			if err != nil {
				t.Fatalf("FilePREA: %v", err)
			}
			if m.InmateID != "I1" || m.Peer != PREAChannel {
				t.Fatalf("report filed as %+v", m)
			}
			if after, _ := r.term.Balance("I1"); after != before {
				t.Fatalf("balance %v -> %v: a PREA report cost money", before, after)
			}
			if n := len(r.queued(t, ItemPREA)); n != 1 {
				t.Fatalf("%d PREA items queued, want 1", n)
			}
			if _, err := r.term.FilePREA(rep, "again"); ReasonOf(err) != ReasonLoginExpired {
				t.Fatalf("the same badge and PIN filed twice: %v", err)
			}
		})
	}
}

// TestPREAVerifyStillGuardsPINs: wrong PINs for a report count toward the lockout like any
// other, a locked person is refused (anonymous reports stay open to them), a technician's
// badge files no report, and a login begun since closes a verified reporter.
func TestPREAVerifyStillGuardsPINs(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("I1", 0)
	for i := 0; i < 4; i++ {
		if _, err := r.term.VerifyPREA("B-I1", "0000"); ReasonOf(err) != ReasonWrongPIN {
			t.Fatalf("wrong PIN %d: %v", i+1, err)
		}
	}
	if _, err := r.term.VerifyPREA("B-I1", "0000"); ReasonOf(err) != ReasonLocked {
		t.Fatalf("fifth wrong PIN: %v, want locked", err)
	}
	if _, err := r.term.PREABadge("B-I1"); ReasonOf(err) != ReasonLocked {
		t.Fatalf("locked badge: %v", err)
	}
	if _, err := r.term.PREABadge("B-NOBODY"); ReasonOf(err) != ReasonUnknownBadge {
		t.Fatalf("unknown badge: %v", err)
	}
	if _, err := r.term.SendPREA("", "anonymous report"); err != nil {
		t.Fatalf("anonymous report while locked: %v", err)
	}

	r.clk.Advance(16 * time.Minute)
	rep, err := r.term.VerifyPREA("B-I1", rigPIN)
	if err != nil {
		t.Fatal(err)
	}
	r.addInmate("I2", 500)
	r.mustLogin("I2") // the next person at the kiosk
	if _, err := r.term.FilePREA(rep, "report"); ReasonOf(err) != ReasonLoginExpired {
		t.Fatalf("a reporter verified before another login still files: %v", err)
	}
	forged := PREAReporter{InmateID: "I2", At: rep.At}
	if _, err := r.term.FilePREA(forged, "report"); ReasonOf(err) != ReasonLoginExpired {
		t.Fatalf("a forged reporter files: %v", err)
	}
}

func TestPREAReference(t *testing.T) {
	for id, want := range map[string]string{
		"01920c6e-8f00-7000-8000-00003f9ac21b": "PREA-3F9A-C21B",
		"01920C6E-8F00-7000-8000-0000ABCDEF01": "PREA-ABCD-EF01",
		"abc":                                  "PREA-ABC",
	} {
		if got := PREAReference(id); got != want {
			t.Errorf("PREAReference(%q) = %q, want %q", id, got, want)
		}
	}
	r := newRig(t, nil)
	m, err := r.term.SendPREA("", "report")
	if err != nil {
		t.Fatal(err)
	}
	if ref := PREAReference(m.ID); !regexp.MustCompile(`^PREA-[0-9A-F]{4}-[0-9A-F]{4}$`).MatchString(ref) {
		t.Fatalf("reference %q of %s is not short and readable", ref, m.ID)
	}
}

func (r *rig) setPolicy(mutate func(*Policy)) {
	r.tb.Helper()
	p := r.term.Policy()
	mutate(&p)
	if err := r.term.SetPolicy(p, "test"); err != nil {
		r.tb.Fatalf("set policy: %v", err)
	}
}

func (r *rig) queued(tb testing.TB, kinds ...ItemKind) []Item {
	tb.Helper()
	items, err := r.store.Pending(0, 1<<20, 1<<30)
	if err != nil {
		tb.Fatalf("pending: %v", err)
	}
	var out []Item
	for _, it := range items {
		for _, k := range kinds {
			if it.Kind == k {
				out = append(out, it)
			}
		}
	}
	return out
}
