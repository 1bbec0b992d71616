package boltkv_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	if err := s.DB().View(func(*bolt.Tx) error { return nil }); !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Errorf("after Close of an owned store, View = %v, want the database closed", err)
	}
	if _, err := boltkv.Own(nil, bolt.ErrTimeout); !errors.Is(err, bolt.ErrTimeout) {
		t.Errorf("boltkv.Own(nil, err) = %v, want err unchanged", err)
	}
}
