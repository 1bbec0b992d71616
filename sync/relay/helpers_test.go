package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

const testToken = "test-admin-token-0123456789"

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// env is a real relay on a real bbolt file behind a real 127.0.0.1 listener.
type env struct {
	t     testing.TB
	dir   string
	cfg   Config
	r     *Relay
	srv   *httptest.Server
	clock *clock.Fake
	logMu sync.Mutex
	logs  []string
	// spool is where the relay's SpoolNotifier writes invitations.
	spool string
}

func newEnv(t testing.TB, change ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: clock.NewFake(t0)}
	e.spool = t.TempDir()
	e.cfg = Config{DataDir: e.dir, Clock: e.clock, AdminToken: testToken, PINParams: kiosk.TestPINParams(),
		Logf: e.logf, HandshakeTimeout: 2 * time.Second,
		Notifier: SpoolNotifier{Dir: e.spool, From: "Tether <invite@relay.example>", Now: e.clock.Now}, FamilyURL: "https://relay.example/family/"}
	if os.Getenv(storeEnv) == "jetstream" {
		onJetStream(t)(&e.cfg) // a change below may still set its own store
	}
	e.cfg.FacilityIDs = os.Getenv(idsEnv) == "facility"
	for _, c := range change {
		c(&e.cfg)
	}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.logs = append(e.logs, fmt.Sprintf(format, args...))
}

func (e *env) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return strings.Join(e.logs, "\n")
}

func (e *env) open() {
	e.t.Helper()
	r, err := Open(e.cfg)
	if err != nil {
		e.t.Fatalf("open relay: %v", err)
	}
	e.r = r
	e.srv = httptest.NewServer(r)
}

func (e *env) close() {
	if e.r == nil {
		return
	}
	if err := e.r.Close(); err != nil {
		e.t.Errorf("close relay: %v", err)
	}
	e.srv.Close()
	e.r = nil
}

// restart closes the relay and opens it again on the same directory (a new listener too).
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + wire.PathTerminal }

// call makes an admin request with the test token; body may be a string (sent raw) or a value (JSON).
func (e *env) call(method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.callAuth(method, path, body, "Bearer "+testToken)
}

func (e *env) callAuth(method, path string, body any, auth string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must calls and fails the test unless the status is want; it decodes the answer into out.
func (e *env) must(want int, method, path string, body, out any) {
	e.t.Helper()
	status, raw := e.call(method, path, body)
	if status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// seed makes facility "north": policy, inmates A1 (active), A2 (active), A3 (suspended), technician T1.
func (e *env) seed() {
	e.t.Helper()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxContacts = 3
	p.MaxMessageChars = 200
	if err := e.r.PutPolicy("north", p); err != nil {
		e.t.Fatal(err)
	}
	ro := Roster{
		Inmates: []RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive},
			{ID: "A3", Name: "Cy", Badges: []string{"B3"}, PIN: "3456", Language: "en", Status: kiosk.StatusSuspended},
		},
		Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}},
	}
	if err := e.r.PutRoster("north", ro); err != nil {
		e.t.Fatal(err)
	}
}

// term is a test terminal: a key pair, an enrollment and an epoch.
type term struct {
	e     *env
	id    string
	priv  ed25519.PrivateKey
	epoch string
	mode  string
	seq   uint64
	// waiting is the queue length the next hello reports.
	waiting int
	// ackLetters: the hello asks for letters' states in the acks.
	ackLetters bool
}

func (e *env) enroll(mode, inmate string) *term {
	e.t.Helper()
	return e.enrollAt("north", mode, inmate)
}

func (e *env) enrollAt(facility, mode, inmate string) *term {
	e.t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	er := e.enrollKey(facility, mode, inmate, priv)
	ep := make([]byte, 16)
	rand.Read(ep)
	return &term{e: e, id: er.TerminalID, priv: priv, epoch: hex.EncodeToString(ep), mode: mode}
}

// enrollKey enrolls key priv with a new code of facility for mode (and inmate), as a
// terminal's store does, and fails the test unless the relay answers 200.
func (e *env) enrollKey(facility, mode, inmate string, priv ed25519.PrivateKey) wire.EnrollResponse {
	e.t.Helper()
	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: facility, Mode: mode, InmateID: inmate})
	if err != nil {
		e.t.Fatal(err)
	}
	resp, status := e.postEnroll(en.Code, priv)
	if status != http.StatusOK {
		e.t.Fatalf("enroll: status %d: %s", status, resp)
	}
	var er wire.EnrollResponse
	if err := json.Unmarshal(resp, &er); err != nil {
		e.t.Fatal(err)
	}
	return er
}

func (e *env) postEnroll(code string, priv ed25519.PrivateKey) ([]byte, int) {
	e.t.Helper()
	body, _ := json.Marshal(wire.EnrollRequest{Code: code, PublicKey: priv.Public().(ed25519.PublicKey), Signature: wire.SignEnroll(priv, code), Software: "test"})
	resp, err := http.Post(e.srv.URL+wire.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return out, resp.StatusCode
}

func dial(t testing.TB, url string, protos ...string) *websocket.Conn {
	t.Helper()
	if protos == nil {
		protos = []string{wire.Subprotocol}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos, CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(wire.MaxFrameBytes)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// tconn is an authenticated connection of a test terminal.
type tconn struct {
	t    testing.TB
	c    *websocket.Conn
	term *term
	down []wire.DownItem // downlink items received so far
	w    wire.Welcome
}

func send(t testing.TB, c *websocket.Conn, msg any) {
	t.Helper()
	b, err := wire.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write %T: %v", msg, err)
	}
}

func read(t testing.TB, c *websocket.Conn) wire.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	f, err := wire.DecodeFrame(b)
	if err != nil {
		t.Fatalf("decode frame from relay: %v", err)
	}
	return f
}

// connect runs hello/challenge/auth and returns the connection after welcome.
func (tm *term) connect(t testing.TB, downApplied uint64) *tconn {
	t.Helper()
	c := dial(t, tm.e.wsURL())
	send(t, c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch, DownApplied: downApplied, Software: "test", Waiting: tm.waiting, AckLetters: tm.ackLetters})
	f := read(t, c)
	if f.Type != wire.TypeChallenge {
		t.Fatalf("got %s, want challenge", f.Type)
	}
	send(t, c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)})
	f = read(t, c)
	if f.Type != wire.TypeWelcome {
		t.Fatalf("got %s, want welcome", f.Type)
	}
	return &tconn{t: t, c: c, term: tm, w: *f.Welcome}
}

// item makes the terminal's next uplink item.
func (tm *term) item(kind string, body any) wire.Item {
	tm.seq++
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return wire.Item{Seq: tm.seq, ID: uuid.Must(uuid.NewV7()).String(), Kind: kind, CreatedAt: t0, Body: raw}
}

// batch sends items and returns the ack, keeping any downlink that arrives meanwhile.
func (tc *tconn) batch(items ...wire.Item) wire.Ack {
	tc.t.Helper()
	send(tc.t, tc.c, wire.Batch{Epoch: tc.term.epoch, Items: items})
	return tc.ack()
}

// ack reads the next ack, keeping any downlink that arrives before it.
func (tc *tconn) ack() wire.Ack {
	tc.t.Helper()
	for {
		f := read(tc.t, tc.c)
		switch f.Type {
		case wire.TypeAck:
			return *f.Ack
		case wire.TypeDown:
			tc.down = append(tc.down, f.Down.Items...)
		default:
			tc.t.Fatalf("unexpected %s frame", f.Type)
		}
	}
}

// waitDown reads downlink until an item of kind satisfying ok has arrived, and returns it.
func (tc *tconn) waitDown(kind string, ok func(json.RawMessage) bool) wire.DownItem {
	tc.t.Helper()
	for {
		for _, it := range tc.down {
			if it.Kind == kind && (ok == nil || ok(it.Body)) {
				return it
			}
		}
		f := read(tc.t, tc.c)
		if f.Type != wire.TypeDown {
			tc.t.Fatalf("unexpected %s frame while waiting for %s", f.Type, kind)
		}
		tc.down = append(tc.down, f.Down.Items...)
	}
}

func (tc *tconn) lastSeq() uint64 {
	if len(tc.down) == 0 {
		return 0
	}
	return tc.down[len(tc.down)-1].Seq
}

func (tc *tconn) ackDown(seq uint64) { send(tc.t, tc.c, wire.DownAck{Seq: seq}) }

// expectClose reads until the connection closes and checks the close status and reason.
func expectClose(t testing.TB, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v (want %d %q)", err, code, reason)
		}
		if ce.Code != code || !strings.HasPrefix(ce.Reason, reason) {
			t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

// ownDown lists the seqs held in terminal id's own downlink bucket (not its facility's log).
func ownDown(t testing.TB, r *Relay, id string) []uint64 { return nestedSeqs(t, r, bDown, id) }

// facilityLog lists the seqs held in facility's downlink log.
func facilityLog(t testing.TB, r *Relay, facility string) []uint64 {
	return nestedSeqs(t, r, bFacDown, facility)
}

// nestedSeqs lists the seq keys of the bucket name nested in root.
func nestedSeqs(t testing.TB, r *Relay, root, name string) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := r.view("list "+root+" "+name, func(tx kv.Tx) error {
		seqs = seqs[:0]
		if b := tx.Bucket([]byte(root)).Bucket([]byte(name)); b != nil {
			return b.ForEach(func(k, _ []byte) error {
				seqs = append(seqs, readU64(k))
				return nil
			})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seqs
}
