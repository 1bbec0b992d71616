package relay

import (
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

func printCharge(job, inmate string, pages int, cents kiosk.Cents) kiosk.Charge {
	return kiosk.Charge{RecordID: vocab.PrintRecordID(job), InmateID: inmate, Cents: cents, At: t0, Pages: pages}
}

func (e *env) printPricing(facility string, price kiosk.Cents, maxPages int) {
	e.t.Helper()
	p, err := e.r.Policy(facility)
	if err != nil {
		e.t.Fatal(err)
	}
	p.PrintPagePrice, p.MaxPrintPages = price, maxPages
	if err := e.r.PutPolicy(facility, p); err != nil {
		e.t.Fatal(err)
	}
}

// The relay takes a print charge only at its own facility's price for that many pages, within
// its page limit, once per job; it refuses every other one, and any print refund a terminal
// claims, and none of those moves money.
func TestPrintChargeCheckedAgainstTheFacilityPolicy(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.printPricing("north", 15, 5)
	// Another facility prints dearer: its price is not north's.
	south := kiosk.DefaultPolicy()
	south.FacilityName, south.PrintPagePrice, south.MaxPrintPages = "South", 40, 50
	if err := e.r.PutPolicy("south", south); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 500, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	c1 := k1.connect(t, 0)

	ok := printCharge("job-1", "A1", 3, 45)
	if ack := c1.batch(k1.item(wire.UpCharge, ok)); len(ack.Rejected) != 0 {
		t.Fatalf("3 pages at 15¢: ack %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 455 {
		t.Fatalf("balance after a 3-page job = %s, want 455¢", b)
	}
	if got := e.downKinds(k2.id, wire.DownRemoteCharge); len(got) != 1 || decodeAs[kiosk.Charge](t, got[0].Body) != ok {
		t.Fatalf("the other kiosk was sent %+v, want the print charge", got)
	}
	// The same charge again (a link cut before the ack): a duplicate, charged once.
	if ack := c1.batch(k1.item(wire.UpCharge, ok)); len(ack.Rejected) != 0 {
		t.Fatalf("the charge again: ack %+v", ack)
	}

	for _, f := range []struct {
		name   string
		kind   string
		body   any
		reason string
	}{
		{"more pages than the policy allows", wire.UpCharge, printCharge("job-2", "A1", 6, 90), wire.RefusePrintPages},
		{"no pages", wire.UpCharge, printCharge("job-3", "A1", 0, 15), wire.RefusePrintPages},
		{"a price the policy never set", wire.UpCharge, printCharge("job-4", "A1", 2, 20), wire.RefusePrintPrice},
		{"another facility's price", wire.UpCharge, printCharge("job-5", "A1", 2, 80), wire.RefusePrintPrice},
		{"a free job charged", wire.UpCharge, printCharge("job-6", "A1", 2, 0), wire.RefusePrintPrice},
		{"more than any print costs", wire.UpCharge, printCharge("job-7", "A1", 2, vocab.MaxPrintCharge+1), wire.RefuseInvalid},
		{"a print charge naming a session", wire.UpCharge, kiosk.Charge{RecordID: vocab.PrintRecordID("job-8"), SessionID: "s1", InmateID: "A1", Cents: 15, Pages: 1}, wire.RefuseInvalid},
		{"pages on a charge that is no print", wire.UpCharge, kiosk.Charge{RecordID: "s1/000001", SessionID: "s1", Minute: 1, InmateID: "A1", Cents: 15, Pages: 1}, wire.RefuseInvalid},
		{"the same job id for other money", wire.UpCharge, printCharge("job-1", "A1", 4, 60), wire.RefuseIDConflict},
		{"a terminal refunding a print job", wire.UpCredit, kiosk.Credit{RecordID: vocab.PrintRecordID("job-1"), InmateID: "A1", Cents: 45, Reason: "failed", At: t0}, wire.RefusePrintRefund},
		{"an inmate the terminal does not serve", wire.UpCharge, printCharge("job-9", "S1", 1, 15), wire.RefuseNotYours},
	} {
		ack := c1.batch(k1.item(f.kind, f.body))
		if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != f.reason {
			t.Errorf("%s: ack %+v, want %s", f.name, ack, f.reason)
		}
	}
	if b := e.balanceOf("A1"); b != 455 {
		t.Fatalf("refused print charges moved money: balance %s, want 455¢", b)
	}

	// Printing turned off: a new job is refused, whatever it says it cost.
	e.printPricing("north", 15, 0)
	if ack := c1.batch(k1.item(wire.UpCharge, printCharge("job-10", "A1", 1, 15))); len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefusePrintPages {
		t.Fatalf("printing off: ack %+v", ack)
	}
}
