package kiosk

import (
	"strings"
	"testing"
	"time"
)

// TestFreeSessionForStaffRequests: with requests to staff free (the default policy), an inmate
// with no money logs in to an unbilled session: writes to a department, is refused writing to
// a contact, is never charged, and the session still ends at the time limit.
func TestFreeSessionForStaffRequests(t *testing.T) {
	r := newRig(t, func(p *Policy) {
		p.FreeServices = DefaultPolicy().FreeServices
		p.IdleTimeout = Duration(20 * time.Minute)
	})
	r.addInmate("a", 0)
	if _, err := r.term.Badge("B-a"); err != nil {
		t.Fatalf("badge with no money and free requests: %v", err)
	}
	info := r.mustLogin("a")
	if !info.Free || info.Minutes != 0 || info.Cost != 0 || info.EndsBy != EndMaxLength {
		t.Fatalf("session %+v: want free, nothing billed, ended by the time limit", info)
	}
	c, err := r.term.AddContact("a", "Ana Ruiz", "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.term.SetContactState("a", c.ID, ContactApproved, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.Send("a", "dept-medical", "", "my tooth hurts"); err != nil {
		t.Fatalf("request to staff in a free session: %v", err)
	}
	if _, err := r.term.Send("a", c.ID, "", "hello"); ReasonOf(err) != ReasonNeedsFunds {
		t.Fatalf("message to a contact in a free session: %v, want %s", err, ReasonNeedsFunds)
	}
	r.run(59*time.Minute, true)
	if bal, _ := r.term.Balance("a"); bal != 0 {
		t.Fatalf("balance %v after a free session", bal)
	}
	if n := len(r.queued(t, ItemCharge)); n != 0 {
		t.Fatalf("%d charges queued for a free session", n)
	}
	r.run(2*time.Minute, true)
	if _, ok := r.term.Active(); ok {
		t.Fatal("a free session outlived the time limit")
	}
	us, err := r.term.Usage("a")
	if err != nil || len(us) != 1 || us[0].Minutes != 0 || us[0].Charged != 0 || us[0].EndReason != EndMaxLength {
		t.Fatalf("usage %+v, %v", us, err)
	}
}

// TestFreeSessionOnlyWhatPolicyFrees: with only reading mail free, a department costs money
// too; a paying inmate's session is billed as ever.
func TestFreeSessionOnlyWhatPolicyFrees(t *testing.T) {
	r := newRig(t, func(p *Policy) { p.FreeServices = []string{FreeReadMail}; p.Cooldown = 0 })
	r.addInmate("a", 0)
	if info := r.mustLogin("a"); !info.Free {
		t.Fatalf("session %+v not free", info)
	}
	if _, err := r.term.Send("a", "dept-medical", "", "hello"); ReasonOf(err) != ReasonNeedsFunds {
		t.Fatalf("department with only reading free: %v", err)
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.deposit("a", 100, "d1")
	if info := r.mustLogin("a"); info.Free || info.Minutes != 1 || info.Cost != 5 {
		t.Fatalf("a paying inmate's session %+v", info)
	}
}

func TestPolicyFreeServicesValidated(t *testing.T) {
	for _, tc := range []struct {
		free []string
		want string
	}{
		{[]string{"calls"}, "free_services[0]"},
		{[]string{FreeDepartments, FreeDepartments}, "free_services[1]"},
	} {
		p := DefaultPolicy()
		p.FreeServices = tc.free
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("free_services %q: %v, want an error naming %s", tc.free, err, tc.want)
		}
	}
	p := DefaultPolicy()
	p.FreeServices = nil
	if err := p.Validate(); err != nil {
		t.Errorf("no free services: %v", err)
	}
}
