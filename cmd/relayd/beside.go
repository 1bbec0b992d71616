package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tether-kiosk/tether/internal/natsconn"
	"github.com/tether-kiosk/tether/sync/relay"
)

// stateFlags are the flags of a command that works on the relay's state (console-user,
// verify): -data names the directory of a stopped relay's relay.db, or -store names the NATS
// cluster whose stream the gateways share, with its credentials. On a stream the command runs
// beside the gateways, which keep serving: each of its writes is a transaction like theirs.
type stateFlags struct {
	data, store *string
	nats        *natsconn.Flags
}

func addStateFlags(fs *flag.FlagSet) stateFlags {
	f := stateFlags{
		data:  fs.String("data", "", "data directory holding relay.db (relayd must be stopped); or -store"),
		store: fs.String("store", "", "the NATS cluster of the gateways' stream, as relayd's -store: nats://host:port[,host:port...]\n(the gateways may keep running); or -data"),
		nats:  new(natsconn.Flags),
	}
	f.nats.Register(fs, "-store")
	return f
}

// open opens the relay the flags name, its Config changed by opts; closeFn closes it and what
// it opened.
func (f stateFlags) open(ctx context.Context, stderr io.Writer, opts ...func(*relay.Config)) (r *relay.Relay, closeFn func(), err error) {
	if *f.data != "" && *f.store != "" {
		return nil, nil, usageErrorf("-data and -store exclude each other: -data for a stopped relay's relay.db, -store for the gateways' stream")
	}
	if *f.store == "" {
		if *f.data == "" {
			return nil, nil, usageErrorf("-data DIR or -store nats://... is required")
		}
		if f.nats.Any() {
			return nil, nil, usageErrorf("-nats-creds, -nats-nkey, -nats-ca, -nats-cert and -nats-key go with -store nats://...")
		}
		cfg := relay.Config{DataDir: *f.data}
		for _, o := range opts {
			o(&cfg)
		}
		r, err := relay.Open(cfg)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	}
	o := options{store: *f.store, nats: *f.nats, beside: true}
	if err := checkStoreFlags(o); err != nil {
		return nil, nil, err
	}
	// The relay wants a directory for uploads and a migration's copies; a command beside
	// the gateways makes neither, so an empty one of its own does, removed at the end.
	tmp, err := os.MkdirTemp("", "relayd-beside-*")
	if err != nil {
		return nil, nil, fmt.Errorf("make a scratch directory: %w", err)
	}
	o.data = tmp
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	st, media, _, closeStore, err := openStore(ctx, o, logf)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	cfg := relay.Config{DataDir: tmp, Store: st, Content: media, Beside: true}
	for _, o := range opts {
		o(&cfg)
	}
	r, err = relay.Open(cfg)
	if err != nil {
		closeStore()
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	return r, func() { r.Close(); closeStore(); os.RemoveAll(tmp) }, nil
}
