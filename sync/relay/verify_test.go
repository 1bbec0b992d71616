package relay

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A relay that took deposits, charges, credits and letters, and refused an item that reused
// another's id, verifies clean (the refused item is kept under the id it reused: until stop 33
// verify called that an item stored twice), and its ledger for a kiosk is what the kiosk must
// show once synced.
func TestVerifyCleanRelayAndLedger(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.letterContact("A1", "pal")
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	items := []wire.Item{
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "nobody", Body: "hi"}),
		k.item(wire.UpMessage, kiosk.Message{ID: "m2", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "my file"}),
	}
	reused := k.item(wire.UpCharge, charge("A1", "s2", 0, 9))
	reused.ID = items[0].ID
	ack := c.batch(append(items, reused)...)
	if ack.Seq != 5 || len(ack.Rejected) != 2 || ack.Rejected[1].Reason != wire.RefuseIDConflict {
		t.Fatalf("ack = %+v, want 5 and the reused id refused %s", ack, wire.RefuseIDConflict)
	}
	rep, err := e.r.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	l, err := e.r.LedgerFor(k.id, []string{"m1", "m2", "never-sent"})
	if err != nil {
		t.Fatal(err)
	}
	bal, err := e.r.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Balances["A1"]; got != bal.BalanceCents {
		t.Fatalf("ledger balance of A1 = %s, relay balance %s", got, bal.BalanceCents)
	}
	if got := l.Letters["m1"]; got.State != kiosk.MsgRejected || got.Reason != wire.RefuseUnknownContact {
		t.Fatalf("refused letter in ledger = %+v", got)
	}
	if got := l.Letters["m2"]; got.State != kiosk.MsgHeld {
		t.Fatalf("held letter in ledger = %+v", got)
	}
	if _, ok := l.Letters["never-sent"]; ok {
		t.Fatal("a letter the relay never saw is in its ledger")
	}
}

// Verify finds running totals that disagree with the records, and a credit with no charge,
// written behind the relay's back into its file.
func TestVerifyFindsBrokenMoney(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)))
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), forgeMoney); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()
	mustFindForgedMoney(t, e.r)
}

// forgeMoney writes behind the relay's back what it never would: a balance no deposit made
// for A1, and a credit of no charge.
func forgeMoney(tx kv.Tx) error {
	if err := putJSON(tx, bBalances, "A1", totals{Deposits: 99999}); err != nil {
		return err
	}
	return putJSON(tx, bCredits, "A1/forged", UsageRecord{Kind: "credit", RecordID: "forged", SessionID: "s9", InmateID: "A1", Cents: 50})
}

// mustFindForgedMoney fails the test unless r's verify reports both things forgeMoney wrote.
func mustFindForgedMoney(t *testing.T, r *Relay) {
	t.Helper()
	rep, err := r.Verify()
	if err != nil {
		t.Fatal(err)
	}
	var checks []string
	for _, p := range rep.Problems {
		checks = append(checks, p.Check+": "+p.Detail)
	}
	all := strings.Join(checks, "\n")
	if rep.OK || !strings.Contains(all, "balance: inmate A1") || !strings.Contains(all, "credit_charge: credit forged") {
		t.Fatalf("verify of a broken relay = ok %v:\n%s", rep.OK, all)
	}
}
