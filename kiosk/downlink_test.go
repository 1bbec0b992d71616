package kiosk

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

var dlStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type dlRig struct {
	dir    string
	clock  *clock.Fake
	store  *Store
	t      *Terminal
	mu     sync.Mutex
	events []Event
}

func newDLRig(tb testing.TB) *dlRig {
	tb.Helper()
	r := &dlRig{dir: tb.TempDir(), clock: clock.NewFake(dlStart)}
	r.open(tb)
	return r
}

func (r *dlRig) open(tb testing.TB) {
	tb.Helper()
	s, err := OpenStore(r.dir, StoreOptions{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: r.clock, PINParams: TestPINParams(), Logf: tb.Logf,
		OnEvent: func(ev Event) { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock() }})
	if err != nil {
		tb.Fatalf("new terminal: %v", err)
	}
	r.store, r.t = s, term
	tb.Cleanup(func() { s.Close() })
}

func (r *dlRig) reopen(tb testing.TB) {
	tb.Helper()
	if err := r.store.Close(); err != nil {
		tb.Fatalf("close: %v", err)
	}
	r.open(tb)
}

func dlHash(tb testing.TB) string {
	tb.Helper()
	h, err := HashPINWith("4826", TestPINParams())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (r *dlRig) apply(tb testing.TB, seq uint64, kind string, body any) string {
	tb.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	refused, err := r.t.ApplyDownlink(seq, kind, raw)
	if err != nil {
		tb.Fatalf("apply %d %s: %v", seq, kind, err)
	}
	return refused
}

func (r *dlRig) changed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == EventChanged {
			n++
		}
	}
	return n
}

func TestDownlinkAppliesOnceInOrder(t *testing.T) {
	r := newDLRig(t)
	in := Inmate{ID: "A1", Name: "Ana Ruiz", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "es", Status: StatusActive, Messaging: true}
	if refused := r.apply(t, 1, DownInmate, in); refused != "" {
		t.Fatalf("inmate refused: %s", refused)
	}
	dep := Deposit{Ref: "dep-1", InmateID: "A1", Cents: 2500, At: dlStart}
	if refused := r.apply(t, 2, DownDeposit, dep); refused != "" {
		t.Fatalf("deposit refused: %s", refused)
	}
	// The relay resends after a reconnect: nothing changes twice.
	r.apply(t, 2, DownDeposit, dep)
	r.apply(t, 1, DownInmate, in)
	if bal, _ := r.t.Balance("A1"); bal != 2500 {
		t.Fatalf("balance after a resent deposit = %s, want 25.00", bal)
	}
	// Even under a new seq, the same ref counts once.
	r.apply(t, 3, DownDeposit, dep)
	if bal, _ := r.t.Balance("A1"); bal != 2500 {
		t.Fatalf("balance after a repeated ref = %s, want 25.00", bal)
	}
	msg := Message{ID: "0192aaaa-0000-7000-8000-000000000001", InmateID: "A1", Peer: "c-1", PeerName: "Mom", Body: "Te quiero", CreatedAt: dlStart}
	r.apply(t, 4, DownInboundMessage, msg)
	inbox, err := r.t.Inbox("A1")
	if err != nil || len(inbox) != 1 || inbox[0].Body != "Te quiero" {
		t.Fatalf("inbox = %+v, %v", inbox, err)
	}
	in.Status = StatusSuspended
	r.apply(t, 5, DownInmate, in)
	if got, _ := r.t.Inmate("A1"); got.Status != StatusSuspended {
		t.Fatalf("inmate status = %q, want suspended", got.Status)
	}
	if _, err := r.t.Badge("B1"); ReasonOf(err) != ReasonSuspended {
		t.Fatalf("badge of a suspended inmate: %v, want %s", err, ReasonSuspended)
	}
	if n := r.changed(); n != 5 {
		t.Errorf("EventChanged count = %d, want 5 (one per item applied)", n)
	}
	r.reopen(t)
	if seq, err := r.t.DownlinkApplied(); err != nil || seq != 5 {
		t.Fatalf("applied after restart = %d, %v; want 5", seq, err)
	}
}

func TestDownlinkPolicyTakesEffect(t *testing.T) {
	r := newDLRig(t)
	p := DefaultPolicy()
	p.RatePerMinute = 7
	p.Lockdown = true
	r.apply(t, 1, DownPolicy, p)
	if got := r.t.Policy(); got.RatePerMinute != 7 || !got.Lockdown {
		t.Fatalf("policy in force: rate %s lockdown %v", got.RatePerMinute, got.Lockdown)
	}
	r.reopen(t)
	if got := r.t.Policy(); got.RatePerMinute != 7 || !got.Lockdown {
		t.Fatalf("policy after restart: rate %s lockdown %v", got.RatePerMinute, got.Lockdown)
	}
	bad := DefaultPolicy()
	bad.RatePerMinute = -1
	if refused := r.apply(t, 2, DownPolicy, bad); refused == "" {
		t.Fatal("a negative rate was applied")
	}
	if got := r.t.Policy(); got.RatePerMinute != 7 {
		t.Fatalf("refused policy replaced the old one: rate %s", got.RatePerMinute)
	}
}

func TestDownlinkRefusedItemIsSkippedWholeAndAudited(t *testing.T) {
	r := newDLRig(t)
	h := dlHash(t)
	if refused := r.apply(t, 1, DownInmate, Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: h, Language: "en", Status: StatusActive}); refused != "" {
		t.Fatalf("inmate refused: %s", refused)
	}
	if refused := r.apply(t, 2, DownTechnician, Technician{ID: "A2", Name: "Tess", Badges: []string{"TB1"}, PINHash: h, Role: "installer"}); refused != "" {
		t.Fatalf("technician refused: %s", refused)
	}
	// An inmate whose id is a technician's breaks a rule: nothing of it may be stored, not even
	// the badge it would have taken from A1 on the way.
	refused := r.apply(t, 3, DownInmate, Inmate{ID: "A2", Name: "Bo", Badges: []string{"B1"}, PINHash: h, Language: "en", Status: StatusActive})
	if refused == "" {
		t.Fatal("an inmate with a technician's id was applied")
	}
	if _, err := r.t.Inmate("A2"); KindOf(err) != KindNotFound {
		t.Fatalf("refused inmate was stored: %v", err)
	}
	if in, err := r.t.Inmate("A1"); err != nil || len(in.Badges) != 1 {
		t.Fatalf("A1 after the refused item: %+v %v, want badge B1 kept", in.Badges, err)
	}
	if err := r.store.view(func(tx *bolt.Tx) error {
		o, found, err := badgeOwnerTx(tx, "B1")
		if err != nil || !found || o.ID != "A1" {
			t.Fatalf("badge B1 after the refused item: %+v %v %v, want A1's", o, found, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refused := r.apply(t, 4, "teleport", map[string]string{"x": "y"}); !strings.Contains(refused, "unknown kind") {
		t.Fatalf("unknown kind: refused %q", refused)
	}
	raw := json.RawMessage(`{"ref": 12}`)
	if refused, err := r.t.ApplyDownlink(5, DownDeposit, raw); err != nil || refused == "" {
		t.Fatalf("malformed deposit: refused %q err %v", refused, err)
	}
	if seq, _ := r.t.DownlinkApplied(); seq != 5 {
		t.Fatalf("applied = %d, want 5: refused items must not block the stream", seq)
	}
	evs, err := r.store.RecentAudit(10, func(ev AuditEvent) bool { return ev.Kind == "downlink_refused" })
	if err != nil || len(evs) != 3 {
		t.Fatalf("downlink_refused audit events = %d (%v), want 3", len(evs), err)
	}
}

func TestDownlinkNotices(t *testing.T) {
	r := newDLRig(t)
	r.apply(t, 1, DownNotice, Notice{ID: "n1", Text: "Kiosks close at 21:00", At: dlStart, Until: dlStart.Add(time.Hour)})
	r.apply(t, 2, DownNotice, Notice{ID: "n2", InmateID: "A1", Text: "Your package arrived", At: dlStart.Add(time.Minute)})
	if ns, _ := r.t.Notices(""); len(ns) != 1 || ns[0].ID != "n1" {
		t.Fatalf("welcome-screen notices = %+v", ns)
	}
	if ns, _ := r.t.Notices("A1"); len(ns) != 2 || ns[1].ID != "n2" {
		t.Fatalf("A1's notices = %+v", ns)
	}
	r.clock.Advance(2 * time.Hour)
	if ns, _ := r.t.Notices("A1"); len(ns) != 1 || ns[0].ID != "n2" {
		t.Fatalf("after n1 expired: %+v", ns)
	}
	if refused := r.apply(t, 3, DownNotice, Notice{ID: "n3", Text: "  "}); refused == "" {
		t.Fatal("an empty notice was stored")
	}
}

func TestDownlinkGapIsAppliedAndAudited(t *testing.T) {
	r := newDLRig(t)
	if refused := r.apply(t, 1, DownTechnician, Technician{ID: "T1", Name: "Sam", Badges: []string{"TB1"}, PINHash: dlHash(t), Role: "installer"}); refused != "" {
		t.Fatalf("technician refused: %s", refused)
	}
	if _, err := r.t.Technician("T1"); err != nil {
		t.Fatalf("technician not stored: %v", err)
	}
	r.apply(t, 5, DownTechnicianRemove, TechnicianRemoved{ID: "T1"})
	if _, err := r.t.Technician("T1"); KindOf(err) != KindNotFound {
		t.Fatalf("technician still present: %v", err)
	}
	evs, _ := r.store.RecentAudit(10, func(ev AuditEvent) bool { return ev.Kind == "downlink_gap" })
	if len(evs) != 1 || evs[0].Detail["after"] != "1" || evs[0].Detail["seq"] != "5" {
		t.Fatalf("gap audit = %+v", evs)
	}
}

// On a sparse downlink (welcome down_sparse: a facility's items share one counter) a jump is
// normal: the items apply in order, once, and no downlink_gap is recorded.
func TestSparseDownlinkGapIsNotAudited(t *testing.T) {
	r := newDLRig(t)
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tech := DownlinkItem{Seq: 3, Kind: DownTechnician, Body: raw(Technician{ID: "T1", Name: "Sam", Badges: []string{"TB1"}, PINHash: dlHash(t), Role: "installer"})}
	applied, refused, err := r.t.ApplyDownlinkSparse([]DownlinkItem{tech,
		{Seq: 9, Kind: DownTechnicianRemove, Body: raw(TechnicianRemoved{ID: "T1"})}})
	if err != nil || len(refused) != 0 || applied != 9 {
		t.Fatalf("applied %d, refused %v, %v", applied, refused, err)
	}
	if _, err := r.t.Technician("T1"); KindOf(err) != KindNotFound {
		t.Fatalf("technician still present after both items: %v", err)
	}
	// Sent again after a link cut: already applied, nothing changes.
	if applied, _, err := r.t.ApplyDownlinkSparse([]DownlinkItem{tech}); err != nil || applied != 9 {
		t.Fatalf("resent item: applied %d, %v", applied, err)
	}
	if _, err := r.t.Technician("T1"); KindOf(err) != KindNotFound {
		t.Fatalf("a resent item applied again: %v", err)
	}
	evs, _ := r.store.RecentAudit(10, func(ev AuditEvent) bool { return ev.Kind == "downlink_gap" })
	if len(evs) != 0 {
		t.Fatalf("gap audit on a sparse downlink = %+v", evs)
	}
}

func TestSetEnrollmentBindsTablet(t *testing.T) {
	r := newDLRig(t)
	if _, ok, _ := r.t.Enrollment(); ok {
		t.Fatal("fresh terminal reports an enrollment")
	}
	e := Enrollment{TerminalID: "t-7", Facility: "north", Mode: "tablet", InmateID: "A9"}
	if err := r.t.SetEnrollment(e); err != nil {
		t.Fatal(err)
	}
	if id, ok, _ := r.t.BoundInmate(); !ok || id != "A9" {
		t.Fatalf("bound inmate = %q %v, want A9", id, ok)
	}
	r.reopen(t)
	if got, ok, err := r.t.Enrollment(); err != nil || !ok || got != e {
		t.Fatalf("enrollment after restart = %+v %v %v", got, ok, err)
	}
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-7", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.t.BoundInmate(); ok {
		t.Fatal("re-enrolled as a kiosk but still bound")
	}
	for _, bad := range []Enrollment{{TerminalID: "t", Facility: "f", Mode: "tablet"}, {TerminalID: "t", Facility: "f", Mode: "phone"},
		{TerminalID: "t", Facility: "f", Mode: "kiosk", InmateID: "A1"}, {Facility: "f", Mode: "kiosk"}} {
		if err := r.t.SetEnrollment(bad); KindOf(err) != KindInvalid {
			t.Errorf("SetEnrollment(%+v) = %v, want invalid", bad, err)
		}
	}
}

// A deposit from the relay is the relay's decision: a max_deposit_cents lowered after the relay
// accepted it does not refuse it here. It still counts once per ref, must be positive and
// within the absolute bound; a deposit made on this terminal still obeys the policy.
func TestRelayDepositOutlivesALoweredPolicy(t *testing.T) {
	r := newDLRig(t)
	in := Inmate{ID: "A1", Name: "Ana Ruiz", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "es", Status: StatusActive, Messaging: true}
	r.apply(t, 1, DownInmate, in)
	p := DefaultPolicy()
	p.MaxDeposit = 1000
	p.OfflineSpendCap = 1000
	if refused := r.apply(t, 2, DownPolicy, p); refused != "" {
		t.Fatalf("policy refused: %s", refused)
	}
	if refused := r.apply(t, 3, DownDeposit, Deposit{Ref: "dep-50", InmateID: "A1", Cents: 5000, At: dlStart}); refused != "" {
		t.Fatalf("a $50 deposit the relay accepted was refused under a $10 limit: %s", refused)
	}
	r.apply(t, 4, DownDeposit, Deposit{Ref: "dep-50", InmateID: "A1", Cents: 5000, At: dlStart})
	for i, d := range []Deposit{
		{Ref: "dep-0", InmateID: "A1", Cents: 0},
		{Ref: "dep-neg", InmateID: "A1", Cents: -100},
		{Ref: "dep-huge", InmateID: "A1", Cents: MaxDepositLimit + 1},
	} {
		if refused := r.apply(t, uint64(5+i), DownDeposit, d); refused == "" {
			t.Fatalf("deposit %s of %d cents was applied", d.Ref, int64(d.Cents))
		}
	}
	if bal, _ := r.t.Balance("A1"); bal != 5000 {
		t.Fatalf("balance = %s, want $50.00", bal)
	}
	if err := r.t.Deposit("A1", 5000, "local-50"); KindOf(err) != KindInvalid {
		t.Fatalf("a $50 deposit on the terminal under a $10 limit: %v, want refused", err)
	}
}

// The relay's latest word on a badge wins: a badge moved from a released inmate to a new one,
// two people's badges swapped, or a technician's badge given to an inmate all end with the
// person the relay named last, whatever order the items come in.
func TestRelayMovesABadgeToItsLatestHolder(t *testing.T) {
	r := newDLRig(t)
	h := dlHash(t)
	inmate := func(id, status string, badges ...string) Inmate {
		return Inmate{ID: id, Name: "Inmate " + id, Badges: badges, PINHash: h, Language: "en", Status: status, Messaging: true}
	}
	var seq uint64
	apply := func(kind string, body any) {
		t.Helper()
		seq++
		if refused := r.apply(t, seq, kind, body); refused != "" {
			t.Fatalf("%s refused: %s", kind, refused)
		}
	}
	holder := func(badge string) string {
		t.Helper()
		res, err := r.t.Badge(badge)
		if err != nil {
			return "refused: " + err.Error()
		}
		return res.Kind + " " + res.PersonID
	}
	apply(DownInmate, inmate("R1", StatusActive, "X1", "X2"))
	apply(DownInmate, inmate("A", StatusActive, "YA"))
	apply(DownInmate, inmate("B", StatusActive, "YB"))
	apply(DownTechnician, Technician{ID: "T1", Name: "Tess", Badges: []string{"TX"}, PINHash: h, Role: "installer"})

	// R1 released, N1 takes X1, in either order: the relay's newest item names N1.
	apply(DownInmate, inmate("N1", StatusActive, "X1"))
	apply(DownInmate, inmate("R1", StatusSuspended, "X2"))
	// A and B swap badges: the first item takes a badge the other still holds.
	apply(DownInmate, inmate("A", StatusActive, "YB"))
	apply(DownInmate, inmate("B", StatusActive, "YA"))
	// A technician's badge goes to an inmate before the technician's new entry arrives.
	apply(DownInmate, inmate("N2", StatusActive, "TX"))
	apply(DownTechnician, Technician{ID: "T1", Name: "Tess", Badges: []string{"TY"}, PINHash: h, Role: "installer"})
	for _, id := range []string{"N1", "A", "B", "N2"} {
		apply(DownDeposit, Deposit{Ref: "d-" + id, InmateID: id, Cents: 500})
	}

	for badge, want := range map[string]string{"X1": "inmate N1", "YB": "inmate A", "YA": "inmate B", "TX": "inmate N2", "TY": "technician T1"} {
		if got := holder(badge); got != want {
			t.Errorf("badge %s belongs to %q, want %q", badge, got, want)
		}
	}
	if _, err := r.t.Badge("X2"); ReasonOf(err) != ReasonSuspended {
		t.Errorf("the released inmate's badge: %v, want a suspended refusal", err)
	}
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep.Problems, err)
	}
	r.reopen(t)
	if got := holder("X1"); got != "inmate N1" {
		t.Fatalf("after a restart badge X1 belongs to %q", got)
	}
}

// Enrolled again under a new terminal id (its store kept), the terminal reads the new id's
// downlink from seq 1: the old stream's position would have it ignore the relay's snapshot.
func TestNewEnrollmentStartsTheDownlinkAgain(t *testing.T) {
	r := newDLRig(t)
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-1", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	in := Inmate{ID: "A1", Name: "Ana Ruiz", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "es", Status: StatusActive, Messaging: true}
	r.apply(t, 1, DownInmate, in)
	r.apply(t, 2, DownDeposit, Deposit{Ref: "dep-1", InmateID: "A1", Cents: 2500})
	r.apply(t, 3, DownNotice, Notice{ID: "n1", Text: "Kiosks close at 21:00"})
	// The same enrollment recorded again keeps the position.
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-1", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.t.DownlinkApplied(); got != 3 {
		t.Fatalf("applied after the same enrollment = %d, want 3", got)
	}
	if err := r.t.SetEnrollment(Enrollment{TerminalID: "t-2", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.t.DownlinkApplied(); got != 0 {
		t.Fatalf("applied after enrolling as a new terminal = %d, want 0", got)
	}
	// The new stream's snapshot repeats what the store holds: it applies, once.
	r.apply(t, 1, DownInmate, in)
	r.apply(t, 2, DownDeposit, Deposit{Ref: "dep-1", InmateID: "A1", Cents: 2500})
	r.apply(t, 3, DownDeposit, Deposit{Ref: "dep-2", InmateID: "A1", Cents: 100})
	if bal, _ := r.t.Balance("A1"); bal != 2600 {
		t.Fatalf("balance = %s, want $26.00", bal)
	}
	if got, _ := r.t.DownlinkApplied(); got != 3 {
		t.Fatalf("applied = %d, want 3", got)
	}
}
