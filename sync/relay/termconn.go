package relay

import (
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// termConn is a terminal connection's socket under the websocket library (smallBuffers hands
// it over at the upgrade). It does two things for the relay's writes, and one for its reads:
//
//   - It bounds every write with a socket deadline instead of a context per frame. A context
//     with a timeout for each frame (a timer, the library's AfterFunc registration and its
//     removal) was a sixth of the relay's cost of sending an ack, one ack per batch. The
//     deadline is moved only when less than half of writeTimeout is left, so a write still
//     has between writeTimeout/2 and writeTimeout to finish; a write that fails closes the
//     socket, so the connection's reads end and the connection with them (as the library
//     did when a write's context ended).
//   - It holds what is written while corked and writes it with one system call at uncork: the
//     acks of the batches a connection's worker stored in one transaction (and any downlink
//     frame written meanwhile) go out together rather than one write each.
//   - It reads what the socket holds in one system call. The library reads a message's header
//     through a connReadBuf-byte buffer (small: an idle connection holds it for its life), so a
//     one-letter batch of some 500 bytes took two reads, its first 256 bytes and then the rest,
//     besides the read that found the socket empty before the reader waited. termConn waits for
//     the socket to be readable without a buffer, then reads up to readChunk bytes into one
//     taken from the relay's pool, hands them out from there, and gives it back once emptied:
//     an idle connection still holds none.
type termConn struct {
	net.Conn

	pool  *sync.Pool // the relay's cork buffers (Relay.heldBufs): an idle connection keeps none
	rpool *sync.Pool // the relay's read buffers, readChunk bytes each (Relay.readBufs)
	// timeout bounds a write (writeTimeout when zero; tests shorten it).
	timeout time.Duration

	// rc reads the socket with a buffer taken only once it is readable; nil (a socket that
	// is not a plain one, TLS) reads it as it is. rbuf[roff:rlen] is what was read and not yet
	// handed out (rbuf nil when nothing is). Reads come one at a time (the library's).
	rc         syscall.RawConn
	rbuf       *[]byte
	roff, rlen int

	mu       sync.Mutex
	armed    time.Time // when the write deadline was last moved (to armed + writeTimeout)
	corked   bool
	held     []byte // written while corked, from heldBufs
	writeErr error  // the first write that failed; every later one fails with it
}

func (c *termConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.writeLocked(p)
}

// writeLocked writes p to the socket within the write deadline; c.mu is held.
func (c *termConn) writeLocked(p []byte) (int, error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = writeTimeout
	}
	if now := time.Now(); now.Sub(c.armed) > timeout/2 {
		if err := c.Conn.SetWriteDeadline(now.Add(timeout)); err != nil {
			c.writeErr = err
			c.Conn.Close()
			return 0, err
		}
		c.armed = now
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		// The peer does not read (deadline) or the socket is gone: the connection is over.
		c.writeErr = err
		c.Conn.Close()
	}
	return n, err
}

// cork starts holding writes until uncork.
func (c *termConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		return
	}
	c.corked = true
	if b, ok := c.pool.Get().(*[]byte); ok {
		c.held = (*b)[:0]
	}
}

// uncork writes what was held, with one system call, and stops holding.
func (c *termConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.writeErr
	}
	c.corked = false
	held := c.held
	c.held = nil
	var err error
	if len(held) > 0 && c.writeErr == nil {
		_, err = c.writeLocked(held)
	}
	if cap(held) <= 64<<10 {
		held = held[:0]
		c.pool.Put(&held)
	}
	if err == nil {
		err = c.writeErr
	}
	return err
}

// readChunk is the most one read takes from the socket: several pipelined frames, or a frame
// and the next one's header.
const readChunk = 4 << 10

// newTermConn wraps a hijacked socket; pool and rpool hold its cork and read buffers between
// uses (the relay's heldBufs and readBufs).
func newTermConn(raw net.Conn, pool, rpool *sync.Pool) *termConn {
	c := &termConn{Conn: raw, pool: pool, rpool: rpool}
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	return c
}

func (c *termConn) Read(p []byte) (int, error) {
	if c.rbuf != nil {
		n := copy(p, (*c.rbuf)[c.roff:c.rlen])
		c.roff += n
		if c.roff == c.rlen {
			c.rpool.Put(c.rbuf)
			c.rbuf = nil
		}
		return n, nil
	}
	if c.rc == nil || len(p) >= readChunk {
		return c.Conn.Read(p) // a large frame's rest goes straight into its buffer
	}
	var buf *[]byte
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		if buf == nil {
			buf = c.readBuf()
		}
		for {
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr != syscall.EINTR {
				break
			}
		}
		// Nothing there yet: the buffer goes back while the reader waits.
		if rerr == syscall.EAGAIN {
			c.rpool.Put(buf)
			buf = nil
			return false
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	switch {
	case err != nil:
		if buf != nil {
			c.rpool.Put(buf)
		}
		return 0, err
	case n <= 0:
		c.rpool.Put(buf)
		return 0, io.EOF
	}
	k := copy(p, (*buf)[:n])
	if k == n {
		c.rpool.Put(buf)
		return k, nil
	}
	c.rbuf, c.roff, c.rlen = buf, k, n
	return k, nil
}

// readBuf is a buffer of readChunk bytes from the pool.
func (c *termConn) readBuf() *[]byte {
	if b, ok := c.rpool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, readChunk)
	return &b
}
