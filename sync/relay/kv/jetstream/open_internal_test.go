package jskv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tether-kiosk/tether/internal/natstest"
)

// openTest opens a store on the stream o names and waits until every node routes it. A
// cluster just started may have its meta leader before it knows its peers, and then refuses
// an R3 stream (10005, "no suitable peers for placement"): it polls until the stream is
// placed, as the relay's tests do (sync/relay jetStore).
func openTest(t testing.TB, c *natstest.Cluster, nc *nats.Conn, o Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := natstest.Placed(ctx, func() (*Store, error) { return Open(ctx, nc, o) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, s.o.Stream)
	return s
}

// OpenTest is openTest for the package's external tests.
var OpenTest = openTest

// StreamLastSeq is the stream's last sequence as its leader tells it, for the package's
// external tests.
func (s *Store) StreamLastSeq(ctx context.Context) (uint64, error) {
	info, err := s.st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// StreamMsgs is how many messages the stream holds, as its leader tells it, for the
// package's external tests.
func (s *Store) StreamMsgs(ctx context.Context) (uint64, error) {
	info, err := s.st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// SetWholePage makes the store's whole reads read pages of n messages, for the package's
// external tests: a test store far smaller than a real page still reads in many.
func (s *Store) SetWholePage(n int) { s.wholePage = n }
