package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The failures of issue 16 (docs/SCALE.md "Tests"), each against a real 3-node cluster with
// real kiosks: a NATS node killed mid-sync, a gateway lost mid-batch, the cluster's quorum
// cut. Each ends with every letter stored once, a deposit made during the failure applied
// once, and the relay's and the kiosk's verifiers and ledgers agreeing.

// backlog gives the kiosk n letters of A1 queued while it was offline, and starts its sync
// in small batches one at a time, so that a failure lands in the middle of the drain.
func (tm *terminal) backlog(n int) {
	tm.t.Helper()
	tm.stopSync()
	tm.reopen(kiosk.StoreOptions{NoSync: true})
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, n)
	tm.reopen(kiosk.StoreOptions{})
	tm.cfg = func(c *client.Config) { c.BatchItems, c.Window = 16, 1 }
	tm.start()
	testwait.UntilSaw(tm.t, "part of the backlog acknowledged", func() (bool, string) {
		waiting, _, err := tm.store.QueueStats()
		return err == nil && waiting < n-100, fmt.Sprintf("%d waiting, err %v", waiting, err)
	})
}

// stillWaiting fails the test if the kiosk already forwarded everything: the failure just
// made would then have hit nothing.
func (tm *terminal) stillWaiting(what string) {
	tm.t.Helper()
	waiting, _, err := tm.store.QueueStats()
	if err != nil {
		tm.t.Fatal(err)
	}
	if waiting == 0 {
		tm.t.Fatalf("the backlog drained before %s", what)
	}
	tm.t.Logf("%s with %d letters waiting", what, waiting)
}

// depositOnce posts a deposit until the relay takes it, the same reference each time: a
// deposit whose answer was lost is stored once all the same.
func depositOnce(t *testing.T, r *relay.Relay, inmate string, cents vocab.Cents, ref string) {
	t.Helper()
	var last error
	testwait.UntilSaw(t, "the deposit taken", func() (bool, string) {
		_, _, last = r.Deposit(relay.DepositRequest{InmateID: inmate, Cents: cents, Ref: ref})
		return last == nil, fmt.Sprint(last)
	})
}

// agreed checks the kiosk's balance of inmate reached want, then runs the kiosk's and the
// relay's verifiers and reconciles their ledgers, as the lifecycle model does.
func agreed(t *testing.T, r *relay.Relay, tm *terminal, inmate string, want vocab.Cents) {
	t.Helper()
	testwait.UntilSaw(t, "the kiosk's balance of "+inmate, func() (bool, string) {
		b, err := tm.term.Balance(inmate)
		return err == nil && b == want, fmt.Sprintf("%d, want %d, err %v", b, want, err)
	})
	if rep, err := tm.term.Verify("failure test"); err != nil || !rep.OK {
		t.Fatalf("kiosk verify: %+v, %v", rep, err)
	}
	rep, err := r.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("relay verify: %+v, %v", rep, err)
	}
	mine, err := tm.term.Ledger()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := r.LedgerFor(tm.eng.Enrollment().TerminalID, mine.LetterIDs())
	if err != nil {
		t.Fatal(err)
	}
	if probs := kiosk.Reconcile(mine, theirs); len(probs) > 0 {
		t.Fatalf("the kiosk and the relay disagree: %+v", probs)
	}
}

// kioskOnGateway starts one gateway on store, seeds it, and enrolls a kiosk through it that
// has the roster; before is A2's balance on the kiosk then.
func kioskOnGateway(t *testing.T, store *jskv.Store) (g *relayEnv, tm *terminal, en client.Enrollment, before vocab.Cents) {
	t.Helper()
	lns, urls := listeners(t, 1)
	g = startGateway(t, store, lns[0], nil)
	g.seed()
	tm = openTerminal(t, "", kiosk.StoreOptions{})
	en = tm.enroll(urls[0], g.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	before, err := tm.term.Balance("A2")
	if err != nil {
		t.Fatal(err)
	}
	return g, tm, en, before
}

// The node that leads the relay's stream, and that the gateway talks to, is killed while a
// kiosk drains a backlog through it: the gateway goes on through the nodes left, the kiosk
// never notices more than a slow batch, every letter is stored once, a deposit posted during
// the election is applied once, and the node rejoins.
func TestNATSNodeKilledMidSync(t *testing.T) {
	const n = 600
	c, stores := clusterStores(t, natstest.Size)
	leader := c.StreamLeader(stores[0].Conn(), "relay")
	g, tm, en, before := kioskOnGateway(t, stores[leader])
	tm.backlog(n)

	c.Stop(leader)
	tm.stillWaiting(fmt.Sprintf("node %d (the stream's leader, the gateway's node) killed", leader+1))
	depositOnce(t, g.r, "A2", 1234, "during-the-election")
	tm.waitSynced()
	checkMessages(t, g.r, en.TerminalID, map[string]int{"A1": n})
	agreed(t, g.r, tm, "A2", before+1234)

	c.Restart(leader)
	c.WaitStream(stores[leader].Conn(), "relay")
	tm.login("B1", "1234")
	tm.sendNumbered("A1", n, 10)
	tm.waitSynced()
	checkMessages(t, g.r, en.TerminalID, map[string]int{"A1": n + 10})
	agreed(t, g.r, tm, "A2", before+1234)
}

// The gateway a kiosk drains its backlog through is lost mid-batch: every connection to it
// cut at once, and nothing answers on its address any more (it keeps running, unreachable,
// as a gateway cut off by a network fault or in the middle of dying does). Batches it stored
// but could not acknowledge are sent again through the other gateway: every letter is stored
// once, and a deposit posted there reaches the kiosk.
func TestGatewayLostMidBatch(t *testing.T) {
	const n = 600
	stores := gatewayStores(t, 2)
	lns, urls := listeners(t, 2)
	g1, g2 := startGateway(t, stores[0], lns[0], nil), startGateway(t, stores[1], lns[1], nil)
	g1.seed()
	px := startProxy(t, g1.addr()) // gateway 1 as the kiosk reaches it
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	en, err := client.Enroll(ctx, client.EnrollConfig{DataDir: tm.dir, RelayURL: px.url(), RelayURLs: []string{urls[1]},
		Code: g1.code(wire.ModeKiosk, ""), Terminal: tm.term, Label: "e2e"})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	tm.start()
	tm.waitRoster()
	before, err := tm.term.Balance("A2")
	if err != nil {
		t.Fatal(err)
	}
	tm.backlog(n)

	px.ln.Close()
	if cut := px.cutAll(); cut == 0 {
		t.Fatal("no connection through gateway 1 to cut")
	}
	tm.stillWaiting("gateway 1 lost")
	depositOnce(t, g2.r, "A2", 1234, "through-gateway-2")
	tm.waitSynced()
	if st := tm.eng.Status(); st.RelayURL != urls[1] {
		t.Fatalf("status shows relay %s, want gateway 2 %s", st.RelayURL, urls[1])
	}
	checkMessages(t, g2.r, en.TerminalID, map[string]int{"A1": n})
	agreed(t, g2.r, tm, "A2", before+1234)
}

// With two of the three nodes down the relay has no quorum: the kiosk keeps working offline
// (letters written and queued), the relay refuses writes with a retryable error that says so and
// acknowledges nothing, and once the nodes are back everything drains, each letter once.
func TestQuorumLostKioskKeepsWorking(t *testing.T) {
	c, stores := clusterStores(t, 1)
	g, tm, en, before := kioskOnGateway(t, stores[0])
	tm.login("B1", "1234")
	tm.sendNumbered("A1", 0, 5)
	tm.waitSynced()

	c.StopQuorum(0)
	// The kiosk works offline: letters written and queued.
	tm.sendNumbered("A1", 5, 20)
	// The relay refuses writes, retryably, naming why; the queue stays.
	if _, _, err := g.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1234, Ref: "after-quorum"}); err == nil ||
		!(errors.Is(err, kv.ErrNoQuorum) || errors.Is(err, kv.ErrTimeout)) {
		t.Fatalf("a deposit without quorum: %v, want a no-quorum or timeout error", err)
	}
	st := waitLinkError(t, tm)
	t.Logf("without quorum the kiosk shows: %s", st.LastError)
	waiting, _, err := tm.store.QueueStats()
	if err != nil || waiting != 20 {
		t.Fatalf("%d letters waiting (err %v), want the 20 written without quorum; status %+v", waiting, err, st)
	}

	c.Restart(1)
	c.Restart(2)
	c.WaitStream(stores[0].Conn(), "relay")
	depositOnce(t, g.r, "A2", 1234, "after-quorum")
	tm.waitSynced()
	checkMessages(t, g.r, en.TerminalID, map[string]int{"A1": 25})
	agreed(t, g.r, tm, "A2", before+1234)
}

// waitLinkError waits until the kiosk's link status shows the relay's refusal: the store
// unavailable, try again later (1013).
func waitLinkError(t *testing.T, tm *terminal) status.Link {
	t.Helper()
	var st status.Link
	testwait.UntilSaw(t, "the kiosk's status to show the relay refusing", func() (bool, string) {
		st = tm.eng.Status()
		return strings.Contains(st.LastError, relay.ReasonUnavailable), fmt.Sprintf("%+v", st)
	})
	return st
}
