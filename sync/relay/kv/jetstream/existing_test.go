package jskv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// A command run beside the gateways (Options.Existing) opens only a stream that is there, as
// it is. Pointed at a cluster without the stream it makes none; pointed at a stream whose
// configuration lacks what this build relies on (atomic batches off, as a stream made by hand
// or by an older build might have) it refuses, naming why, and changes nothing: updating a
// stream is a cluster-wide operation the gateways own. A gateway (not Existing) then updates it.
func TestExistingOpensOnlyAStreamAsItIs(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o := jskv.Options{Stream: "EX", Prefix: "ex", Existing: true}
	if _, err := jskv.Open(ctx, nc, o); !errors.Is(err, jskv.ErrNoStream) {
		t.Fatalf("Existing on a cluster without the stream: %v, want ErrNoStream", err)
	}
	if _, err := js.Stream(ctx, "EX"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("after an Existing open the cluster has the stream (%v): it made one", err)
	}

	cfg := jetstream.StreamConfig{Name: "EX", Subjects: []string{"ex.>"}, Storage: jetstream.FileStorage, Replicas: 3,
		MaxMsgsPerSubject: 1, AllowMsgTTL: true, AllowDirect: true} // no atomic batches
	if _, err := natstest.Placed(ctx, func() (jetstream.Stream, error) { return js.CreateStream(ctx, cfg) }); err != nil {
		t.Fatal(err)
	}
	_, err = jskv.Open(ctx, nc, o)
	if err == nil || !strings.Contains(err.Error(), "stream EX") || !strings.Contains(err.Error(), "lacks what this build relies on") {
		t.Fatalf("Existing on a stream without atomic batches: %v, want a refusal naming the stream and why", err)
	}
	atomic := func() bool {
		t.Helper()
		st, err := js.Stream(ctx, "EX")
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.AllowAtomicPublish
	}
	if atomic() {
		t.Fatal("an Existing open turned atomic batches on: it changed the stream")
	}

	o.Existing = false
	if _, err := jskv.Open(ctx, nc, o); err != nil {
		t.Fatalf("a gateway's open of a stream it must update: %v", err)
	}
	if !atomic() {
		t.Fatal("a gateway's open left atomic batches off")
	}
	o.Existing = true
	if _, err := jskv.Open(ctx, nc, o); err != nil {
		t.Fatalf("Existing on the stream a gateway updated: %v", err)
	}
}
