package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/jscontent"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// startContentGateway is startGateway with the content store relayd opens beside the kv
// store on the same connection (cmd/relayd/store.go): one content stream for every gateway.
func startContentGateway(t *testing.T, store *jskv.Store, ln net.Listener) *relayEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	media, err := natstest.Placed(ctx, func() (*jscontent.Store, error) {
		return jscontent.Open(ctx, store.Conn(), store, jscontent.Options{SweepEvery: -1})
	})
	if err != nil {
		t.Fatalf("open the content store: %v", err)
	}
	t.Cleanup(func() { media.Close() })
	return startGatewayWith(t, store, ln, func(c *relay.Config) { c.Content = media })
}

// A photo put through gateway A's relay reaches a kiosk connected to gateway B only, over
// real websockets through a link cut again and again: B serves every chunk from the shared
// content stream (A serves none), each connection goes on from what the ones before stored,
// and the kiosk holds the photo byte for byte. Neither gateway made a content.db of its own.
func TestPhotoPutOnOneGatewayFetchedThroughAnother(t *testing.T) {
	stores := gatewayStores(t, 2)
	lns, _ := listeners(t, 2)
	ga, gb := startContentGateway(t, stores[0], lns[0]), startContentGateway(t, stores[1], lns[1])
	ga.seed()

	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{Cap: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	px := startProxy(t, gb.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), gb.code(wire.ModeKiosk, ""))
	tm.cfg = func(c *client.Config) { c.Content = media }
	tm.start()
	tm.waitRoster()

	jpg := noisePhoto(t)
	ref, err := ga.r.PutContent(bytes.NewReader(jpg), "north")
	if err != nil {
		t.Fatal(err)
	}
	const short, long = 100 << 10, 420 << 10
	px.budgets(short, short, long)
	px.cutAll()
	cutsBefore := px.cuts.Load()
	if err := media.Retain(ref, "msg:photo-letter", false); err != nil {
		t.Fatal(err)
	}
	tm.eng.FetchContent()
	testwait.UntilSaw(t, "the photo to arrive whole through gateway B", func() (bool, string) {
		st, err := media.State(ref.Object)
		missing, _ := media.Missing(ref.Object, 8)
		return st == content.Whole, fmt.Sprintf("state %v, missing %v, %d cuts, err %v", st, missing, px.cuts.Load()-cutsBefore, err)
	})
	if cuts := px.cuts.Load() - cutsBefore; cuts < 3 {
		t.Fatalf("the photo arrived across %d cuts; the test wants it resumed at least 3 times", cuts)
	}
	rd, err := media.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, jpg) {
		t.Fatalf("the photo on the kiosk differs from the one put through gateway A (err %v)", err)
	}
	sentA, sentB := chunksSent(t, ga), chunksSent(t, gb)
	if sentA["binary"]+sentA["json"] != 0 || sentB["binary"] < 4 {
		t.Fatalf("chunks sent by gateway A %v and B %v; want the photo's 4 or more by B alone", sentA, sentB)
	}
	for name, g := range map[string]*relayEnv{"A": ga, "B": gb} {
		if m, _ := filepath.Glob(filepath.Join(g.dir, content.File)); len(m) != 0 {
			t.Fatalf("gateway %s made %s in its data directory", name, content.File)
		}
	}
}
