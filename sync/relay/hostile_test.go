package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

func TestEnrollRefusals(t *testing.T) {
	e := newEnv(t)
	e.seed()
	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	check := func(name string, raw []byte, status int, wantStatus int, wantCode string) {
		t.Helper()
		er := wire.DecodeErrorResponse(raw)
		if status != wantStatus || er.Error != wantCode || er.Message == "" {
			t.Fatalf("%s: %d %s, want %d %s", name, status, raw, wantStatus, wantCode)
		}
	}
	raw, status := e.postEnroll("NOPE-NOPE-NOPE", priv)
	check("unknown code", raw, status, 404, wire.EnrollUnknownCode)

	// A signature by another key: refused before the code is spent.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(wire.EnrollRequest{Code: en.Code, PublicKey: priv.Public().(ed25519.PublicKey), Signature: wire.SignEnroll(other, en.Code)})
	resp, err := http.Post(e.srv.URL+wire.PathEnroll, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad signature: %d", resp.StatusCode)
	}
	resp, _ = http.Post(e.srv.URL+wire.PathEnroll, "application/json", strings.NewReader(`{"code":`))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("malformed: %d", resp.StatusCode)
	}

	// Lower case and without dashes is the same code; it works once.
	code := strings.ToLower(strings.ReplaceAll(en.Code, "-", ""))
	raw, status = e.postEnroll(code, priv)
	if status != 200 {
		t.Fatalf("enroll: %d %s", status, raw)
	}
	raw, status = e.postEnroll(en.Code, priv)
	check("used code", raw, status, 409, wire.EnrollCodeUsed)

	// The same key may enroll again in its own facility (TestReenrollSameKey), not in another.
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	en2, _ := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "south", Mode: wire.ModeKiosk})
	raw, status = e.postEnroll(en2.Code, priv)
	check("key in use", raw, status, 409, wire.EnrollKeyInUse)

	e.clock.Advance(24 * time.Hour)
	_, fresh, _ := ed25519.GenerateKey(rand.Reader)
	raw, status = e.postEnroll(en2.Code, fresh)
	check("expired", raw, status, 410, wire.EnrollCodeExpired)
	if strings.Contains(e.logText(), en.Code) || strings.Contains(e.logText(), en2.Code) {
		t.Fatal("an enrollment code reached the log")
	}
}

// syncOK proves a good terminal still syncs: a charge goes up and is acknowledged.
func syncOK(t *testing.T, tm *term, c *tconn) {
	t.Helper()
	want := tm.seq + 1
	if ack := c.batch(tm.item(wire.UpCharge, charge("A1", "good-"+tm.id, int(want%10), 1))); ack.Seq != want {
		t.Fatalf("good terminal ack = %+v, want seq %d", ack, want)
	}
}

// Hostile peers each get a clean close with a reason; a good terminal keeps syncing throughout.
func TestHostilePeers(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	e.seed()
	good := e.enroll(wire.ModeKiosk, "")
	gc := good.connect(t, 0)
	bad := e.enroll(wire.ModeKiosk, "")

	hello := wire.Hello{TerminalID: bad.id, Epoch: bad.epoch}
	cases := []struct {
		name   string
		run    func(c *websocket.Conn)
		code   websocket.StatusCode
		reason string
		protos []string
	}{
		{"wrong signature", func(c *websocket.Conn) {
			send(t, c, hello)
			read(t, c)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			send(t, c, wire.Auth{Signature: wire.SignAuth(other, bad.id, make([]byte, 32))})
		}, websocket.StatusPolicyViolation, wire.ReasonBadSignature, nil},
		{"unknown terminal", func(c *websocket.Conn) {
			send(t, c, wire.Hello{TerminalID: "t-nobody", Epoch: "e"})
			f := read(t, c)
			send(t, c, wire.Auth{Signature: wire.SignAuth(bad.priv, "t-nobody", f.Challenge.Nonce)})
		}, websocket.StatusPolicyViolation, wire.ReasonUnknownTerminal, nil},
		{"signature for another terminal id", func(c *websocket.Conn) {
			send(t, c, wire.Hello{TerminalID: good.id, Epoch: "e"})
			f := read(t, c)
			send(t, c, wire.Auth{Signature: wire.SignAuth(bad.priv, bad.id, f.Challenge.Nonce)})
		}, websocket.StatusPolicyViolation, wire.ReasonBadSignature, nil},
		{"oversized frame", func(c *websocket.Conn) {
			big := make([]byte, wire.MaxFrameBytes+1)
			for i := range big {
				big[i] = ' '
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c.Write(ctx, websocket.MessageText, big)
		}, websocket.StatusMessageTooBig, "read limited at", nil},
		{"malformed JSON", func(c *websocket.Conn) {
			c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"hello","body":{`))
		}, websocket.StatusPolicyViolation, wire.ReasonMalformed, nil},
		{"unknown message type", func(c *websocket.Conn) {
			c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"gimme","body":{}}`))
		}, websocket.StatusPolicyViolation, wire.ReasonMalformed + `: decode frame: unknown type "gimme"`, nil},
		{"batch before auth", func(c *websocket.Conn) {
			send(t, c, wire.Batch{Epoch: "e", Items: []wire.Item{{Seq: 1, ID: "i", Kind: "audit", Body: []byte(`{}`)}}})
		}, websocket.StatusPolicyViolation, wire.ReasonUnexpected, nil},
		{"silence", func(c *websocket.Conn) {}, websocket.StatusPolicyViolation, wire.ReasonAuthTimeout, nil},
		{"hello then silence", func(c *websocket.Conn) {
			send(t, c, hello)
		}, websocket.StatusPolicyViolation, wire.ReasonAuthTimeout, nil},
		{"other version", func(c *websocket.Conn) {}, websocket.StatusPolicyViolation, wire.ReasonUnsupportedVersion, []string{"tether.v2"}},
		{"no subprotocol", func(c *websocket.Conn) {}, websocket.StatusPolicyViolation, wire.ReasonUnsupportedVersion, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.wsURL(), tc.protos...)
			tc.run(c)
			expectClose(t, c, tc.code, tc.reason)
			syncOK(t, good, gc)
		})
	}

	t.Run("replayed nonce", func(t *testing.T) {
		// Record a real terminal's handshake, then replay its hello and auth on a new connection.
		c1 := dial(t, e.wsURL())
		send(t, c1, hello)
		f := read(t, c1)
		auth := wire.Auth{Signature: wire.SignAuth(bad.priv, bad.id, f.Challenge.Nonce)}
		send(t, c1, auth)
		if f := read(t, c1); f.Type != wire.TypeWelcome {
			t.Fatalf("got %s", f.Type)
		}
		c1.Close(websocket.StatusNormalClosure, "")
		c2 := dial(t, e.wsURL())
		send(t, c2, hello)
		if f2 := read(t, c2); string(f2.Challenge.Nonce) == string(f.Challenge.Nonce) {
			t.Fatal("the relay repeated a nonce")
		}
		send(t, c2, auth)
		expectClose(t, c2, websocket.StatusPolicyViolation, wire.ReasonBadSignature)
		syncOK(t, good, gc)
	})

	t.Run("after auth", func(t *testing.T) {
		bc := bad.connect(t, 0)
		send(t, bc.c, wire.Hello{TerminalID: bad.id, Epoch: bad.epoch})
		expectClose(t, bc.c, websocket.StatusPolicyViolation, wire.ReasonUnexpected)

		bc = bad.connect(t, 0)
		send(t, bc.c, wire.Batch{Epoch: "other", Items: []wire.Item{bad.item(wire.UpAudit, kiosk.AuditEvent{ID: "x"})}})
		expectClose(t, bc.c, websocket.StatusPolicyViolation, wire.ReasonWrongEpoch)

		bad.seq = 0
		bc = bad.connect(t, 0)
		bad.seq = 5 // skips 1..5
		if ack := bc.batch(bad.item(wire.UpAudit, kiosk.AuditEvent{ID: "x"})); ack.Seq != 0 {
			t.Fatalf("ack after a gap = %+v", ack)
		}
		expectClose(t, bc.c, websocket.StatusPolicyViolation, wire.ReasonSequenceGap)
		syncOK(t, good, gc)
	})

	t.Run("replaced", func(t *testing.T) {
		old := bad.connect(t, 0)
		bad.connect(t, 0)
		expectClose(t, old.c, websocket.StatusPolicyViolation, wire.ReasonReplaced)
	})

	t.Run("revoked key", func(t *testing.T) {
		open := bad.connect(t, 0)
		if err := e.r.Revoke(bad.id); err != nil {
			t.Fatal(err)
		}
		expectClose(t, open.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
		c := dial(t, e.wsURL())
		send(t, c, hello)
		f := read(t, c)
		send(t, c, wire.Auth{Signature: wire.SignAuth(bad.priv, bad.id, f.Challenge.Nonce)})
		expectClose(t, c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
		syncOK(t, good, gc)
	})
}

// A flood of 200 concurrent connections that never authenticate is bounded: beyond MaxPending
// they are closed at once as busy, the rest time out; a good terminal syncs during and after.
func TestConnectionFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.HandshakeTimeout = time.Second
		c.MaxPending = 20
		c.MaxPendingPerAddr = 200 // the flood comes from 127.0.0.1 like the good terminal: this tests the global bound
	})
	e.seed()
	good := e.enroll(wire.ModeKiosk, "")
	gc := good.connect(t, 0)

	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
			if err != nil {
				mu.Lock()
				counts["dial error: "+err.Error()]++
				mu.Unlock()
				return
			}
			defer c.CloseNow()
			_, _, err = c.Read(ctx)
			var ce websocket.CloseError
			key := "no close frame"
			if errors.As(err, &ce) {
				key = ce.Reason
			}
			mu.Lock()
			counts[key]++
			mu.Unlock()
		}()
	}
	// During the flood the connected terminal keeps syncing.
	for i := 0; i < 5; i++ {
		syncOK(t, good, gc)
	}
	wg.Wait()
	if counts[ReasonBusy]+counts[wire.ReasonAuthTimeout] != n || counts[ReasonBusy] < n/2 {
		t.Fatalf("flood outcomes: %v", counts)
	}
	// After the flood a new connection authenticates and syncs.
	gc.c.Close(websocket.StatusNormalClosure, "")
	syncOK(t, good, good.connect(t, 0))
}

// An authenticated terminal that stops answering pings is closed with a reason; one that answers stays.
func TestPingWithoutPong(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PingInterval = 200 * time.Millisecond })
	e.seed()
	live := e.enroll(wire.ModeKiosk, "")
	lc := live.connect(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readerDone := make(chan struct{})
	go func() { // reading answers pings
		defer close(readerDone)
		for {
			if _, _, err := lc.c.Read(ctx); err != nil {
				return
			}
		}
	}()
	dead := e.enroll(wire.ModeKiosk, "")
	dc := dead.connect(t, 0)
	time.Sleep(time.Second) // dc reads nothing, so it answers no ping
	expectClose(t, dc.c, websocket.StatusPolicyViolation, ReasonNoPong)
	if !e.r.hub.connected(live.id) {
		t.Fatal("the terminal that answers pings was dropped")
	}
	cancel()
	<-readerDone
}
