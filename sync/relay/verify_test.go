package relay

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A relay that took deposits, charges, credits and letters verifies clean, and its ledger for
// a kiosk is what the kiosk must show once synced.
func TestVerifyCleanRelayAndLedger(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.letterContact("A1", "pal")
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	ack := c.batch(
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "nobody", Body: "hi"}),
		k.item(wire.UpMessage, kiosk.Message{ID: "m2", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "my file"}),
	)
	if ack.Seq != 4 {
		t.Fatalf("ack = %+v", ack)
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
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := putJSON(tx, bBalances, "A1", totals{Deposits: 99999}); err != nil {
			return err
		}
		return putJSON(tx, bCredits, "A1/forged", UsageRecord{Kind: "credit", RecordID: "forged", SessionID: "s9", InmateID: "A1", Cents: 50})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()
	rep, err := e.r.Verify()
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

// The record counts verify reports are bbolt's own counts of the file (Stats().KeyN, nested
// buckets included), as before the relay moved onto kv: a terminal's queued downlink shows
// under "down", the console's accounts under "staff_console".
func TestVerifyCountsAsBboltDid(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.StaffUpdate(func(b kv.Bucket) error {
		nb, err := b.CreateBucketIfNotExists([]byte("accounts"))
		if err != nil {
			return err
		}
		return nb.Put([]byte("clerk"), []byte("{}"))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	if last, _, _ := e.r.downPosition(k.id); last == 0 || rep.Records[bDown] < int(last) {
		t.Fatalf("records of %s = %d with %d items queued for %s", bDown, rep.Records[bDown], last, k.id)
	}
	e.close()
	db, err := bolt.Open(filepath.Join(e.dir, DBFile), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if got, want := rep.Records[string(name)], b.Stats().KeyN; got != want {
				t.Errorf("records of %s = %d, bbolt counts %d", name, got, want)
			}
			return nil
		})
	})
}
