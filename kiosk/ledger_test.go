package kiosk

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestDeposits(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 0)
	max := r.term.Policy().MaxDeposit
	for _, tc := range []struct {
		name   string
		inmate string
		cents  Cents
		ref    string
		kind   Kind // KindInternal: accepted
		want   Cents
	}{
		{name: "first", inmate: "a", cents: 250, ref: "r1", want: 250},
		{name: "same ref again counts once", inmate: "a", cents: 250, ref: "r1", want: 250},
		{name: "same ref other amount", inmate: "a", cents: 300, ref: "r1", kind: KindConflict, want: 250},
		{name: "negative", inmate: "a", cents: -5, ref: "r2", kind: KindInvalid, want: 250},
		{name: "zero", inmate: "a", cents: 0, ref: "r3", kind: KindInvalid, want: 250},
		{name: "above maximum", inmate: "a", cents: max + 1, ref: "r4", kind: KindInvalid, want: 250},
		{name: "at maximum", inmate: "a", cents: max, ref: "r5", want: 250 + max},
		{name: "empty ref", inmate: "a", cents: 10, ref: " ", kind: KindInvalid, want: 250 + max},
		{name: "unknown inmate", inmate: "zz", cents: 10, ref: "r6", kind: KindNotFound, want: 250 + max},
	} {
		err := r.term.Deposit(tc.inmate, tc.cents, tc.ref)
		if tc.kind == KindInternal && err != nil || tc.kind != KindInternal && KindOf(err) != tc.kind {
			t.Fatalf("%s: Deposit(%s, %v, %q) = %v; want kind %v", tc.name, tc.inmate, tc.cents, tc.ref, err, tc.kind)
		}
		if got := r.balance("a"); got != tc.want {
			t.Fatalf("%s: balance %v; want %v", tc.name, got, tc.want)
		}
	}
	// Refused deposits left no record behind, so their refs are still free.
	r.deposit("a", 10, "r2")
	if got := r.balance("a"); got != 260+max {
		t.Fatalf("balance %v", got)
	}
	checkLedger(t, r.store, false)
	if n := len(r.eventsOf(EventChanged)); n < 3 {
		t.Fatalf("%d changed events for 3 deposits", n)
	}
}

func TestApplyDepositTxForDownlink(t *testing.T) {
	r := newRig(t, nil)
	now := r.clk.Now()
	apply := func(d Deposit) (bool, error) {
		var applied bool
		err := r.store.update("downlink", func(tx *bolt.Tx) (err error) {
			applied, err = applyDepositTx(tx, now, d)
			return err
		})
		return applied, err
	}
	// The relay may send a deposit before the roster lists the inmate.
	if ok, err := apply(Deposit{Ref: "central-1", InmateID: "later", Cents: 500}); !ok || err != nil {
		t.Fatalf("apply: %v %v", ok, err)
	}
	if ok, err := apply(Deposit{Ref: "central-1", InmateID: "later", Cents: 500}); ok || err != nil {
		t.Fatalf("re-apply: %v %v; want not applied, no error", ok, err)
	}
	if _, err := apply(Deposit{Ref: "central-2", InmateID: "later", Cents: -1}); KindOf(err) != KindInvalid {
		t.Fatalf("negative downlink deposit: %v", err)
	}
	if got := r.balance("later"); got != 500 {
		t.Fatalf("balance %v", got)
	}
	checkLedger(t, r.store, false)
}

func TestBalanceDuringSession(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 100)
	r.mustLogin("a")
	r.run(3*time.Minute+10*time.Second, true)
	r.deposit("a", 50, "mid")
	r.run(time.Minute, true)
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	// 5 minutes begun at 5c.
	if got := r.balance("a"); got != 150-25 {
		t.Fatalf("balance %v; want 125", got)
	}
	checkLedger(t, r.store, false)
}
