package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// browser is a contact's browser on the family page: cookies kept, forms posted as a page does.
type browser struct {
	t    testing.TB
	hc   *http.Client
	base string
	csrf string
}

func (e *env) browser() *browser {
	e.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	b := &browser{t: e.t, hc: &http.Client{Jar: jar}, base: e.srv.URL + "/family/"}
	st, page := b.do(b.hc.Get(b.base))
	m := csrfField.FindStringSubmatch(page)
	if st != http.StatusOK || m == nil {
		e.t.Fatalf("family page: %d\n%s", st, page)
	}
	b.csrf = m[1]
	return b
}

func (b *browser) do(resp *http.Response, err error) (int, string) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("family page: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

func (b *browser) lookup(code string) (int, string) {
	b.t.Helper()
	return b.do(b.hc.PostForm(b.base, url.Values{"csrf": {b.csrf}, "code": {code}}))
}

func (b *browser) answer(code, answer string) (int, string) {
	b.t.Helper()
	return b.do(b.hc.PostForm(b.base+"answer", url.Values{"csrf": {b.csrf}, "code": {code}, "answer": {answer}}))
}

// contactOf asks for contact id of inmate through kiosk k's connection c.
func contactOf(t testing.TB, k *term, c *tconn, inmate, id, name, email string) {
	t.Helper()
	if ack := c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: id, InmateID: inmate, Name: name, Email: email,
		State: kiosk.ContactPending})); len(ack.Rejected) != 0 {
		t.Fatalf("contact request %s: %+v", id, ack)
	}
}

// downContact waits for the next contact record of id with the given invitation state.
func downContact(t *testing.T, c *tconn, id, invite string) kiosk.Contact {
	t.Helper()
	return decodeAs[kiosk.Contact](t, c.waitDown(wire.DownContact, func(b json.RawMessage) bool {
		got := decodeAs[kiosk.Contact](t, b)
		return got.ID == id && got.Invite == invite
	}).Body)
}

// TestInvitationAcceptedThenLettersFlow: staff approve Mom; she is invited (a code valid 10
// days, in the email the relay spooled); nothing flows either way until she accepts on the
// family page, then letters go both ways; the code is spent.
func TestInvitationAcceptedThenLettersFlow(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	if _, err := e.r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	inv := downContact(t, c, "c1", kiosk.InviteInvited)
	if inv.State != kiosk.ContactApproved || !inv.InviteExpires.Equal(t0.Add(10*24*time.Hour)) {
		t.Fatalf("the kiosk sees %+v; want approved, invited until %v", inv, t0.Add(10*24*time.Hour))
	}
	code := spooledCode(t, e.spool, "c1")
	// The email says who invites and where to answer; the store never holds the code.
	files, _ := filepath.Glob(filepath.Join(e.spool, "c1-*.eml"))
	mail, _ := os.ReadFile(files[0])
	for _, want := range []string{"To: \"Mom\" <mom@example.org>", "Ana", "https://relay.example/family/", "Valid until: 2026-03-12 10:00 UTC"} {
		if !strings.Contains(string(mail), want) {
			t.Errorf("invitation email lacks %q:\n%s", want, mail)
		}
	}
	e.close()
	if e.cfg.Store == nil { // the bbolt file; a JetStream stream has no one file to read
		raw, err := os.ReadFile(filepath.Join(e.dir, DBFile))
		if err != nil || strings.Contains(string(raw), code) || strings.Contains(string(raw), strings.ReplaceAll(code, "-", "")) {
			t.Fatalf("the relay store holds the plain code (%v)", err)
		}
	}
	e.open()
	c = k.connect(t, c.lastSeq())

	// Before an answer: the letter is refused with its reason, inbound too.
	ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "c1", Body: "hi mom"}))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseContactNotAccepted {
		t.Fatalf("letter to an invited contact: ack %+v; want refused %s", ack, wire.RefuseContactNotAccepted)
	}
	st, body := e.call("POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "mom@example.org", "body": "hello"})
	if st != http.StatusConflict || !strings.Contains(string(body), "has not accepted the invitation") {
		t.Fatalf("inbound from an invited contact: %d %s", st, body)
	}

	b := e.browser()
	st, page := b.lookup(strings.ToLower(strings.ReplaceAll(code, "-", " "))) // typed loosely
	if st != http.StatusOK || !strings.Contains(page, "<strong>Ana") || !strings.Contains(page, "Accept: exchange messages with Ana") {
		t.Fatalf("lookup: %d\n%s", st, page)
	}
	st, page = b.answer(code, AnswerAccept)
	if st != http.StatusOK || !strings.Contains(page, "You accepted") {
		t.Fatalf("accept: %d\n%s", st, page)
	}
	if got := downContact(t, c, "c1", kiosk.InviteAccepted); !kiosk.ContactMayWrite(got) {
		t.Fatalf("after accepting the kiosk sees %+v", got)
	}
	ack = c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m2", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "c1", Body: "hi mom"}))
	if len(ack.Rejected) != 0 {
		t.Fatalf("letter to an accepted contact: %+v", ack)
	}
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "mom@example.org", "body": "hello"}, nil)

	// Single use: the same code again is not valid, and says nothing more.
	if st, page := b.answer(code, AnswerBlockInmate); st != http.StatusNotFound || !strings.Contains(page, "not valid") {
		t.Fatalf("code used twice: %d\n%s", st, page)
	}
	var list struct{ Invitations []Invitation }
	e.must(http.StatusOK, "GET", "/admin/v1/invitations", nil, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].State != kiosk.InviteAccepted || !list.Invitations[0].Sent ||
		list.Invitations[0].AnsweredAt.IsZero() {
		t.Fatalf("invitations = %+v", list)
	}
}

// TestInvitationDeclinedAndBlocks: a decline stops letters; blocking the facility blocks the
// address for every inmate of the facility, now (an open invitation is spent) and later (an
// approval is blocked at once, nothing is sent); blocking one inmate leaves the others.
func TestInvitationDeclinedAndBlocks(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	contactOf(t, k, c, "A1", "c2", "Dad", "dad@example.org")
	contactOf(t, k, c, "A2", "c3", "Mom", "MOM@example.org")
	contactOf(t, k, c, "A2", "c4", "Dad", "dad@example.org")
	for _, id := range []string{"c1", "c2", "c3"} {
		if _, err := e.r.ApproveContact(id); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	if st, page := b.answer(spooledCode(t, e.spool, "c2"), AnswerDecline); st != http.StatusOK || !strings.Contains(page, "You declined") {
		t.Fatalf("decline: %d\n%s", st, page)
	}
	downContact(t, c, "c2", kiosk.InviteDeclined)
	ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "c2", Body: "hi dad"}))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseContactNotAccepted {
		t.Fatalf("letter to a contact who declined: %+v", ack)
	}

	c3code := spooledCode(t, e.spool, "c3")
	if st, page := b.answer(spooledCode(t, e.spool, "c1"), AnswerBlockFacility); st != http.StatusOK || !strings.Contains(page, "blocked everyone at facility north") {
		t.Fatalf("block facility: %d\n%s", st, page)
	}
	downContact(t, c, "c1", kiosk.InviteBlocked)
	downContact(t, c, "c3", kiosk.InviteBlocked) // A2's invitation to the same address is spent
	if st, _ := b.answer(c3code, AnswerAccept); st != http.StatusNotFound {
		t.Fatalf("A2's invitation to a blocking address could still be accepted: %d", st)
	}

	// Dad blocks A1 only (on a new invitation after asking again): A2 may still invite him.
	if _, err := e.r.ApproveContact("c4"); err != nil {
		t.Fatal(err)
	}
	downContact(t, c, "c4", kiosk.InviteInvited)

	// Mom asked for again by A2 and approved: blocked at once, no email.
	before, _ := filepath.Glob(filepath.Join(e.spool, "*.eml"))
	contactOf(t, k, c, "A2", "c5", "Mother", "mom@example.org")
	if cr, err := e.r.ApproveContact("c5"); err != nil || cr.Invite != kiosk.InviteBlocked {
		t.Fatalf("approval of a blocking address: %+v %v", cr, err)
	}
	after, _ := filepath.Glob(filepath.Join(e.spool, "*.eml"))
	if len(after) != len(before) {
		t.Fatalf("an invitation was sent to an address that blocked the facility: %v", after)
	}
	// Contacts that declined or blocked free their places.
	var cl struct{ Contacts []ContactRecord }
	e.must(http.StatusOK, "GET", "/admin/v1/contacts?inmate_id=A1", nil, &cl)
	live := 0
	for _, x := range cl.Contacts {
		if kiosk.ContactLive(x.Contact, e.clock.Now()) {
			live++
		}
	}
	if live != 0 {
		t.Fatalf("A1's live contacts = %d of %+v; want 0 (one declined, one blocked)", live, cl.Contacts)
	}
}

// TestInvitationExpiresAndIsIssuedAgain: ten days on (the relay's clock) the code is refused;
// staff see the invitation expired and issue it again; only the new code works.
func TestInvitationExpiresAndIsIssuedAgain(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	if _, err := e.r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	old := spooledCode(t, e.spool, "c1")
	st, _ := e.call("POST", "/admin/v1/contacts/c1/invitation", nil)
	if st != http.StatusConflict {
		t.Fatalf("reissue of a valid invitation: %d; want 409", st)
	}
	e.clock.Advance(10*24*time.Hour - time.Second)
	b := e.browser()
	if st, _ := b.lookup(old); st != http.StatusOK {
		t.Fatalf("a second before expiry: %d", st)
	}
	e.clock.Advance(time.Second)
	if st, page := b.lookup(old); st != http.StatusNotFound || !strings.Contains(page, "not valid") {
		t.Fatalf("at expiry: %d\n%s", st, page)
	}
	var list struct{ Invitations []Invitation }
	e.must(http.StatusOK, "GET", "/admin/v1/invitations", nil, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].State != kiosk.InviteExpired {
		t.Fatalf("invitations = %+v", list)
	}
	var inv Invitation
	e.must(http.StatusCreated, "POST", "/admin/v1/contacts/c1/invitation", nil, &inv)
	if inv.State != kiosk.InviteInvited || !inv.ExpiresAt.Equal(e.clock.Now().Add(DefaultInviteTTL)) || !inv.Sent {
		t.Fatalf("reissued = %+v", inv)
	}
	downContact(t, c, "c1", kiosk.InviteInvited)
	fresh := spooledCode(t, e.spool, "c1")
	if fresh == old {
		t.Fatal("the reissued invitation has the old code")
	}
	if st, _ := b.answer(old, AnswerAccept); st != http.StatusNotFound {
		t.Fatalf("the expired code answered: %d", st)
	}
	if st, _ := b.answer(fresh, AnswerAccept); st != http.StatusOK {
		t.Fatalf("the new code: %d", st)
	}
	downContact(t, c, "c1", kiosk.InviteAccepted)
}

// TestInvitationNotSentIsKeptAndRetried: the spool cannot be written (a file where its
// directory should be); the approval stands, staff see the invitation unsent with the error,
// and a retry once the spool is fixed sends it with a code that works.
func TestInvitationNotSentIsKeptAndRetried(t *testing.T) {
	blocked := blockedSpool(t)
	e := newEnv(t, func(c *Config) { c.Notifier = SpoolNotifier{Dir: blocked} })
	e.spool = blocked
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	var cr ContactRecord
	e.must(http.StatusOK, "POST", "/admin/v1/contacts/c1/approve", nil, &cr)
	if cr.State != kiosk.ContactApproved || cr.Invite != kiosk.InviteInvited {
		t.Fatalf("approved = %+v", cr)
	}
	var list struct{ Invitations []Invitation }
	e.must(http.StatusOK, "GET", "/admin/v1/invitations?unsent=true", nil, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].Sent || list.Invitations[0].Attempts != 1 ||
		!strings.Contains(list.Invitations[0].LastError, "invitation spool") {
		t.Fatalf("unsent = %+v", list)
	}
	var res map[string]int
	e.must(http.StatusOK, "POST", "/admin/v1/invitations/retry", nil, &res)
	if res["sent"] != 0 || res["failed"] != 1 {
		t.Fatalf("retry with the spool still broken = %v", res)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, "POST", "/admin/v1/invitations/retry", nil, &res)
	if res["sent"] != 1 || res["failed"] != 0 {
		t.Fatalf("retry = %v", res)
	}
	e.must(http.StatusOK, "GET", "/admin/v1/invitations?unsent=true", nil, &list)
	if len(list.Invitations) != 0 {
		t.Fatalf("still unsent = %+v", list)
	}
	if _, err := e.r.AnswerInvitation(spooledCode(t, blocked, "c1"), AnswerAccept); err != nil {
		t.Fatalf("accept with the retried code: %v", err)
	}
	if !strings.Contains(e.logText(), "not sent") || strings.Contains(e.logText(), spooledCode(t, blocked, "c1")) {
		t.Fatalf("log: %s", e.logText())
	}
}

// TestInvitationOfARemovedContactIsNotRetried: an invitation that could not be sent, of a
// contact the inmate then removed, is not sent later nor listed as waiting.
func TestInvitationOfARemovedContactIsNotRetried(t *testing.T) {
	blocked := blockedSpool(t)
	e := newEnv(t, func(c *Config) { c.Notifier = SpoolNotifier{Dir: blocked} })
	k, c := e.approvedContact()
	if ack := c.batch(k.item(wire.UpContactRemove, kiosk.Contact{ID: "c1", InmateID: "A1"})); len(ack.Rejected) != 0 {
		t.Fatalf("remove: %+v", ack)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	var res map[string]int
	e.must(http.StatusOK, "POST", "/admin/v1/invitations/retry", nil, &res)
	if res["sent"] != 0 || res["failed"] != 0 {
		t.Fatalf("retry = %v; want nothing to send", res)
	}
	if files, _ := filepath.Glob(filepath.Join(blocked, "*.eml")); len(files) != 0 {
		t.Fatalf("an invitation was sent for a removed contact: %v", files)
	}
	var list struct{ Invitations []Invitation }
	e.must(http.StatusOK, "GET", "/admin/v1/invitations?unsent=true", nil, &list)
	if len(list.Invitations) != 0 {
		t.Fatalf("unsent = %+v", list)
	}
	e.must(http.StatusOK, "GET", "/admin/v1/invitations", nil, &list)
	if len(list.Invitations) != 1 || list.Invitations[0].State != kiosk.ContactRemoved {
		t.Fatalf("invitations = %+v", list)
	}
}

// TestFamilyPageGuards: a POST without the page's token, or from another site, is refused;
// names a hostile inmate's roster holds are shown as text; wrong codes are limited per address
// (even the right code waits), and the limit lifts after the window.
func TestFamilyPageGuards(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FamilyAttempts = 3 })
	e.seed()
	ro := Roster{Inmates: []RosterInmate{{ID: "A1", Name: `<script>alert("x")</script>Ana`, Badges: []string{"B1"}, PIN: "1234",
		Language: "en", Status: kiosk.StatusActive}}}
	if err := e.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", `Mom" onclick="x`, "mom@example.org")
	if _, err := e.r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	code := spooledCode(t, e.spool, "c1")

	// No token (a forged form), a wrong token, another site.
	st, _ := (&browser{t: t, hc: &http.Client{}, base: e.srv.URL + "/family/"}).do(
		http.PostForm(e.srv.URL+"/family/answer", url.Values{"code": {code}, "answer": {AnswerAccept}}))
	if st != http.StatusForbidden {
		t.Fatalf("answer without a token: %d", st)
	}
	b := e.browser()
	if st, _ := b.do(b.hc.PostForm(b.base+"answer", url.Values{"csrf": {strings.Repeat("0", 64)}, "code": {code}, "answer": {AnswerAccept}})); st != http.StatusForbidden {
		t.Fatalf("answer with a wrong token: %d", st)
	}
	req, _ := http.NewRequest("POST", b.base+"answer", strings.NewReader(url.Values{"csrf": {b.csrf}, "code": {code}, "answer": {AnswerAccept}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if st, _ := b.do(b.hc.Do(req)); st != http.StatusForbidden {
		t.Fatalf("answer from another site: %d", st)
	}

	st, page := b.lookup(code)
	if st != http.StatusOK || strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;") ||
		strings.Contains(page, `" onclick="`) {
		t.Fatalf("hostile names not escaped: %d\n%s", st, page)
	}

	for i := range 3 {
		if st, _ := b.lookup("AAAA-BBBB-CCCC-DDD" + string(rune('A'+i))); st != http.StatusNotFound {
			t.Fatalf("wrong code %d: %d", i, st)
		}
	}
	if st, page := b.lookup(code); st != http.StatusTooManyRequests || !strings.Contains(page, "Too many codes") {
		t.Fatalf("after 3 wrong codes: %d\n%s", st, page)
	}
	if st, _ := b.answer(code, AnswerAccept); st != http.StatusTooManyRequests {
		t.Fatalf("answer after 3 wrong codes: %d", st)
	}
	e.clock.Advance(time.Hour)
	if st, _ := b.answer(code, AnswerAccept); st != http.StatusOK {
		t.Fatalf("answer an hour later: %d", st)
	}
	downContact(t, c, "c1", kiosk.InviteAccepted)
	if st, _ := b.answer(code, "maybe"); st != http.StatusNotFound && st != http.StatusBadRequest {
		t.Fatalf("an unknown answer: %d", st)
	}
}

// smtpServer is a small SMTP server on 127.0.0.1 for the test: it speaks enough of RFC 5321
// (EHLO, MAIL, RCPT, DATA, QUIT) to take one message per session, and keeps what it got.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []smtpMsg
	wg   sync.WaitGroup
	// Under mu: refuse answers every session 554 (a mail server down); gate, if not nil,
	// holds each session before its greeting until it is closed (one slow to answer), and
	// held counts the sessions it holds.
	refuse bool
	gate   chan struct{}
	held   int
}

type smtpMsg struct {
	from string
	to   []string
	data string
}

func startSMTP(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	say := func(l string) { _, _ = io.WriteString(conn, l+"\r\n") }
	s.mu.Lock()
	refuse, gate := s.refuse, s.gate
	if gate != nil {
		s.held++
	}
	s.mu.Unlock()
	if refuse {
		say("554 no service here now")
		return
	}
	if gate != nil {
		<-gate
	}
	say("220 test.invalid ESMTP")
	var m smtpMsg
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test.invalid")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.from = strings.TrimSpace(line[len("MAIL FROM:"):])
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = append(m.to, strings.TrimSpace(line[len("RCPT TO:"):]))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not here")
		}
	}
}

// TestSMTPNotifierSendsTheInvitation: the relay's SMTP notifier delivers the invitation to a
// real SMTP server; a name with line breaks adds no header; a server that is down leaves the
// invitation unsent with the error.
func TestSMTPNotifierSendsTheInvitation(t *testing.T) {
	srv := startSMTP(t)
	n := SMTPNotifier{Addr: srv.ln.Addr().String(), From: "Tether <invite@relay.example>"}
	e := newEnv(t, func(c *Config) { c.Notifier = n })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	// A name with a line break is refused where it arrives (the kiosk's own rule, vocab), so no
	// invitation is ever made for it.
	bad := c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c0", InmateID: "A1", Name: "Mom\r\nBcc: spy@example.org",
		Email: "mom@example.org", State: kiosk.ContactPending}))
	if len(bad.Rejected) != 1 || bad.Rejected[0].Reason != wire.RefuseInvalid {
		t.Fatalf("contact request with a line break in its name: %+v, want refused invalid", bad)
	}
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	if _, err := e.r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	msgs := append([]smtpMsg(nil), srv.msgs...)
	srv.mu.Unlock()
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].from, "<invite@relay.example>") || len(msgs[0].to) != 1 || msgs[0].to[0] != "<mom@example.org>" {
		t.Fatalf("smtp got %+v", msgs)
	}
	data := msgs[0].data
	m := codeLine.FindStringSubmatch(data)
	if m == nil || strings.Contains(data, "\r\nBcc:") || !strings.Contains(data, "\r\nSubject: Invitation to write with Ana\r\n") {
		t.Fatalf("message:\n%s", data)
	}
	if _, err := e.r.AnswerInvitation(m[1], AnswerAccept); err != nil {
		t.Fatalf("accept with the mailed code: %v", err)
	}
	// A record stored before names were checked at intake still adds no header.
	if err := n.NotifyInvitation(context.Background(), InvitationNotice{ContactID: "c9", ContactName: "Mom\r\nBcc: spy@example.org",
		Email: "mom@example.org", InmateName: "Ana", Code: "ABCD-EFGH"}); err != nil {
		t.Fatalf("notify with a legacy name: %v", err)
	}
	srv.mu.Lock()
	msgs = append([]smtpMsg(nil), srv.msgs...)
	srv.mu.Unlock()
	if len(msgs) != 2 || strings.Contains(msgs[1].data, "\r\nBcc:") || len(msgs[1].to) != 1 {
		t.Fatalf("second message: %+v", msgs[len(msgs)-1])
	}

	// A server that is not there: kept, with the error.
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := down.Addr().String()
	down.Close()
	err = SMTPNotifier{Addr: addr, From: "invite@relay.example"}.NotifyInvitation(context.Background(), InvitationNotice{Email: "x@example.org"})
	if err == nil || !strings.Contains(err.Error(), "smtp: dial") {
		t.Fatalf("send to a closed port: %v", err)
	}
}

// TestInvitationSchema4Migrates: a relay store of schema 4 with an approved contact (letters
// flowing before invitations existed) opens as the current schema with that contact accepted, so its
// mail is not cut off; a pending contact is invited when approved.
func TestInvitationSchema4Migrates(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	contactOf(t, k, c, "A1", "c2", "Dad", "dad@example.org")
	c.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	// Make it the store a schema 4 relay left: c1 approved with no invitation, no v6 buckets.
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		var cr ContactRecord
		if _, err := getJSON(tx, bContacts, "c1", &cr); err != nil {
			return err
		}
		cr.State = kiosk.ContactApproved
		if err := putJSON(tx, bContacts, "c1", cr); err != nil {
			return err
		}
		for _, b := range []string{bInvites, bInviteCodes, bBlocks, bReplyKeys, bRefunds} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(4))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	cs, err := e.r.Contacts("", "A1")
	if err != nil || len(cs) != 2 || cs[0].Invite != kiosk.InviteAccepted || cs[1].Invite != "" {
		t.Fatalf("after migration: %+v %v", cs, err)
	}
	c = k.connect(t, 0)
	if ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "c1", Body: "hi"})); len(ack.Rejected) != 0 {
		t.Fatalf("letter to a contact approved before invitations: %+v", ack)
	}
	if cr, err := e.r.ApproveContact("c2"); err != nil || cr.Invite != kiosk.InviteInvited {
		t.Fatalf("approve after migration: %+v %v", cr, err)
	}
	spooledCode(t, e.spool, "c2")
	var version uint64
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))); return nil })
	if version != schemaVersion {
		t.Fatalf("schema %d after open", version)
	}
}

// FuzzNormalizeCode: whatever a person types, a code comes out canonical or not at all, and
// a canonical code reads back as itself.
func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-2345-6722", "abcd efgh 2345 6722", "", "ABCD-EFGH-2345-672", "ÄBCD-EFGH-2345-6722",
		"ABCD-EFGH-2345-67221", strings.Repeat("A", 100), "AB\r\nCD-EFGH-2345-6722"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := normalizeCode(in)
		if !ok {
			return
		}
		if len(out) != 19 || strings.Count(out, "-") != 3 {
			t.Fatalf("%q -> %q", in, out)
		}
		if again, ok := normalizeCode(out); !ok || again != out {
			t.Fatalf("%q -> %q -> %q", in, out, again)
		}
	})
}

// Invitations that could not be sent are listed for the hourly retry, which reads that list
// and not every invitation: each leaves it once sent, one sent at once is never on it, and a
// store upgraded from schema 17 lists what it had unsent. verify names one off the list.
func TestUnsentInvitationsListed(t *testing.T) {
	e, spool := brokenSpoolEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	for _, id := range []string{"c1", "c2", "c3"} {
		contactOf(t, k, c, "A1", id, "Pal "+id, id+"@example.org")
	}
	for _, id := range []string{"c1", "c2"} {
		if _, err := e.r.ApproveContact(id); err != nil {
			t.Fatal(err)
		}
	}
	listed := func(when string, want ...string) { t.Helper(); unsentListed(t, e, when, want...) }
	listed("with the spool broken", "c1", "c2")
	if os.Getenv(storeEnv) != "jetstream" {
		c.c.Close(websocket.StatusNormalClosure, "")
		e.close()
		e.rewind(func(tx kv.Tx) error { // schema 17 had no list
			if err := tx.DeleteBucket([]byte(bInvitesUnsent)); err != nil {
				return err
			}
			return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(17))
		})
		e.open()
		listed("after the upgrade", "c1", "c2")
		e.close()
		e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bInvitesUnsent, "c2") })
		e.open()
		rep, err := e.r.Verify()
		if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "unsent_list" || !strings.Contains(rep.Problems[0].Detail, "c2") {
			t.Fatalf("verify of an unsent invitation off the list: %+v (%v), want one unsent_list problem naming c2", rep, err)
		}
		e.close()
		e.rewind(func(tx kv.Tx) error { return putRaw(tx, bInvitesUnsent, "c2", nil) })
		e.open()
	}
	if err := os.Remove(spool); err != nil { // mended
		t.Fatal(err)
	}
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent != 2 || failed != 0 {
		t.Fatalf("retry: %d sent, %d failed (%v); want 2 sent", sent, failed, err)
	}
	listed("after the retry")
	if _, err := e.r.ApproveContact("c3"); err != nil {
		t.Fatal(err)
	}
	listed("after an invitation sent at once")
	if mails, _ := filepath.Glob(filepath.Join(spool, "*.eml")); len(mails) != 3 {
		t.Errorf("%d invitations in the spool, want 3", len(mails))
	}
}

// An invitation that expired before the mail could take it leaves the hourly retry's list:
// it would be read every hour and never sent. Staff see it expired, and issuing it again puts
// it back on the list with a fresh expiry, and the retry sends it.
func TestAnInvitationThatLapsedUnsentLeavesTheList(t *testing.T) {
	e, spool := brokenSpoolEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	for _, id := range []string{"c1", "c2"} {
		contactOf(t, k, c, "A1", id, "Pal "+id, id+"@example.org")
	}
	if _, err := e.r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * 24 * time.Hour)
	if _, err := e.r.ApproveContact("c2"); err != nil {
		t.Fatal(err)
	}
	listed := func(when string, want ...string) { t.Helper(); unsentListed(t, e, when, want...) }
	listed("with the spool broken", "c1", "c2")

	// The mail stays down past c1's expiry (10 days), not c2's.
	e.clock.Advance(5*24*time.Hour + time.Minute)
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent != 0 || failed != 1 {
		t.Fatalf("retry with the spool broken: %d sent, %d failed (%v); want c2 failed", sent, failed, err)
	}
	listed("after c1 expired unsent", "c2")
	invs, err := e.r.Invitations(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range invs {
		if want := map[string]string{"c1": vocab.InviteExpired, "c2": vocab.InviteInvited}[v.ContactID]; v.State != want {
			t.Errorf("staff see %s's invitation %s, want %s", v.ContactID, v.State, want)
		}
	}

	if err := os.Remove(spool); err != nil { // mended
		t.Fatal(err)
	}
	if _, err := e.r.ReissueInvitation(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent != 1 || failed != 0 {
		t.Fatalf("retry with the spool mended: %d sent, %d failed (%v); want c2 sent", sent, failed, err)
	}
	listed("after c1 was issued again, and c2 retried")
	if mails, _ := filepath.Glob(filepath.Join(spool, "*.eml")); len(mails) != 2 {
		t.Errorf("%d invitations in the spool, want 2 (c1 issued again, c2 retried)", len(mails))
	}
}

// brokenSpoolEnv is a relay whose invitations go to a spool that cannot take them (a file
// where the directory should be) until the test removes the file at spool.
func brokenSpoolEnv(t *testing.T) (e *env, spool string) {
	t.Helper()
	spool = filepath.Join(t.TempDir(), "spool")
	if err := os.WriteFile(spool, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *Config) { c.Notifier = SpoolNotifier{Dir: spool} }), spool
}

// unsentListed checks the list of unsent invitations against want, and that verify agrees.
func unsentListed(t *testing.T, e *env, when string, want ...string) {
	t.Helper()
	var got []string
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error {
		got = got[:0]
		return forEachRaw(tx, bInvitesUnsent, "", func(id string, _ []byte) bool { got = append(got, id); return true })
	})
	if !slices.Equal(got, want) {
		t.Errorf("%s: unsent invitations listed %v, want %v", when, got, want)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Errorf("%s: verify %+v (%v)", when, rep, err)
	}
}

// Two gateways of one store each retry the invitations that could not be sent. While one is
// sending an invitation (its mail server slow to answer), the other's retry leaves it alone:
// the family gets one email, and its code is the one that works. Before, the second retry
// minted a code of its own, voiding the first, and sent a second email.
func TestInvitationSentOnceAcrossGateways(t *testing.T) {
	srv := startSMTP(t)
	n := SMTPNotifier{Addr: srv.ln.Addr().String(), From: "invite@relay.example"}
	_, gw, _, _ := homeGateways(t, func(c *Config) { c.Notifier = n })
	gw[0].seed()
	k := gw[0].enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	contactOf(t, k, c, "A1", "c1", "Mom", "mom@example.org")
	srv.mu.Lock()
	srv.refuse = true
	srv.mu.Unlock()
	if _, err := gw[0].r.ApproveContact("c1"); err != nil {
		t.Fatal(err)
	}
	if inv, err := gw[1].r.invitation("c1"); err != nil || inv.Sent || inv.Attempts != 1 {
		t.Fatalf("after a refused send: %+v, %v", inv, err)
	}
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.refuse, srv.gate = false, gate
	srv.mu.Unlock()
	type result struct{ sent, failed int }
	done := [2]chan result{make(chan result, 1), make(chan result, 1)}
	retry := func(i int) {
		sent, failed, err := gw[i].r.RetryInvitations(context.Background())
		if err != nil {
			t.Errorf("gateway %d retry: %v", i+1, err)
		}
		done[i] <- result{sent, failed}
	}
	go retry(0)
	testwait.Until(t, "gateway 1's send reaches the mail server", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.held == 1
	})
	go retry(1)
	// Gateway 2's retry ends without sending; were it to send, its session would be held too.
	var second result
	testwait.UntilSaw(t, "gateway 2's retry ends", func() (bool, string) {
		srv.mu.Lock()
		held := srv.held
		srv.mu.Unlock()
		if held > 1 {
			close(gate)
			t.Fatalf("gateway 2 sent the invitation gateway 1 was sending")
		}
		select {
		case second = <-done[1]:
			return true, ""
		default:
			return false, fmt.Sprintf("%d sessions at the mail server", held)
		}
	})
	close(gate)
	first := <-done[0]
	if first != (result{1, 0}) || second != (result{0, 0}) {
		t.Fatalf("retries: gateway 1 %+v, gateway 2 %+v; want one sent, by gateway 1", first, second)
	}
	srv.mu.Lock()
	msgs := append([]smtpMsg(nil), srv.msgs...)
	srv.mu.Unlock()
	if len(msgs) != 1 {
		t.Fatalf("%d emails to the family, want 1", len(msgs))
	}
	m := codeLine.FindStringSubmatch(msgs[0].data)
	if m == nil {
		t.Fatalf("the email has no code:\n%s", msgs[0].data)
	}
	if _, err := gw[1].r.AnswerInvitation(m[1], AnswerAccept); err != nil {
		t.Fatalf("accept with the code the family got: %v", err)
	}
	// Nothing is left claimed: the retry of a later failure is not held off.
	if inv, err := gw[0].r.invitation("c1"); err != nil || !inv.Sent {
		t.Fatalf("after the send: %+v, %v", inv, err)
	}
}

// A gateway that died while sending an invitation leaves its claim (SendingUntil): the other
// gateways' retries leave the invitation alone until the claim lapses, then send it.
func TestInvitationClaimOfADeadGatewayLapses(t *testing.T) {
	blocked := blockedSpool(t)
	e := newEnv(t, func(c *Config) { c.Notifier = SpoolNotifier{Dir: blocked} })
	e.approvedContact()
	// What a gateway that took the invitation and then died left in the store.
	if err := e.r.update("a dead gateway's claim", func(tx kv.Tx, _ *fanout) error {
		var inv inviteRec
		if _, err := getJSON(tx, bInvites, "c1", &inv); err != nil {
			return err
		}
		inv.SendingUntil = e.clock.Now().UTC().Add(inviteSendClaim)
		return putInvite(tx, "c1", inv)
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent+failed != 0 {
		t.Fatalf("retry while claimed: sent %d, failed %d, %v; want it left alone", sent, failed, err)
	}
	// Staff asking to send it now are told why not, not answered as if it went.
	if _, err := e.r.SendInvitation(context.Background(), "c1"); vocab.KindOf(err) != vocab.KindConflict || !strings.Contains(err.Error(), "is being sent now") {
		t.Fatalf("send again while claimed: %v, want a conflict saying it is being sent", err)
	}
	e.clock.Advance(inviteSendClaim)
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent != 1 || failed != 0 {
		t.Fatalf("retry once the claim lapsed: sent %d, failed %d, %v", sent, failed, err)
	}
	if _, err := e.r.AnswerInvitation(spooledCode(t, blocked, "c1"), AnswerAccept); err != nil {
		t.Fatalf("accept with the code sent: %v", err)
	}
}

// A hold set by a gateway whose clock ran a day fast, which then died mid-send, does not keep
// the invitation from the other gateways for that day: a hold further ahead than
// inviteSendClaim counts as lapsed.
func TestInvitationHoldFromAFastClockIsNotHonoured(t *testing.T) {
	blocked := blockedSpool(t)
	e := newEnv(t, func(c *Config) { c.Notifier = SpoolNotifier{Dir: blocked} })
	e.approvedContact()
	if err := e.r.update("a fast gateway's hold", func(tx kv.Tx, _ *fanout) error {
		var inv inviteRec
		if _, err := getJSON(tx, bInvites, "c1", &inv); err != nil {
			return err
		}
		inv.SendingUntil = e.clock.Now().UTC().Add(24 * time.Hour)
		return putInvite(tx, "c1", inv)
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if sent, failed, err := e.r.RetryInvitations(context.Background()); err != nil || sent != 1 || failed != 0 {
		t.Fatalf("retry under a hold a day ahead: sent %d, failed %d, %v; want it sent", sent, failed, err)
	}
}
