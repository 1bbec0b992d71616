package relay

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

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
	// Its items are in its own bucket (the snapshot) and its facility's log (the deposit),
	// numbered together.
	if last, _, _, _ := e.r.downPosition(k.id, "north"); last == 0 || rep.Records[bDown]+rep.Records[bFacDown] < int(last) {
		t.Fatalf("records of %s and %s = %d + %d with %d items queued for %s", bDown, bFacDown, rep.Records[bDown], rep.Records[bFacDown], last, k.id)
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
