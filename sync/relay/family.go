package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The family page (/family/) stands in for the family website: a contact enters the code of
// an invitation, sees who invites them, and answers. It is plain HTML forms (no script), with
// every value escaped by html/template, a CSRF token (a cookie matched by a hidden field) and
// Go's cross-origin protection on every POST, and a bound on wrong codes per client address.

//go:embed family/*.html
var familyFiles embed.FS

// maxFamilyClients bounds the addresses whose wrong codes are counted at once.
const maxFamilyClients = 10000

const csrfCookie = "tether_family_csrf"

type familyPage struct {
	tmpl *template.Template
	mu   sync.Mutex
	// fails counts wrong codes per client address within a window.
	fails map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

// familyData is what the page template shows.
type familyData struct {
	CSRF  string
	Code  string
	Error string
	Done  string
	View  *InvitationView
}

func (r *Relay) routeFamily(mux *http.ServeMux) {
	r.family = &familyPage{
		tmpl:  template.Must(template.ParseFS(familyFiles, "family/*.html")),
		fails: map[string]*failWindow{},
	}
	cop := http.NewCrossOriginProtection()
	mux.Handle("GET /family/{$}", http.HandlerFunc(r.hFamilyForm))
	mux.Handle("POST /family/{$}", cop.Handler(http.HandlerFunc(r.hFamilyLookup)))
	mux.Handle("POST /family/answer", cop.Handler(http.HandlerFunc(r.hFamilyAnswer)))
}

// clientAddr is the address wrong codes are counted by: the connection's IP.
func clientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// limited reports whether addr has used up its wrong codes for now. With the table full of
// addresses still within their window, every new address waits (fail closed: guessing must
// not get easier by spreading it over many addresses).
func (p *familyPage) limited(addr string, now time.Time, max int, window time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	fw, ok := p.fails[addr]
	if ok && now.Sub(fw.start) >= window {
		delete(p.fails, addr)
		ok = false
	}
	if ok {
		return fw.n >= max
	}
	if len(p.fails) >= maxFamilyClients {
		for a, f := range p.fails {
			if now.Sub(f.start) >= window {
				delete(p.fails, a)
			}
		}
		return len(p.fails) >= maxFamilyClients
	}
	return false
}

func (p *familyPage) failed(addr string, now time.Time, window time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fw, ok := p.fails[addr]
	if !ok || now.Sub(fw.start) >= window {
		fw = &failWindow{start: now}
		p.fails[addr] = fw
	}
	fw.n++
}

// render writes the page with the headers every family page carries.
func (r *Relay) renderFamily(w http.ResponseWriter, status int, d familyData) {
	var buf bytes.Buffer
	if err := r.family.tmpl.ExecuteTemplate(&buf, "page", d); err != nil {
		r.logf("relay: family page: %v", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// csrfToken returns the request's token cookie, or sets a new one.
func csrfToken(w http.ResponseWriter, req *http.Request) (string, error) {
	if c, err := req.Cookie(csrfCookie); err == nil && len(c.Value) == 64 {
		if _, err := hex.DecodeString(c.Value); err == nil {
			return c.Value, nil
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/family/", HttpOnly: true,
		Secure: req.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok, nil
}

// checkForm reads a POSTed form and checks its CSRF token against the cookie.
func (r *Relay) checkForm(w http.ResponseWriter, req *http.Request) bool {
	req.Body = http.MaxBytesReader(w, req.Body, 4<<10)
	if err := req.ParseForm(); err != nil {
		r.renderFamily(w, http.StatusBadRequest, familyData{Error: "The form could not be read. Please start again."})
		return false
	}
	c, err := req.Cookie(csrfCookie)
	form := req.PostFormValue("csrf")
	if err != nil || len(form) != 64 || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		tok, _ := csrfToken(w, req)
		r.renderFamily(w, http.StatusForbidden, familyData{CSRF: tok,
			Error: "This form expired or did not come from this page. Please enter your code again."})
		return false
	}
	return true
}

func (r *Relay) hFamilyForm(w http.ResponseWriter, req *http.Request) {
	tok, err := csrfToken(w, req)
	if err != nil {
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	r.renderFamily(w, http.StatusOK, familyData{CSRF: tok})
}

// tooMany answers a client out of wrong codes.
func (r *Relay) tooMany(w http.ResponseWriter, tok string) {
	w.Header().Set("Retry-After", "3600")
	r.renderFamily(w, http.StatusTooManyRequests, familyData{CSRF: tok,
		Error: "Too many codes were tried from your connection. Please try again in an hour."})
}

func (r *Relay) hFamilyLookup(w http.ResponseWriter, req *http.Request) {
	if !r.checkForm(w, req) {
		return
	}
	tok := req.PostFormValue("csrf")
	addr, now := clientAddr(req), r.clock.Now()
	if r.family.limited(addr, now, r.cfg.FamilyAttempts, r.cfg.FamilyWindow) {
		r.tooMany(w, tok)
		return
	}
	code := req.PostFormValue("code")
	v, err := r.LookupInvitation(code)
	if err != nil {
		r.familyErr(w, req, tok, code, err)
		return
	}
	norm, _ := normalizeCode(code)
	r.renderFamily(w, http.StatusOK, familyData{CSRF: tok, Code: norm, View: &v})
}

func (r *Relay) hFamilyAnswer(w http.ResponseWriter, req *http.Request) {
	if !r.checkForm(w, req) {
		return
	}
	tok := req.PostFormValue("csrf")
	addr, now := clientAddr(req), r.clock.Now()
	if r.family.limited(addr, now, r.cfg.FamilyAttempts, r.cfg.FamilyWindow) {
		r.tooMany(w, tok)
		return
	}
	code, answer := req.PostFormValue("code"), req.PostFormValue("answer")
	inv, err := r.AnswerInvitation(code, answer)
	if err != nil {
		r.familyErr(w, req, tok, code, err)
		return
	}
	var done string
	switch answer {
	case AnswerAccept:
		done = "Thank you. You accepted: you can now exchange messages with this person."
	case AnswerDecline:
		done = "You declined the invitation. No messages will be exchanged."
	case AnswerBlockInmate:
		done = "You blocked this person. They cannot invite or write to you again."
	default:
		done = "You blocked everyone at facility " + inv.FacilityID + ". Nobody there can invite or write to you."
	}
	r.renderFamily(w, http.StatusOK, familyData{CSRF: tok, Done: done})
}

// familyErr shows why a code or an answer was refused; a bad code counts against the client.
func (r *Relay) familyErr(w http.ResponseWriter, req *http.Request, tok, code string, err error) {
	switch vocab.KindOf(err) {
	case vocab.KindNotFound:
		r.family.failed(clientAddr(req), r.clock.Now(), r.cfg.FamilyWindow)
		r.renderFamily(w, http.StatusNotFound, familyData{CSRF: tok, Code: code,
			Error: "This identification code is not valid. It may be mistyped, already used or expired."})
	case vocab.KindInvalid:
		r.renderFamily(w, http.StatusBadRequest, familyData{CSRF: tok, Code: code, Error: "Please choose one of the answers."})
	default:
		r.logf("relay: family page: %v", err)
		r.renderFamily(w, http.StatusInternalServerError, familyData{CSRF: tok, Error: "Something went wrong. Please try again later."})
	}
}
