package jskv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// An Update whose function gives up on what a single read from a replica said (a deposit for
// an inmate the replica does not show) hands that error back only once the leader confirms the
// read: a replica may be behind. Without the confirmation, the e2e quorum test now and then
// heard "unknown inmate" from a replica that answered absent after two nodes stopped, where
// the store's own error (no quorum) was the truth.
func TestAnErrorOnAReplicaReadIsConfirmedByTheLeader(t *testing.T) {
	c := natstest.Start(t)
	s := openWith(t, c, c.Connect(0), jskv.Options{Stream: "replicaerr", Prefix: "replicaerr", CacheEntries: -1, CacheBucketMarkers: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("inmates"))
		if err != nil {
			return err
		}
		return b.Put([]byte("A2"), []byte(`{"id":"A2"}`))
	}); err != nil {
		t.Fatal(err)
	}
	decided := errors.New("decided on what was read")
	before := s.KVStats()
	err := s.Update(ctx, func(tx kv.Tx) error {
		tx.Bucket([]byte("inmates")).Get([]byte("A2"))
		return decided
	})
	after := s.KVStats()
	if !errors.Is(err, decided) {
		t.Fatalf("the Update's error: %v, want the function's own (the read holds)", err)
	}
	if after.ReplicaReads == before.ReplicaReads {
		t.Skip("no replica answered the read: nothing to confirm")
	}
	if after.Reads == before.Reads {
		t.Fatal("the function's error rested on a replica's read, and the leader was never asked")
	}
}
