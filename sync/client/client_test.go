package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/wire"
)

func TestBackoffFullJitter(t *testing.T) {
	one := func() float64 { return 0.999999 }
	zero := func() float64 { return 0 }
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second}
	for i, w := range want {
		got := Backoff(i+1, time.Second, 60*time.Second, one)
		if got > w || got < w*99/100 {
			t.Errorf("attempt %d: ceiling %v, want about %v", i+1, got, w)
		}
		if z := Backoff(i+1, time.Second, 60*time.Second, zero); z != 0 {
			t.Errorf("attempt %d with rand 0 waits %v", i+1, z)
		}
	}
	if got := Backoff(1000, time.Second, 60*time.Second, one); got > 60*time.Second {
		t.Errorf("attempt 1000 waits %v, over the maximum", got)
	}
	if got := Backoff(3, time.Second, 60*time.Second, func() float64 { return 0.5 }); got != 2*time.Second {
		t.Errorf("attempt 3 with rand 0.5 = %v, want 2s", got)
	}
}

func TestKeyFileIsPrivateAndStable(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := loadOrCreateKey(dir)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load gave another key (%v)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d files after writing the key, want 1 (no temp files left)", len(entries))
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "others may read") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o600)
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("truncated key accepted: %v", err)
	}
	if _, err := LoadEnrollment(t.TempDir()); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("missing enrollment: %v", err)
	}
}

func TestRelayURLRules(t *testing.T) {
	ok := map[string]string{
		"wss://relay.example:8443":  "wss://relay.example:8443/v1/terminal",
		"https://relay.example/":    "wss://relay.example/v1/terminal",
		"ws://127.0.0.1:9000":       "ws://127.0.0.1:9000/v1/terminal",
		"http://localhost:9000/pfx": "ws://localhost:9000/pfx/v1/terminal",
		"ws://[::1]:9000":           "ws://[::1]:9000/v1/terminal",
	}
	for in, want := range ok {
		ep, err := parseRelayURL(in, Transport{})
		if err != nil || ep.websocket != want {
			t.Errorf("%s: %q %v, want %q", in, ep.websocket, err, want)
		}
	}
	for _, in := range []string{"ws://relay.example", "http://10.0.0.5:80", "ftp://x", "wss://", "wss://u:p@relay.example", "relay.example"} {
		if _, err := parseRelayURL(in, Transport{}); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
	// A password in the URL is refused without being repeated, whether or not the URL parses.
	for _, in := range []string{"wss://u:s3cret@relay.example", "wss://u:s3cret@relay.example:bad"} {
		if _, err := parseRelayURL(in, Transport{}); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v", in, err)
		}
	}
	if _, err := parseRelayURL("ws://relay.example", Transport{Insecure: true}); err != nil {
		t.Errorf("insecure setting ignored: %v", err)
	}
	if _, err := parseRelayURL("ws://127.0.0.1", Transport{PinSHA256: strings.Repeat("ab", 32)}); err == nil {
		t.Error("a pin over plain ws accepted")
	}
}

func TestDownKindsMatchKiosk(t *testing.T) {
	kioskKinds := []string{kiosk.DownInboundMessage, kiosk.DownMessageStatus, kiosk.DownInmate, kiosk.DownTechnician,
		kiosk.DownTechnicianRemove, kiosk.DownDeposit, kiosk.DownContact, kiosk.DownPolicy, kiosk.DownRemoteCharge,
		kiosk.DownRemoteCredit, kiosk.DownRemoteSessionEnd, kiosk.DownNotice, kiosk.DownSentMessage, kiosk.DownHistory, kiosk.DownMessageRead, kiosk.DownRefund,
		kiosk.DownCatalogItem, kiosk.DownCatalogWithdrawn, kiosk.DownQuizResult, kiosk.DownLibraryUse}
	if !slices.Equal(kioskKinds, wire.DownKinds) {
		t.Fatalf("kiosk downlink kinds %v differ from wire %v", kioskKinds, wire.DownKinds)
	}
	upKinds := []string{string(kiosk.ItemMessage), string(kiosk.ItemPREA), string(kiosk.ItemContactRequest), string(kiosk.ItemContactRemove),
		string(kiosk.ItemCharge), string(kiosk.ItemCredit), string(kiosk.ItemSessionEnd), string(kiosk.ItemAudit), string(kiosk.ItemDeviceStatus),
		string(kiosk.ItemMessageRead), string(kiosk.ItemQuizAttempt), string(kiosk.ItemLibraryUse)}
	if !slices.Equal(upKinds, wire.UpKinds) {
		t.Fatalf("kiosk item kinds %v differ from wire %v", upKinds, wire.UpKinds)
	}
}

// fakeRelay is an in-process stand-in for what the real relay never does: wrong versions,
// oversized frames, a certificate to pin. The real relay is exercised in sync/e2e.
type fakeRelay struct {
	srv       *httptest.Server
	subproto  []string
	onConnect func(ctx context.Context, c *websocket.Conn)
	mu        sync.Mutex
	enrolls   int
}

func newFakeRelay(t *testing.T, tlsOn bool) *fakeRelay {
	f := &fakeRelay{subproto: []string{wire.Subprotocol}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathEnroll, func(w http.ResponseWriter, r *http.Request) {
		var req wire.EnrollRequest
		json.NewDecoder(r.Body).Decode(&req)
		raw, _ := json.Marshal(req)
		if _, err := wire.DecodeEnrollRequest(raw); err != nil {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(wire.ErrorResponse{Error: wire.EnrollBadSignature})
			return
		}
		if req.Code != "GOOD-CODE" {
			w.WriteHeader(http.StatusGone)
			json.NewEncoder(w).Encode(wire.ErrorResponse{Error: wire.EnrollCodeExpired, Message: "expired at noon"})
			return
		}
		f.mu.Lock()
		f.enrolls++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(wire.EnrollResponse{TerminalID: "t-1", Facility: "north", Mode: wire.ModeTablet, InmateID: "A7"})
	})
	mux.HandleFunc("GET "+wire.PathTerminal, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: f.subproto})
		if err != nil {
			return
		}
		defer c.CloseNow()
		if f.onConnect != nil {
			f.onConnect(r.Context(), c)
		}
	})
	if tlsOn {
		f.srv = httptest.NewTLSServer(mux)
	} else {
		f.srv = httptest.NewServer(mux)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func newTestTerminal(t *testing.T) (*kiosk.Terminal, string) {
	dir := t.TempDir()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	return term, dir
}

func TestEnrollWithPinnedCertificate(t *testing.T) {
	f := newFakeRelay(t, true)
	term, dir := newTestTerminal(t)
	ctx := context.Background()
	base := f.srv.URL // https://127.0.0.1:port
	pin := wire.Fingerprint(f.srv.Certificate().Raw)

	// The test certificate is not in the system roots: without a pin or CA it fails.
	if _, err := Enroll(ctx, EnrollConfig{DataDir: dir, RelayURL: base, Code: "GOOD-CODE", Terminal: term}); err == nil {
		t.Fatal("enrolled with an unverified certificate")
	}
	wrong := strings.Repeat("00", 32)
	if _, err := Enroll(ctx, EnrollConfig{DataDir: dir, RelayURL: base, Code: "GOOD-CODE", Terminal: term, Transport: Transport{PinSHA256: wrong}}); err == nil ||
		!strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("wrong pin: %v", err)
	}
	_, err := Enroll(ctx, EnrollConfig{DataDir: dir, RelayURL: base, Code: "OLD-CODE", Terminal: term, Transport: Transport{PinSHA256: pin}})
	var ee *EnrollError
	if !errors.As(err, &ee) || ee.Code != wire.EnrollCodeExpired || ee.Status != http.StatusGone || !strings.Contains(err.Error(), "expired at noon") {
		t.Fatalf("expired code: %v", err)
	}
	en, err := Enroll(ctx, EnrollConfig{DataDir: dir, RelayURL: base, Code: "GOOD-CODE", Terminal: term, Transport: Transport{PinSHA256: pin}})
	if err != nil {
		t.Fatal(err)
	}
	if en.TerminalID != "t-1" || en.Mode != wire.ModeTablet || en.InmateID != "A7" {
		t.Fatalf("enrollment = %+v", en)
	}
	if id, ok, _ := term.BoundInmate(); !ok || id != "A7" {
		t.Fatalf("tablet bound to %q (%v), want A7", id, ok)
	}
	got, err := LoadEnrollment(dir)
	if err != nil || got.TerminalID != "t-1" || got.Transport.PinSHA256 != pin {
		t.Fatalf("stored enrollment = %+v, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, EnrollmentFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("enrollment file mode %v", fi.Mode().Perm())
	}
	// The engine uses the stored pin over wss:// to the same relay.
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnknownTerminal)
	}
	eng := runEngine(t, term, dir, nil)
	waitStatus(t, eng, func(st status.Link) bool { return strings.Contains(st.LastError, wire.ReasonUnknownTerminal) })
}

// testEngine is an engine running on a fake timers clock: it reconnects, pings and times
// out only when the test advances the clock.
type testEngine struct {
	*Engine
	clk     *clock.Fake
	changed chan struct{} // a status change since the last look
}

func runEngine(t *testing.T, term *kiosk.Terminal, dir string, change func(*Config)) *testEngine {
	t.Helper()
	te := &testEngine{clk: clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), changed: make(chan struct{}, 1)}
	cfg := Config{DataDir: dir, Terminal: term, Timers: te.clk, Logf: t.Logf}
	if change != nil {
		change(&cfg)
	}
	onStatus := cfg.OnStatus
	cfg.OnStatus = func(st status.Link) {
		if onStatus != nil {
			onStatus(st)
		}
		select {
		case te.changed <- struct{}{}:
		default: // one is pending already: the waiter looks at the status then
		}
	}
	eng, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.Engine = eng
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return te
}

// waitStatus waits, change by change, until the status satisfies cond. It has no deadline of
// its own: a status that never comes is the test binary's timeout.
func waitStatus(t *testing.T, eng *testEngine, cond func(status.Link) bool) status.Link {
	t.Helper()
	for {
		if st := eng.Status(); cond(st) {
			return st
		}
		<-eng.changed
	}
}

func enrolledPlain(t *testing.T, f *fakeRelay) (*kiosk.Terminal, string) {
	t.Helper()
	term, dir := newTestTerminal(t)
	if _, err := Enroll(context.Background(), EnrollConfig{DataDir: dir, RelayURL: f.srv.URL, Code: "GOOD-CODE", Terminal: term}); err != nil {
		t.Fatal(err)
	}
	return term, dir
}

func TestRelayWithoutOurVersionIsRefused(t *testing.T) {
	f := newFakeRelay(t, false)
	f.subproto = []string{"tether.v0"}
	term, dir := enrolledPlain(t, f)
	closed := make(chan websocket.CloseError, 1)
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			select {
			case closed <- ce:
			default:
			}
		}
	}
	eng := runEngine(t, term, dir, nil)
	st := waitStatus(t, eng, func(st status.Link) bool { return st.LastError != "" })
	if !strings.Contains(st.LastError, "did not select subprotocol") {
		t.Fatalf("status error = %q", st.LastError)
	}
	if ce := <-closed; ce.Code != websocket.StatusPolicyViolation || ce.Reason != wire.ReasonUnsupportedVersion {
		t.Fatalf("terminal closed with %d %q", ce.Code, ce.Reason)
	}
}

// acceptAnyAuth plays the relay's side of the handshake without checking the signature and
// welcomes the terminal as tablet t-1 of north, bound to A7.
func acceptAnyAuth(ctx context.Context, c *websocket.Conn) {
	c.Read(ctx) // hello
	frame, _ := wire.Encode(wire.Challenge{Nonce: make([]byte, wire.NonceLen)})
	c.Write(ctx, websocket.MessageText, frame)
	c.Read(ctx) // auth
	frame, _ = wire.Encode(wire.Welcome{TerminalID: "t-1", Facility: "north", Mode: wire.ModeTablet, InmateID: "A7"})
	c.Write(ctx, websocket.MessageText, frame)
}

func TestOversizedFrameIsRefused(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	closed := make(chan websocket.CloseError, 1)
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		c.SetReadLimit(wire.MaxFrameBytes)
		acceptAnyAuth(ctx, c)
		// A frame near the limit (four 250 KiB items) is read; the terminal acknowledges it.
		var d wire.Down
		for i := 1; i <= 4; i++ {
			body, _ := json.Marshal(wire.Notice{ID: "n", Text: strings.Repeat("y", 250<<10)})
			d.Items = append(d.Items, wire.DownItem{Seq: uint64(i), Kind: wire.DownNotice, Body: body})
		}
		frame, err := wire.Encode(d)
		if err != nil || len(frame) < wire.MaxBatchBytes-64<<10 {
			t.Errorf("near-limit frame: %d bytes, %v", len(frame), err)
			return
		}
		c.Write(ctx, websocket.MessageText, frame)
		for {
			_, raw, err := c.Read(ctx)
			if err != nil {
				t.Errorf("no down_ack for the near-limit frame: %v", err)
				return
			}
			f, err := wire.DecodeFrame(raw)
			if err != nil {
				t.Errorf("terminal sent a bad frame: %v", err)
				return
			}
			if f.Batch != nil {
				continue // the terminal's uplink; this relay never acks
			}
			if f.DownAck == nil || f.DownAck.Seq != 4 {
				t.Errorf("answer to the near-limit frame: %s", raw)
				return
			}
			break
		}
		big := make([]byte, wire.MaxFrameBytes+1)
		for i := range big {
			big[i] = 'x'
		}
		c.Write(ctx, websocket.MessageText, big)
		for err == nil {
			_, _, err = c.Read(ctx) // batches until the close frame
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			select {
			case closed <- ce:
			default:
			}
		}
	}
	runEngine(t, term, dir, nil)
	if ce := <-closed; ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("terminal closed with %d %q, want 1009", ce.Code, ce.Reason)
	}
}

func TestStatusCallbackAndQueueCounts(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	// A relay that completes the handshake and then acknowledges nothing.
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		acceptAnyAuth(ctx, c)
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}
	var mu sync.Mutex
	var seen []status.Link
	eng := runEngine(t, term, dir, func(c *Config) {
		c.OnStatus = func(st status.Link) { mu.Lock(); seen = append(seen, st); mu.Unlock() }
	})
	st := waitStatus(t, eng, func(st status.Link) bool { return st.Connected })
	if st.TerminalID != "t-1" || st.Facility != "north" || st.Mode != wire.ModeTablet || st.InmateID != "A7" {
		t.Fatalf("status = %+v", st)
	}
	// Enrollment left an audit item in the queue; nothing acknowledges it.
	if st.Waiting == 0 || st.OldestWaiting.IsZero() {
		t.Fatalf("queue not reported: %+v", st)
	}
	// The engine calls OnStatus after it changed the status, so the callback may still be on
	// its way when Status says connected.
	testwait.UntilSaw(t, "OnStatus reports the connection", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && seen[len(seen)-1].Connected, fmt.Sprintf("OnStatus calls = %+v", seen)
	})
}

func TestDeadLinkDetectedByMissedPongs(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	// After the handshake this relay stops reading, so it never answers a ping (the TCP
	// connection stays open, as with a link that silently died).
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		acceptAnyAuth(ctx, c)
		<-ctx.Done()
	}
	const iv = 30 * time.Second
	eng := runEngine(t, term, dir, func(c *Config) { c.PingInterval = iv; c.AckTimeout = time.Hour })
	waitStatus(t, eng, func(st status.Link) bool { return st.Connected })
	// Armed: the uplink's poll and the next ping (whose time is also the deadline of the
	// pong of the one out). The first ping goes at iv, is given up at 2iv and the second
	// goes; that one is given up at 3iv: two missed pongs end the link.
	for range 3 {
		eng.clk.WaitTimers(2)
		if st := eng.Status(); !st.Connected {
			t.Fatalf("link ended before two pings went unanswered: %+v", st)
		}
		eng.clk.Advance(iv)
	}
	st := waitStatus(t, eng, func(st status.Link) bool { return strings.Contains(st.LastError, "no pong") })
	if st.Connected {
		t.Fatalf("still connected after the link died: %+v", st)
	}
}

// The reconnect pace follows the kind of failure: a relay out of reach or a dropped link is
// retried with backoff; a relay refusing this terminal (revoked) at the cap, as asking again
// soon fails the same way until a technician acts.
func TestReconnectPaceFollowsTheKind(t *testing.T) {
	for _, c := range []struct {
		name   string
		reason string // close reason; "" drops the connection as a network fault does
		wait   time.Duration
	}{
		{"dropped", "", 500 * time.Millisecond}, // Backoff(1) with rand 0.5: half of BackoffMin
		{"revoked", wire.ReasonRevoked, time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeRelay(t, false)
			term, dir := enrolledPlain(t, f)
			connects := make(chan struct{}, 4)
			f.onConnect = func(ctx context.Context, c2 *websocket.Conn) {
				connects <- struct{}{}
				if c.reason != "" {
					c2.Close(websocket.StatusPolicyViolation, c.reason)
				}
			}
			eng := runEngine(t, term, dir, func(cfg *Config) {
				cfg.BackoffMin, cfg.BackoffMax = time.Second, time.Minute
				cfg.Rand = func() float64 { return 0.5 }
			})
			<-connects
			waitStatus(t, eng, func(st status.Link) bool { return st.LastError != "" })
			eng.clk.WaitTimers(1) // the reconnect
			eng.clk.Advance(c.wait - time.Millisecond)
			if eng.clk.Timers() != 1 {
				t.Fatalf("reconnected before %v", c.wait)
			}
			eng.clk.Advance(time.Millisecond)
			<-connects
		})
	}
}

// A session's end is retried when it may clear by itself, and not soon when a person must
// act: a damaged or unwritable store keeps its own kind.
func TestClassifySessionEnd(t *testing.T) {
	for _, c := range []struct {
		err       error
		retryable bool
	}{
		{fmt.Errorf("connect to relay: %w", syscall.ECONNREFUSED), true},
		{&kiosk.Error{Kind: kiosk.KindTransient, Op: "apply", Err: syscall.ENOSPC}, true},
		{&kiosk.Error{Kind: kiosk.KindCorrupt, Op: "apply"}, false},
		{&kiosk.Error{Kind: kiosk.KindIO, Op: "apply", Err: syscall.EROFS}, false},
		{fmt.Errorf("handshake: %w", websocket.CloseError{Code: websocket.StatusPolicyViolation, Reason: wire.ReasonUnknownTerminal}), false},
	} {
		if got := kiosk.Retryable(classify(c.err)); got != c.retryable {
			t.Errorf("%v: retryable %v, want %v", c.err, got, c.retryable)
		}
	}
}

// A relay that welcomes the terminal and then ends the session because it cannot do its work
// (an internal error, try again later) is failing: the waits before the next connections
// grow as after refused dials, where a welcome alone used to reset them to the shortest.
func TestARelayFailingAfterTheWelcomeIsBackedOffFrom(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	connects := make(chan struct{}, 8)
	f.onConnect = func(ctx context.Context, c *websocket.Conn) {
		connects <- struct{}{}
		for _, answer := range []any{wire.Challenge{Nonce: make([]byte, wire.NonceLen)}, welcomeT1} {
			if _, _, err := c.Read(ctx); err != nil { // the hello, then the auth
				return
			}
			frame, _ := wire.Encode(answer)
			if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
				return
			}
		}
		c.Close(websocket.StatusInternalError, "relay storage error")
	}
	// The engine draws its jitter once a session has ended, as it picks the wait before the
	// next: the test's cue that the reconnect timer is about to be set.
	drawn := make(chan struct{}, 8)
	eng := runEngine(t, term, dir, func(cfg *Config) {
		cfg.BackoffMin, cfg.BackoffMax = time.Second, time.Minute
		cfg.Rand = func() float64 { drawn <- struct{}{}; return 0.5 }
	})
	for _, wait := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
		<-connects
		<-drawn
		eng.clk.WaitTimers(1)
		eng.clk.Advance(wait - time.Millisecond)
		if eng.clk.Timers() != 1 {
			t.Fatalf("reconnected before %v", wait)
		}
		eng.clk.Advance(time.Millisecond)
	}
	<-connects
}

// deadURL is a loopback relay URL nothing listens on: a dial to it is refused.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Gateways are tried in order, the next at once after a refused dial; only a round that
// reached none of them waits for the backoff, and the next round starts at the first again.
func TestGatewaysTriedInOrderThenBackoff(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	dead1, dead2 := deadURL(t), deadURL(t)
	connects := make(chan struct{}, 4)
	f.onConnect = func(ctx context.Context, c *websocket.Conn) { connects <- struct{}{} }
	eng := runEngine(t, term, dir, func(cfg *Config) {
		cfg.RelayURL, cfg.RelayURLs = dead1, []string{dead2, f.srv.URL}
		cfg.BackoffMin, cfg.BackoffMax = time.Second, time.Minute
		cfg.Rand = func() float64 { return 0.5 }
	})
	<-connects // the third gateway, reached with the clock never advanced
	st := waitStatus(t, eng, func(st status.Link) bool { return st.LastError != "" && st.RelayURL == dead1 })
	t.Logf("after a round: %s", st.LastError)
	eng.clk.WaitTimers(1) // the round's backoff
	eng.clk.Advance(500*time.Millisecond - time.Millisecond)
	if eng.clk.Timers() != 1 {
		t.Fatal("a new round started before its backoff")
	}
	eng.clk.Advance(time.Millisecond)
	<-connects
}

// The list of relay URLs is bounded, checked URL by URL, and a repeat is tried once.
func TestRelayURLListRules(t *testing.T) {
	eps, err := relayEndpoints("ws://127.0.0.1:1", []string{"ws://127.0.0.1:2/", "ws://127.0.0.1:1", "wss://g3.example"}, Transport{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ep := range eps {
		got = append(got, ep.base)
	}
	if want := "ws://127.0.0.1:1 ws://127.0.0.1:2 wss://g3.example"; strings.Join(got, " ") != want {
		t.Fatalf("gateways %q, want %q", strings.Join(got, " "), want)
	}
	nine := make([]string, MaxRelayURLs)
	for i := range nine {
		nine[i] = fmt.Sprintf("wss://g%d.example", i+10)
	}
	for name, more := range map[string][]string{
		"too many":  nine,
		"bad one":   {"wss://g2.example", "ftp://g3.example"},
		"plain":     {"ws://g2.example"},
		"too long":  {"wss://" + strings.Repeat("g", 600) + ".example"},
		"with user": {"wss://u:s3cret@g2.example"},
	} {
		if _, err := relayEndpoints("wss://g1.example", more, Transport{}); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// helloThen plays a relay's handshake: it reads the hello (sent on hellos), challenges, reads
// auth, and answers with answer (a welcome or a redirect); it closes the connection after a
// redirect, and after a welcome once release is closed.
func helloThen(hellos chan<- wire.Hello, release <-chan struct{}, answer func(n int) any) func(context.Context, *websocket.Conn) {
	var mu sync.Mutex
	n := 0
	return func(ctx context.Context, c *websocket.Conn) {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		f, err := wire.DecodeFrame(b)
		if err != nil || f.Hello == nil {
			return
		}
		mu.Lock()
		n++
		a := answer(n)
		mu.Unlock()
		hellos <- *f.Hello
		frame, _ := wire.Encode(wire.Challenge{Nonce: make([]byte, wire.NonceLen)})
		c.Write(ctx, websocket.MessageText, frame)
		c.Read(ctx) // auth
		frame, _ = wire.Encode(a)
		c.Write(ctx, websocket.MessageText, frame)
		if _, ok := a.(wire.Redirect); ok {
			c.Close(websocket.StatusNormalClosure, wire.ReasonRedirect)
			return
		}
		select {
		case <-release:
			c.Close(websocket.StatusGoingAway, "test relay going away")
		case <-ctx.Done():
		}
	}
}

var welcomeT1 = wire.Welcome{TerminalID: "t-1", Facility: "north", Mode: wire.ModeTablet, InmateID: "A7"}

// A redirect is followed at once to the gateway it names, even one the terminal did not list
// yet, and the hello there says it was redirected; a redirect to a URL the transport refuses
// (plain, off loopback) sends the terminal back where it was, saying so; a relay that
// redirects a hello saying so is broken, and that counts as a failed round, with its backoff.
func TestRedirectFollowedOnce(t *testing.T) {
	a, b := newFakeRelay(t, false), newFakeRelay(t, false)
	term, dir := enrolledPlain(t, a)
	atA, atB := make(chan wire.Hello, 8), make(chan wire.Hello, 8)
	release := make(chan struct{})
	a.onConnect = helloThen(atA, nil, func(n int) any {
		switch n {
		case 1:
			return wire.Redirect{URL: b.srv.URL}
		case 2:
			return wire.Redirect{URL: "http://gw2.example"}
		default:
			return wire.Redirect{URL: "http://gw2.example"} // broken: the hello said redirected
		}
	})
	b.onConnect = helloThen(atB, release, func(int) any { return welcomeT1 })
	eng := runEngine(t, term, dir, func(cfg *Config) {
		cfg.BackoffMin, cfg.BackoffMax = time.Second, time.Minute
		cfg.Rand = func() float64 { return 0.5 }
	})
	if h := <-atA; !h.Redirects || h.Redirected {
		t.Fatalf("first hello: redirects=%v redirected=%v, want true, false", h.Redirects, h.Redirected)
	}
	if h := <-atB; !h.Redirects || !h.Redirected {
		t.Fatalf("hello at the gateway redirected to: redirects=%v redirected=%v, want true, true", h.Redirects, h.Redirected)
	}
	st := waitStatus(t, eng, func(st status.Link) bool { return st.Connected })
	if st.RelayURL != b.srv.URL {
		t.Fatalf("status shows relay %s, want the gateway redirected to %s", st.RelayURL, b.srv.URL)
	}

	// The welcome reset the flag: the next hello may be redirected again.
	close(release)
	waitStatus(t, eng, func(st status.Link) bool { return !st.Connected })
	eng.clk.WaitTimers(1) // a round of one gateway ended: its backoff
	eng.clk.Advance(time.Minute)
	if h := <-atA; !h.Redirects || h.Redirected {
		t.Fatalf("hello after a welcome: redirects=%v redirected=%v, want true, false", h.Redirects, h.Redirected)
	}
	// Redirected to a URL the transport refuses: back to a, saying it was redirected, at once.
	if h := <-atA; !h.Redirected {
		t.Fatal("hello after a redirect the transport refused does not say redirected")
	}
	// a redirects that hello too: a failed connection, and a round's backoff before the next.
	waitStatus(t, eng, func(st status.Link) bool { return strings.Contains(st.LastError, "redirected") })
	eng.clk.WaitTimers(1)
	select {
	case h := <-atA:
		t.Fatalf("connected again (%+v) before the backoff", h)
	default:
	}
	eng.clk.Advance(time.Minute)
	if h := <-atA; !h.Redirected {
		t.Fatal("after the backoff, the hello forgot it was redirected")
	}
}
