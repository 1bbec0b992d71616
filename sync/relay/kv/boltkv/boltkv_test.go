package boltkv_test

import (
	"path/filepath"
	"testing"

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
