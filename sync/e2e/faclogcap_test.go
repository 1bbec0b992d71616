package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// kioskView is what staff compare between two kiosks of a facility: balances, the inbox,
// notices, the policy's rate, the contacts' states and the catalog.
func kioskView(t *testing.T, tm *terminal) string {
	t.Helper()
	a1, _ := tm.term.Balance("A1")
	a2, _ := tm.term.Balance("A2")
	in, _ := tm.term.Inbox("A1")
	var letters []string
	for _, m := range in {
		letters = append(letters, m.ID)
	}
	ns, _ := tm.term.Notices("")
	var notices []string
	for _, n := range ns {
		notices = append(notices, n.Text)
	}
	slices.Sort(notices)
	cs, _ := tm.term.Contacts("A1")
	var contacts []string
	for _, c := range cs {
		contacts = append(contacts, c.ID+"="+string(c.State))
	}
	slices.Sort(contacts)
	cat, _ := tm.term.Catalog()
	var items []string
	for _, it := range cat {
		items = append(items, it.ID)
	}
	slices.Sort(items)
	return fmt.Sprintf("A1 %s, A2 %s, rate %s, inbox %v, notices %v, contacts %v, catalog %v",
		a1, a2, tm.term.Policy().RatePerMinute, letters, notices, contacts, items)
}

// A kiosk offline past the relay's cap (DownLogCap) stops holding its facility's downlink
// log: the log is pruned past it while it is away, and when it comes back a snapshot brings it
// to the state of a kiosk that stayed online (money, letters, contacts, policy, notices,
// catalog with an item withdrawn meanwhile). A kiosk offline within the cap keeps its part of
// the log and catches up from it.
func TestOfflineKioskPastTheCapGetsASnapshot(t *testing.T) {
	const logCap = 40
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	rl := &relayEnv{t: t, dir: t.TempDir(), hold: relay.HoldNone, downLogCap: logCap, clock: clk}
	if onJetStream() {
		rl.store, rl.flog = jetStore(t)
	}
	rl.open()
	t.Cleanup(rl.stop)
	rl.seed()
	px := startProxy(t, rl.addr()) // the relay's address changes when it restarts
	url := px.url()
	withdrawn := publishTrack(t, rl, "trk-old", mp3(8, 1), 99)
	online, near, far := openTerminal(t, "", kiosk.StoreOptions{}), openTerminal(t, "", kiosk.StoreOptions{}), openTerminal(t, "", kiosk.StoreOptions{})
	for _, tm := range []*terminal{online, near, far} {
		tm.enroll(url, rl.code(wire.ModeKiosk, ""))
		tm.start()
		tm.waitRoster()
	}
	online.login("B1", "1234")
	contact := approvedContact(t, rl, online, "A1", "Mom", "mom@example.org")
	if err := online.term.Logout(); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the catalog and the contact on the three kiosks", func() (bool, string) {
		want := kioskView(t, online)
		return kioskView(t, near) == want && kioskView(t, far) == want, want
	})

	// far goes offline for weeks; the facility's downlink goes on.
	far.stopSync()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.RatePerMinute = 11
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	letter, err := rl.r.Inbound(relay.InboundRequest{InmateID: "A1", From: "mom@example.org", Body: "see you Sunday"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rl.r.PostNotice(relay.NoticeRequest{FacilityID: "north", Text: "Kiosks close at 21:00"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.r.WithdrawCatalogItem("north", withdrawn.ID); err != nil {
		t.Fatal(err)
	}
	publishTrack(t, rl, "trk-new", mp3(8, 2), 49)
	for i := range logCap + 10 {
		if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1, Ref: fmt.Sprintf("far-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A remote charge: a session on the online kiosk, billed and forwarded.
	online.login("B1", "1234")
	if err := online.term.Logout(); err != nil {
		t.Fatal(err)
	}
	online.waitSynced()
	near.waitSynced()
	testwait.UntilSaw(t, "near at online's state", func() (bool, string) {
		want := kioskView(t, online)
		return kioskView(t, near) == want, kioskView(t, near) + " want " + want
	})

	// near goes offline too, a few items before the end: within the cap.
	near.stopSync()
	for i := range 3 {
		if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A1", Cents: 1, Ref: fmt.Sprintf("near-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	sameBalance(t, rl, online, "A1")
	// The online kiosk's acknowledgements prune the log (at most once per five seconds of the
	// relay's clock): everything far missed goes, near's three deposits stay.
	clk.Advance(time.Minute)
	if _, _, err := rl.r.Deposit(relay.DepositRequest{InmateID: "A2", Cents: 1, Ref: "prune"}); err != nil {
		t.Fatal(err)
	}
	sameBalance(t, rl, online, "A2")
	testwait.UntilSaw(t, "the log pruned past far but not near", func() (bool, string) {
		rep, err := rl.r.Verify()
		n := rep.Records["fac_down"]
		return err == nil && n >= 3 && n < logCap, fmt.Sprintf("fac_down holds %d records, err %v", n, err)
	})

	// Weeks pass: the relay restarts meanwhile, so nothing it remembers of the log's recent
	// records (its in-memory tail) stands in for what pruning took.
	rl.restart()
	px.setBackend(rl.addr())
	// Both come back: each ends where the online kiosk stands.
	far.start()
	near.start()
	want := kioskView(t, online)
	for _, tm := range []*terminal{far, near} {
		testwait.UntilSaw(t, "a returning kiosk at online's state", func() (bool, string) {
			got := kioskView(t, tm)
			return got == want, got + "\nwant " + want
		})
		sameBalance(t, rl, tm, "A1")
		sameBalance(t, rl, tm, "A2")
	}
	in, _ := far.term.Inbox("A1")
	if len(in) != 1 || in[0].ID != letter.ID {
		t.Fatalf("far's inbox = %+v, want the one letter %s", in, letter.ID)
	}
	cs, _ := far.term.Contacts("A1")
	if len(cs) != 1 || cs[0].ID != contact || cs[0].State != kiosk.ContactApproved {
		t.Fatalf("far's contacts = %+v, want %s approved", cs, contact)
	}
}
