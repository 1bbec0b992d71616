package relay

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tether-kiosk/tether/sync/wire"
)

// TestRefundLimitsAndOnce: a refund comes out of one deposit, once per ref; never more than is
// left of the deposit, never more than the balance (it never goes negative); the kiosk gets it
// once; the totals, the verify report and a restart agree.
func TestRefundLimitsAndOnce(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	for _, d := range []DepositRequest{{InmateID: "A1", Cents: 2000, Ref: "d1"}, {InmateID: "A1", Cents: 300, Ref: "d2"}} {
		if _, _, err := e.r.Deposit(d); err != nil {
			t.Fatal(err)
		}
	}
	// 500 spent: the balance is 1800.
	for m := range 5 {
		c.batch(k.item(wire.UpCharge, charge("A1", "s1", m, 100)))
	}
	refuse := func(body map[string]any, status int, field string) {
		t.Helper()
		st, b := e.call("POST", "/admin/v1/refunds", body)
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		if st != status || eb.Field != field {
			t.Fatalf("refund %v: %d %s; want %d naming %q", body, st, b, status, field)
		}
	}
	refuse(map[string]any{"ref": "r0", "deposit_ref": "nope", "cents": 1}, http.StatusNotFound, "deposit_ref")
	refuse(map[string]any{"ref": "r0", "deposit_ref": "d1", "cents": 0}, http.StatusBadRequest, "cents")
	refuse(map[string]any{"ref": "r0", "deposit_ref": "d2", "cents": 301}, http.StatusConflict, "cents") // more than the deposit
	refuse(map[string]any{"deposit_ref": "d1", "cents": 1}, http.StatusBadRequest, "ref")
	refuse(map[string]any{"ref": "r0", "deposit_ref": "d1", "cents": 1801}, http.StatusConflict, "cents") // more than the balance

	var rf Refund
	e.must(http.StatusCreated, "POST", "/admin/v1/refunds", map[string]any{"ref": "r1", "deposit_ref": "d1", "cents": 1500, "reason": "released"}, &rf)
	e.must(http.StatusOK, "POST", "/admin/v1/refunds", map[string]any{"ref": "r1", "deposit_ref": "d1", "cents": 1500, "reason": "released"}, &rf)
	if rf.InmateID != "A1" || rf.Cents != 1500 || rf.DepositRef != "d1" || !rf.At.Equal(t0) {
		t.Fatalf("refund = %+v", rf)
	}
	refuse(map[string]any{"ref": "r1", "deposit_ref": "d1", "cents": 1400}, http.StatusConflict, "ref")
	// 500 left of d1, but the balance is 300 now.
	refuse(map[string]any{"ref": "r2", "deposit_ref": "d1", "cents": 301}, http.StatusConflict, "cents")
	e.must(http.StatusCreated, "POST", "/admin/v1/refunds", map[string]any{"ref": "r2", "deposit_ref": "d1", "cents": 300}, nil)
	var bal Balance
	e.must(http.StatusOK, "GET", "/admin/v1/balances/A1", nil, &bal)
	if bal.BalanceCents != 0 || bal.Refunds != 1800 {
		t.Fatalf("balance = %+v", bal)
	}
	refuse(map[string]any{"ref": "r3", "deposit_ref": "d2", "cents": 1}, http.StatusConflict, "cents")

	seen := map[string]int{}
	c.waitDown(wire.DownRefund, func(b json.RawMessage) bool { return decodeAs[Refund](t, b).Ref == "r2" })
	for _, it := range c.down {
		if it.Kind == wire.DownRefund {
			seen[decodeAs[Refund](t, it.Body).Ref]++
		}
	}
	if len(seen) != 2 || seen["r1"] != 1 || seen["r2"] != 1 {
		t.Fatalf("refunds sent down: %v", seen)
	}
	e.restart()
	if b, err := e.r.Balance("A1"); err != nil || b.BalanceCents != 0 {
		t.Fatalf("after restart: %+v %v", b, err)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	l, err := e.r.LedgerFor(k.id, nil)
	if err != nil || l.Balances["A1"] != 0 {
		t.Fatalf("ledger for the kiosk: %+v %v", l.Balances, err)
	}
}
