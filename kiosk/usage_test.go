package kiosk

import (
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

// The itemised statement lists every deposit and every minute charged or credited, here and
// on the facility's other terminals, and its lines add up to the balance.
func TestStatementAddsUpToBalance(t *testing.T) {
	r := newRig(t, func(p *Policy) { p.Cooldown = 0 })
	r.addInmate("a", 1000)
	r.addInmate("a.b", 1000) // an id that starts with another's stays apart
	info := r.mustLogin("a")
	r.run(2*time.Minute+20*time.Second, true) // minute 2 (the third) is being billed
	for _, d := range []time.Duration{12 * time.Second, 15 * time.Second} {
		if err := r.term.ReportStall(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.mustLogin("a.b")
	r.run(30*time.Second, true)
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.run(time.Minute, false)
	r.deposit("a", 250, "jpay-2")
	remote := Charge{RecordID: "S-other/000000", SessionID: "S-other", InmateID: "a", Cents: 7, At: r.clk.Now().Add(time.Second)}
	for i, kind := range []string{DownRemoteCharge, DownRemoteCharge} { // sent twice, counted once
		raw, _ := json.Marshal(remote)
		if refused, err := r.term.ApplyDownlink(uint64(i+1), kind, raw); err != nil || refused != "" {
			t.Fatalf("remote charge: %q %v", refused, err)
		}
	}
	second := r.mustLogin("a")
	r.run(10*time.Second, true)

	lines, err := r.term.Statement("a")
	if err != nil {
		t.Fatal(err)
	}
	var sum Cents
	for _, l := range lines {
		sum += l.Cents
	}
	bal := r.balance("a")
	if sum != bal || lines[0].Balance != bal {
		t.Fatalf("lines add up to %v, newest running balance %v; balance is %v\n%+v", sum, lines[0].Balance, bal, lines)
	}
	// 1000 + 250 - 3 minutes here (one credited) - 7 elsewhere - the minute in progress.
	if want := Cents(1000 + 250 - 15 + 5 - 7 - 5); bal != want {
		t.Fatalf("balance %v, want %v", bal, want)
	}
	type row struct {
		kind   LineKind
		cents  Cents
		sess   string
		minute int
		reason string
		remote bool
		bal    Cents
	}
	want := []row{
		{LineCharge, -7, "S-other", 0, "", true, 1228},
		{LineCharge, -5, second.SessionID, 0, "", false, 1235},
		{LineDeposit, 250, "", 0, "", false, 1240},
		{LineCredit, 5, info.SessionID, 2, CreditStall, false, 990},
		{LineCharge, -5, info.SessionID, 2, "", false, 985},
		{LineCharge, -5, info.SessionID, 1, "", false, 990},
		{LineCharge, -5, info.SessionID, 0, "", false, 995},
		{LineDeposit, 1000, "", 0, "", false, 1000},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		got := row{l.Kind, l.Cents, l.SessionID, l.Minute, l.Reason, l.Remote, l.Balance}
		if got != w {
			t.Errorf("line %d: %+v\nwant    %+v", i, got, w)
		}
	}
	if lines[2].Ref != "jpay-2" || lines[7].Ref != "init-a" {
		t.Errorf("deposit refs %q, %q", lines[2].Ref, lines[7].Ref)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].At.After(lines[i-1].At) {
			t.Errorf("line %d (%v) is newer than line %d (%v)", i, lines[i].At, i-1, lines[i-1].At)
		}
	}
	other, err := r.term.Statement("a.b")
	if err != nil || len(other) != 2 || other[0].Balance != r.balance("a.b") {
		t.Fatalf("a.b's statement: %+v %v", other, err)
	}
	if _, err := r.term.Statement(""); KindOf(err) != KindInvalid {
		t.Fatalf("statement of empty id: %v", err)
	}

	// A balance its records do not explain is refused, not shown as if it added up.
	acc := r.account("a")
	acc.Balance += 100
	if err := r.store.db.Update(func(tx *bolt.Tx) error { return putJSON(tx, bAccounts, "a", acc) }); err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.Statement("a"); KindOf(err) != KindCorrupt {
		t.Fatalf("statement of a damaged account: %v, want a corrupt store error", err)
	}
}
