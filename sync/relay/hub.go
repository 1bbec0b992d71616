package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/wire"
)

// hub tracks open connections: how many are still unauthenticated (bounded in all and per
// source address), which terminal each authenticated one belongs to (one per terminal), and
// every one for shutdown.
type hub struct {
	mu         sync.Mutex
	sessions   map[string]*session
	all        map[*websocket.Conn]string // connection -> source address
	pending    int
	pendingBy  map[string]int // source address -> connections not yet authenticated
	maxPending int
	maxPerAddr int
	closed     bool
	handlers   sync.WaitGroup
}

// session is one authenticated connection.
type session struct {
	id string
	// facility and mode are the terminal's: its downlink is the merge of its own items and
	// what its facility's log holds for its mode (down.go).
	facility, mode string
	// info is the terminal's record as the hello read it (the snapshot of resyncCut).
	info TerminalInfo
	conn *websocket.Conn
	sock *termConn // conn's socket: its write deadline and cork (termconn.go)
	// down runs the connection's downlink writer while it has work (conn.go).
	down downWriter
	// dread is what the writer's last read of the store told it (downfeed.go; the writer's).
	dread downRead
	// acked is the highest downlink seq the terminal acknowledged on this connection, kept in
	// memory; sent is the highest seq sent on it (an ack beyond it is clamped).
	acked atomic.Uint64
	sent  atomic.Uint64
	// passTo is a position the writer found the terminal at without it acknowledging that far:
	// every item for it numbered up to passTo was sent and acknowledged, and nothing else there
	// is for it (passIdle, passBefore). flushAck writes it as the terminal's down_from; passed
	// is the last it wrote.
	passTo, passed atomic.Uint64

	// flushMu orders the connection's writes (batches, and acked with the hello's record);
	// persisted is the acked seq last written (changed only under flushMu).
	flushMu   sync.Mutex
	persisted atomic.Uint64
	clamped   atomic.Bool // an ack beyond what was sent was logged once (no lock: read path)
	// flushTimer writes what waits (acked beyond persisted, the hello's record) within
	// ackFlushInterval; flushArmed says it is set (startWriter, armFlush).
	flushTimer *time.Timer
	flushArmed atomic.Bool
	retired    bool // replaced by a newer connection, which writes the position from now on

	// seen is the hello's record until a write took it (nil since); seenMu guards it and is
	// never held across a transaction, so the admin list may read it.
	seenMu sync.Mutex
	seen   *seenRec

	// term is the terminal's record as the connection's batches last read it (recmemo.go).
	term terminalMemo

	// binaryChunks: the hello offered binary_chunks; content chunks go as binary messages.
	binaryChunks bool
	// movable: the terminal follows redirects and did not come by one, so it may be sent to
	// its facility's gateway (homes.go).
	movable bool
	// moved: sendHome closed the connection already (its handler may not have ended yet).
	moved atomic.Bool

	// The connection's owner claim on a shared store (owner.go): own and claimErr are set
	// before claimed is closed, and read only after it (s.owner).
	claimed  chan struct{}
	own      *owner
	claimErr error
}

// retire stops a replaced connection's writes of its downlink position (after any under way)
// and returns the seq it acknowledged, for the connection that replaces it.
func (s *session) retire() uint64 {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.retired = true
	return s.acked.Load()
}

// seenRec is what a hello says of a terminal: when it authenticated, its software and queue.
type seenRec struct {
	at       time.Time
	software string
	waiting  int
	oldest   time.Time
}

// takeSeen hands the hello's record to the write that stores it (nil if one already did).
func (s *session) takeSeen() *seenRec {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	seen := s.seen
	s.seen = nil
	return seen
}

// putBackSeen returns the record after a write that failed, unless a newer one came meanwhile.
func (s *session) putBackSeen(seen *seenRec) {
	if seen == nil {
		return
	}
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if s.seen == nil {
		s.seen = seen
	}
}

// pendingSeen is the hello's record not yet written, if any.
func (s *session) pendingSeen() (seenRec, bool) {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if s.seen == nil {
		return seenRec{}, false
	}
	return *s.seen, true
}

func newHub(maxPending, maxPerAddr int) *hub {
	return &hub{sessions: map[string]*session{}, all: map[*websocket.Conn]string{}, pendingBy: map[string]int{},
		maxPending: maxPending, maxPerAddr: maxPerAddr}
}

// enter counts a handler in; false once the relay is closing.
func (h *hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.handlers.Add(1)
	return true
}

func (h *hub) exit() { h.handlers.Done() }

// admit registers a new connection from addr as pending; "" if admitted, else the close
// reason: too many pending in all or from addr, or the relay closes.
func (h *hub) admit(c *websocket.Conn, addr string) (refusal string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return wire.ReasonShutdown
	case h.pendingBy[addr] >= h.maxPerAddr:
		return ReasonBusyAddr
	case h.pending >= h.maxPending:
		return ReasonBusy
	}
	h.pending++
	h.pendingBy[addr]++
	h.all[c] = addr
	return ""
}

// unpend takes a connection off the pending counts; h.mu is held.
func (h *hub) unpend(c *websocket.Conn) {
	h.pending--
	addr := h.all[c]
	if h.pendingBy[addr]--; h.pendingBy[addr] <= 0 {
		delete(h.pendingBy, addr)
	}
}

// authenticated moves a pending connection to a terminal's session and returns the one it replaces.
func (h *hub) authenticated(s *session) (old *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unpend(s.conn)
	old = h.sessions[s.id]
	h.sessions[s.id] = s
	return old
}

// leave forgets a connection; s is nil if it never authenticated.
func (h *hub) leave(c *websocket.Conn, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == nil {
		h.unpend(c)
	}
	delete(h.all, c)
	if s == nil {
		return
	}
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
}

// count is the number of authenticated connections.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// session is the terminal's open connection, or nil.
func (h *hub) session(id string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

// each calls fn with each authenticated connection, under the hub's lock (fn must not call
// the hub), until fn returns false.
func (h *hub) each(fn func(*session) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if !fn(s) {
			return
		}
	}
}

func (h *hub) connected(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id] != nil
}

// wake tells the named terminals' writers that their downlink grew, and up to which number.
func (h *hub) wake(ws []wakeUp) {
	if len(ws) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range ws {
		if s := h.sessions[w.id]; s != nil {
			s.down.queuedUpTo(w.seq)
			s.down.kick()
		}
	}
}

// kick closes a terminal's open connection with a policy-violation reason.
func (h *hub) kick(id, reason string) {
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s != nil {
		go s.conn.Close(websocket.StatusPolicyViolation, reason)
	}
}

// closeAll refuses new connections, closes every open one (going away) and waits for the
// handlers to finish, at most about ten seconds.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	conns := make([]*websocket.Conn, 0, len(h.all))
	for c := range h.all {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close(websocket.StatusGoingAway, wire.ReasonShutdown)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		h.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// closeCtx is the context handlers run under: cancelled when the connection ends.
func closeCtx() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
