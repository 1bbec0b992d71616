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
