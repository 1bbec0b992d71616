package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// dialFrom opens a websocket to url from the loopback address ip (all of 127.0.0.0/8 is
// loopback on Linux), so tests can play several clients.
func dialFrom(ctx context.Context, url, ip string) (*websocket.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols:    []string{wire.Subprotocol},
		CompressionMode: websocket.CompressionNoContextTakeover,
		HTTPClient:      &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
	})
	return c, err
}

// pendingCount is how many connections wait for authentication.
func (e *env) pendingCount() int {
	e.r.hub.mu.Lock()
	defer e.r.hub.mu.Unlock()
	return e.r.hub.pending
}

// One client holding many idle sockets takes at most its own share of the pending places: a
// good terminal from another address still connects, authenticates and syncs throughout.
func TestIdleSocketsFromOneAddressDoNotLockOthersOut(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxPending = 16
		c.MaxPendingPerAddr = 4
		c.HelloTimeout = 5 * time.Second
		c.HandshakeTimeout = 10 * time.Second
	})
	e.seed()
	good := e.enroll(wire.ModeKiosk, "")
	gc := good.connect(t, 0)

	const n = 40
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialFrom(ctx, e.wsURL(), "127.0.0.2")
			key := "no close frame"
			if err != nil {
				key = "dial error: " + err.Error()
			} else {
				defer c.CloseNow()
				_, _, err = c.Read(ctx) // idle: never says hello
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					key = ce.Reason
				}
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}()
	}
	// Wait until the hostile client has taken all it may.
	waitUntil(t, "the hostile client holds its 4 places", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return outcomes[ReasonBusyAddr] == n-4 && e.pendingCount() == 4
	})
	// Meanwhile good terminals, from another address, connect and sync.
	syncOK(t, good, gc)
	other := e.enroll(wire.ModeKiosk, "")
	syncOK(t, other, other.connect(t, 0))
	gc.c.Close(websocket.StatusNormalClosure, "")
	syncOK(t, good, good.connect(t, 0))

	// The idle sockets are let go after HelloTimeout, with the handshake's reason.
	wg.Wait()
	if outcomes[ReasonBusyAddr] != n-4 || outcomes[wire.ReasonAuthTimeout] != 4 {
		t.Fatalf("hostile outcomes: %v", outcomes)
	}
	waitUntil(t, "no connection counted as pending", func() bool { return e.pendingCount() == 0 })
}

// waitUntil polls cond until it holds (the relay's handlers finish after the peer saw the close).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// A socket that never says hello is closed after HelloTimeout, well before the whole
// handshake budget; one that says hello gets the rest of the budget for auth.
func TestHelloTimeoutIsShorterThanTheHandshake(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.HelloTimeout = 200 * time.Millisecond
		c.HandshakeTimeout = time.Minute
	})
	e.seed()
	tm := e.enroll(wire.ModeKiosk, "")
	c := dial(t, e.wsURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != wire.ReasonAuthTimeout {
		t.Fatalf("idle socket: %v, want closed with %q long before the one-minute handshake budget", err, wire.ReasonAuthTimeout)
	}
	// hello in time, auth after the hello timeout: still within the handshake, so welcomed.
	c = dial(t, e.wsURL())
	send(t, c, wire.Hello{TerminalID: tm.id, Epoch: tm.epoch})
	f := read(t, c)
	time.Sleep(400 * time.Millisecond)
	send(t, c, wire.Auth{Signature: wire.SignAuth(tm.priv, tm.id, f.Challenge.Nonce)})
	if f := read(t, c); f.Type != wire.TypeWelcome {
		t.Fatalf("got %s after a slow auth, want welcome", f.Type)
	}
}

// A client trickling the body of POST /v1/enroll a byte at a time is cut off by the server
// (400, connection closed) instead of holding a handler for as long as it likes.
func TestSlowEnrollBodyIsCutOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.EnrollReadTimeout = 200 * time.Millisecond })
	e.seed()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 100000 // at a byte per 20 ms, over half an hour
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", wire.PathEnroll, size); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := 1
		defer func() { sent <- n }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for ; n < size; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(stop)
	if err != nil {
		t.Fatalf("no answer while the body trickled in: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), wire.EnrollInvalid) {
		t.Fatalf("slow body: %d %s, want 400 %s", resp.StatusCode, body, wire.EnrollInvalid)
	}
	if n := <-sent; n >= size {
		t.Fatal("the whole body was sent: the server waited for it")
	}
	// The relay still enrolls a normal terminal.
	e.enroll(wire.ModeKiosk, "")
}

// A terminal flooding down_ack (thousands of frames, each seq acknowledged one by one and
// again and again) costs a handful of store transactions, not one per frame; what it
// acknowledged is still written and pruned when it leaves, and a good terminal syncs throughout.
func TestDownAckFloodIsCheap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.NoSync = true })
	e.seed()
	flooder := e.enroll(wire.ModeKiosk, "")
	good := e.enroll(wire.ModeKiosk, "")
	for i := 0; i < 600; i++ {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1, Ref: fmt.Sprint("flood-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	gc := good.connect(t, 0)
	fc := flooder.connect(t, 0)
	fc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "flood-599" })
	last := fc.lastSeq()

	before := e.r.writeTxs.Load()
	frames := 0
	for seq := uint64(1); seq <= last; seq++ {
		for i := 0; i < 4; i++ {
			fc.ackDown(seq)
			frames++
		}
		fc.ackDown(seq / 2) // lower: nothing
		frames++
		if seq%200 == 0 {
			syncOK(t, good, gc)
		}
	}
	fc.ackDown(last + 1000) // beyond anything sent: clamped
	frames++
	// The relay handles a connection's frames in order: once this batch is acknowledged,
	// every down_ack before it was handled.
	if ack := fc.batch(flooder.item(wire.UpAudit, kiosk.AuditEvent{ID: "after-flood", Kind: "test", At: t0})); ack.Seq != flooder.seq {
		t.Fatalf("batch after the flood: %+v", ack)
	}
	syncOK(t, good, gc)
	writes := e.r.writeTxs.Load() - before
	// The flooder's batch and the good terminal's four batches, a write per ackFlushItems
	// acknowledged items, and the odd timed flush.
	if limit := 5 + last/ackFlushItems + 4; writes > limit {
		t.Fatalf("%d down_ack frames cost %d write transactions, want at most %d", frames, writes, limit)
	}

	// Leaving writes what it acknowledged: the relay forgets those items.
	fc.c.Close(websocket.StatusNormalClosure, "")
	waitUntil(t, "the flooder has left", func() bool { return !e.r.hub.connected(flooder.id) })
	ts, err := e.r.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	var acked uint64
	for _, ti := range ts {
		if ti.ID != flooder.id {
			continue
		}
		// The clamped ack counts for what was sent by then: the deposits, and maybe the good
		// terminal's charges fanned out meanwhile; never more than was queued.
		if acked = ti.DownAcked; acked < last || acked > ti.DownQueued {
			t.Fatalf("after leaving, down_acked = %d, want %d..%d", acked, last, ti.DownQueued)
		}
	}
	// Its own items are gone; its facility's log keeps what the good terminal still needs
	// (pruned apart, TestFacilityLogPrunedOnceAllPassed).
	if left := ownDown(t, e.r, flooder.id); len(left) > 0 && left[0] <= acked {
		t.Fatalf("acknowledged items still stored: %v", left)
	}
	if strings.Count(e.logText(), "beyond the last sent") != 1 {
		t.Fatalf("the clamped ack was not logged exactly once:\n%s", e.logText())
	}
}
