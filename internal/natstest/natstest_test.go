package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
)

// WaitStream returns once an R3 stream made through one node takes a publish from a client
// of another node at once, and its probe leaves nothing in the stream. The relay's tests
// start writing the moment it returns (CI once failed on "no responders" before it probed).
func TestWaitStreamThenPublishFromAnotherNode(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	maker, err := jetstream.New(c.Connect(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maker.CreateStream(ctx, jetstream.StreamConfig{Name: "w", Subjects: []string{"w.>"}, Replicas: natstest.Size}); err != nil {
		t.Fatal(err)
	}
	other := c.Connect(natstest.Size - 1)
	c.WaitStream(other, "w")
	js, err := jetstream.New(other)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("the readiness probe left %d messages in the stream", info.State.Msgs)
	}
	ack, err := js.Publish(ctx, "w.first", []byte("x"))
	if err != nil {
		t.Fatalf("first publish after WaitStream: %v", err)
	}
	if ack.Sequence != 1 {
		t.Fatalf("first publish stored at %d, want 1", ack.Sequence)
	}
}

// Placed asks again only while the cluster refuses to place a stream for want of peers.
func TestPlacedRetriesOnlyNoPeers(t *testing.T) {
	ctx := t.Context()
	calls := 0
	v, err := natstest.Placed(ctx, func() (int, error) {
		calls++
		if calls < 3 {
			return 0, fmt.Errorf("create stream: %w", &jetstream.APIError{ErrorCode: 10005, Description: "no suitable peers for placement"})
		}
		return 7, nil
	})
	if v != 7 || err != nil || calls != 3 {
		t.Fatalf("Placed = %d, %v after %d calls; want 7, nil after 3", v, err, calls)
	}
	calls = 0
	other := &jetstream.APIError{ErrorCode: 10058, Description: "stream name already in use"}
	if _, err := natstest.Placed(ctx, func() (int, error) { calls++; return 0, other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("Placed of another error = %v after %d calls; want it at once", err, calls)
	}
}
