package relay

import (
	"net"
	"sync"
	"time"
)

// termConn is a terminal connection's socket under the websocket library (smallBuffers hands
// it over at the upgrade). It does two things for the relay's writes:
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
type termConn struct {
	net.Conn

	pool *sync.Pool // the relay's cork buffers (Relay.heldBufs): an idle connection keeps none
	// timeout bounds a write (writeTimeout when zero; tests shorten it).
	timeout time.Duration

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
