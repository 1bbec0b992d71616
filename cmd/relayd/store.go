package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/faclog/jsfaclog"
	"github.com/tether-kiosk/tether/sync/relay/jscontent"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// maxGroupLinger bounds -group-linger: a terminal waits for its acknowledgement that much
// longer while its facility is busy, and a second is already long for a kiosk.
const maxGroupLinger = time.Second

// checkStoreFlags checks -store and the NATS flags together: -store is empty (the bbolt file
// in -data) or a comma-separated list of nats:// (or tls://) host:port servers of one cluster;
// the NATS flags go with -store, one kind of credentials at a time, a client certificate with
// its key, and -group-linger within its bounds.
func checkStoreFlags(o options) error {
	if o.gatewayURL != "" && !slices.Contains(splitList(o.gateways), o.gatewayURL) {
		return usageErrorf("-gateway-url %s is not one of -gateways: list every gateway there, this one too", o.gatewayURL)
	}
	if o.holdFacilities && o.store == "" {
		return usageErrorf("-hold-facilities goes with -store nats://...: a relay on its own file writes each transaction once already")
	}
	if o.holdFacilities && len(splitList(o.gateways)) > 1 && o.gatewayURL == "" {
		return usageErrorf("-hold-facilities with %d gateways needs -gateway-url: each gateway holds the facilities whose home it is", len(splitList(o.gateways)))
	}
	if o.groupLinger < 0 || o.groupLinger > maxGroupLinger {
		return usageErrorf("-group-linger %v: give 0 to %v (every batch of a busy facility waits that long for its acknowledgement)", o.groupLinger, maxGroupLinger)
	}
	if o.store == "" {
		if o.nats.Any() {
			return usageErrorf("-nats-creds, -nats-nkey, -nats-ca, -nats-cert and -nats-key go with -store nats://...")
		}
		if o.gatewayURL != "" {
			return usageErrorf("-gateway-url goes with -store nats://...: a relay on its own file is the only gateway")
		}
		return nil
	}
	if err := o.nats.Check(); err != nil {
		return usageErrorf("%v", err)
	}
	for s := range strings.SplitSeq(o.store, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			return usageErrorf("-store %q: each server is nats://host:port (or tls://host:port), comma-separated", s)
		}
		if u.User != nil {
			return usageErrorf("-store %q: a password in the URL shows in ps; use -nats-creds or -nats-nkey", s)
		}
	}
	return nil
}

// openStore connects to the NATS cluster of -store and opens the relay's stream and its
// content stream on it (created at the first start): every gateway of the cluster then serves
// every object (docs/SCALE.md, "Content on JetStream"). It returns nils when -store is empty:
// the relay then opens its bbolt files in -data. closeFn closes the content store and the
// connection; call it after the relay closed.
func openStore(ctx context.Context, o options, logf func(string, ...any)) (st kv.Store, media relay.ContentStore, flog faclog.Log, closeFn func(), err error) {
	if o.store == "" {
		return nil, nil, nil, func() {}, nil
	}
	opts := []nats.Option{
		nats.Name("relayd"),
		nats.MaxReconnects(-1), // a gateway outlives any node of the cluster
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logf("relayd: lost the NATS server: %v", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logf("relayd: reconnected to NATS at %s", nc.ConnectedUrlRedacted()) }),
	}
	auth, err := o.nats.Options()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(o.store, opts...)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("connect to the NATS cluster of -store: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The relay deletes no bucket whose late writes matter (a revoked terminal's downlink is
	// dropped anyway), so its gateways may cache bucket markers (docs/SCALE.md).
	storeOptions := jskv.Options{CacheBucketMarkers: true, Existing: o.beside, Logf: logf, WatchRoots: relay.WatchedRoots(), SteadyRoots: relay.SteadyRoots()}
	s, err := jskv.Open(octx, nc, storeOptions)
	// A cluster starting with relayd may elect its meta leader before it knows its peers,
	// and refuse the R3 stream meanwhile ("no suitable peers for placement", API error
	// 10005): wait for it, within the open's deadline.
	for err != nil && noPeers(err) {
		select {
		case <-octx.Done():
		case <-time.After(250 * time.Millisecond):
			s, err = jskv.Open(octx, nc, storeOptions)
			continue
		}
		break
	}
	if err != nil {
		nc.Close()
		if errors.Is(err, jskv.ErrNoStream) {
			return nil, nil, nil, nil, fmt.Errorf("-store %s holds no relay: %w (start a relayd gateway on it first, which makes it)", o.store, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || kv.Retryable(err) {
			return nil, nil, nil, nil, fmt.Errorf("open the relay's stream on the NATS cluster (is JetStream up, with a quorum?): %w", err)
		}
		return nil, nil, nil, nil, fmt.Errorf("open the relay's stream on the NATS cluster: %w", err)
	}
	cs, err := jscontent.Open(octx, nc, s, jscontent.Options{Logf: logf, Existing: o.beside})
	for err != nil && noPeers(err) { // as the relay's stream above
		select {
		case <-octx.Done():
		case <-time.After(250 * time.Millisecond):
			cs, err = jscontent.Open(octx, nc, s, jscontent.Options{Logf: logf, Existing: o.beside})
			continue
		}
		break
	}
	if err != nil {
		nc.Close()
		if errors.Is(err, jscontent.ErrNoStream) {
			return nil, nil, nil, nil, fmt.Errorf("-store %s: %w (start a relayd gateway of this build on it first, which makes it)", o.store, err)
		}
		return nil, nil, nil, nil, fmt.Errorf("open the content stream on the NATS cluster: %w", err)
	}
	if err := importContent(o.data, cs, logf); err != nil {
		cs.Close()
		nc.Close()
		return nil, nil, nil, nil, err
	}
	if o.holdFacilities {
		l, err := jsfaclog.Open(octx, nc, jsfaclog.Options{})
		if err != nil {
			cs.Close()
			nc.Close()
			return nil, nil, nil, nil, fmt.Errorf("open the facility log on the NATS cluster: %w", err)
		}
		flog = l
	}
	return s, cs, flog, func() { cs.Close(); nc.Close() }, nil
}

// underRootsMover is a store that can move the buckets of its watched roots under their
// root's generation (jskv.Store.MoveUnderRoots).
type underRootsMover interface {
	MoveUnderRoots(ctx context.Context) (moved, left int, err error)
}

// moveUnderRoots moves the downlink buckets a stream written by an older build keeps under
// generations of their own, so that every gateway's watch feed takes the downlink alone
// (docs/SCALE.md "The watch feed takes only the downlink"). It runs in the background once the
// gateway serves: its feed has listed them, so on a stream with none it costs nothing, and a
// bucket moves in a transaction of its own while terminals go on. Every gateway tries at its
// start; a bucket another moved first is a conflict, then found moved.
func moveUnderRoots(ctx context.Context, m underRootsMover, logger *slog.Logger) {
	moved, left, err := m.MoveUnderRoots(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		logger.Warn("downlink buckets not all moved under their roots; the next start tries again", "moved", moved, "left", left, "err", err)
	case moved > 0 || left > 0:
		logger.Info("downlink buckets moved under their roots", "moved", moved, "left", left)
	}
}

// importedSuffix is added to content.db once its objects are on the content stream.
const importedSuffix = ".imported"

// importContent moves what a relayd on -store kept in -data/content.db before the content
// stream existed onto it: every object held whole, with each of its holders. The file is then
// renamed (kept, never deleted: it is the operator's until they remove it). A cut import is
// run again at the next start: an object put again is written once and gains its holders.
func importContent(dir string, cs relay.ContentStore, logf func(string, ...any)) error {
	path := filepath.Join(dir, content.File)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	old, err := content.Open(path, content.Options{})
	if err != nil {
		return fmt.Errorf("import %s onto the content stream: %w", path, err)
	}
	claims, err := old.Claims("")
	if err != nil {
		old.Close()
		return fmt.Errorf("import %s onto the content stream: %w", path, err)
	}
	done := map[content.Hash]bool{}
	objects, skipped := 0, 0
	for _, c := range claims {
		if done[c.Object] {
			continue
		}
		done[c.Object] = true
		if err := importObject(old, cs, c.Object); errors.Is(err, content.ErrIncomplete) || errors.Is(err, content.ErrUnknownObject) {
			skipped++ // never held whole here: nothing of it to serve
			continue
		} else if err != nil {
			old.Close()
			return fmt.Errorf("import %s onto the content stream: object %s: %w", path, c.Object, err)
		}
		objects++
	}
	if err := old.Close(); err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if err := os.Rename(path, path+importedSuffix); err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	logf("relayd: moved %d objects of %s onto the content stream (%d not held whole, left); the file is kept as %s",
		objects, path, skipped, path+importedSuffix)
	return nil
}

// importObject puts one object of old on cs for its first holder and adds the others.
func importObject(old *content.Store, cs relay.ContentStore, obj content.Hash) error {
	holders, _, err := old.Holders(obj)
	if err != nil || len(holders) == 0 {
		return err
	}
	rd, err := old.Open(obj)
	if err != nil {
		return err
	}
	ref, err := cs.PutFor(rd, holders[0])
	rd.Close()
	if err != nil {
		return err
	}
	if ref.Object != obj {
		return fmt.Errorf("read back as %s", ref.Object)
	}
	for _, h := range holders[1:] {
		// The relay pins every claim it makes (it evicts nothing).
		if err := cs.Retain(ref, h, true); err != nil {
			return err
		}
	}
	return nil
}

// noPeers is JetStream's refusal to place a stream for want of peers (API error 10005).
func noPeers(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == 10005
}
