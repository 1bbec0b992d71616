package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

const adminToken = "e2e-admin-token-0123456789abcdef"

// relayEnv is a real relay on its own data directory and listener; restart keeps the directory.
type relayEnv struct {
	t    testing.TB
	dir  string
	hold relay.HoldPolicy
	r    *relay.Relay
	srv  *http.Server
	ln   net.Listener

	// jsonChunks: the relay behaves as one before binary chunks (relay.Config.JSONChunksOnly).
	jsonChunks bool
	// store is the relay's JetStream store when the tests run on one (storeEnv), kept
	// across restarts; nil for the bbolt file in dir.
	store kv.Store
	// flog is the facility log the relay holds its facilities in (storeHeld), nil for none.
	flog faclog.Log
	// downLogCap and clock, if set, are the relay's Config.DownLogCap and Config.Clock.
	downLogCap uint64
	clock      clock.Clock
}

func startRelay(t testing.TB, dir string) *relayEnv {
	t.Helper()
	return startRelayHold(t, dir, relay.HoldNone)
}

func startRelayHold(t testing.TB, dir string, hold relay.HoldPolicy) *relayEnv {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := &relayEnv{t: t, dir: dir, hold: hold}
	if onJetStream() {
		e.store, e.flog = jetStore(t)
	}
	e.open()
	t.Cleanup(e.stop)
	return e
}

func (e *relayEnv) open() {
	e.t.Helper()
	r, err := relay.Open(relay.Config{DataDir: e.dir, Store: e.store, AdminToken: adminToken, PINParams: kiosk.TestPINParams(),
		HoldPolicy: e.holdPolicy(), HandshakeTimeout: 5 * time.Second, Logf: quiet, JSONChunksOnly: e.jsonChunks,
		Notifier:   relay.SpoolNotifier{Dir: e.spool(), From: "Tether <invite@relay.example>"},
		DownLogCap: e.downLogCap, Clock: e.clock, FacilityLog: e.flog, GroupLinger: e.groupLinger()})
	if err != nil {
		e.t.Fatalf("open relay: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.r, e.ln = r, ln
	e.srv = &http.Server{Handler: r}
	go e.srv.Serve(ln)
}

// groupLinger is relayd's on a relay that holds its facilities on the real clock, so that the
// suite on jetstream-held runs its group commits as relayd does; on a fake clock none, as a
// busy facility's group would wait for the test to move the clock.
func (e *relayEnv) groupLinger() time.Duration {
	if e.flog == nil || e.clock != nil {
		return 0
	}
	return relay.DefaultGroupLinger
}

// stop shuts the relay down (terminals see 1001) and releases its file.
func (e *relayEnv) stop() {
	if e.r == nil {
		return
	}
	e.srv.Close()
	if err := e.r.Close(); err != nil {
		e.t.Errorf("close relay: %v", err)
	}
	e.r = nil
}

func (e *relayEnv) restart() {
	e.t.Helper()
	e.stop()
	e.open()
}

func (e *relayEnv) holdPolicy() relay.HoldPolicy {
	if e.hold == "" {
		return relay.HoldNone
	}
	return e.hold
}

func (e *relayEnv) addr() string { return e.ln.Addr().String() }

// spool is where the relay writes contact invitations (one email file each).
func (e *relayEnv) spool() string { return filepath.Join(e.dir, "invitations") }

func quiet(string, ...any) {}

// seed makes facility "north" with inmates A1 and A2 (money on account) and technician T1.
func (e *relayEnv) seed() {
	e.t.Helper()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxSession = kiosk.Duration(24 * time.Hour)
	p.Cooldown = 0
	p.OfflineSpendCap = 100000
	p.Curfew = nil
	p.Lockdown = false
	if err := e.r.PutPolicy("north", p); err != nil {
		e.t.Fatal(err)
	}
	ro := relay.Roster{
		Inmates: []relay.RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive},
		},
		Technicians: []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}},
	}
	if err := e.r.PutRoster("north", ro); err != nil {
		e.t.Fatal(err)
	}
	for _, id := range []string{"A1", "A2"} {
		if _, _, err := e.r.Deposit(relay.DepositRequest{InmateID: id, Cents: 50000, Ref: "seed-" + id}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *relayEnv) code(mode, inmate string) string {
	e.t.Helper()
	en, err := e.r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: mode, InmateID: inmate})
	if err != nil {
		e.t.Fatal(err)
	}
	return en.Code
}

// proxy forwards 127.0.0.1 TCP connections to the relay; it can cut them all, or cut each one
// after a random number of bytes (mid-frame), and its backend can move (a restarted relay).
type proxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	conns   map[net.Conn]struct{}
	budget  func() int64 // bytes a connection may carry before it is cut; nil: no limit
	cuts    atomic.Int64
}

func startProxy(t testing.TB, backend string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) setBackend(addr string) {
	p.mu.Lock()
	p.backend = addr
	p.mu.Unlock()
}

// setBudget makes every new connection die after a random number of bytes in [lo, hi).
func (p *proxy) setBudget(lo, hi int64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var mu sync.Mutex
	p.mu.Lock()
	p.budget = func() int64 { mu.Lock(); defer mu.Unlock(); return lo + rng.Int64N(hi-lo) }
	if lo <= 0 {
		p.budget = nil
	}
	p.mu.Unlock()
}

// cutAll closes every connection through the proxy and says how many sockets it closed (two
// for each terminal connection: the terminal's side and the relay's).
func (p *proxy) cutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	return len(p.conns)
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(c net.Conn) {
	p.mu.Lock()
	backend, budgetFn := p.backend, p.budget
	p.mu.Unlock()
	b, err := net.DialTimeout("tcp", backend, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[b] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var left atomic.Int64
	left.Store(1 << 62)
	if budgetFn != nil {
		left.Store(budgetFn())
	}
	var once sync.Once
	done := func() {
		once.Do(func() {
			c.Close()
			b.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, b)
			p.mu.Unlock()
		})
	}
	pipe := func(dst, src net.Conn) {
		defer done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				rem := left.Add(-int64(n))
				if rem < 0 {
					// Write what fits in the budget, then cut: the peer sees half a frame.
					if keep := int64(n) + rem; keep > 0 {
						dst.Write(buf[:keep])
					}
					p.cuts.Add(1)
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(b, c)
	go pipe(c, b)
}

// terminal is a real terminal: its own data directory, store, domain and sync engine.
type terminal struct {
	t      testing.TB
	dir    string
	store  *kiosk.Store
	term   *kiosk.Terminal
	eng    *client.Engine
	cancel context.CancelFunc
	done   chan struct{}
	cfg    func(*client.Config)
}

func openTerminal(t testing.TB, dir string, opts kiosk.StoreOptions) *terminal {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	tm := &terminal{t: t, dir: dir}
	s, err := kiosk.OpenStore(dir, opts)
	if err != nil {
		t.Fatalf("open terminal store: %v", err)
	}
	id := ""
	if en, err := client.LoadEnrollment(dir); err == nil {
		id = en.TerminalID
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(), ID: id})
	if err != nil {
		t.Fatalf("new terminal: %v", err)
	}
	tm.store, tm.term = s, term
	t.Cleanup(tm.close)
	return tm
}

// reopen closes the store and opens it again with opts, as a restart does (sync stays stopped).
func (tm *terminal) reopen(opts kiosk.StoreOptions) {
	tm.t.Helper()
	tm.close()
	s, err := kiosk.OpenStore(tm.dir, opts)
	if err != nil {
		tm.t.Fatalf("reopen terminal store: %v", err)
	}
	en, _ := client.LoadEnrollment(tm.dir)
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(), ID: en.TerminalID})
	if err != nil {
		tm.t.Fatalf("new terminal: %v", err)
	}
	tm.store, tm.term = s, term
}

func (tm *terminal) enroll(url, code string) client.Enrollment {
	tm.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	en, err := client.Enroll(ctx, client.EnrollConfig{DataDir: tm.dir, RelayURL: url, Code: code, Terminal: tm.term, Label: "e2e"})
	if err != nil {
		tm.t.Fatalf("enroll: %v", err)
	}
	return en
}

// syncedKiosk is how most tests begin: a seeded relay behind a proxy and one kiosk enrolled
// through it (its engine changed by change, if set) running with the roster applied.
func syncedKiosk(t testing.TB, change func(*client.Config)) (*relayEnv, *proxy, *terminal, client.Enrollment) {
	t.Helper()
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	en := tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.cfg = change
	tm.start()
	tm.waitRoster()
	return rl, px, tm, en
}

// start runs the sync engine with test-sized timings.
func (tm *terminal) start() {
	tm.t.Helper()
	cfg := client.Config{DataDir: tm.dir, Terminal: tm.term, BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		BatchDelay: 20 * time.Millisecond, PingInterval: 2 * time.Second, AckTimeout: 10 * time.Second, Handshake: 5 * time.Second}
	if tm.cfg != nil {
		tm.cfg(&cfg)
	}
	eng, err := client.New(cfg)
	if err != nil {
		tm.t.Fatalf("new sync engine: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm.eng, tm.cancel, tm.done = eng, cancel, make(chan struct{})
	go func() {
		defer close(tm.done)
		eng.Run(ctx)
	}()
}

func (tm *terminal) stopSync() {
	if tm.cancel == nil {
		return
	}
	tm.cancel()
	<-tm.done
	tm.cancel = nil
}

func (tm *terminal) close() {
	tm.stopSync()
	if tm.store != nil {
		tm.store.Close()
		tm.store = nil
	}
}

// login opens a billed session for an inmate through the real login flow.
func (tm *terminal) login(badge, pin string) kiosk.SessionInfo {
	tm.t.Helper()
	if _, err := tm.term.Badge(badge); err != nil {
		tm.t.Fatalf("badge %s: %v", badge, err)
	}
	p, err := tm.term.EnterPIN(badge, pin)
	if err != nil {
		tm.t.Fatalf("pin for %s: %v", badge, err)
	}
	si, err := tm.term.AcceptNotice(p)
	if err != nil {
		tm.t.Fatalf("accept notice for %s: %v", badge, err)
	}
	return si
}

// waitSynced waits until the terminal's queue is empty.
func (tm *terminal) waitSynced() {
	tm.t.Helper()
	// A backlog drains at the pace of the machine (a JetStream relay under a loaded CI box can
	// take minutes for a thousand letters): it fails only when the queue stops moving.
	testwait.UntilProgress(tm.t, "the terminal's queue to drain", func() (bool, string, string) {
		n, _, err := tm.store.QueueStats()
		return err == nil && n == 0, fmt.Sprint(n), fmt.Sprintf("%d waiting, err %v, status %+v", n, err, tm.eng.Status())
	})
}

// waitRoster waits until the downlink has brought the seeded inmates and their money.
func (tm *terminal) waitRoster() {
	tm.t.Helper()
	testwait.UntilSaw(tm.t, "roster and deposits on the terminal", func() (bool, string) {
		a, errA := tm.term.Balance("A1")
		b, errB := tm.term.Balance("A2")
		return errA == nil && errB == nil && a >= 50000 && b >= 50000, fmt.Sprintf("A1 %v %v, A2 %v %v", a, errA, b, errB)
	})
}

// helperEnv names the environment variable that turns the test binary into a child terminal.
const helperEnv = "TETHER_E2E_CHILD"

func childDir() string { return os.Getenv(helperEnv) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// approvedContact asks for a contact on the terminal (inmate logged in), has the relay approve
// it, and waits until the approval is back on the terminal. It returns the contact id.
func approvedContact(t testing.TB, rl *relayEnv, tm *terminal, inmate, name, email string) string {
	t.Helper()
	c, err := tm.term.AddContact(inmate, name, email)
	if err != nil {
		t.Fatalf("add contact: %v", err)
	}
	testwait.UntilSaw(t, "the contact request on the relay", func() (bool, string) {
		cs, err := rl.r.Contacts("", inmate)
		for _, rc := range cs {
			if rc.ID == c.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(cs, err)
	})
	if _, err := rl.r.ApproveContact(c.ID); err != nil {
		t.Fatalf("approve contact: %v", err)
	}
	// The contact answers the invitation on the family page.
	if st, page := familyAnswer(t, rl, spooledCode(t, rl.spool(), c.ID), relay.AnswerAccept); st != http.StatusOK {
		t.Fatalf("accept the invitation: %d\n%s", st, page)
	}
	testwait.UntilSaw(t, "the approval and acceptance on the terminal", func() (bool, string) {
		cs, err := tm.term.Contacts(inmate)
		for _, got := range cs {
			if got.ID == c.ID && kiosk.ContactMayWrite(got) && got.Invite == kiosk.InviteAccepted {
				return true, ""
			}
		}
		return false, fmt.Sprint(cs, err)
	})
	return c.ID
}

// admin calls the relay's admin HTTP API with the token; out (if not nil) receives the answer.
func (e *relayEnv) admin(method, path string, in, out any) {
	e.t.Helper()
	var rd io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+e.addr()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// metric is the value of the unlabelled series name the relay's /metrics shows now (-1 for
// none).
func (e *relayEnv) metric(name string) float64 {
	e.t.Helper()
	resp, err := http.Get("http://" + e.addr() + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	return -1
}
