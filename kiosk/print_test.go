package kiosk

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

func printPolicy(p *Policy) {
	stampPolicy(p) // sessions unbilled: only the pages cost money here
	p.PrintPagePrice, p.MaxPrintPages = 15, 5
}

// A job's price is held while the printer works, charged once when it completes, and given
// back whole when it fails: the balance the inmate sees is as before, and the relay hears of
// the completed job only.
func TestPrintHeldThenChargedOrReleased(t *testing.T) {
	r := newRig(t, printPolicy)
	r.addInmate("i1", 100)
	r.mustLogin("i1")

	if got, err := r.term.PrintPrice(2); err != nil || got != 30 {
		t.Fatalf("price of 2 pages = %s, %v; want 30¢", got, err)
	}
	failed, err := r.term.HoldPrint("i1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if b, acc := r.balance("i1"), r.account("i1"); b != 70 || acc.Unsynced != 30 {
		t.Fatalf("while printing: balance %s, unsynced %s; want 70¢ and 30¢", b, acc.Unsynced)
	}
	checkLedger(t, r.store, false)
	if err := r.term.PrintSubmitted(failed.ID, 7); err != nil {
		t.Fatal(err)
	}
	j, err := r.term.SettlePrint(failed.ID, false, "printer: aborted")
	if err != nil || j.State != PrintReleased {
		t.Fatalf("settle failed job: %+v, %v", j, err)
	}
	if b, acc := r.balance("i1"), r.account("i1"); b != 100 || acc.Unsynced != 0 {
		t.Fatalf("after a failed job: balance %s, unsynced %s; want 100¢ and 0", b, acc.Unsynced)
	}
	// The printer's answer counts once: a second word changes nothing.
	if j, err := r.term.SettlePrint(failed.ID, true, ""); err != nil || j.State != PrintReleased {
		t.Fatalf("settle again: %+v, %v", j, err)
	}
	if got := r.queued(t, ItemCharge, ItemCredit); len(got) != 0 {
		t.Fatalf("a failed job queued %d money items for the relay", len(got))
	}

	done, err := r.term.HoldPrint("i1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.SettlePrint(done.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if b := r.balance("i1"); b != 55 {
		t.Fatalf("after 3 pages printed: balance %s, want 55¢", b)
	}
	items := r.queued(t, ItemCharge, ItemCredit)
	if len(items) != 1 {
		t.Fatalf("queued %d money items, want the one charge", len(items))
	}
	var ch Charge
	if err := json.Unmarshal(items[0].Body, &ch); err != nil {
		t.Fatal(err)
	}
	if ch.RecordID != vocab.PrintRecordID(done.ID) || ch.Pages != 3 || ch.Cents != 45 || ch.SessionID != "" {
		t.Fatalf("print charge %+v", ch)
	}
	checkLedger(t, r.store, false)

	// The relay refuses it (its policy differs): the terminal gives it back itself, once.
	if err := r.term.MarkRefused(items[0].Seq, "print_price"); err != nil {
		t.Fatal(err)
	}
	if b, acc := r.balance("i1"), r.account("i1"); b != 100 || acc.Unsynced != 0 {
		t.Fatalf("after the relay refused the charge: balance %s, unsynced %s", b, acc.Unsynced)
	}
	if got := r.queued(t, ItemCredit); len(got) != 0 {
		t.Fatal("the terminal asked the relay for a refund")
	}
	checkLedger(t, r.store, true)
	// The statement shows the job's pages charged and given back; the failed job not at all.
	lines, err := r.term.Statement("i1")
	if err != nil {
		t.Fatal(err)
	}
	var printed []string
	for _, l := range lines {
		if l.Pages > 0 {
			printed = append(printed, fmt.Sprintf("%s %d pages %s", l.Kind, l.Pages, l.Cents))
		}
	}
	sort.Strings(printed) // both at the same moment of the fake clock
	if want := []string{"charge 3 pages -$0.45", "credit 3 pages $0.45"}; fmt.Sprint(printed) != fmt.Sprint(want) {
		t.Fatalf("print lines of the statement: %q, want %q", printed, want)
	}
}

// A job the inmate cannot pay, or the policy does not allow, holds nothing.
func TestPrintRefusedHoldsNothing(t *testing.T) {
	r := newRig(t, func(p *Policy) { printPolicy(p); p.OfflineSpendCap = 50 })
	r.addInmate("i1", 40)
	r.addInmate("i2", 0)
	if _, err := r.term.HoldPrint("i1", 1); ReasonOf(err) != ReasonNoSession {
		t.Fatalf("print without a session: %v", err)
	}
	r.mustLogin("i1")
	for _, tc := range []struct {
		pages int
		kind  Kind
		why   Reason
	}{
		{3, KindRefused, ReasonInsufficientBalance}, // 45¢ of 40¢
		{6, KindInvalid, ""},                        // max 5 pages
		{0, KindInvalid, ""},
	} {
		_, err := r.term.HoldPrint("i1", tc.pages)
		if KindOf(err) != tc.kind || ReasonOf(err) != tc.why {
			t.Errorf("%d pages: %v, want %s %s", tc.pages, err, tc.kind, tc.why)
		}
	}
	r.deposit("i1", 100, "more")
	if _, err := r.term.HoldPrint("i1", 2); err != nil { // 30¢ of the 50¢ cap
		t.Fatal(err)
	}
	if _, err := r.term.HoldPrint("i1", 2); ReasonOf(err) != ReasonOfflineLimit {
		t.Fatalf("past the offline cap: %v", err)
	}
	if b := r.balance("i1"); b != 110 {
		t.Fatalf("balance %s, want 110¢ (one job held)", b)
	}
	checkLedger(t, r.store, false)
}

// A kiosk that stops mid-job finds the held job at the next start, with the printer's job id,
// to settle by asking the printer.
func TestPrintHeldAcrossRestart(t *testing.T) {
	r := newRig(t, printPolicy)
	r.addInmate("i1", 100)
	r.mustLogin("i1")
	j, err := r.term.HoldPrint("i1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.term.PrintSubmitted(j.ID, 42); err != nil {
		t.Fatal(err)
	}
	r.restart()
	held, err := r.term.PrintsHeld()
	if err != nil || len(held) != 1 || held[0].ID != j.ID || held[0].Printer != 42 {
		t.Fatalf("held after restart: %+v, %v", held, err)
	}
	if b := r.balance("i1"); b != 85 {
		t.Fatalf("balance after restart: %s, want 85¢ (still held)", b)
	}
	if _, err := r.term.SettlePrint(j.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if held, _ := r.term.PrintsHeld(); len(held) != 0 {
		t.Fatalf("still held: %+v", held)
	}
	checkLedger(t, r.store, false)
}

// A print job another kiosk charged reaches this one as a remote charge, whatever it cost up to
// the largest print charge: 10 pages at 15¢ is more than any minute, and must not be refused.
func TestRemotePrintChargeApplied(t *testing.T) {
	r := newRig(t, printPolicy)
	r.addInmate("i1", 500)
	apply := func(seq uint64, c Charge) string {
		t.Helper()
		raw, _ := json.Marshal(c)
		refused, err := r.term.ApplyDownlink(seq, DownRemoteCharge, raw)
		if err != nil {
			t.Fatal(err)
		}
		return refused
	}
	c := Charge{RecordID: vocab.PrintRecordID("other-kiosk-job"), InmateID: "i1", Cents: 150, Pages: 10}
	if refused := apply(1, c); refused != "" {
		t.Fatalf("a 10-page job from another kiosk was refused: %s", refused)
	}
	if b := r.balance("i1"); b != 350 {
		t.Fatalf("balance after a remote print charge = %s, want 350¢", b)
	}
	// A minute is still bounded by a minute's price.
	if refused := apply(2, Charge{RecordID: "s/000001", SessionID: "s", Minute: 1, InmateID: "i1", Cents: 150}); refused == "" {
		t.Fatal("a remote minute of 150¢ was applied")
	}
	if refused := apply(3, Charge{RecordID: vocab.PrintRecordID("too-dear"), InmateID: "i1", Cents: vocab.MaxPrintCharge + 1, Pages: 100}); refused == "" {
		t.Fatal("a remote print charge above the largest was applied")
	}
	checkLedger(t, r.store, true)
}
