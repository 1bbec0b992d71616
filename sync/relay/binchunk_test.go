package relay

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// On a connection that negotiated permessage-deflate, writeUncompressed sends a message as it
// is (what binary chunks rely on: media is already compressed), while a plain Write of the
// same bytes is deflated; the receiver reads the same message either way.
func TestBinaryChunksGoUncompressed(t *testing.T) {
	msg := bytes.Repeat([]byte("tether chunk "), 20000) // 260,000 bytes that deflate to little
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		if err != nil {
			done <- err
			return
		}
		defer c.CloseNow()
		if err := c.Write(r.Context(), websocket.MessageBinary, msg); err != nil {
			done <- err
			return
		}
		done <- writeUncompressed(r.Context(), c, websocket.MessageBinary, msg)
		c.Read(r.Context()) // until the client closes
	}))
	defer srv.Close()
	var read atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countConn{Conn: c, n: &read}, err
	}}
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"),
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	var sizes []int64
	for i := 0; i < 2; i++ {
		before := read.Load()
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %v of %d bytes, not the %d sent", i, typ, len(got), len(msg))
		}
		sizes = append(sizes, read.Load()-before)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sizes[0] > int64(len(msg))/10 {
		t.Fatalf("a plain Write took %d bytes on the wire: the connection did not compress, the test proves nothing", sizes[0])
	}
	if sizes[1] < int64(len(msg))*9/10 { // (the reader may have buffered a little of it early)
		t.Fatalf("writeUncompressed took %d bytes on the wire for a %d-byte message: it was compressed", sizes[1], len(msg))
	}
}
