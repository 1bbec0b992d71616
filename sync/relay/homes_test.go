package relay

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Every gateway works out the same home for a facility from what it heard, the facilities
// spread over the gateways, and a gateway that goes away moves only its own facilities, which
// come back to it when it is heard again: to new connections at once, to the connections
// held elsewhere only once it has been heard for homeSettle.
func TestHomesAgreeSpreadAndMoveOnlyTheLostGatewaysFacilities(t *testing.T) {
	all := []string{"wss://gw1.example:8443", "wss://gw2.example:8443", "wss://gw3.example:8443"}
	clk := clock.NewFake(t0)
	views := make([]*homes, len(all))
	for i, g := range all {
		views[i] = newHomes(g, []byte{byte(i + 1)}, all, clk)
	}
	hearAll := func(except string) {
		for _, v := range views {
			for _, w := range views {
				if w.self != except {
					v.heard(string(w.announcement()))
				}
			}
		}
	}
	hearAll("")
	facilities := make([]string, 300)
	for i := range facilities {
		facilities[i] = fmt.Sprintf("facility-%03d", i)
	}
	// homeOf is every facility's home, as the live gateways (all but silent) agree it is.
	homeOf := func(settled bool, silent string) map[string]string {
		out := map[string]string{}
		for _, f := range facilities {
			h := views[0].of(f, settled)
			for _, v := range views[1:] {
				if v.self == silent {
					continue
				}
				if got := v.of(f, settled); got != h {
					t.Fatalf("%s: gateway %s says %s is served by %s, gateway %s says %s", f, views[0].self, f, h, v.self, got)
				}
			}
			out[f] = h
		}
		return out
	}
	// Heard once, just now: live at once, not settled.
	before := homeOf(false, "")
	for _, f := range facilities {
		if got := views[0].of(f, true); got != views[0].self {
			t.Fatalf("%s: settled home %s before anyone was heard for %v, want this gateway", f, got, homeSettle)
		}
	}
	count := map[string]int{}
	for _, h := range before {
		count[h]++
	}
	for _, g := range all {
		if count[g] < 60 || count[g] > 140 {
			t.Errorf("gateway %s serves %d of %d facilities: not spread (%v)", g, count[g], len(facilities), count)
		}
	}

	for range int(homeSettle / homeBeat) {
		clk.Advance(homeBeat)
		hearAll("")
	}
	if settled := homeOf(true, ""); fmt.Sprint(settled) != fmt.Sprint(before) {
		t.Fatalf("settled homes after %v differ from the live ones", homeSettle)
	}

	// gw2 stops announcing; the others keep hearing each other.
	for range 4 {
		clk.Advance(homeBeat)
		hearAll(all[1])
	}
	during := homeOf(false, all[1])
	moved := 0
	for _, f := range facilities {
		switch {
		case during[f] == all[1]:
			t.Fatalf("%s still served by %s, not heard for %v", f, all[1], 4*homeBeat)
		case before[f] != all[1] && during[f] != before[f]:
			t.Fatalf("%s moved from %s to %s although its gateway is live", f, before[f], during[f])
		case before[f] == all[1]:
			moved++
		}
	}
	if moved != count[all[1]] {
		t.Fatalf("%d facilities moved, want gw2's %d", moved, count[all[1]])
	}

	// gw2 is heard again: new connections go back at once, held ones after homeSettle.
	hearAll("")
	if after := homeOf(false, ""); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("homes after gw2 came back differ from before it went")
	}
	if settled := homeOf(true, all[1]); fmt.Sprint(settled) != fmt.Sprint(during) {
		t.Fatal("settled homes moved back to gw2 as soon as it was heard")
	}
	for range int(homeSettle / homeBeat) {
		clk.Advance(homeBeat)
		hearAll("")
	}
	if settled := homeOf(true, ""); fmt.Sprint(settled) != fmt.Sprint(before) {
		t.Fatalf("settled homes after %v differ from before gw2 went", homeSettle)
	}

	// An owner record names a live gateway by its id.
	if url, ok := views[0].ownerGateway([]byte{3}); !ok || url != all[2] {
		t.Fatalf("owner id 3 names %q (%v), want %s", url, ok, all[2])
	}
	// A gateway that says it is going is down at once, and back when heard again.
	views[0].heard("-" + all[2])
	if views[0].live(all[2]) {
		t.Fatal("a gateway that said it was going is still taken as live")
	}
	if _, ok := views[0].ownerGateway([]byte{3}); ok {
		t.Fatal("an owner record names a gateway that said it was going")
	}
	views[0].heard(all[2])
	if !views[0].live(all[2]) || views[0].settledAt(all[2]) {
		t.Fatal("a gateway heard again after going is not live, or is settled at once")
	}

	// A gateway of another list is not heard; homes off serve everything here.
	views[0].heard("wss://stranger.example")
	if _, ok := views[0].last["wss://stranger.example"]; ok {
		t.Fatal("a gateway not in the relay's list was taken as live")
	}
	var off *homes
	if off.on() || off.of("facility-001", false) != "" {
		t.Fatal("a relay without homes has one")
	}
}

// live reports whether gateway url is taken as live now.
func (h *homes) live(url string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[url]
	return ok && h.clock.Mono()-last <= homeLapse
}

// heardNow reports whether gateway url (of the list, or a stranger) was heard at the clock's
// reading now.
func (h *homes) heardNow(url string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Mono()
	last, ok := h.last[url]
	if !ok {
		last, ok = h.strangers[url]
	}
	return ok && last == now
}

// settledAt reports whether gateway url has been heard without a lapse for homeSettle.
func (h *homes) settledAt(url string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, ok := h.last[url]
	return ok && h.clock.Mono()-last <= homeLapse && h.clock.Mono()-h.since[url] >= homeSettle
}

// homeGateways is one of two relay gateways on one store, serving on a listener opened before
// the relay so that its URL is in Config.Gateways; opts change both gateways' Config.
func homeGateways(t *testing.T, opts ...func(*Config)) (clk *clock.Fake, gw [2]*env, urls [2]string, store [2]kv.Store) {
	t.Helper()
	var c *natstest.Cluster
	if os.Getenv(storeEnv) == "jetstream" {
		c = natstest.Start(t)
	}
	return homeGatewaysOn(t, c, opts...)
}

// homeGatewaysOn is homeGateways on cluster c (each gateway through a node of its own), or on
// one bbolt file when c is nil.
func homeGatewaysOn(t *testing.T, c *natstest.Cluster, opts ...func(*Config)) (clk *clock.Fake, gw [2]*env, urls [2]string, store [2]kv.Store) {
	t.Helper()
	var lns [2]net.Listener
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], urls[i] = ln, "http://"+ln.Addr().String()
	}
	if c != nil {
		store = [2]kv.Store{jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")}
	} else {
		db, err := boltkv.Open(filepath.Join(t.TempDir(), "shared.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		store = [2]kv.Store{db, db}
	}
	clk = clock.NewFake(t0)
	for i := range gw {
		gw[i] = &env{t: t, dir: t.TempDir(), clock: clk, spool: t.TempDir()}
		gw[i].cfg = Config{DataDir: gw[i].dir, Clock: clk, AdminToken: testToken, PINParams: kiosk.TestPINParams(),
			Logf: gw[i].logf, HandshakeTimeout: 2 * time.Second, PingInterval: time.Hour,
			Store: store[i], Gateways: urls[:], GatewayURL: urls[i]}
		for _, o := range opts {
			o(&gw[i].cfg)
		}
	}
	for i, e := range gw {
		e.serveOn(lns[i])
		t.Cleanup(e.close)
	}
	return clk, gw, urls, store
}

// serveOn opens the env's relay and serves it on ln.
func (e *env) serveOn(ln net.Listener) {
	e.t.Helper()
	r, err := Open(e.cfg)
	if err != nil {
		e.t.Fatalf("open gateway %s: %v", e.cfg.GatewayURL, err)
	}
	e.r = r
	e.srv = httptest.NewUnstartedServer(r)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
}

// hearEachOther advances the gateways' clock by a beat until each takes the other as live.
func hearEachOther(t *testing.T, clk *clock.Fake, gw [2]*env, urls [2]string, settled bool) {
	t.Helper()
	testwait.Until(t, "the gateways hear each other", func() bool {
		a, b := gw[0].r.homes, gw[1].r.homes
		ok := a.of("north", settled) == b.of("north", settled) && a.live(urls[1]) && b.live(urls[0])
		if settled {
			ok = ok && a.settledAt(urls[1]) && b.settledAt(urls[0])
		}
		if !ok {
			clk.Advance(homeBeat)
		}
		return ok
	})
}

// hello runs a handshake with the given hello flags and returns the frame that answers auth
// (welcome or redirect) and the connection.
func (tm *term) hello(t *testing.T, url string, redirects, redirected bool) (wire.Frame, *websocket.Conn) {
	t.Helper()
	c := dial(t, "ws"+strings.TrimPrefix(url, "http")+wire.PathTerminal)
	send(t, c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch, Software: "test", Redirects: redirects, Redirected: redirected})
	f := read(t, c)
	if f.Type != wire.TypeChallenge {
		t.Fatalf("got %s, want challenge", f.Type)
	}
	send(t, c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)})
	return read(t, c), c
}

// A terminal that follows redirects and reaches the gateway that does not serve its facility
// is sent to the one that does, before anything is claimed or written for it; one that says
// it was redirected already, and an older terminal, are served where they are.
func TestTerminalSentToItsFacilitysGateway(t *testing.T) {
	clk, gw, urls, store := homeGateways(t)
	gw[0].seed()
	hearEachOther(t, clk, gw, urls, false)
	home := gw[0].r.homes.of("north", false)
	at, other := 0, 1
	if home == urls[0] {
		at, other = 1, 0 // the terminal first reaches the gateway that is not north's
	}
	k := gw[0].enroll(wire.ModeKiosk, "")

	f, c := k.hello(t, urls[at], true, false)
	if f.Type != wire.TypeRedirect || f.Redirect.URL != urls[other] {
		t.Fatalf("got %s frame %+v, want a redirect to %s", f.Type, f.Redirect, urls[other])
	}
	if _, closed := outcome(t, c); closed == nil || closed.Code != websocket.StatusNormalClosure || closed.Reason != wire.ReasonRedirect {
		t.Fatalf("after the redirect: %v, want a normal close saying %q", closed, wire.ReasonRedirect)
	}
	claimed := false
	if err := store[at].View(t.Context(), func(tx kv.Tx) error {
		claimed = tx.Bucket([]byte(bOwners)).Get([]byte(k.id)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if claimed {
		t.Fatal("the redirecting gateway claimed the terminal")
	}
	if got := value(gw[at].scrape(), "tether_gateway_homes_total", map[string]string{"action": "redirected"}); got != 1 {
		t.Fatalf("redirects counted: %v, want 1", got)
	}

	// Where it was sent, it is served, and its batch is stored.
	f, c = k.hello(t, urls[other], true, true)
	if f.Type != wire.TypeWelcome {
		t.Fatalf("at its facility's gateway: got %s, want welcome", f.Type)
	}
	tc := &tconn{t: t, c: c, term: k, w: *f.Welcome}
	if ack := tc.batch(k.item(wire.UpDeviceStatus, map[string]any{"printer": "ok"})); ack.Seq != 1 {
		t.Fatalf("ack = %+v", ack)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// Served where they are: a terminal that followed a redirect already, and one that does
	// not follow them.
	for _, flags := range [][2]bool{{true, true}, {false, false}} {
		f, c := k.hello(t, urls[at], flags[0], flags[1])
		if f.Type != wire.TypeWelcome {
			t.Fatalf("redirects=%v redirected=%v: got %s, want welcome", flags[0], flags[1], f.Type)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// A gateway that comes back draws its facilities' terminals back once it has been heard for
// homeSettle: the other closes their connections (going away, ReasonMoved), and a terminal
// that came by a redirect, or follows none, keeps its connection.
func TestGatewayBackDrawsItsFacilitysTerminals(t *testing.T) {
	clk, gw, urls, _ := homeGateways(t)
	gw[0].seed()
	hearEachOther(t, clk, gw, urls, false)
	home := gw[0].r.homes.of("north", false)
	away := 0 // the gateway that is not north's home
	if home == urls[0] {
		away = 1
	}
	back := 1 - away
	movable := gw[0].enroll(wire.ModeKiosk, "")
	stays := gw[0].enroll(wire.ModeKiosk, "")
	old := gw[0].enroll(wire.ModeKiosk, "")
	// north's gateway closes, saying so: its terminals are served by the other at once,
	// without waiting for the lapse (the clock does not move).
	gw[back].close()
	testwait.Until(t, "north served by the other gateway", func() bool {
		return gw[away].r.homes.of("north", false) == urls[away]
	})
	conns := map[*term]*websocket.Conn{}
	for tm, flags := range map[*term][2]bool{movable: {true, false}, stays: {true, true}, old: {false, false}} {
		f, c := tm.hello(t, urls[away], flags[0], flags[1])
		if f.Type != wire.TypeWelcome {
			t.Fatalf("got %s, want welcome while north's gateway is down", f.Type)
		}
		conns[tm] = c
	}
	// It comes back (on the same URL); the terminals are moved only once it has settled.
	lnBack, err := net.Listen("tcp", strings.TrimPrefix(urls[back], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	gw[back].serveOn(lnBack)
	hearEachOther(t, clk, gw, urls, false)
	// Whether a beat has run since or not: nothing is moved yet.
	if n := gw[away].r.sendHome(homeMovesPerBeat); n != 0 || gw[away].r.hub.session(movable.id).moved.Load() {
		t.Fatal("a terminal was moved before its gateway settled")
	}
	hearEachOther(t, clk, gw, urls, true)
	clk.Advance(homeBeat)
	if _, closed := outcome(t, conns[movable]); closed == nil || closed.Code != websocket.StatusGoingAway || closed.Reason != wire.ReasonMoved {
		t.Fatalf("the movable terminal's connection: %v, want going away saying %q", closed, wire.ReasonMoved)
	}
	for _, tm := range []*term{stays, old} {
		tc := &tconn{t: t, c: conns[tm], term: tm}
		if ack := tc.batch(tm.item(wire.UpDeviceStatus, map[string]any{"printer": "ok"})); ack.Seq != 1 {
			t.Fatalf("a terminal that cannot be moved: ack = %+v", ack)
		}
	}
	if got := value(gw[away].scrape(), "tether_gateway_homes_total", map[string]string{"action": "moved"}); got != 1 {
		t.Fatalf("moves counted: %v, want 1", got)
	}
	// Coming back, the moved terminal is sent home.
	if f, _ := movable.hello(t, urls[away], true, false); f.Type != wire.TypeRedirect || f.Redirect.URL != urls[back] {
		t.Fatalf("the moved terminal reconnecting: got %s, want a redirect to %s", f.Type, urls[back])
	}
}

// On a relay with homes, every gateway shows a terminal connected through another as
// connected, naming that gateway, and no longer once the connection ends or that gateway
// goes.
func TestConnectedThroughAnotherGatewayShown(t *testing.T) {
	clk, gw, urls, _ := homeGateways(t)
	gw[0].seed()
	hearEachOther(t, clk, gw, urls, false)
	k := gw[0].enroll(wire.ModeKiosk, "")
	shown := func(e *env) TerminalInfo {
		t.Helper()
		ts, err := e.r.Terminals()
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range ts {
			if ti.ID == k.id {
				return ti
			}
		}
		t.Fatalf("terminal %s not listed", k.id)
		return TerminalInfo{}
	}
	waitShown := func(what string, e *env, connected bool, gateway string) {
		t.Helper()
		testwait.UntilSaw(t, what, func() (bool, string) {
			ti := shown(e)
			return ti.Connected == connected && ti.Gateway == gateway, fmt.Sprintf("connected %v through %q", ti.Connected, ti.Gateway)
		})
	}

	f, c := k.hello(t, urls[1], false, false) // served where it lands
	if f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	waitShown("gateway 1 shows the terminal connected through gateway 2", gw[0], true, urls[1])
	if ti := shown(gw[1]); !ti.Connected || ti.Gateway != urls[1] {
		t.Fatalf("gateway 2 shows its own connection: connected %v through %q", ti.Connected, ti.Gateway)
	}
	c.Close(websocket.StatusNormalClosure, "")
	waitShown("gateway 1 shows the connection ended", gw[0], false, "")

	_, c = k.hello(t, urls[1], false, false)
	go func() { // reads what comes, and so answers the gateway's close as it goes
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	waitShown("gateway 1 shows the terminal connected again", gw[0], true, urls[1])
	gw[1].close() // says it is going; its record of the connection stays, naming a gateway gone
	waitShown("gateway 1 shows the terminal gone with its gateway", gw[0], false, "")
}

// A gateway that works out homes from another -gateways list (another set of URLs, or a URL
// this gateway does not list) is reported while it is heard, and only it: the same list in
// another order, and an older gateway that announces no list, are not. It changes no home
// here, and a flood of strangers keeps at most maxStrangers.
func TestGatewaysWithAnotherListAreReported(t *testing.T) {
	all := []string{"wss://gw1.example:8443", "wss://gw2.example:8443", "wss://gw3.example:8443"}
	clk := clock.NewFake(t0)
	v := newHomes(all[0], []byte{1}, all, clk)
	reordered := newHomes(all[1], []byte{2}, []string{all[2], all[1], all[0], all[1]}, clk)
	short := newHomes(all[2], []byte{3}, all[1:], clk)
	stranger := newHomes("wss://gw4.example:8443", []byte{4}, append(slices.Clone(all), "wss://gw4.example:8443"), clk)
	homesBefore := map[string]string{}
	for i := range 50 {
		f := fmt.Sprintf("facility-%02d", i)
		v.heard(string(reordered.announcement()))
		v.heard(string(short.announcement()))
		homesBefore[f] = v.of(f, false)
	}
	if got := v.disagreeing(); fmt.Sprint(got) != fmt.Sprint([]string{all[2]}) {
		t.Fatalf("disagreeing = %v, want only %s (the same list reordered agrees)", got, all[2])
	}
	v.heard(string(stranger.announcement()))
	if got := v.disagreeing(); fmt.Sprint(got) != fmt.Sprint([]string{all[2], stranger.self}) {
		t.Fatalf("disagreeing = %v, want %s and the stranger %s", got, all[2], stranger.self)
	}
	for f, h := range homesBefore {
		if got := v.of(f, false); got != h {
			t.Fatalf("%s: home %s after a stranger was heard, was %s", f, got, h)
		}
	}
	// The short-listed gateway is fixed and restarted; an older build announces no list id.
	v.heard("-" + all[2])
	v.heard(all[2] + " 03")
	if got := v.disagreeing(); fmt.Sprint(got) != fmt.Sprint([]string{stranger.self}) {
		t.Fatalf("disagreeing after %s went and came back without a list id = %v", all[2], got)
	}
	if !v.live(all[2]) {
		t.Fatalf("an announcement without a list id does not make %s live", all[2])
	}
	// Not heard for a lapse: forgotten.
	clk.Advance(homeLapse + time.Second)
	if got := v.disagreeing(); len(got) != 0 {
		t.Fatalf("disagreeing after %v of silence = %v", homeLapse, got)
	}
	for i := range 10 * maxStrangers {
		v.heard(fmt.Sprintf("wss://forged-%d.example:8443 00 ff", i))
	}
	if n := len(v.disagreeing()); n != maxStrangers {
		t.Fatalf("%d strangers kept after a flood, want the bound %d", n, maxStrangers)
	}
	v.heard("")
	v.heard("   ")
	clk.Advance(homeLapse + time.Second)
	v.heard("wss://" + strings.Repeat("x", maxStrangerURL) + ".example:8443 00 ff")
	v.heard("wss://esc\x1b[2Jape.example:8443 00 ff")
	if got := v.disagreeing(); len(got) != 0 {
		t.Fatalf("a stranger with an overlong URL or a control character was kept: %q", got)
	}
}

// Two gateways on one store, and a third started with another -gateways list: each of the
// first two reports it in tether_gateway_lists_differ and logs it once, the third reports
// both, and once it goes the count is 0 again.
func TestGatewayWithAnotherListShownInMetricsAndLog(t *testing.T) {
	clk, gw, urls, store := homeGateways(t)
	hearEachOther(t, clk, gw, urls, false)
	for _, e := range gw {
		if got := value(e.scrape(), "tether_gateway_lists_differ", nil); got != 0 {
			t.Fatalf("tether_gateway_lists_differ = %v with the same lists", got)
		}
	}
	third := "http://gw3.example:8443"
	odd := &env{t: t, dir: t.TempDir(), clock: clk, spool: t.TempDir()}
	odd.cfg = gw[1].cfg
	odd.cfg.DataDir, odd.cfg.Logf, odd.cfg.Store = odd.dir, odd.logf, store[1]
	odd.cfg.Gateways, odd.cfg.GatewayURL = []string{urls[0], urls[1], third}, third
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	odd.serveOn(ln)
	t.Cleanup(odd.close)
	both := []string{urls[0], urls[1]}
	slices.Sort(both) // as listed: by URL
	// The clock moves a beat only once every gateway heard every other's announcement of the
	// last one, so none lapses in another's view however slowly the messages go: each is
	// logged once, not again at a lapse and return.
	views := []*homes{gw[0].r.homes, gw[1].r.homes, odd.r.homes}
	for beat := range 6 {
		clk.Advance(homeBeat)
		testwait.UntilSaw(t, fmt.Sprintf("beat %d heard by every gateway", beat), func() (bool, string) {
			for _, v := range views {
				for _, w := range views {
					if v != w && !v.heardNow(w.self) {
						return false, v.self + " has not heard " + w.self
					}
				}
			}
			return true, ""
		})
	}
	if fmt.Sprint(gw[0].r.GatewaysDisagreeing()) != fmt.Sprint([]string{third}) ||
		fmt.Sprint(gw[1].r.GatewaysDisagreeing()) != fmt.Sprint([]string{third}) ||
		fmt.Sprint(odd.r.GatewaysDisagreeing()) != fmt.Sprint(both) {
		t.Fatalf("disagreeing: %v, %v, %v; want %s, %s and %v", gw[0].r.GatewaysDisagreeing(), gw[1].r.GatewaysDisagreeing(),
			odd.r.GatewaysDisagreeing(), third, third, both)
	}
	if a, b := value(gw[0].scrape(), "tether_gateway_lists_differ", nil), value(odd.scrape(), "tether_gateway_lists_differ", nil); a != 1 || b != 2 {
		t.Fatalf("tether_gateway_lists_differ = %v and %v, want 1 and 2", a, b)
	}
	const warning = "works out facility homes from another -gateways list than this one's"
	for _, e := range gw {
		if n := strings.Count(e.logText(), third+" "+warning); n != 1 {
			t.Errorf("gateway logged the one with another list %d times, want once:\n%s", n, e.logText())
		}
	}
	if h := gw[0].r.HomeOf("north"); h == third {
		t.Errorf("a gateway outside the list became a facility's home")
	}
	odd.close()
	testwait.Until(t, "the gateways report none once it went", func() bool {
		clk.Advance(homeBeat)
		return value(gw[0].scrape(), "tether_gateway_lists_differ", nil) == 0 && value(gw[1].scrape(), "tether_gateway_lists_differ", nil) == 0
	})
}

// On gateways with facility homes each terminal's series come from the gateway that serves its
// facility, whichever gateway its connection is on, and the fleet's gauges are that gateway's
// share: summed over gateways they are the fleet's, as the alert rules read them
// (deploy/prometheus). tether_gateway_connections is each gateway's own connections.
func TestEachTerminalReportedByItsFacilitysGateway(t *testing.T) {
	clk, gw, urls, _ := homeGateways(t)
	hearEachOther(t, clk, gw, urls, false)
	var facAt [2]string // a facility served by each gateway
	for i := 0; facAt[0] == "" || facAt[1] == ""; i++ {
		f := fmt.Sprintf("fac-%d", i)
		switch gw[0].r.HomeOf(f) {
		case urls[0]:
			facAt[0] = cmp.Or(facAt[0], f)
		case urls[1]:
			facAt[1] = cmp.Or(facAt[1], f)
		}
	}
	for _, f := range facAt {
		if err := gw[0].r.PutPolicy(f, kiosk.DefaultPolicy()); err != nil {
			t.Fatal(err)
		}
	}
	a1, a2 := gw[0].enrollAt(facAt[0], wire.ModeKiosk, ""), gw[0].enrollAt(facAt[0], wire.ModeKiosk, "")
	b1 := gw[1].enrollAt(facAt[1], wire.ModeKiosk, "")
	keepReading := func(c *websocket.Conn) {
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	// a1 is served by gateway 2 although its facility's home is gateway 1 (an older terminal
	// that follows no redirect); b1 by its own home, gateway 2; a2 is not connected.
	for _, k := range []*term{a1, b1} {
		f, c := k.hello(t, urls[1], false, false)
		if f.Type != wire.TypeWelcome {
			t.Fatalf("got %s, want welcome", f.Type)
		}
		keepReading(c)
	}
	type report struct {
		terminals                       string // the terminals with series, sorted
		connectedSeries                 string // those whose tether_terminal_connected is 1
		enrolled, connected, gatewayOwn float64
	}
	reported := func(e *env) report {
		fams := e.scrape()
		var all, on []string
		if f := fams["tether_terminal_connected"]; f != nil {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if l.GetName() == "terminal" {
						all = append(all, l.GetValue())
						if m.GetGauge().GetValue() == 1 {
							on = append(on, l.GetValue())
						}
					}
				}
			}
		}
		slices.Sort(all)
		slices.Sort(on)
		return report{fmt.Sprint(all), fmt.Sprint(on), value(fams, "tether_terminals_enrolled", nil),
			value(fams, "tether_terminals_connected", nil), value(fams, "tether_gateway_connections", nil)}
	}
	sorted := func(ids ...string) string { slices.Sort(ids); return fmt.Sprint(ids) }
	want := [2]report{
		{sorted(a1.id, a2.id), sorted(a1.id), 2, 1, 0},
		{sorted(b1.id), sorted(b1.id), 1, 1, 2},
	}
	for i, e := range gw {
		testwait.UntilSaw(t, fmt.Sprintf("gateway %d reports its facility's terminals", i+1), func() (bool, string) {
			got := reported(e)
			return got == want[i], fmt.Sprintf("%+v, want %+v", got, want[i])
		})
	}
}

// A connection that ends while the cluster has no quorum cannot delete its owner record; left
// there, the terminal would show online through that gateway (and so raise no offline alert)
// for as long as the gateway lives. Its gateway deletes the record at a beat once the store
// takes writes again, and the other gateway then shows the terminal offline.
func TestReleaseThatFailedIsDoneOnceTheStoreTakesWrites(t *testing.T) {
	c := natstest.Start(t)
	clk, gw, urls, _ := homeGatewaysOn(t, c)
	gw[0].seed()
	hearEachOther(t, clk, gw, urls, false)
	k := gw[0].enroll(wire.ModeKiosk, "")
	online := func(e *env) (bool, string) {
		ts, err := e.r.Terminals()
		if err != nil {
			return false, err.Error()
		}
		for _, ti := range ts {
			if ti.ID == k.id {
				return ti.Connected, fmt.Sprintf("connected %v through %q", ti.Connected, ti.Gateway)
			}
		}
		return false, "not listed"
	}
	f, conn := k.hello(t, urls[1], false, false)
	if f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	testwait.UntilSaw(t, "gateway 1 shows the terminal online through gateway 2", func() (bool, string) { return online(gw[0]) })

	c.StopQuorum(0) // node 0 stays, without the other two
	conn.Close(websocket.StatusNormalClosure, "")
	testwait.UntilSaw(t, "gateway 2 fails to release the terminal", func() (bool, string) {
		return strings.Contains(gw[1].logText(), "release terminal "+k.id), gw[1].logText()
	})
	c.Restart(1)
	c.Restart(2)
	testwait.UntilSaw(t, "gateway 1 shows the terminal offline once the store takes writes", func() (bool, string) {
		clk.Advance(homeBeat)
		on, saw := online(gw[0])
		return !on && strings.HasPrefix(saw, "connected false"), saw
	})
	// Not only shown offline (which a lapse of gateway 2 in gateway 1's view would also do):
	// the record is gone from the store.
	testwait.UntilSaw(t, "the owner record deleted", func() (bool, string) {
		clk.Advance(homeBeat)
		var rec []byte
		err := gw[0].r.db.View(context.Background(), func(tx kv.Tx) error {
			rec = tx.Bucket([]byte(bOwners)).Get([]byte(k.id))
			return nil
		})
		return err == nil && rec == nil, fmt.Sprintf("record %x, %v", rec, err)
	})
	if !strings.Contains(gw[1].logText(), "released 1 terminals whose release had failed") {
		t.Errorf("gateway 2 did not say it released the terminal again:\n%s", gw[1].logText())
	}
}
