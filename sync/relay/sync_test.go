package relay

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

func decodeAs[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func charge(inmate, session string, minute int, cents kiosk.Cents) kiosk.Charge {
	return kiosk.Charge{RecordID: session + "/" + string(rune('0'+minute)), SessionID: session, InmateID: inmate, Minute: minute, Cents: cents, At: t0}
}

// A kiosk enrolls, receives the facility snapshot, forwards records exactly once, and its
// records reach the facility's other terminals: the second kiosk and the inmate's tablet only.
func TestSyncEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	k1 := e.enroll(wire.ModeKiosk, "")
	k2 := e.enroll(wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A2")

	c1 := k1.connect(t, 0)
	if c1.w.Facility != "north" || c1.w.Mode != wire.ModeKiosk || c1.w.InmateID != "" {
		t.Fatalf("welcome = %+v", c1.w)
	}
	// Snapshot: policy, technician, three inmates, A1's deposit.
	pol := decodeAs[kiosk.Policy](t, c1.waitDown(wire.DownPolicy, nil).Body)
	if pol.FacilityName != "North" {
		t.Fatalf("policy facility name %q", pol.FacilityName)
	}
	c1.waitDown(wire.DownTechnician, nil)
	in := decodeAs[kiosk.Inmate](t, c1.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A3" }).Body)
	if in.Status != kiosk.StatusSuspended || !kiosk.VerifyPIN(in.PINHash, "3456") {
		t.Fatalf("inmate A3 = %+v", in)
	}
	dep := decodeAs[kiosk.Deposit](t, c1.waitDown(wire.DownDeposit, nil).Body)
	if dep.Ref != "d1" || dep.Cents != 1000 {
		t.Fatalf("deposit = %+v", dep)
	}

	ct := tab.connect(t, 0)
	if ct.w.Mode != wire.ModeTablet || ct.w.InmateID != "A2" {
		t.Fatalf("tablet welcome = %+v", ct.w)
	}
	c2 := k2.connect(t, 0)

	// Uplink from kiosk 1: two charges for A1, one for A2, a session end, an audit event.
	items := []wire.Item{
		k1.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k1.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		k1.item(wire.UpCharge, charge("A2", "s2", 0, 5)),
		k1.item(wire.UpSessionEnd, kiosk.Session{ID: "s1", InmateID: "A1", Start: t0, End: t0.Add(2 * time.Minute), Minutes: 2, Rate: 5, Charged: 10, EndReason: kiosk.EndLogout}),
		k1.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
	}
	ack := c1.batch(items...)
	if ack.Seq != 5 || len(ack.Rejected) != 0 || ack.Epoch != k1.epoch {
		t.Fatalf("ack = %+v", ack)
	}
	// The same batch again (the terminal crashed before applying the ack): same ack, nothing stored twice.
	if again := c1.batch(items...); again.Seq != 5 || len(again.Rejected) != 0 {
		t.Fatalf("second ack = %+v", again)
	}
	stored, err := e.r.Items(ItemFilter{TerminalID: k1.id})
	if err != nil || len(stored) != 5 {
		t.Fatalf("stored %d items (%v), want 5", len(stored), err)
	}
	b, err := e.r.Balance("A1")
	if err != nil || b.BalanceCents != 990 {
		t.Fatalf("balance A1 = %+v, %v; want 990", b, err)
	}

	// Kiosk 2 learns A1's and A2's charges and A1's session end; kiosk 1 is not sent its own.
	c2.waitDown(wire.DownRemoteSessionEnd, nil)
	n := 0
	for _, it := range c2.down {
		if it.Kind == wire.DownRemoteCharge {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("kiosk 2 got %d remote charges, want 3", n)
	}
	// The tablet of A2 learns A2's charge and nothing of A1.
	got := decodeAs[kiosk.Charge](t, ct.waitDown(wire.DownRemoteCharge, nil).Body)
	if got.InmateID != "A2" {
		t.Fatalf("tablet got a charge of %s", got.InmateID)
	}
	for _, it := range ct.down {
		if it.Kind == wire.DownInmate && decodeAs[kiosk.Inmate](t, it.Body).ID != "A2" {
			t.Fatalf("tablet got roster entry %s", it.Body)
		}
		if it.Kind == wire.DownRemoteCharge && decodeAs[kiosk.Charge](t, it.Body).InmateID != "A2" {
			t.Fatalf("tablet got %s", it.Body)
		}
	}
	c1.ackDown(c1.lastSeq())
	// A deposit made by the admin reaches kiosk 1 while it is connected.
	e.must(http.StatusCreated, "POST", "/admin/v1/deposits", DepositRequest{InmateID: "A1", Cents: 500, Ref: "d2"}, nil)
	d2 := decodeAs[kiosk.Deposit](t, c1.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "d2" }).Body)
	if d2.Cents != 500 {
		t.Fatalf("deposit d2 = %+v", d2)
	}
}

// A terminal enrolled later gets the inmate's whole story; a tablet speaks only for its inmate;
// an inmate who moves to another facility is suspended at the old one and known at the new one.
func TestSnapshotTabletAndMove(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 900, Ref: "d-a1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A2", Cents: 800, Ref: "d-a2"}); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	ack := c.batch(
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpCredit, kiosk.Credit{RecordID: "s1/0", SessionID: "s1", InmateID: "A1", Cents: 5, Reason: "stall", At: t0}),
		k.item(wire.UpSessionEnd, kiosk.Session{ID: "s1", InmateID: "A1", Start: t0, End: t0.Add(time.Minute), Minutes: 1, Rate: 5, Charged: 5, Credited: 5, EndReason: kiosk.EndLogout}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org"}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c2", InmateID: "A1", Name: "Dad", Email: "dad@example.org"}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c3", InmateID: "A3", Name: "Sis", Email: "sis@example.org"}), // A3 is suspended
	)
	if ack.Seq != 6 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: 6, Reason: wire.RefuseSuspended}) {
		t.Fatalf("ack = %+v", ack)
	}
	for _, id := range []string{"c1", "c2"} {
		e.approveAccepted(id)
	}

	tab := e.enroll(wire.ModeTablet, "A1")
	tc := tab.connect(t, 0)
	tc.waitDown(wire.DownContact, func(b json.RawMessage) bool { return decodeAs[kiosk.Contact](t, b).ID == "c2" })
	kinds := map[string]int{}
	for _, it := range tc.down {
		kinds[it.Kind]++
		switch it.Kind {
		case wire.DownInmate:
			if in := decodeAs[kiosk.Inmate](t, it.Body); in.ID != "A1" || !in.TabletBound {
				t.Fatalf("tablet snapshot inmate = %+v", in)
			}
		case wire.DownDeposit:
			if d := decodeAs[kiosk.Deposit](t, it.Body); d.InmateID != "A1" {
				t.Fatalf("tablet got %+v", d)
			}
		}
	}
	for k, n := range map[string]int{wire.DownPolicy: 1, wire.DownTechnician: 0, wire.DownDeposit: 1, wire.DownRemoteCharge: 1,
		wire.DownRemoteCredit: 1, wire.DownRemoteSessionEnd: 1} {
		if kinds[k] != n {
			t.Fatalf("tablet snapshot has %d %s items, want %d: %v", kinds[k], k, n, kinds)
		}
	}
	// The kiosk learns that A1 now has a tablet.
	c.waitDown(wire.DownInmate, func(b json.RawMessage) bool {
		in := decodeAs[kiosk.Inmate](t, b)
		return in.ID == "A1" && in.TabletBound
	})

	// The tablet may write for A1 only.
	ack = tc.batch(
		tab.item(wire.UpMessage, kiosk.Message{ID: "m-a2", InmateID: "A2", Peer: "dept-medical", Body: "not mine"}),
		tab.item(wire.UpMessage, kiosk.Message{ID: "m-a1", InmateID: "A1", Peer: "c1", Body: "mine"}),
		tab.item(wire.UpMessage, kiosk.Message{ID: "m-long", InmateID: "A1", Peer: "c1", Body: string(make([]rune, 201))}),
		tab.item("selfie", map[string]string{}),
	)
	want := []wire.Rejection{{Seq: 1, Reason: wire.RefuseInvalid}, {Seq: 3, Reason: wire.RefuseTooLarge}, {Seq: 4, Reason: wire.RefuseUnknownKind}}
	if ack.Seq != 4 || len(ack.Rejected) != 3 || ack.Rejected[0] != want[0] || ack.Rejected[1] != want[1] || ack.Rejected[2] != want[2] {
		t.Fatalf("tablet ack = %+v", ack)
	}

	// A contact removed on the kiosk is removed on the tablet.
	c.batch(k.item(wire.UpContactRemove, kiosk.Contact{ID: "c2", InmateID: "A1"}))
	got := decodeAs[kiosk.Contact](t, tc.waitDown(wire.DownContact, func(b json.RawMessage) bool {
		x := decodeAs[kiosk.Contact](t, b)
		return x.ID == "c2" && x.State == kiosk.ContactRemoved
	}).Body)
	if got.Name != "Dad" {
		t.Fatalf("removed contact = %+v", got)
	}
	if cl, _ := e.r.Contacts(kiosk.ContactRemoved, "A1"); len(cl) != 1 {
		t.Fatalf("removed contacts = %+v", cl)
	}

	// A2 moves to facility south: north's kiosk suspends them; south's kiosk gets them with their deposit.
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	south := e.enrollAt("south", wire.ModeKiosk, "")
	sc := south.connect(t, 0)
	sc.waitDown(wire.DownPolicy, nil)
	if err := e.r.PutRoster("south", Roster{Inmates: []RosterInmate{{ID: "A2", Name: "Bo", Badges: []string{"S2"}, Language: "es", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	c.waitDown(wire.DownInmate, func(b json.RawMessage) bool {
		in := decodeAs[kiosk.Inmate](t, b)
		return in.ID == "A2" && in.Status == kiosk.StatusSuspended
	})
	d := decodeAs[kiosk.Deposit](t, sc.waitDown(wire.DownDeposit, nil).Body)
	if d.InmateID != "A2" || d.Cents != 800 {
		t.Fatalf("south got deposit %+v", d)
	}
	if in := decodeAs[kiosk.Inmate](t, sc.waitDown(wire.DownInmate, nil).Body); in.ID != "A2" || !kiosk.VerifyPIN(in.PINHash, "2345") {
		t.Fatalf("south got inmate %+v", in)
	}
}

// A terminal bills only inmates it serves: a kiosk of another facility, or a tablet speaking for
// another inmate, is refused for good and no balance moves.
func TestUsageOnlyForTheTerminalsOwnInmates(t *testing.T) {
	e := newEnv(t)
	e.seed()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "South"
	if err := e.r.PutPolicy("south", p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	south := e.enrollAt("south", wire.ModeKiosk, "")
	tab := e.enroll(wire.ModeTablet, "A2")
	cs := south.connect(t, 0)
	ack := cs.batch(
		south.item(wire.UpCharge, charge("A1", "x1", 0, 5)),
		south.item(wire.UpSessionEnd, kiosk.Session{ID: "x1", InmateID: "A1", Start: t0, End: t0.Add(time.Minute), EndReason: kiosk.EndLogout}),
	)
	if ack.Seq != 2 || len(ack.Rejected) != 2 || ack.Rejected[0].Reason != wire.RefuseNotYours || ack.Rejected[1].Reason != wire.RefuseNotYours {
		t.Fatalf("another facility's kiosk billing A1: ack %+v, want both refused %q", ack, wire.RefuseNotYours)
	}
	ct := tab.connect(t, 0)
	if ack := ct.batch(tab.item(wire.UpCredit, kiosk.Credit{RecordID: "y/0", SessionID: "y", InmateID: "A1", Cents: 5, At: t0})); len(ack.Rejected) != 1 {
		t.Fatalf("A2's tablet crediting A1: ack %+v, want it refused", ack)
	}
	if b, err := e.r.Balance("A1"); err != nil || b.BalanceCents != 1000 {
		t.Fatalf("A1's balance = %+v, %v; want $10.00 untouched", b, err)
	}
	if ack := ct.batch(tab.item(wire.UpCharge, charge("A2", "z", 0, 5))); len(ack.Rejected) != 0 {
		t.Fatalf("A2's tablet billing A2: ack %+v, want it taken", ack)
	}
}
