package relay

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/wire"
)

// A terminal may send its hello in the same packet as the upgrade request (nothing in the
// protocol makes it wait for the 101). The relay hands the websocket smaller buffers than
// net/http's (conn.go, smallBuffers); the bytes net/http had already read past the request
// must reach the handshake, which then answers with a challenge. Pings after the hello make
// the pipelined bytes longer than the new buffer.
func TestHelloSentWithTheUpgradeRequest(t *testing.T) {
	e := newEnv(t)
	for _, pings := range []int{0, 12} { // within the new buffer, and beyond it
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		hello, err := wire.Encode(wire.Hello{TerminalID: "t-1", Epoch: "e1", Software: "test"})
		if err != nil {
			t.Fatal(err)
		}
		req := "GET " + wire.PathTerminal + " HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + wire.Subprotocol + "\r\n\r\n"
		// One write: the request and a masked text frame holding the hello.
		frame := []byte{0x81}
		if len(hello) < 126 {
			frame = append(frame, 0x80|byte(len(hello)))
		} else {
			frame = binary.BigEndian.AppendUint16(append(frame, 0x80|126), uint16(len(hello)))
		}
		mask := []byte{1, 2, 3, 4}
		frame = append(frame, mask...)
		for i, b := range hello {
			frame = append(frame, b^mask[i%4])
		}
		for range pings {
			frame = append(frame, 0x89, 0x80|125) // ping, masked, 125 bytes
			frame = append(frame, mask...)
			for i := range 125 {
				frame = append(frame, 'p'^mask[i%4])
			}
		}
		if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade answered %s", resp.Status)
		}
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("hello and %d pings sent with the request: no frame back: %v", pings, err)
		}
		n := int(hdr[1] & 0x7f)
		if n == 126 {
			var ext [2]byte
			if _, err := io.ReadFull(br, ext[:]); err != nil {
				t.Fatal(err)
			}
			n = int(binary.BigEndian.Uint16(ext[:]))
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if hdr[0]&0x0f != 0x1 {
			t.Fatalf("hello and %d pings sent with the request: got opcode %#x (%q), want the challenge", pings, hdr[0]&0x0f, payload)
		}
		f, err := wire.DecodeFrame(payload)
		if err != nil || f.Type != wire.TypeChallenge {
			t.Fatalf("hello and %d pings sent with the request: got %q (%v), want a challenge", pings, payload, err)
		}
	}
}
