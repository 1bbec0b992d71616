package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/logging"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// lockedBuf is a log sink written from many goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsCarryNoSecrets runs a facility's day through the programs' real logging (slog,
// text and JSON, through logging.Logf as kioskd and relayd wire it) with values that appear
// nowhere else: a roster with PINs and badges, an enrollment code, the admin token and a
// wrong guess of it, logins (a wrong PIN too, and a technician), letters out and in with
// bodies and subjects, a contact. Then every line of every log is scanned for each value.
func TestLogsCarryNoSecrets(t *testing.T) {
	const (
		token       = "logscan-admin-token-7Hq2Zr9PxWm4"
		guess       = "logscan-guessed-token-Vb8Kd3Lt"
		inmatePIN   = "739184"
		inmatePIN2  = "628405"
		wrongPIN    = "104857"
		techPIN     = "915372"
		badge       = "BDG-Q7X9-LGSC"
		badge2      = "BDG-K2M4-LGSC"
		techBadge   = "TBG-R5T8-LGSC"
		letterBody  = "my-letter-body-zebra-quartz"
		letterSubj  = "subject-walnut-harbor"
		deptBody    = "dept-request-body-cobalt-lynx"
		inboundBody = "inbound-body-saffron-otter"
		contactMail = "auntie.logscan@example.org"
	)
	var relayOut, termOut lockedBuf
	relayLog := logging.New(&relayOut, logging.Options{Format: logging.JSON, Level: -4}, nil)
	termText := logging.New(&termOut, logging.Options{Format: logging.Text, Level: -4}, nil)

	dir := t.TempDir()
	spool := t.TempDir()
	r, err := relay.Open(relay.Config{DataDir: dir, AdminToken: token, PINParams: kiosk.TestPINParams(),
		HoldPolicy: relay.HoldAll, HandshakeTimeout: 5 * time.Second, Logf: logging.Logf(relayLog),
		Notifier: relay.SpoolNotifier{Dir: spool, From: "Tether <invite@tether.invalid>"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r, ErrorLog: nil}
	go srv.Serve(ln)
	defer func() { srv.Close(); r.Close() }()
	base := "http://" + ln.Addr().String()
	call := func(method, path, auth string, in, out any) int {
		t.Helper()
		var rd io.Reader
		if in != nil {
			raw, _ := json.Marshal(in)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, raw, err)
			}
		}
		return resp.StatusCode
	}
	must := func(method, path string, in, out any) {
		t.Helper()
		if st := call(method, path, token, in, out); st/100 != 2 {
			t.Fatalf("%s %s: status %d", method, path, st)
		}
	}
	if st := call("GET", "/admin/v1/terminals", guess, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("a wrong token: status %d", st)
	}
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.Cooldown = 0
	p.Curfew = nil
	must("PUT", "/admin/v1/facilities/north/policy", p, nil)
	must("PUT", "/admin/v1/facilities/north/roster", relay.Roster{
		Inmates: []relay.RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{badge}, PIN: inmatePIN, Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{badge2}, PIN: inmatePIN2, Language: "es", Status: kiosk.StatusActive},
		},
		Technicians: []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{techBadge}, PIN: techPIN, Role: "installer"}},
	}, nil)
	must("POST", "/admin/v1/deposits", relay.DepositRequest{InmateID: "A1", Cents: 5000, Ref: "dep-1"}, nil)
	var en relay.Enrollment
	must("POST", "/admin/v1/enrollments", relay.EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk}, &en)

	// The terminal, logging as kioskd does once enrolled: terminal id and facility on each line.
	tdir := t.TempDir()
	store, err := kiosk.OpenStore(tdir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var tlog kiosk.Logf = logging.Logf(termText.With("terminal", "unenrolled", "facility", "unenrolled"))
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: store, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(),
		Logf: func(f string, a ...any) { tlog(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	enr, err := client.Enroll(ctx, client.EnrollConfig{DataDir: tdir, RelayURL: base, Code: en.Code, Terminal: term, Label: "logscan"})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	tlog = logging.Logf(termText.With("terminal", enr.TerminalID, "facility", enr.Facility))
	eng, err := client.New(client.Config{DataDir: tdir, Terminal: term, Logf: func(f string, a ...any) { tlog(f, a...) },
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, BatchDelay: 20 * time.Millisecond,
		PingInterval: 2 * time.Second, AckTimeout: 10 * time.Second, Handshake: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	engCtx, stopEng := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { defer close(engDone); eng.Run(engCtx) }()
	defer func() { stopEng(); <-engDone }()
	testwait.UntilSaw(t, "the roster and deposit on the terminal", func() (bool, string) {
		b, err := term.Balance("A1")
		return err == nil && b >= 5000, fmt.Sprint(b, err)
	})

	// A technician, a wrong PIN, then the inmate's session with letters.
	if res, err := term.Badge(techBadge); err != nil || res.Kind != kiosk.PersonTechnician {
		t.Fatalf("technician badge: %+v %v", res, err)
	}
	if _, err := term.EnterPIN(techBadge, techPIN); err != nil {
		t.Fatalf("technician PIN: %v", err)
	}
	if _, err := term.Badge(badge); err != nil {
		t.Fatal(err)
	}
	if _, err := term.EnterPIN(badge, wrongPIN); err == nil {
		t.Fatal("a wrong PIN was taken")
	}
	pend, err := term.EnterPIN(badge, inmatePIN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.AcceptNotice(pend); err != nil {
		t.Fatal(err)
	}
	c, err := term.AddContact("A1", "Auntie", contactMail)
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the contact request on the relay", func() (bool, string) {
		cs, err := r.Contacts("", "A1")
		return err == nil && len(cs) == 1, fmt.Sprint(cs, err)
	})
	must("POST", "/admin/v1/contacts/"+c.ID+"/approve", nil, nil)
	// The invitation's code is a secret too: only the contact's email holds it.
	inviteCode := spooledCode(t, spool, c.ID)
	if _, err := r.AnswerInvitation(inviteCode, relay.AnswerAccept); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the accepted invitation on the terminal", func() (bool, string) {
		cs, err := term.Contacts("A1")
		return err == nil && len(cs) == 1 && kiosk.ContactMayWrite(cs[0]), fmt.Sprint(cs, err)
	})
	m, err := term.Send("A1", c.ID, letterSubj, letterBody)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.Send("A1", "dept-medical", "Tooth", deptBody); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the letter held on the relay", func() (bool, string) {
		var held struct {
			Messages []relay.Outbound `json:"messages"`
		}
		call("GET", "/admin/v1/outbound?status=held&inmate_id=A1", token, nil, &held)
		for _, o := range held.Messages {
			if o.ID == m.ID {
				return true, ""
			}
		}
		return false, fmt.Sprint(held)
	})
	must("POST", "/admin/v1/outbound/"+m.ID+"/approve", nil, nil)
	must("POST", "/admin/v1/inbound", relay.InboundRequest{InmateID: "A1", From: c.ID, Subject: "re: " + letterSubj, Body: inboundBody}, nil)
	testwait.UntilSaw(t, "the answer in the inbox", func() (bool, string) {
		in, err := term.Inbox("A1")
		return err == nil && len(in) == 1, fmt.Sprint(in, err)
	})
	if err := term.Logout(); err != nil {
		t.Fatal(err)
	}
	stopEng()
	<-engDone

	logs := map[string]string{"relay (json)": relayOut.String(), "terminal (text)": termOut.String()}
	t.Logf("relay log:\n%s\nterminal log:\n%s", relayOut.String(), termOut.String())
	for name, out := range logs {
		if strings.Count(out, "\n") < 1 {
			t.Fatalf("%s log has almost nothing; the scan would prove nothing:\n%s", name, out)
		}
		for _, secret := range []string{token, guess, en.Code, inviteCode, inmatePIN, inmatePIN2, wrongPIN, techPIN, badge, badge2, techBadge,
			letterBody, letterSubj, deptBody, inboundBody, contactMail} {
			for i, line := range strings.Split(out, "\n") {
				if strings.Contains(line, secret) {
					t.Errorf("%s log line %d carries %q: %s", name, i+1, secret, line)
				}
			}
		}
	}
	// The terminal's lines, from enrollment on, all say which terminal and facility.
	after := false
	for _, line := range strings.Split(strings.TrimSpace(termOut.String()), "\n") {
		if strings.Contains(line, "terminal="+enr.TerminalID) {
			after = true
		}
		if after && (!strings.Contains(line, "terminal="+enr.TerminalID) || !strings.Contains(line, "facility=north")) {
			t.Errorf("a terminal line without its terminal id and facility: %s", line)
		}
	}
	if !after {
		t.Errorf("no terminal line names the terminal:\n%s", termOut.String())
	}
	// The relay's JSON lines parse and have a level.
	for _, line := range strings.Split(strings.TrimSpace(relayOut.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("relay line is not a JSON record with level and msg: %s", line)
		}
	}
}
