package jskv_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testseed"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// openOn opens a store on a stream of its own on the cluster, through nc, and waits until the
// stream's three replicas are ready.
func openOn(t testing.TB, c *natstest.Cluster, nc *nats.Conn, name string) *jskv.Store {
	t.Helper()
	return openWith(t, c, nc, jskv.Options{Stream: name, Prefix: name})
}

func openWith(t testing.TB, c *natstest.Cluster, nc *nats.Conn, o jskv.Options) *jskv.Store {
	t.Helper()
	return jskv.OpenTest(t, c, nc, o)
}

// TestConformanceR3 runs the suite every store runs on an R3 stream of a real 3-node cluster.
func TestConformanceR3(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	n := 0
	kvtest.Run(t, func(t *testing.T) kv.Store {
		n++
		return openOn(t, c, nc, fmt.Sprintf("conf%d", n))
	})
}

// TestConformanceR3NoCache runs the suite with the gateway's read cache off, so that both
// read paths (cache and leader) are held to it.
func TestConformanceR3NoCache(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(1)
	n := 0
	kvtest.Run(t, func(t *testing.T) kv.Store {
		n++
		name := fmt.Sprintf("nocache%d", n)
		return openWith(t, c, nc, jskv.Options{Stream: name, Prefix: name, CacheEntries: -1})
	})
}

// TestDifferentialAgainstBolt runs the same random transactions on bbolt and on an R3 stream
// and compares everything each one sees (kvtest.Differential). Replay a failure with the seed
// it prints (TETHER_SEED).
func TestDifferentialAgainstBolt(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(2)
	ref, err := boltkv.Open(filepath.Join(t.TempDir(), "ref.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	sut := openOn(t, c, nc, "diff")
	kvtest.Differential(t, ref, sut, testseed.Seed(t), 300)
}
