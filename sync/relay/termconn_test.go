package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// countingConn counts the writes that reach a real socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// tcpPair is a connected pair of sockets on 127.0.0.1.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// The frames written while corked (a transaction's acks, a frame larger than the library's
// write buffer) reach the socket with one write, whole and in order; uncorked, each write goes
// through at once.
func TestCorkedFramesGoOutInOneWrite(t *testing.T) {
	peer, raw := tcpPair(t)
	cc := &countingConn{Conn: raw}
	var pool sync.Pool
	c := &termConn{Conn: cc, pool: &pool, rpool: &sync.Pool{}}

	frames := [][]byte{[]byte("ack one;"), []byte("ack two;"), bytes.Repeat([]byte("d"), 3000)}
	c.cork()
	for _, f := range frames {
		if n, err := c.Write(f); err != nil || n != len(f) {
			t.Fatalf("corked write: %d, %v", n, err)
		}
	}
	if cc.writes != 0 {
		t.Fatalf("%d writes reached the socket while corked", cc.writes)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if cc.writes != 1 {
		t.Fatalf("uncork made %d writes, want 1", cc.writes)
	}
	want := bytes.Join(frames, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("peer read %q, %v", got, err)
	}

	if _, err := c.Write([]byte("plain")); err != nil {
		t.Fatal(err)
	}
	if cc.writes != 2 {
		t.Fatalf("an uncorked write made %d writes in all, want 2", cc.writes)
	}
	// A second cork reuses a buffer from the pool and starts empty.
	c.cork()
	c.Write([]byte("x"))
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("plainx"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "plainx" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

// A peer that stops reading is dropped: once the socket's buffers are full a write fails
// within the write timeout, the socket is closed (so the connection's reads end too), and
// every later write fails at once.
func TestWriteToPeerThatDoesNotReadFailsAndCloses(t *testing.T) {
	_, raw := tcpPair(t) // the client end never reads
	c := &termConn{Conn: raw, pool: &sync.Pool{}, rpool: &sync.Pool{}, timeout: 200 * time.Millisecond}
	chunk := make([]byte, 64<<10)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		_, err = c.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a peer that does not read ended with %v, want the deadline", err)
	}
	if _, rerr := raw.Read(make([]byte, 1)); !errors.Is(rerr, net.ErrClosed) {
		t.Fatalf("read after the failed write: %v, want the socket closed", rerr)
	}
	if _, werr := c.Write([]byte("more")); werr == nil {
		t.Fatal("a write after the failure succeeded")
	}
	c.cork()
	c.Write([]byte("held"))
	if uerr := c.uncork(); uerr == nil {
		t.Fatal("uncork after the failure succeeded")
	}
}

// A read takes what the socket holds with one system call, up to readChunk bytes, and hands
// it out in the pieces the library asks for: the bytes arrive whole and in order, a large read
// goes straight into the caller's buffer, the end of the stream is io.EOF, and a connection
// that read everything holds no buffer.
func TestReadsTakeWhatTheSocketHoldsAtOnce(t *testing.T) {
	peer, raw := tcpPair(t)
	c := newTermConn(raw, &sync.Pool{}, &sync.Pool{})
	if c.rc == nil {
		t.Fatal("a TCP socket was not read through its raw connection")
	}
	frame := make([]byte, 500)
	for i := range frame {
		frame[i] = byte(i)
	}
	if _, err := peer.Write(frame); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, connReadBuf)
	n, err := c.Read(p) // what the library's small buffer asks for
	if err != nil || n != connReadBuf || !bytes.Equal(p[:n], frame[:n]) {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if c.rbuf == nil || c.rlen-c.roff != len(frame)-connReadBuf {
		t.Fatalf("the rest of the frame was not taken with the first read (%d held)", c.rlen-c.roff)
	}
	rest := make([]byte, 1000)
	if n, err = c.Read(rest); err != nil || n != len(frame)-connReadBuf || !bytes.Equal(rest[:n], frame[connReadBuf:]) {
		t.Fatalf("second read: %d, %v", n, err)
	}
	if c.rbuf != nil {
		t.Fatal("a connection that read everything still holds a buffer")
	}

	// A stream of pieces of every size, and a large one read straight in.
	var want bytes.Buffer
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 1; i < 300; i++ {
			b := bytes.Repeat([]byte{byte(i)}, i*37%5000)
			want.Write(b)
			peer.Write(b)
		}
		big := bytes.Repeat([]byte{7}, 3*readChunk)
		want.Write(big)
		peer.Write(big)
		peer.Close()
	}()
	var got bytes.Buffer
	sizes := []int{1, 2, 256, 100, readChunk, 3 * readChunk, 7}
	for i := 0; ; i++ {
		b := make([]byte, sizes[i%len(sizes)])
		n, err := c.Read(b)
		got.Write(b[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	<-written
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("read %d bytes, %d written, or not the same", got.Len(), want.Len())
	}
	if c.rbuf != nil {
		t.Fatal("a connection at its end still holds a buffer")
	}
}

// A socket without a raw connection (TLS ends at relayd: a *tls.Conn; here a pipe) is read
// as it is, and written through the same deadline and cork.
func TestSocketWithoutRawConnReadsAsItIs(t *testing.T) {
	peer, raw := net.Pipe()
	t.Cleanup(func() { peer.Close(); raw.Close() })
	c := newTermConn(raw, &sync.Pool{}, &sync.Pool{})
	if c.rc != nil {
		t.Fatal("a pipe was given a raw connection")
	}
	go peer.Write([]byte("hello, relay"))
	p := make([]byte, 5)
	if n, err := c.Read(p); err != nil || string(p[:n]) != "hello" {
		t.Fatalf("read %q, %v", p[:n], err)
	}
	rest := make([]byte, 64)
	if n, err := c.Read(rest); err != nil || string(rest[:n]) != ", relay" {
		t.Fatalf("read %q, %v", rest[:n], err)
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadFull(peer, b[:len("ack;ack;")])
		got <- string(b[:n])
	}()
	c.cork()
	c.Write([]byte("ack;"))
	c.Write([]byte("ack;"))
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "ack;ack;" {
		t.Fatalf("peer read %q", s)
	}
}
