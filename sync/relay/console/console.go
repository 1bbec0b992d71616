// Package console is the staff and technician console of the relay: a web application served
// under /console/ from files embedded in the binary, with per-person accounts (argon2id
// passwords), roles scoped to facilities, server-side sessions, a CSRF token on every form, login
// rate limits and an audit log of every action. It calls the relay's Go methods, never its own
// admin API over HTTP; the bearer-token API stays for scripts.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/pinhash"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// Prefix is where the console lives on the relay's listener.
const Prefix = "/console/"

// Cookie names.
const (
	cookieSession = "tether_console"
	cookieLogin   = "tether_console_login" // the login form's CSRF token, before any session
)

//go:embed web
var webFS embed.FS

// Config wires a Console; only Relay is required.
type Config struct {
	Relay *relay.Relay
	Clock clock.Clock
	Logf  vocab.Logf
	// PasswordParams are argon2id costs of new passwords (zero: pinhash.DefaultParams).
	PasswordParams pinhash.Params
	// SecureCookies marks cookies Secure even when the request did not come over TLS here (a
	// TLS-terminating proxy in front). Over TLS they are always Secure.
	SecureCookies bool
	// SessionIdle and SessionMax end a session after that long unused, or that long at all
	// (defaults 30 minutes and 12 hours).
	SessionIdle, SessionMax time.Duration
	// AccountFailures failed logins within FailureWindow lock an account; AddressFailures do
	// the same for a client address (defaults 5, 20 and 15 minutes).
	AccountFailures, AddressFailures int
	FailureWindow                    time.Duration
	// AuditScan is how many entries of the audit log one page reads at most while it looks
	// for the entries its reader may see (default 10,000); past it the page links to the
	// older entries rather than reading on.
	AuditScan int
}

// Console is the console's http.Handler; mount it at Prefix.
type Console struct {
	cfg     Config
	r       *relay.Relay
	store   *Store
	clock   clock.Clock
	logf    vocab.Logf
	pages   map[string]*template.Template
	static  http.Handler
	mux     *http.ServeMux
	byUser  *limiter
	byAddr  *limiter
	screens []screen
}

// screen is one entry of the navigation and the role it needs.
type screen struct {
	Path, Title, Role string
}

// New opens the console's store in the relay's file and builds its routes.
func New(cfg Config) (*Console, error) {
	if cfg.Relay == nil {
		return nil, errors.New("console: a relay is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 12 * time.Hour
	}
	if cfg.AccountFailures <= 0 {
		cfg.AccountFailures = 5
	}
	if cfg.AddressFailures <= 0 {
		cfg.AddressFailures = 20
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 15 * time.Minute
	}
	if cfg.AuditScan <= 0 {
		cfg.AuditScan = 10000
	}
	st, err := OpenStore(cfg.Relay, cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, r: cfg.Relay, store: st, clock: cfg.Clock, logf: cfg.Logf,
		byUser: newLimiter(cfg.Clock, cfg.AccountFailures, cfg.FailureWindow),
		byAddr: newLimiter(cfg.Clock, cfg.AddressFailures, cfg.FailureWindow)}
	if err := c.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServer(http.FS(static)))
	c.routes()
	return c, nil
}

// Store gives the accounts, for relayd's `console-user` command and the demo.
func (c *Console) Store() *Store { return c.store }

func (c *Console) parse() error {
	c.pages = map[string]*template.Template{}
	funcs := template.FuncMap{
		"since":   func(t time.Time) string { return ago(c.clock.Now().Sub(t)) },
		"ago":     ago,
		"cents":   func(v vocab.Cents) string { return v.String() },
		"when":    func(t time.Time) string { return when(t) },
		"has":     func(a Account, role string) bool { return a.Has(role) },
		"contain": func(list []string, s string) bool { return slices.Contains(list, s) },
		"join":    strings.Join,
		"curfew":  formatCurfew,
	}
	names, err := fs.Glob(webFS, "web/*.html")
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "web/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", name)
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[base] = t
	}
	return nil
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ServeHTTP serves every console page with headers that keep the pages out of frames, caches
// and other origins' scripts.
func (c *Console) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, req)
}

// who is the signed-in staff member of a request.
type who struct {
	Account
	token string
	sess  session
}

// handler is a console page or action that needs a session with role ("" for any session).
type handler func(w http.ResponseWriter, req *http.Request, u who)

func (c *Console) routes() {
	c.screens = []screen{
		{"review", "Review queue", RoleMailroom},
		{"contacts", "Contacts", RoleMailroom},
		{"departments", "Departments", RoleMailroom},
		{"notices", "Notices", RoleMailroom},
		{"money", "Money", RoleBusiness},
		{"library", "Library", RoleLibrary},
		{"terminals", "Terminals", RoleTechnician},
		{"prea", "PREA reports", RolePREA},
		{"policy", "Policy", RoleAdmin},
		{"accounts", "Accounts", RoleAdmin},
		{"audit", "Audit log", RoleAdmin},
	}
	m := http.NewServeMux()
	m.Handle("GET "+Prefix+"static/", c.static)
	m.HandleFunc("GET "+Prefix+"login", c.loginPage)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.HandleFunc("GET "+Prefix+"{$}", c.need("", c.home))
	m.HandleFunc("POST "+Prefix+"logout", c.need("", c.logout))

	m.HandleFunc("GET "+Prefix+"review", c.need(RoleMailroom, c.reviewPage))
	m.HandleFunc("POST "+Prefix+"review/{id}/approve", c.need(RoleMailroom, c.approve))
	m.HandleFunc("POST "+Prefix+"review/{id}/reject", c.need(RoleMailroom, c.reject))
	m.HandleFunc("GET "+Prefix+"review/photos/{id}/{index}", c.letterPhoto) // photos.go: its own checks
	m.HandleFunc("POST "+Prefix+"review/photos/{id}/approve", c.need(RoleMailroom, c.approvePhotos))
	m.HandleFunc("POST "+Prefix+"review/photos/{id}/reject", c.need(RoleMailroom, c.rejectPhotos))
	m.HandleFunc("GET "+Prefix+"contacts", c.need(RoleMailroom, c.contactsPage))
	m.HandleFunc("POST "+Prefix+"contacts/{id}/{decision}", c.need(RoleMailroom, c.decideContact))
	m.HandleFunc("POST "+Prefix+"contacts/{id}/invite", c.need(RoleMailroom, c.inviteAgain))
	m.HandleFunc("GET "+Prefix+"departments", c.need(RoleMailroom, c.departmentsPage))
	m.HandleFunc("POST "+Prefix+"departments/{id}/reply", c.need(RoleMailroom, c.reply))
	m.HandleFunc("GET "+Prefix+"notices", c.need(RoleMailroom, c.noticesPage))
	m.HandleFunc("POST "+Prefix+"notices", c.need(RoleMailroom, c.postNotice))
	m.HandleFunc("GET "+Prefix+"money", c.need(RoleBusiness, c.moneyPage))
	m.HandleFunc("POST "+Prefix+"money/deposit", c.need(RoleBusiness, c.deposit))
	m.HandleFunc("POST "+Prefix+"money/refund", c.need(RoleBusiness, c.refund))
	m.HandleFunc("GET "+Prefix+"library", c.need(RoleLibrary, c.libraryPage))
	m.HandleFunc("POST "+Prefix+"library/track", c.need(RoleLibrary, c.publishTrack))
	m.HandleFunc("POST "+Prefix+"library/pages", c.need(RoleLibrary, c.publishPages))
	m.HandleFunc("POST "+Prefix+"library/course", c.need(RoleLibrary, c.publishCourse))
	m.HandleFunc("POST "+Prefix+"library/{facility}/{id}/withdraw", c.need(RoleLibrary, c.withdrawItem))
	m.HandleFunc("GET "+Prefix+"terminals", c.need(RoleTechnician, c.terminalsPage))
	m.HandleFunc("POST "+Prefix+"terminals/{id}/revoke", c.need(RoleTechnician, c.revoke))
	m.HandleFunc("POST "+Prefix+"terminals/enroll", c.need(RoleTechnician, c.enroll))
	m.HandleFunc("GET "+Prefix+"prea", c.need(RolePREA, c.preaPage))
	m.HandleFunc("GET "+Prefix+"policy", c.need(RoleAdmin, c.policyPage))
	m.HandleFunc("POST "+Prefix+"policy", c.need(RoleAdmin, c.putPolicy))
	m.HandleFunc("POST "+Prefix+"facilities", c.need(RoleAdmin, c.addFacility))
	m.HandleFunc("GET "+Prefix+"accounts", c.need(RoleAdmin, c.accountsPage))
	m.HandleFunc("POST "+Prefix+"accounts", c.need(RoleAdmin, c.addAccount))
	m.HandleFunc("POST "+Prefix+"accounts/{username}/{state}", c.need(RoleAdmin, c.setAccount))
	m.HandleFunc("GET "+Prefix+"audit", c.need(RoleAdmin, c.auditPage))
	m.HandleFunc(Prefix, func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "no such page", http.StatusNotFound)
	})
	c.mux = m
}

// need wraps h: no live session sends the browser to the login form; a session without role
// is refused with 403; a POST without the session's CSRF token is refused with 403 before h
// runs.
func (c *Console) need(role string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		u, ok := c.signedIn(req)
		if !ok {
			next := ""
			if req.Method == http.MethodGet {
				next = "?next=" + url.QueryEscape(req.URL.Path)
			}
			http.Redirect(w, req, Prefix+"login"+next, http.StatusSeeOther)
			return
		}
		if role != "" && !u.Has(role) {
			c.render(w, req, http.StatusForbidden, "error", u, pageData{Title: "Not allowed",
				Error: "Your account does not have the " + role + " role this page needs."})
			return
		}
		if req.Method == http.MethodPost && isMultipart(req) {
			// An upload (the library's media): the token is the form's first part, checked
			// before a byte of the file is read; the handler streams the rest.
			mr, ok := c.uploadToken(w, req, u)
			if !ok {
				return
			}
			req = req.WithContext(context.WithValue(req.Context(), uploadKey{}, mr))
		} else if req.Method == http.MethodPost {
			req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
			if err := req.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			if !sameToken(req.PostForm.Get("csrf"), u.sess.CSRF) {
				c.render(w, req, http.StatusForbidden, "error", u, pageData{Title: "Refused",
					Error: "This form is missing its security token or it is out of date. Reload the page and try again."})
				return
			}
		}
		_ = c.store.touch(c.clock.Now(), u.token, u.sess)
		h(w, req, u)
	}
}

func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (c *Console) signedIn(req *http.Request) (who, bool) {
	ck, err := req.Cookie(cookieSession)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return who{}, false
	}
	se, a, ok, err := c.store.session(c.clock.Now(), ck.Value, c.cfg.SessionIdle, c.cfg.SessionMax)
	if err != nil || !ok {
		return who{}, false
	}
	return who{Account: a, token: ck.Value, sess: se}, true
}

func (c *Console) secure(req *http.Request) bool { return req.TLS != nil || c.cfg.SecureCookies }

func (c *Console) setCookie(w http.ResponseWriter, req *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(req)})
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	User    Account
	CSRF    string
	Nav     []screen
	Current string
	Notice  string // a result to confirm ("Approved")
	Error   string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, req *http.Request, status int, page string, u who, d pageData) {
	t := c.pages[page]
	if t == nil {
		http.Error(w, "no template "+page, http.StatusInternalServerError)
		return
	}
	d.User, d.CSRF = u.Account, u.sess.CSRF
	for _, s := range c.screens {
		if u.Has(s.Role) {
			d.Nav = append(d.Nav, s)
		}
	}
	if d.Notice == "" {
		d.Notice = req.URL.Query().Get("ok")
	}
	if d.Error == "" {
		d.Error = req.URL.Query().Get("err")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, d); err != nil {
		c.logf("console: render %s: %v", page, err)
	}
}

// back sends the browser to page with a result to show (shown as text, never markup).
func back(w http.ResponseWriter, req *http.Request, page string, query url.Values, ok string, err error) {
	if query == nil {
		query = url.Values{}
	}
	if err != nil {
		query.Set("err", err.Error())
	} else if ok != "" {
		query.Set("ok", ok)
	}
	http.Redirect(w, req, Prefix+page+"?"+query.Encode(), http.StatusSeeOther)
}

func (c *Console) audit(u who, action, target, facility, detail string) {
	if err := c.store.Audit(AuditEntry{At: c.clock.Now().UTC(), Who: u.Username, Action: action, Target: target,
		Facility: facility, Detail: detail}); err != nil {
		c.logf("console: audit %s by %s: %v", action, u.Username, err)
	}
}

// clientAddr is the address the login limit counts by: the connection's, never a header a
// client may set.
func clientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

func (c *Console) loginForm(w http.ResponseWriter, req *http.Request, status int, msg, next string) {
	token, err := newToken()
	if err != nil {
		http.Error(w, "no randomness", http.StatusInternalServerError)
		return
	}
	c.setCookie(w, req, cookieLogin, token, 600)
	c.render(w, req, status, "login", who{sess: session{CSRF: token}}, pageData{Title: "Sign in", Error: msg, Data: safeNext(next)})
}

// safeNext keeps a post-login destination inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix) && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return Prefix
}

func (c *Console) loginPage(w http.ResponseWriter, req *http.Request) {
	if _, ok := c.signedIn(req); ok {
		http.Redirect(w, req, Prefix, http.StatusSeeOther)
		return
	}
	c.loginForm(w, req, http.StatusOK, "", req.URL.Query().Get("next"))
}

func (c *Console) login(w http.ResponseWriter, req *http.Request) {
	req.Body = http.MaxBytesReader(w, req.Body, 16<<10)
	if err := req.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := req.PostForm.Get("next")
	ck, err := req.Cookie(cookieLogin)
	if err != nil || !sameToken(req.PostForm.Get("csrf"), ck.Value) {
		c.loginForm(w, req, http.StatusForbidden, "This form is missing its security token or it is out of date. Try again.", next)
		return
	}
	username := strings.ToLower(strings.TrimSpace(req.PostForm.Get("username")))
	if len(username) > 64 {
		username = username[:64]
	}
	addr := clientAddr(req)
	if blocked, wait := c.byUser.blocked("u:" + username); blocked {
		c.loginForm(w, req, http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins for this account. Try again in %s.", ago(wait)), next)
		return
	}
	if blocked, wait := c.byAddr.blocked("a:" + addr); blocked {
		c.loginForm(w, req, http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins from this address. Try again in %s.", ago(wait)), next)
		return
	}
	a, ok := c.store.Check(username, req.PostForm.Get("password"))
	if !ok {
		c.byUser.fail("u:" + username)
		c.byAddr.fail("a:" + addr)
		_ = c.store.Audit(AuditEntry{At: c.clock.Now().UTC(), Who: username, Action: "login.failed", Detail: "from " + addr})
		c.loginForm(w, req, http.StatusUnauthorized, "Wrong username or password.", next)
		return
	}
	c.byUser.clear("u:" + username)
	token, _, err := c.store.newSession(c.clock.Now(), a.Username, c.cfg.SessionIdle, c.cfg.SessionMax)
	if err != nil {
		c.logf("console: new session: %v", err)
		http.Error(w, "could not start a session", http.StatusInternalServerError)
		return
	}
	c.setCookie(w, req, cookieLogin, "", -1)
	c.setCookie(w, req, cookieSession, token, 0)
	http.Redirect(w, req, safeNext(next), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, req *http.Request, u who) {
	if err := c.store.endSession(c.clock.Now(), u.token, u.Username); err != nil {
		c.logf("console: logout: %v", err)
	}
	c.setCookie(w, req, cookieSession, "", -1)
	http.Redirect(w, req, Prefix+"login", http.StatusSeeOther)
}

// home is the first screen the account may see.
func (c *Console) home(w http.ResponseWriter, req *http.Request, u who) {
	for _, s := range c.screens {
		if u.Has(s.Role) {
			http.Redirect(w, req, Prefix+s.Path, http.StatusSeeOther)
			return
		}
	}
	c.render(w, req, http.StatusForbidden, "error", u, pageData{Title: "No screens", Error: "Your account has no role."})
}
