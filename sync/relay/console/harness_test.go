package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Demo-style staff: one account per role, all of facility "north" (and "south" for admin).
const password = "correct horse battery"

var staff = map[string][]string{
	"mia":  {console.RoleMailroom},
	"bob":  {console.RoleBusiness},
	"tess": {console.RoleTechnician},
	"ada":  {console.RoleAdmin},
	"pam":  {console.RolePREA},
	"lin":  {console.RoleLibrary},
}

// env is a real relay with the console mounted beside it on one 127.0.0.1 listener, as relayd
// serves them; the console's clock is fake (rate limits, sessions), the relay's real.
type env struct {
	t     testing.TB
	r     *relay.Relay
	c     *console.Console
	clock *clock.Fake
	srv   *httptest.Server
}

func newEnv(t testing.TB, tls bool) *env { t.Helper(); return newEnvWith(t, tls, nil) }

// newEnvWith is newEnv with the relay's config changed by tune first (a notifier, a clock).
func newEnvWith(t testing.TB, tls bool, tune func(*relay.Config)) *env {
	t.Helper()
	return newEnvTuned(t, tls, tune, nil)
}

// newEnvTuned is newEnvWith with the console's config changed by tuneConsole too.
func newEnvTuned(t testing.TB, tls bool, tune func(*relay.Config), tuneConsole func(*console.Config)) *env {
	t.Helper()
	cfg := relay.Config{DataDir: t.TempDir(), PINParams: kiosk.TestPINParams(), HoldPolicy: relay.HoldAll,
		HandshakeTimeout: 5 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	r, err := relay.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(time.Now())
	ccfg := console.Config{Relay: r, Clock: fc, PasswordParams: kiosk.TestPINParams()}
	if tuneConsole != nil {
		tuneConsole(&ccfg)
	}
	c, err := console.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c)
	mux.Handle("/", r)
	e := &env{t: t, r: r, c: c, clock: fc}
	if tls {
		e.srv = httptest.NewTLSServer(mux)
	} else {
		e.srv = httptest.NewServer(mux)
	}
	t.Cleanup(func() { e.srv.Close(); r.Close() })
	e.seed()
	return e
}

// seed makes facilities north (inmates A1 Ana, A2 Bo) and south (S1 Sam), and the staff.
func (e *env) seed() {
	e.t.Helper()
	for fac, ins := range map[string][]relay.RosterInmate{
		"north": {{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive}},
		"south": {{ID: "S1", Name: "Sam", Badges: []string{"SB1"}, PIN: "3456", Language: "en", Status: kiosk.StatusActive}},
	} {
		p := kiosk.DefaultPolicy()
		p.FacilityName = strings.ToUpper(fac[:1]) + fac[1:]
		p.Cooldown, p.Curfew, p.Lockdown = 0, nil, false
		p.MaxSession = kiosk.Duration(24 * time.Hour)
		p.OfflineSpendCap = 100000
		if err := e.r.PutPolicy(fac, p); err != nil {
			e.t.Fatal(err)
		}
		if err := e.r.PutRoster(fac, relay.Roster{Inmates: ins}); err != nil {
			e.t.Fatal(err)
		}
		// Requests to staff are the held letters these tests review: a facility that reviews
		// them (their own setting, apart from the email hold).
		if err := e.r.SetMonitoring(fac, relay.Monitoring{HoldOutbound: true, RequestReview: relay.RequestReviewHold}); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, id := range []string{"A1", "A2", "S1"} {
		if _, _, err := e.r.Deposit(relay.DepositRequest{InmateID: id, Cents: 5000, Ref: "seed-" + id}); err != nil {
			e.t.Fatal(err)
		}
	}
	for name, roles := range staff {
		facs := []string{"north"}
		if name == "ada" {
			facs = []string{console.AllFacilities}
		}
		e.addStaff(name, roles, facs)
	}
}

func (e *env) addStaff(name string, roles, facs []string) {
	e.t.Helper()
	if _, err := e.c.Store().AddAccount(e.clock.Now(), "test", console.NewAccount{Username: name, Name: "Staff " + name,
		Password: password, Roles: roles, Facilities: facs}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) url(path string) string { return e.srv.URL + path }

// browser is an HTTP client with its own cookies that does not follow redirects, so each
// test sees the console's answers one by one.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	last string // the body of the last page
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // a copy: each browser keeps its own cookies
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: e.t, e: e, c: &c}
}

func (b *browser) do(req *http.Request) *http.Response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.last = string(raw)
	return resp
}

func (b *browser) get(path string) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.url(path), nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token of the forms on page path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	resp := b.get(path)
	m := csrfRE.FindStringSubmatch(b.last)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no csrf token in %.300s", path, resp.StatusCode, b.last)
	}
	return m[1]
}

// login signs in and returns the sign-in answer.
func (b *browser) login(user, pass string) *http.Response {
	b.t.Helper()
	tok := b.csrf("/console/login")
	return b.post("/console/login", url.Values{"csrf": {tok}, "username": {user}, "password": {pass}})
}

func (b *browser) mustLogin(user string) *browser {
	b.t.Helper()
	if resp := b.login(user, password); resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login %s: %d %.300s", user, resp.StatusCode, b.last)
	}
	return b
}

// postForm posts form to action with the CSRF token of page.
func (b *browser) postForm(page, action string, form url.Values) *http.Response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf(page))
	return b.post(action, form)
}

// terminal is a real kiosk of facility north: its own store, enrolled over 127.0.0.1 and
// syncing with the relay's websocket.
type terminal struct {
	t    testing.TB
	dir  string
	term *kiosk.Terminal
	en   client.Enrollment
	in   bool // A1 is logged in
}

func (e *env) kiosk(code string) *terminal { e.t.Helper(); return e.kioskOf(code, "A1") }

// southKiosk enrolls a kiosk of facility south, as kiosk does one of north's.
func (e *env) southKiosk() *terminal {
	e.t.Helper()
	en, err := e.r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "south", Mode: wire.ModeKiosk})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.kioskOf(en.Code, "S1")
}

// kioskOf enrolls a kiosk with code (a new one of north's if empty), runs it, and waits
// until it knows the balance of inmate, one of its facility's.
func (e *env) kioskOf(code, inmate string) *terminal {
	e.t.Helper()
	if code == "" {
		en, err := e.r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
		if err != nil {
			e.t.Fatal(err)
		}
		code = en.Code
	}
	dir := e.t.TempDir()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The same function `kioskctl enroll` calls.
	en, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dir, RelayURL: e.srv.URL, Code: code, Terminal: term, Label: "console-test"})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	eng, err := client.New(client.Config{DataDir: dir, Terminal: term, BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		BatchDelay: 20 * time.Millisecond, PingInterval: 2 * time.Second, AckTimeout: 10 * time.Second, Handshake: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(rctx) }()
	e.t.Cleanup(func() { stop(); <-done; s.Close() })
	tm := &terminal{t: e.t, dir: dir, term: term, en: en}
	testwait.UntilSaw(e.t, "the roster on the kiosk", func() (bool, string) {
		b, err := term.Balance(inmate)
		return err == nil && b >= 5000, fmt.Sprint(b, err)
	})
	return tm
}

// heldLetter has inmate A1 write body to the medical department on the kiosk and waits until
// the relay holds it for review. It returns the letter's id.
func (e *env) heldLetter(tm *terminal, body string) string {
	e.t.Helper()
	tm.login()
	m, err := tm.term.Send("A1", "dept-medical", "", body)
	if err != nil {
		e.t.Fatal(err)
	}
	testwait.UntilSaw(e.t, "the letter held on the relay", func() (bool, string) {
		held, err := e.r.Outbound(relay.OutboundFilter{Status: kiosk.MsgHeld})
		for _, o := range held {
			if o.ID == m.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(held), err)
	})
	return m.ID
}

// login opens A1's session on the kiosk through the real login flow, once.
func (tm *terminal) login() {
	tm.t.Helper()
	if tm.in {
		return
	}
	if _, err := tm.term.Badge("B1"); err != nil {
		tm.t.Fatal(err)
	}
	p, err := tm.term.EnterPIN("B1", "1234")
	if err != nil {
		tm.t.Fatal(err)
	}
	if _, err := tm.term.AcceptNotice(p); err != nil {
		tm.t.Fatal(err)
	}
	tm.in = true
}

// sentState is the state of letter id in A1's Sent box on the kiosk.
func (tm *terminal) sentState(id string) (string, string) {
	sent, err := tm.term.Sent("A1")
	if err != nil {
		tm.t.Fatal(err)
	}
	for _, m := range sent {
		if m.ID == id {
			return m.State, m.Reason
		}
	}
	return "", ""
}
