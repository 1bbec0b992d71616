package natstest_test

import (
	"context"
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
