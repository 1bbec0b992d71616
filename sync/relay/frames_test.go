package relay

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/wire"
)

// A terminal that sends a binary websocket message, or a text message that is not valid
// UTF-8, is closed with 1008 and a reason that says which, before and after authentication,
// and stores nothing; a good terminal keeps syncing.
func TestNonTextFramesRefused(t *testing.T) {
	e := newEnv(t)
	e.seed()
	good := e.enroll(wire.ModeKiosk, "")
	gc := good.connect(t, 0)
	bad := e.enroll(wire.ModeKiosk, "")

	write := func(c *websocket.Conn, typ websocket.MessageType, b []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Write(ctx, typ, b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	hello, err := wire.Encode(wire.Hello{TerminalID: bad.id, Epoch: bad.epoch})
	if err != nil {
		t.Fatal(err)
	}
	notUTF8 := []byte("{\"type\":\"hello\",\"body\":{\"terminal_id\":\"t-\xff\",\"epoch\":\"e\"}}")

	t.Run("binary hello", func(t *testing.T) {
		c := dial(t, e.wsURL())
		write(c, websocket.MessageBinary, hello) // a well-formed frame, but in a binary message
		expectClose(t, c, websocket.StatusPolicyViolation, wire.ReasonBinary)
	})
	t.Run("invalid UTF-8 hello", func(t *testing.T) {
		c := dial(t, e.wsURL())
		write(c, websocket.MessageText, notUTF8)
		expectClose(t, c, websocket.StatusPolicyViolation, wire.ReasonMalformed+": decode frame: not valid UTF-8")
	})

	batch := func(body []byte) []byte {
		return []byte(`{"type":"batch","body":{"epoch":"` + bad.epoch + `","items":[{"seq":1,"id":"i-1","kind":"audit","created_at":"2026-03-01T12:00:00Z","body":` + string(body) + `}]}}`)
	}
	valid := []byte(`{"id":"ev-1","at":"2026-03-01T12:00:00Z","kind":"login_ok","actor":"A1","detail":{"note":"cafe"}}`)
	broken := []byte("{\"id\":\"ev-1\",\"at\":\"2026-03-01T12:00:00Z\",\"kind\":\"login_ok\",\"actor\":\"A1\",\"detail\":{\"note\":\"caf\xc3\"}}")
	t.Run("binary batch after auth", func(t *testing.T) {
		bc := bad.connect(t, 0)
		write(bc.c, websocket.MessageBinary, batch(valid)) // the same bytes as text would be accepted
		expectClose(t, bc.c, websocket.StatusPolicyViolation, wire.ReasonBinary)
	})
	t.Run("invalid UTF-8 batch after auth", func(t *testing.T) {
		bc := bad.connect(t, 0)
		write(bc.c, websocket.MessageText, batch(broken))
		expectClose(t, bc.c, websocket.StatusPolicyViolation, wire.ReasonMalformed+": decode frame: not valid UTF-8")
	})
	items, err := e.r.Items(ItemFilter{TerminalID: bad.id})
	if err != nil || len(items) != 0 {
		t.Fatalf("items stored from refused messages: %v %+v", err, items)
	}
	syncOK(t, good, gc)
}
