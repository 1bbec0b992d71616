package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A stream written by a gateway of an older build keeps its downlink buckets under
// generations of their own, which every gateway's watch feed then follows one by one (or by
// taking every key of the stream). A gateway of this build moves them under their roots once
// it serves, says so in its log, and they keep what they held.
func TestGatewayMovesOlderDownlinkBucketsUnderTheirRoots(t *testing.T) {
	c := natstest.Start(t)
	env := map[string]string{TokenEnv: strings.Repeat("t", 20)}
	args := func() []string { return []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-store", c.URL(0)} }
	_, _, _, stop := start(t, args(), env) // makes the stream and the relay's buckets
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// As a gateway of the older build opened it (cmd/relayd/store.go before WatchRoots).
	older, err := jskv.Open(ctx, c.Connect(1), jskv.Options{CacheBucketMarkers: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := older.Update(ctx, func(tx kv.Tx) error {
		for _, root := range relay.WatchedRoots() {
			b, err := tx.Bucket(root).CreateBucket([]byte("made-by-older"))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("held")); err != nil {
				return err
			}
			if err := b.SetSequence(9); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	_, _, stderr, stop := start(t, args(), env)
	defer stop()
	testwait.UntilSaw(t, "the gateway to log the move", func() (bool, string) {
		log := stderr.String()
		return strings.Contains(log, `msg="downlink buckets moved under their roots" moved=2 left=0`), log
	})
	if err := older.View(ctx, func(tx kv.Tx) error {
		for _, root := range relay.WatchedRoots() {
			b := tx.Bucket(root).Bucket([]byte("made-by-older"))
			if b == nil || string(b.Get([]byte("k"))) != "held" || b.Sequence() != 9 {
				return fmt.Errorf("%s/made-by-older does not hold what it held before the move", root)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
