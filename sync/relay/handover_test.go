package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/wire"
)

// northWithout is north's seeded roster without inmate ("" for all of it).
func northWithout(inmate string) Roster {
	all := []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
		{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive},
		{ID: "A3", Name: "Cy", Badges: []string{"B3"}, PIN: "3456", Language: "en", Status: kiosk.StatusSuspended},
	}
	ro := Roster{Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}}}
	for _, in := range all {
		if in.ID != inmate {
			ro.Inmates = append(ro.Inmates, in)
		}
	}
	return ro
}

// southWith is south's seeded roster with north's inmates (A1) on it as well.
func southWith(inmates ...string) Roster {
	ro := Roster{
		Inmates:     []RosterInmate{{ID: "S1", Name: "Sol", Badges: []string{"SB1"}, PIN: "4567", Language: "en", Status: kiosk.StatusActive}},
		Technicians: []RosterTechnician{{ID: "T9", Name: "Tom", Badges: []string{"TB9"}, PIN: "8888", Role: "installer"}},
	}
	for _, id := range inmates {
		ro.Inmates = append(ro.Inmates, RosterInmate{ID: id, Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive})
	}
	return ro
}

// chargesOf is the cents of the charges of inmate a terminal's downlink carried so far.
func chargesOf(t *testing.T, tc *tconn, inmate string) []kiosk.Cents {
	t.Helper()
	var got []kiosk.Cents
	for _, it := range tc.down {
		if it.Kind == wire.DownRemoteCharge {
			if c := decodeAs[kiosk.Charge](t, it.Body); c.InmateID == inmate {
				got = append(got, c.Cents)
			}
		}
	}
	slices.Sort(got)
	return got
}

// refusedForNow sends items and expects the relay to close the connection asking to try again
// later, acknowledging nothing.
func refusedForNow(t *testing.T, tc *tconn, items ...wire.Item) {
	t.Helper()
	send(t, tc.c, wire.Batch{Epoch: tc.term.epoch, Items: items})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := tc.c.Read(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusTryAgainLater {
				t.Fatalf("the batch ended the connection with %v (%v), want try again later", st, err)
			}
			return
		}
		f, derr := wire.DecodeFrame(b)
		if derr != nil {
			t.Fatal(derr)
		}
		if f.Type == wire.TypeAck {
			t.Fatalf("the batch was acknowledged: %+v", *f.Ack)
		}
	}
}

// An inmate moved from held north to south, and back: north's holder hands their records over
// before anything else writes them. South's kiosk is sent the charges north's holder had not
// projected yet, and the balance they leave; a charge at south counts; north's kiosk is refused
// the inmate. Moved back, north's holder reads the inmate's records afresh: the charge made at
// south is in the balance north's next charge is taken from. Let go, the balance is the sum of
// everything and verify is clean.
func TestAnInmateMovesOutOfAHeldFacilityAndBack(t *testing.T) {
	var kn, ks *term
	e, hf := heldNorth(t, func(e *env) {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
		kn = e.enroll(wire.ModeKiosk, "")
		ks = e.enrollAt("south", wire.ModeKiosk, "")
	})
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	if ack := cn.batch(kn.item(wire.UpCharge, charge("A1", "s1", 0, 5)), kn.item(wire.UpCharge, charge("A1", "s1", 1, 7))); len(ack.Rejected) != 0 {
		t.Fatalf("north's charges: ack %+v", ack)
	}
	// North's projector has not run (its clock stands still): the charges are in its held state.
	if err := e.r.PutRoster("south", southWith("A1")); err != nil {
		t.Fatal(err)
	}
	cs.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A1" })
	cs.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).Cents == 7 })
	if got := chargesOf(t, cs, "A1"); !slices.Equal(got, []kiosk.Cents{5, 7}) {
		t.Fatalf("south's kiosk was sent A1's charges %v, want 5 and 7 from north's held state", got)
	}
	cn.waitDown(wire.DownInmate, func(b json.RawMessage) bool {
		in := decodeAs[kiosk.Inmate](t, b)
		return in.ID == "A1" && in.Status == kiosk.StatusSuspended
	})
	if hf.ours(inmateRecords, "A1") {
		t.Fatal("north's holder still holds A1 after the move")
	}
	if got := e.balanceOf("A1"); got != 988 {
		t.Fatalf("A1's balance at south %d, want 988", got)
	}
	if ack := cs.batch(ks.item(wire.UpCharge, charge("A1", "s2", 0, 3))); len(ack.Rejected) != 0 {
		t.Fatalf("south's charge: ack %+v", ack)
	}
	if ack := cn.batch(kn.item(wire.UpCharge, charge("A1", "s3", 0, 11))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseNotYours {
		t.Fatalf("north's charge after the move: ack %+v, want refused as not north's", ack)
	}

	// Back to north, which a relay holds, from south, which none does.
	if err := e.r.PutRoster("south", southWith()); err != nil {
		t.Fatal(err)
	}
	if err := e.r.PutRoster("north", northWithout("")); err != nil {
		t.Fatal(err)
	}
	cn.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).Cents == 3 })
	if ack := cn.batch(kn.item(wire.UpCharge, charge("A1", "s4", 0, 2))); len(ack.Rejected) != 0 {
		t.Fatalf("north's charge after the move back: ack %+v", ack)
	}
	if got := e.balanceOf("A1"); got != 983 {
		t.Fatalf("A1's balance back at north %d, want 983: 1000 less 5, 7, 3 and 2", got)
	}
	letNorthGo(t, e)
	if got := e.balanceOf("A1"); got != 983 {
		t.Fatalf("A1's balance after north was let go %d, want 983", got)
	}
	verifyClean(t, e)
}

// While north's holder has not handed a leaving inmate's records over (it stopped before it
// drained the move), nothing else writes them: south's kiosk is asked to send its charge again
// later, a deposit and a refund are refused as temporary and change nothing, and a second
// move waits; north's holder then hands them over, and the same calls go through once.
func TestNothingWritesALeavingInmateUntilTheirHolderHandsThemOver(t *testing.T) {
	var kn, ks *term
	e, _ := heldNorth(t, func(e *env) {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
		kn = e.enroll(wire.ModeKiosk, "")
		ks = e.enrollAt("south", wire.ModeKiosk, "")
	})
	cn := kn.connect(t, 0)
	if ack := cn.batch(kn.item(wire.UpCharge, charge("A1", "s1", 0, 5))); len(ack.Rejected) != 0 {
		t.Fatalf("north's charge: ack %+v", ack)
	}
	drains := true
	e.r.hooks.dueDrain = func(f string) bool { return f != "north" || drains }
	drains = false
	if err := e.r.PutRoster("south", southWith("A1")); err != nil {
		t.Fatal(err)
	}
	cs := ks.connect(t, 0)
	charge := ks.item(wire.UpCharge, charge("A1", "s2", 0, 3))
	refusedForNow(t, cs, charge)
	_, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 50, Ref: "d2"})
	if vocab.KindOf(err) != vocab.KindTransient {
		t.Fatalf("a deposit while A1 is handed over: %v, want a temporary refusal", err)
	}
	var body ErrorBody
	e.must(http.StatusServiceUnavailable, "POST", "/admin/v1/deposits", map[string]any{"inmate_id": "A1", "cents": 50, "ref": "d2"}, &body)
	_, _, err = e.r.Refund(RefundRequest{DepositRef: "d1", Ref: "r1", Cents: 100, Reason: "release"})
	if vocab.KindOf(err) != vocab.KindTransient {
		t.Fatalf("a refund while A1 is handed over: %v, want a temporary refusal", err)
	}
	if err := e.r.PutRoster("south", southWith()); vocab.KindOf(err) != vocab.KindTransient {
		t.Fatalf("A1 taken off south's roster while handed over: %v, want a temporary refusal", err)
	}
	if err := e.r.PutRoster("north", northWithout("")); vocab.KindOf(err) != vocab.KindTransient {
		t.Fatalf("A1 put back on north's roster while handed over: %v, want a temporary refusal", err)
	}
	if got := e.balanceOf("A1"); got != 995 {
		t.Fatalf("A1's balance while handed over %d, want 995 (north's holder still has it)", got)
	}

	drains = true
	if _, err := e.r.drainDue("north"); err != nil {
		t.Fatal(err)
	}
	cs = ks.connect(t, 0)
	cs.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).Cents == 5 })
	if ack := cs.batch(charge); len(ack.Rejected) != 0 {
		t.Fatalf("south's charge sent again: ack %+v", ack)
	}
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 50, Ref: "d2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.r.Refund(RefundRequest{DepositRef: "d1", Ref: "r1", Cents: 100, Reason: "release"}); err != nil {
		t.Fatal(err)
	}
	if got := e.balanceOf("A1"); got != 942 {
		t.Fatalf("A1's balance %d, want 942: 1000 + 50 - 100 - 5 - 3", got)
	}
	letNorthGo(t, e)
	if got := e.balanceOf("A1"); got != 942 {
		t.Fatalf("A1's balance after north was let go %d, want 942", got)
	}
	verifyClean(t, e)
}

// An inmate moved between facilities two gateways hold: the roster put, made at south's
// holder, leaves the handover due to north's, which hears of it on the notifier, projects
// what it had not and leaves the arrival due to south's holder, which sends south's kiosk the
// inmate's charges from north. South's next charge is taken from that balance; let go, both
// gateways read the same balance.
func TestAnInmateMovesBetweenFacilitiesTwoGatewaysHold(t *testing.T) {
	c, e1, e2 := gatewaysOnCluster(t)
	e1.seed()
	e1.seedSouth()
	if _, _, err := e1.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	kn, ks := e1.enroll(wire.ModeKiosk, ""), e1.enrollAt("south", wire.ModeKiosk, "")
	ks.e = e2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, h := range []struct {
		e        *env
		facility string
	}{{e1, "north"}, {e2, "south"}} {
		holder := "ws" + strings.TrimPrefix(h.e.srv.URL, "http")
		if _, err := h.e.r.holdFacility(ctx, openFacLog(ctx, t, c, 1), h.facility, holder, faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
			t.Fatal(err)
		}
	}
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	if ack := cn.batch(kn.item(wire.UpCharge, charge("A1", "s1", 0, 5)), kn.item(wire.UpCharge, charge("A1", "s1", 1, 7))); len(ack.Rejected) != 0 {
		t.Fatalf("north's charges: ack %+v", ack)
	}
	if err := e2.r.PutRoster("south", southWith("A1")); err != nil {
		t.Fatal(err)
	}
	cs.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).Cents == 7 })
	if got := chargesOf(t, cs, "A1"); !slices.Equal(got, []kiosk.Cents{5, 7}) {
		t.Fatalf("south's kiosk was sent A1's charges %v, want 5 and 7 from north's held state", got)
	}
	if ack := cs.batch(ks.item(wire.UpCharge, charge("A1", "s2", 0, 3))); len(ack.Rejected) != 0 {
		t.Fatalf("south's charge: ack %+v", ack)
	}
	if got := e2.balanceOf("A1"); got != 985 {
		t.Fatalf("A1's balance at south's holder %d, want 985", got)
	}
	if err := e1.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	if err := e2.r.releaseFacility(ctx, "south"); err != nil {
		t.Fatal(err)
	}
	if b1, b2 := e1.balanceOf("A1"), e2.balanceOf("A1"); b1 != 985 || b2 != 985 {
		t.Fatalf("A1's balance let go: %d and %d, want 985 at both gateways", b1, b2)
	}
	verifyClean(t, e1)
}

// A letter from home to an inmate whose old facility's holder has not handed them over yet is
// taken, not bounced: the family wrote to an approved contact, and the move is the facility's
// business. It reaches the kiosk of the inmate's new facility, held by the same gateway or by
// none, before the handover; the arrival sends it again with the inmate's other letters (a
// kiosk keeps one copy of a letter by its id, kiosk.deliverInboundTx), and a kiosk enrolled
// there after the handover finds it in its snapshot.
func TestALetterToALeavingInmateReachesTheirNewKiosk(t *testing.T) {
	for _, southHeld := range []bool{false, true} {
		t.Run(fmt.Sprintf("south held %v", southHeld), func(t *testing.T) {
			var ks *term
			e, _, l := heldNorthOn(t, func(e *env) {
				if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
					t.Fatal(err)
				}
				e.letterContact("A1", "pal")
				ks = e.enrollAt("south", wire.ModeKiosk, "")
			})
			if southHeld {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if _, err := e.r.holdFacility(ctx, l, "south", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
					t.Fatal(err)
				}
			}
			drains := true
			e.r.hooks.dueDrain = func(f string) bool { return f != "north" || drains }
			drains = false
			if err := e.r.PutRoster("south", southWith("A1")); err != nil {
				t.Fatal(err)
			}
			m, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "pal", Body: "welcome to south"})
			if err != nil {
				t.Fatalf("a letter to A1 while north hands them over: %v", err)
			}
			letter := func(b json.RawMessage) bool { return decodeAs[kiosk.Message](t, b).ID == m.ID }
			if !southHeld {
				// Sent at once: south's records are the kv state's, which A1's already are.
				cs := ks.connect(t, 0)
				cs.ackDown(cs.waitDown(wire.DownInboundMessage, letter).Seq)
				cs.c.Close(websocket.StatusNormalClosure, "")
			}
			// Held, south's holder writes A1's records only once north has handed them over:
			// the letter's half there waits as due.

			drains = true
			if _, err := e.r.drainDue("north"); err != nil {
				t.Fatal(err)
			}
			// South's holder is told of the arrival the handover leaves it, and drains the
			// letter's half with it.
			cs := ks.connect(t, 0)
			// The arrival: A1's deposit from north, and their letters.
			cs.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).InmateID == "A1" })
			cs.waitDown(wire.DownInboundMessage, letter)
			fresh := e.enrollAt("south", wire.ModeKiosk, "")
			fresh.connect(t, 0).waitDown(wire.DownInboundMessage, letter)
			letNorthGo(t, e)
			if southHeld {
				// Before the test's log closes, as north is let go.
				if err := e.r.releaseFacility(context.Background(), "south"); err != nil {
					t.Fatal(err)
				}
			}
			verifyClean(t, e)
		})
	}
}
