package relay

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/sync/relay/idrecs"
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
		// The facility's letters, and their index by id (v24).
		buckets := map[string]*bolt.Bucket{"letters/north": tx.Bucket([]byte(bLetters)).Bucket([]byte("north")), bLetterAt: tx.Bucket([]byte(bLetterAt))}
		if !e.r.ids.on { // else the ids are in the facility's records (facids.go), appended to
			buckets[bItemIDs] = tx.Bucket([]byte(bItemIDs))
		}
		for name, b := range buckets {
			st := b.Stats()
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

// A letter stored after a backlog writes its own pages, not the item log's last records again:
// bbolt writes a leaf again whole when a key is added to it, and a leaf of the item log holds
// two records or more, so the log's records on a bbolt file are cut short (logRecordMaxBolt).
func TestLetterAfterBacklogWritesLittle(t *testing.T) {
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
	text := strings.Repeat("a letter of some length ", 10)[:180] // the policy's limit is 200
	store := func(batches, letters int) {
		t.Helper()
		var group []upBatch
		for range batches {
			b := upBatch{Batch: wire.Batch{Epoch: k.epoch}, ackLetters: true}
			for range letters {
				b.Items = append(b.Items, k.item(wire.UpMessage, msg(uuid.Must(uuid.NewV7()).String(), "A1", "dept-medical", text)))
			}
			group = append(group, b)
		}
		acks, err := e.r.storeBatches(ti.TerminalInfo, group, nil)
		if err != nil || len(acks) != batches || len(acks[batches-1].Rejected) != 0 {
			t.Fatalf("store: acks %+v, %v", acks, err)
		}
	}
	for range 4 {
		store(4, 256) // some 600 KB of items a transaction
	}
	alloc := func() int64 { st := bdb.DB().Stats(); return st.TxStats.GetPageAlloc() }
	before := alloc()
	store(1, 1)
	// The log's last leaf (up to four records of 32 KiB) and a few pages of each other bucket;
	// with records of 256 KiB it was 844 KiB. Where ids are kept by facility, the letter's id
	// goes to its second's last record, which the backlog may have filled to nearly
	// idrecs.RecordBytes when it came in the same second: that record is written again too.
	// From v24 a letter is indexed by its id too (letter_at), a leaf and its branch more.
	bound := int64(208 << 10)
	if e.r.ids.on {
		bound += idrecs.RecordBytes
	}
	if alloc := alloc() - before; alloc > bound {
		t.Fatalf("one letter after a backlog wrote %d KiB of pages, want %d KiB or less", alloc>>10, bound>>10)
	}
}
