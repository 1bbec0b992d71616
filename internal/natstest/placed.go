package natstest

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errNoPeers is JetStream's API error code for a stream it cannot place for want of peers.
const errNoPeers = 10005

// Placed calls open (which makes or opens a replicated stream) again while the cluster
// refuses to place the stream for want of peers: a cluster just started may have its meta
// leader before it knows its peers. It returns open's first other answer, or its last once
// ctx ends.
func Placed[T any](ctx context.Context, open func() (T, error)) (T, error) {
	for {
		v, err := open()
		var api *jetstream.APIError
		if err == nil || !errors.As(err, &api) || api.ErrorCode != errNoPeers {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}
