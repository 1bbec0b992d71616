package relay

import (
	"testing"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The buckets a letter writes a record in, keyed by ids that come in time order, fill their
// pages: a page half full would be written twice as often by a drain (its item ids were, 8
// records to a page of 16). Letters of one kiosk, as a drain stores them, several batches a
// transaction.
func TestLetterBucketsFillPages(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone; c.NoSync = true })
	bdb, ok := e.r.db.(*boltkv.Store)
	if !ok {
		t.Skip("pages are a bbolt file's")
	}
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	ti, _, err := e.r.terminal(k.id)
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		var group []upBatch
		for range 4 {
			b := upBatch{Batch: wire.Batch{Epoch: k.epoch}, ackLetters: true}
			for range 64 {
				b.Items = append(b.Items, k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", "a short letter")))
			}
			group = append(group, b)
		}
		acks, err := e.r.storeBatches(ti.TerminalInfo, group, nil)
		if err != nil || len(acks) != len(group) || len(acks[3].Rejected) != 0 {
			t.Fatalf("store: acks %+v, %v", acks, err)
		}
	}
	err = bdb.DB().View(func(tx *bolt.Tx) error {
		for _, name := range []string{bItemIDs, bOutbound} {
			st := tx.Bucket([]byte(name)).Stats()
			if st.KeyN != 2048 {
				t.Errorf("%s: %d keys, want 2048", name, st.KeyN)
			}
			// The last page of each level may be short.
			if fill := float64(st.LeafInuse) / float64((st.LeafPageN-1)*bdb.DB().Info().PageSize); fill < 0.85 {
				t.Errorf("%s: %d leaf pages %.0f %% in use, want 85 %% or more", name, st.LeafPageN, 100*fill)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
