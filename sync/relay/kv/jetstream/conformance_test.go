package jskv_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	name := o.Stream
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := jskv.Open(ctx, nc, o)
	// A cluster just started may have its meta leader before it knows its peers, and then
	// refuses an R3 stream (10005, "no suitable peers for placement"): poll until it places
	// it, as the relay's tests do (sync/relay jetStore).
	for err != nil && isNoPeers(err) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		s, err = jskv.Open(ctx, nc, o)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, name)
	return s
}

// isNoPeers is JetStream's refusal to place a stream for want of peers (API error 10005).
func isNoPeers(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == 10005
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
