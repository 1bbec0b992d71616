package kiosk

import (
	"testing"
	"time"
)

func TestUsageStatement(t *testing.T) {
	r := newRig(t, func(p *Policy) { p.Cooldown = 0 })
	r.addInmate("a", 1000)
	r.addInmate("a.b", 1000) // an id that starts with another's stays apart
	if us, err := r.term.Usage("a"); err != nil || len(us) != 0 {
		t.Fatalf("usage before any session: %v %v", us, err)
	}
	first := r.mustLogin("a")
	r.run(61*time.Second, true)
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.mustLogin("a.b")
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.run(time.Minute, false)
	second := r.mustLogin("a")
	r.run(20*time.Second, true)
	us, err := r.term.Usage("a")
	if err != nil || len(us) != 2 {
		t.Fatalf("usage: %d sessions, %v; want 2", len(us), err)
	}
	// Newest first; the one in progress has no end yet.
	if us[0].ID != second.SessionID || !us[0].End.IsZero() || us[0].Minutes != 1 || us[0].EndReason != "" {
		t.Fatalf("newest %+v", us[0])
	}
	want := Session{ID: first.SessionID, InmateID: "a", Terminal: "T1", Start: rigStart, End: rigStart.Add(61 * time.Second),
		Minutes: 2, Rate: 5, Charged: 10, EndReason: EndLogout}
	if us[1] != want {
		t.Fatalf("oldest %+v\nwant   %+v", us[1], want)
	}
	if _, err := r.term.Usage(""); KindOf(err) != KindInvalid {
		t.Fatalf("usage of empty id: %v", err)
	}
}
