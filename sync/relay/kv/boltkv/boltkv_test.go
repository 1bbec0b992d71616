package boltkv_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

func open(t *testing.T) kv.Store {
	s, err := boltkv.Open(filepath.Join(t.TempDir(), "kv.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) { kvtest.Run(t, open) }

func TestBoltTxAndOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "own.db")
	s, err := boltkv.Own(bolt.Open(path, 0o600, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.View(context.Background(), func(tx kv.Tx) error {
		if bt := boltkv.BoltTx(tx); bt == nil || bt.DB() != s.DB() {
			t.Errorf("boltkv.BoltTx(%T) = %v, want the transaction of the store's database", tx, bt)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if boltkv.BoltTx(nil) != nil {
		t.Error("boltkv.BoltTx(nil) is not nil")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().View(func(*bolt.Tx) error { return nil }); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("after Close of an owned store, View = %v, want the database closed", err)
	}
	if _, err := boltkv.Own(nil, berrors.ErrTimeout); !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("boltkv.Own(nil, err) = %v, want err unchanged", err)
	}
}

// A bucket told its keys come in order (kv.HintAppended) fills its pages: the same keys,
// appended one transaction at a time as the relay's arrival numbers are, take about half the
// leaf pages, and every key reads back.
func TestHintAppendedFillsPages(t *testing.T) {
	leaves := func(hint bool) int {
		s := open(t).(*boltkv.Store)
		for tx := range 200 {
			if err := s.Update(context.Background(), func(t kv.Tx) error {
				b, err := t.CreateBucketIfNotExists([]byte("log"))
				if err != nil {
					return err
				}
				if hint {
					kv.HintAppended(b)
				}
				for i := range 10 {
					n := uint64(tx*10 + i)
					k := []byte{byte(n >> 8), byte(n), 'k', 'e', 'y'}
					if err := b.Put(k, make([]byte, 100)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := s.DB().View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("log"))
			if got := b.Stats().KeyN; got != 2000 {
				t.Errorf("hint %v: %d keys, want 2000", hint, got)
			}
			n = b.Stats().LeafPageN
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	plain, hinted := leaves(false), leaves(true)
	if hinted*3 > plain*2 {
		t.Fatalf("appended keys take %d leaf pages with the hint, %d without: want about half", hinted, plain)
	}
}
