package e2e

import (
	"context"
	"fmt"
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
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jskv.Options{Stream: "relay", Prefix: "relay"}
	var out []*jskv.Store
	for i := range n {
		nc := c.Connect(i)
		s, err := jskv.Open(ctx, nc, o)
		// A fresh cluster may refuse an R3 stream until it knows its peers (API error 10005).
		for err != nil && isNoPeers(err) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			s, err = jskv.Open(ctx, nc, o)
		}
		if err != nil {
			t.Fatalf("open the store through node %d: %v", i, err)
		}
		c.WaitStream(nc, o.Stream)
		out = append(out, s)
	}
	return out
}

// startGateway is one relayd gateway: a relay.Relay with its own HTTP server over store.
func startGateway(t *testing.T, store *jskv.Store) *relayEnv {
	t.Helper()
	e := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, store: store}
	e.open()
	t.Cleanup(e.stop)
	return e
}

// TestGatewayStoppedTerminalMovesToTheNext enrolls a kiosk through gateway 1 with gateway 2
// in its list of relay URLs, stops gateway 1 while a backlog drains, and checks that the
// terminal goes on through gateway 2: every letter is on the relay exactly once, read through
// gateway 2, and downlink posted on gateway 2 reaches the kiosk.
func TestGatewayStoppedTerminalMovesToTheNext(t *testing.T) {
	const n = 1500
	stores := gatewayStores(t, 2)
	g1, g2 := startGateway(t, stores[0]), startGateway(t, stores[1])
	g1.seed()
	url1, url2 := "http://"+g1.addr(), "http://"+g2.addr()

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

	tm.stopSync()
	tm.reopen(kiosk.StoreOptions{NoSync: true})
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, n)
	tm.reopen(kiosk.StoreOptions{})
	tm.cfg = func(c *client.Config) { c.BatchItems, c.Window = 16, 1 }
	tm.start()
	testwait.UntilSaw(t, "part of the backlog acknowledged by gateway 1", func() (bool, string) {
		waiting, _, err := tm.store.QueueStats()
		return err == nil && waiting < n-100, fmt.Sprintf("%d waiting, err %v", waiting, err)
	})
	g1.stop()
	waiting, _, err := tm.store.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	if waiting == 0 {
		t.Fatal("the backlog drained before gateway 1 was stopped: nothing was left for gateway 2")
	}
	t.Logf("gateway 1 stopped with %d letters waiting", waiting)

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
