package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// gatewayStores opens one relay stream on a 3-node cluster through n different nodes: the
// stores of n stateless gateways (docs/SCALE.md), each talking to its own node.
func gatewayStores(t *testing.T, n int) []*jskv.Store {
	t.Helper()
	_, stores := clusterStores(t, n)
	return stores
}

// clusterStores is gatewayStores with the cluster, for tests that stop its nodes.
func clusterStores(t *testing.T, n int) (*natstest.Cluster, []*jskv.Store) {
	t.Helper()
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true, WatchRoots: relay.WatchedRoots(), SteadyRoots: relay.SteadyRoots()} // as relayd opens it
	var out []*jskv.Store
	for i := range n {
		nc := c.Connect(i)
		s, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, o) })
		if err != nil {
			t.Fatalf("open the store through node %d: %v", i, err)
		}
		c.WaitStream(nc, o.Stream)
		out = append(out, s)
	}
	return c, out
}

// startGateway is one relayd gateway: a relay.Relay with its own HTTP server over store,
// announcing announced (if any) in welcome.
func startGateway(t *testing.T, store *jskv.Store, ln net.Listener, announced []string) *relayEnv {
	t.Helper()
	return startGatewayWith(t, store, ln, func(c *relay.Config) { c.Gateways = announced })
}

// startGatewayWith is startGateway with the gateway's configuration changed by set.
func startGatewayWith(t *testing.T, store *jskv.Store, ln net.Listener, set func(*relay.Config)) *relayEnv {
	t.Helper()
	e := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, store: store}
	cfg := relay.Config{DataDir: e.dir, Store: store, AdminToken: adminToken,
		PINParams: kiosk.TestPINParams(), HoldPolicy: relay.HoldNone, HandshakeTimeout: 5 * time.Second, Logf: quiet}
	set(&cfg)
	r, err := relay.Open(cfg)
	if err != nil {
		t.Fatalf("open gateway: %v", err)
	}
	e.r, e.ln = r, ln
	e.srv = &http.Server{Handler: r}
	go e.srv.Serve(ln)
	t.Cleanup(e.stop)
	return e
}

// listeners are n loopback listeners and their base URLs, made before the gateways so each
// gateway can announce all of them.
func listeners(t *testing.T, n int) ([]net.Listener, []string) {
	t.Helper()
	var lns []net.Listener
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns, urls = append(lns, ln), append(urls, "http://"+ln.Addr().String())
	}
	return lns, urls
}

// TestGatewayStoppedTerminalMovesToTheNext enrolls a kiosk through gateway 1 with gateway 2
// in its list of relay URLs, stops gateway 1 while a backlog drains, and checks that the
// terminal goes on through gateway 2: every letter is on the relay exactly once, read through
// gateway 2, and downlink posted on gateway 2 reaches the kiosk.
func TestGatewayStoppedTerminalMovesToTheNext(t *testing.T) {
	const n = 1500
	stores := gatewayStores(t, 2)
	lns, urls := listeners(t, 2)
	g1, g2 := startGateway(t, stores[0], lns[0], nil), startGateway(t, stores[1], lns[1], nil)
	g1.seed()
	url1, url2 := urls[0], urls[1]

	tm := openTerminal(t, "", kiosk.StoreOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	en, err := client.Enroll(ctx, client.EnrollConfig{DataDir: tm.dir, RelayURL: url1, RelayURLs: []string{url2},
		Code: g1.code(wire.ModeKiosk, ""), Terminal: tm.term, Label: "e2e"})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	// The list is kept with the enrollment: a terminal restarted while offline still has it.
	if saved, err := client.LoadEnrollment(tm.dir); err != nil || len(saved.RelayURLs) != 1 || saved.RelayURLs[0] != url2 {
		t.Fatalf("enrollment file keeps relay URLs %v (err %v), want [%s]", saved.RelayURLs, err, url2)
	}
	tm.start()
	tm.waitRoster()
	if got := tm.eng.Status().RelayURL; got != url1 {
		t.Fatalf("status shows relay %s, want the enrolled gateway %s", got, url1)
	}

	tm.backlog(n)
	g1.stop()
	tm.stillWaiting("gateway 1 stopped")

	tm.waitSynced()
	testwait.UntilSaw(t, "the terminal connected to gateway 2", func() (bool, string) {
		st := tm.eng.Status()
		return st.Connected && st.RelayURL == url2, fmt.Sprintf("%+v", st)
	})
	checkMessages(t, g2.r, en.TerminalID, map[string]int{"A1": n})

	before, err := tm.term.Balance("A2")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g2.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1234, Ref: "through-gateway-2"}); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the deposit posted on gateway 2 on the kiosk", func() (bool, string) {
		b, err := tm.term.Balance("A2")
		return err == nil && b == before+1234, fmt.Sprintf("A2 balance %v (was %v), err %v", b, before, err)
	})
}

// TestGatewaysAnnouncedInWelcome: a kiosk enrolled through gateway 1 alone learns both
// gateways from welcome and keeps them with its enrollment, so after a restart while gateway 1
// is down it reaches gateway 2, and its letters arrive.
func TestGatewaysAnnouncedInWelcome(t *testing.T) {
	stores := gatewayStores(t, 2)
	lns, urls := listeners(t, 2)
	g1, g2 := startGateway(t, stores[0], lns[0], urls), startGateway(t, stores[1], lns[1], urls)
	g1.seed()

	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(urls[0], g1.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "gateway 2 kept with the enrollment", func() (bool, string) {
		saved, err := client.LoadEnrollment(tm.dir)
		return err == nil && len(saved.RelayURLs) == 1 && saved.RelayURLs[0] == urls[1], fmt.Sprintf("%v, err %v", saved.RelayURLs, err)
	})

	tm.stopSync()
	g1.stop()
	tm.reopen(kiosk.StoreOptions{})
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 20)
	tm.start()
	tm.waitSynced()
	if st := tm.eng.Status(); st.RelayURL != urls[1] {
		t.Fatalf("status shows relay %s, want gateway 2 %s", st.RelayURL, urls[1])
	}
	checkMessages(t, g2.r, en.TerminalID, map[string]int{"A1": 20})
}

// A kiosk enrolled through the gateway that does not serve its facility is sent to the one
// that does (facility homes), and syncs there. When that gateway becomes unreachable while it
// runs (its address cut off; it still announces itself, so the other gateway still sends
// terminals to it), the kiosk is redirected there once more, cannot reach it, and is served
// by the other all the same: a terminal sent on once is served wherever it lands next.
// Every letter is stored once.
func TestTerminalFollowsItsFacilityHome(t *testing.T) {
	stores := gatewayStores(t, 2)
	lns, _ := listeners(t, 2)
	// Each gateway as terminals reach it: through a proxy, which the test can cut off.
	pxs := [2]*proxy{startProxy(t, lns[0].Addr().String()), startProxy(t, lns[1].Addr().String())}
	urls := []string{pxs[0].url(), pxs[1].url()}
	var gws [2]*relayEnv
	for i := range gws {
		gws[i] = startGatewayWith(t, stores[i], lns[i], func(c *relay.Config) { c.Gateways, c.GatewayURL = urls, urls[i] })
	}
	gws[0].seed()
	testwait.UntilSaw(t, "the gateways agree where north is served", func() (bool, string) {
		a, b := gws[0].r.HomeOf("north"), gws[1].r.HomeOf("north")
		return a == b, fmt.Sprintf("gateway 1 says %s, gateway 2 says %s", a, b)
	})
	home := 0
	if gws[0].r.HomeOf("north") == urls[1] {
		home = 1
	}
	other := 1 - home

	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(urls[other], gws[other].code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	testwait.UntilSaw(t, "the kiosk connected to north's gateway", func() (bool, string) {
		st := tm.eng.Status()
		return st.Connected && st.RelayURL == urls[home], fmt.Sprintf("%+v", st)
	})
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 20)
	tm.waitSynced()
	checkMessages(t, gws[home].r, en.TerminalID, map[string]int{"A1": 20})

	pxs[home].ln.Close()
	pxs[home].cutAll()
	if got := gws[other].r.HomeOf("north"); got != urls[home] {
		t.Fatalf("with north's gateway cut off but running, the other says north is served by %s, want still %s", got, urls[home])
	}
	tm.sendNumbered("A1", 20, 20)
	tm.waitSynced()
	if st := tm.eng.Status(); st.RelayURL != urls[other] {
		t.Fatalf("status shows relay %s, want the gateway left %s", st.RelayURL, urls[other])
	}
	checkMessages(t, gws[other].r, en.TerminalID, map[string]int{"A1": 40})
}
