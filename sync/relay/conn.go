package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Close reasons of this relay beyond wire's.
const (
	ReasonBusy     = "relay busy: too many unauthenticated connections"
	ReasonBusyAddr = "relay busy: too many unauthenticated connections from this address"
	ReasonStorage  = "relay storage error"
	// ReasonUnavailable (StatusTryAgainLater, 1013): the store cannot take a write or answer
	// a read now (a cluster without quorum, a timeout), which passes: the terminal keeps its
	// queue and comes back later.
	ReasonUnavailable = "relay store unavailable: try again later"
	ReasonNoPong      = "no pong"
)

// downWindow bounds downlink items sent but not yet acknowledged on one connection.
const downWindow = 1024

// writeTimeout bounds one frame's write; a peer that does not read is dropped.
const writeTimeout = 30 * time.Second

// A terminal's downlink acknowledgements are kept in memory per connection and written to the
// store (pruning what it applied) at most every ackFlushInterval, or once ackFlushItems more
// items were acknowledged, and when the connection ends: never one transaction per frame. The
// hello's down_applied is the durable truth at the next connection anyway.
const (
	ackFlushInterval = 5 * time.Second
	ackFlushItems    = 256
)

func (r *Relay) routeTerminal(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathTerminal, r.serveTerminal)
	mux.HandleFunc("POST "+wire.PathEnroll, r.serveEnroll)
}

// serveTerminal upgrades a terminal's request to a websocket and runs the connection on a
// goroutine of its own, returning at once: an idle connection then holds none of net/http's
// per-request state (the request, the response and its buffers, the handler's deep stack),
// which would otherwise live as long as the connection (memory per terminal, docs/SCALE.md).
// The handshake's goroutine ends at the welcome and a fresh one reads the connection from
// there (readLoop): the handshake (JSON, signatures, store reads) grew the first one's stack,
// while the reader, idle, waits in a small one.
func (r *Relay) serveTerminal(w http.ResponseWriter, req *http.Request) {
	if !r.hub.enter() {
		http.Error(w, wire.ReasonShutdown, http.StatusServiceUnavailable)
		return
	}
	sb := &smallBuffers{ResponseWriter: w, held: &r.heldBufs, read: &r.readBufs}
	c, err := websocket.Accept(sb, req, &websocket.AcceptOptions{
		Subprotocols:         []string{wire.Subprotocol},
		CompressionMode:      websocket.CompressionNoContextTakeover,
		CompressionThreshold: deflateFrom,
	})
	if err != nil {
		r.hub.exit()
		return // Accept already answered with an HTTP error
	}
	addr := sourceAddr(req)
	go func() {
		if l := r.runTerminal(c, sb.conn, addr); l != nil {
			go r.readLoop(l) // it calls r.hub.exit when the connection is over
			return
		}
		r.hub.exit()
	}()
}

// deflateFrom is the size from which the relay deflates a message it sends (permessage-deflate
// is chosen per message, RFC 7692; the library's default is 512 bytes without context
// takeover). Each message deflated costs a Huffman table built for it, 20-50 µs however small
// the message: with charges fanning out to a facility's kiosks, a quarter of the relay's CPU
// went to deflating `down` frames of a few items (2-4 KB), each once per kiosk. A kiosk of a
// real facility gets a frame of one or two items at a time, a few hundred bytes a second,
// which its link does not notice; what is large, and so compressed, is what a link carries in
// bulk: a backlog after a cut, a snapshot, JSON content chunks. Not higher: on a link that
// drops every few kilobytes, a frame must fit between drops to be applied at all, and at 8 KiB
// TestStampsExactlyOnceAcrossLinkCutsAndRejection (cuts after 400-6,000 bytes) no longer
// drained (docs/PROTOCOL.md, Transport; docs/BENCHMARKS.md, ninth round).
const deflateFrom = 4 << 10

// connReadBuf and connWriteBuf are the read and write buffers of a terminal connection, held
// for its life, idle or not. net/http hands a hijacked connection 4 KiB buffers each way. The
// socket under the read buffer (termConn) reads up to readChunk bytes at once into a buffer of
// the relay's pool, so a frame larger than the read buffer costs no more system calls. A frame
// larger than the write buffer reaches the socket in two writes, which the downlink writer
// corks into one; pongs, pings, acks and the welcome fit. Measured on 2,000 idle terminals,
// 1 KiB each way cost some 1.5 KiB more a connection than these (docs/SCALE.md, memory per
// idle terminal).
const (
	connReadBuf  = 256
	connWriteBuf = 512
)

// smallBuffers gives the websocket library connReadBuf and connWriteBuf buffers when it hijacks
// the connection, and the socket wrapped in a termConn (conn, set by Hijack) for its writes.
type smallBuffers struct {
	http.ResponseWriter
	held *sync.Pool // the relay's cork buffers (termConn)
	read *sync.Pool // the relay's read buffers (termConn)
	conn *termConn
}

func (s *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := newTermConn(raw, s.held, s.read)
	s.conn = c
	// What the server read past the request (a client may send its first frame with it) must
	// be in the new reader's buffer: the library keeps what is buffered and then reads the
	// connection itself, so a reader that merely chained those bytes before it would lose them.
	// Nothing read past the request (the usual case): the reader reads the connection itself,
	// and an idle connection holds no chain of readers.
	n := brw.Reader.Buffered()
	if n == 0 {
		return c, bufio.NewReadWriter(bufio.NewReaderSize(c, connReadBuf), bufio.NewWriterSize(c, connWriteBuf)), nil
	}
	b, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), c), max(connReadBuf, n))
	if _, err := br.Peek(n); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("keep the bytes read past the upgrade request: %w", err)
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, connWriteBuf)), nil
}

// runTerminal runs one terminal connection up to its welcome: the handshake, then the
// downlink writer. It returns the connection's read side for readLoop, or nil when the
// connection is over (closed, and what it held given back).
func (r *Relay) runTerminal(c *websocket.Conn, tc *termConn, addr string) *connLoop {
	if refusal := r.hub.admit(c, addr); refusal != "" {
		code := websocket.StatusTryAgainLater
		if refusal == wire.ReasonShutdown {
			code = websocket.StatusGoingAway
		}
		c.Close(code, refusal)
		return nil
	}
	if c.Subprotocol() != wire.Subprotocol {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnsupportedVersion)
		r.hub.leave(c, nil)
		return nil
	}
	c.SetReadLimit(wire.MaxFrameBytes)
	ctx, cancel := closeCtx()
	sess, hello, ok := r.openSession(ctx, c, tc)
	if !ok {
		if sess != nil {
			r.flushAck(sess)
		}
		cancel()
		r.hub.leave(c, sess)
		return nil
	}
	stop := r.startWriter(ctx, sess)
	return &connLoop{s: sess, ctx: ctx, cancel: cancel, stop: stop, epoch: hello.Epoch, ackLetters: hello.AckLetters}
}

// openSession runs the handshake, takes over from a connection this one replaces, queues a
// snapshot when the terminal's store was replaced, and sends welcome; ok is false when the
// connection was closed instead (sess is set once the handshake succeeded, for the caller's
// flushAck). Kept apart from runTerminal so that its large frame is gone from the stack while
// the connection idles in readLoop: what an idle connection's stack uses then stays under a
// quarter of 16 KiB, and the collector halves the stack the handshake grew.
func (r *Relay) openSession(ctx context.Context, c *websocket.Conn, tc *termConn) (sess *session, hello wire.Hello, ok bool) {
	hello, info, ok := r.handshake(ctx, c)
	r.metrics.handshake(ok)
	if !ok || r.redirect(ctx, c, hello, info) {
		return nil, hello, false
	}
	// The handshake takes no write transaction: what it records (last seen, software, queue
	// length, the hello's downlink position) is kept with the session and written with the
	// connection's first batch or its next downlink flush, whichever comes first.
	sess = &session{id: info.ID, facility: info.FacilityID, mode: info.Mode, info: info, conn: c, sock: tc, binaryChunks: hello.BinaryChunks,
		movable: hello.Redirects && !hello.Redirected,
		seen:    &seenRec{at: r.clock.Now().UTC(), software: hello.Software, waiting: hello.Waiting, oldest: hello.OldestWaiting}}
	// On a store shared by gateways the connection claims the terminal, beside the handshake
	// rather than in it; its writes wait for the claim (owner.go).
	r.startClaim(sess)
	// What the connection this one replaces acknowledged may not be written yet: this one
	// takes it over (and the old one writes nothing more).
	var floor uint64
	if old := r.hub.authenticated(sess); old != nil {
		go old.conn.Close(websocket.StatusPolicyViolation, wire.ReasonReplaced)
		floor = old.retire()
	}
	last, acked, from, err := r.downPosition(info.ID, info.FacilityID)
	if err != nil {
		r.fail(c, "read downlink position", err)
		return sess, hello, false
	}
	// An uplink position at or below what the relay holds for the epoch means the store is
	// older than what it forwarded: a backup was restored. Its downlink position may not show it
	// (nothing came down between the backup and the restore), but what the terminal itself
	// billed and wrote since the backup is gone from its store: it gets a complete snapshot, which
	// carries its own records back, and starts a new epoch before numbering anything anew.
	restored := false
	if hello.UplinkNext > 0 {
		high, err := r.uplinkHigh(info.ID, info.FacilityID, hello.Epoch)
		if err != nil {
			r.fail(c, "read uplink position", err)
			return sess, hello, false
		}
		restored = hello.UplinkNext <= high
	}
	// A position below what the terminal acknowledged means its store was replaced (wiped, or a
	// backup restored) and lost what was deleted here as applied: it gets a complete snapshot.
	restoreAgain := false
	if restored {
		_, restoreAgain = r.restoreSnapshots.LoadOrStore(info.ID+"/"+hello.Epoch, true)
	}
	// A position more than DownLogCap behind its facility's counter means the facility's log
	// was (or may be) pruned past it: it gets a complete snapshot instead of the log.
	lapsed := lapsedBehind(last, max(hello.DownApplied, acked, from), r.cfg.DownLogCap)
	if (restored && !restoreAgain) || lapsed || hello.DownApplied < max(acked, min(floor, last)) {
		own, err := sess.owner()
		if err != nil {
			return sess, hello, false // the claim failed and closed the connection
		}
		queued, err := r.resync(own, info, hello.DownApplied, floor, restored && !restoreAgain, false)
		if err != nil {
			r.fail(c, "resync terminal", err)
			return sess, hello, false
		}
		switch {
		case queued && lapsed:
			r.logf("relay: terminal %s came back with downlink position %d, more than %d behind its facility's %d: complete snapshot queued instead of the log",
				info.ID, hello.DownApplied, r.cfg.DownLogCap, last)
		case queued:
			r.logf("relay: terminal %s came back with downlink position %d, below what it acknowledged: store replaced, complete snapshot queued",
				info.ID, hello.DownApplied)
		}
		if last, acked, _, err = r.downPosition(info.ID, info.FacilityID); err != nil {
			r.fail(c, "read downlink position", err)
			return sess, hello, false
		}
	}
	if restored {
		r.logf("relay: terminal %s came back with uplink seq %d of epoch %s, below what it forwarded: a restored backup; snapshot queued, new epoch asked",
			info.ID, hello.UplinkNext, hello.Epoch)
		c.Close(websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
		return sess, hello, false
	}
	// hello.down_applied is the terminal's durable truth: resume after it, and forget what it
	// applied at the connection's first flush (not here: no write in the connect path).
	resume := max(hello.DownApplied, acked)
	if resume > last {
		r.logf("relay: terminal %s acknowledged downlink %d beyond the last queued %d; clamped", info.ID, resume, last)
		resume = last // it claims more than was ever queued; only ever send new seqs
	}
	sess.acked.Store(resume)
	sess.sent.Store(resume)
	sess.persisted.Store(acked)
	if err := r.send(ctx, c, wire.Welcome{TerminalID: info.ID, Facility: info.FacilityID, Mode: info.Mode,
		InmateID: info.InmateID, ServerTime: r.clock.Now().UTC(), RelayURLs: r.cfg.Gateways, DownSparse: true}); err != nil {
		return sess, hello, false
	}
	r.logf("relay: terminal %s connected", info.ID)
	return sess, hello, true
}

// sourceAddr is the address a request came from (its IP, without the port): the unit the
// per-address limit of unauthenticated connections counts.
func sourceAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// handshake reads hello, sends a challenge, reads auth and checks it; on any failure the
// connection is closed with a reason and ok is false. hello must come within HelloTimeout,
// and auth within HandshakeTimeout of the start, so an idle socket is let go early.
func (r *Relay) handshake(ctx context.Context, c *websocket.Conn) (wire.Hello, TerminalInfo, bool) {
	start := time.Now()
	var hint int // wire.ReadFrame's
	timer := time.AfterFunc(r.cfg.HelloTimeout, func() {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonAuthTimeout)
	})
	defer timer.Stop()
	f, _, ok := r.readFrame(c, &hint)
	if !ok {
		return wire.Hello{}, TerminalInfo{}, false
	}
	if f.Type != wire.TypeHello {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnexpected)
		return wire.Hello{}, TerminalInfo{}, false
	}
	if !timer.Stop() {
		return wire.Hello{}, TerminalInfo{}, false // the timeout already closed it
	}
	timer.Reset(r.cfg.HandshakeTimeout - time.Since(start))
	hello := *f.Hello
	nonce := make([]byte, wire.NonceLen)
	if _, err := rand.Read(nonce); err != nil {
		r.fail(c, "make nonce", err)
		return wire.Hello{}, TerminalInfo{}, false
	}
	if err := r.send(ctx, c, wire.Challenge{Nonce: nonce}); err != nil {
		return wire.Hello{}, TerminalInfo{}, false
	}
	f, _, ok = r.readFrame(c, &hint)
	if !ok {
		return wire.Hello{}, TerminalInfo{}, false
	}
	if f.Type != wire.TypeAuth {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnexpected)
		return wire.Hello{}, TerminalInfo{}, false
	}
	if !timer.Stop() {
		return wire.Hello{}, TerminalInfo{}, false // the timeout already closed it
	}
	t, found, err := r.terminal(hello.TerminalID)
	switch {
	case err != nil:
		r.fail(c, "read terminal", err)
		return wire.Hello{}, TerminalInfo{}, false
	case !found:
		r.logf("relay: refused an unknown terminal id")
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnknownTerminal)
		return wire.Hello{}, TerminalInfo{}, false
	case !wire.VerifyAuth(ed25519.PublicKey(t.PublicKey), hello.TerminalID, nonce, f.Auth.Signature):
		r.logf("relay: refused terminal %s: bad signature", t.ID)
		c.Close(websocket.StatusPolicyViolation, wire.ReasonBadSignature)
		return wire.Hello{}, TerminalInfo{}, false
	case t.Revoked:
		r.logf("relay: refused revoked terminal %s", t.ID)
		c.Close(websocket.StatusPolicyViolation, wire.ReasonRevoked)
		return wire.Hello{}, TerminalInfo{}, false
	}
	return hello, t.TerminalInfo, true
}

// readFrame reads and decodes one frame, with what the decoder learned of a batch's item
// bodies; a malformed one closes the connection with the decoder's error. The read itself
// takes no context: a connection's reads end when it closes, and a read under a cancellable
// context would leave a child registered in it (the library's AfterFunc) for the
// connection's life.
func (r *Relay) readFrame(c *websocket.Conn, hint *int) (wire.Frame, []wire.UpBody, bool) {
	typ, rd, err := c.Reader(context.Background())
	if err != nil {
		return wire.Frame{}, nil, false // closed: by the peer, by us, or by the library
	}
	return r.decodeFrame(c, typ, rd, hint)
}

// decodeFrame reads the message rd of type typ (through wire.ReadFrame, which sizes the
// buffer from the connection's last message, *hint) and decodes it as readFrame does.
func (r *Relay) decodeFrame(c *websocket.Conn, typ websocket.MessageType, rd io.Reader, hint *int) (wire.Frame, []wire.UpBody, bool) {
	data, err := wire.ReadFrame(rd, hint)
	if err != nil {
		return wire.Frame{}, nil, false // closed: by the peer, by us, or by the library (1009 too big)
	}
	if typ != websocket.MessageText {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonBinary)
		return wire.Frame{}, nil, false
	}
	if len(data) >= len(batchPrefix) && string(data[:len(batchPrefix)]) == batchPrefix {
		growStack()
	}
	f, bodies, err := wire.DecodeUplinkFrame(data)
	if err != nil {
		c.Close(websocket.StatusPolicyViolation, wire.CloseReason(wire.ReasonMalformed+": "+err.Error()))
		return wire.Frame{}, nil, false
	}
	return f, bodies, true
}

// batchPrefix is how a batch frame a terminal writes begins (wire.Encode, sync/client).
const batchPrefix = `{"type":"batch",`

// growStack grows the calling goroutine's stack, in one copy, to what storing a batch takes.
// A batch is decoded and stored by the fresh goroutine that read it (readLoop), which starts
// with a small stack: it grew once a batch, deep in the decoder at its first allocation, and
// the runtime's copy then adjusted every frame of the websocket library's read below it (all
// of relayd's stack copies, 4-5 µs a batch under the message=1 load, docs/BENCHMARKS.md
// tenth round). Here the stack holds the read loop's few frames; the goroutine ends with its
// batch, so nothing stays grown on an idle connection.
//
//go:noinline
func growStack() {
	var pad [3 << 10]byte
	touch(pad[:])
}

//go:noinline
func touch(b []byte) { b[0] = 1 }

// send writes one frame, unless ctx ended. The write takes no context: the socket's write
// deadline bounds it by writeTimeout (termConn), and a failed write closes the connection.
func (r *Relay) send(ctx context.Context, c *websocket.Conn, msg any) error {
	b, err := wire.Encode(msg)
	if err != nil {
		r.fail(c, "encode frame", err)
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Write(context.Background(), websocket.MessageText, b)
}

// fail logs a relay-side error and closes the connection with 1011 and no detail, or with
// 1013 ReasonUnavailable when the store says the fault passes (kv.Retryable: no quorum, a
// timeout). A write that found the connection superseded by a newer one closes it as
// replaced instead, and one for a facility another gateway holds as moved.
func (r *Relay) fail(c *websocket.Conn, what string, err error) {
	if closeSuperseded(c, err) {
		return
	}
	var he *HeldElsewhereError
	if errors.As(err, &he) && he.Self {
		// This gateway takes the facility up again at its next beat: the terminal comes back.
		r.logf("relay: %s: facility %s is being taken up again: the connection closes", what, he.Facility)
		c.Close(websocket.StatusTryAgainLater, ReasonUnavailable)
		return
	}
	if he != nil {
		// Its facility is held by another gateway, which takes its writes: the terminal
		// goes there (its home) on its next connection.
		r.logf("relay: %s: facility %s is held elsewhere: the connection closes", what, he.Facility)
		c.Close(websocket.StatusGoingAway, wire.ReasonMoved)
		return
	}
	r.logf("relay: %s: %v", what, err)
	if kv.Retryable(err) || vocab.KindOf(err) == vocab.KindTransient {
		// A store that will answer again, or an inmate whose records are being handed over
		// (handover.go): the terminal sends the batch again shortly.
		c.Close(websocket.StatusTryAgainLater, ReasonUnavailable)
		return
	}
	c.Close(websocket.StatusInternalError, ReasonStorage)
}

var errRevoked = errors.New("terminal revoked")

// batchQueue bounds the batches read on one connection and not yet stored: the terminal's
// pipeline (four in flight) fits, and a terminal sending faster waits for the relay to read.
const batchQueue = 8

// connLoop is an authenticated connection's read side: what readLoop keeps from one frame to
// the next, on the heap, so that readLoop's own frame (the one an idle connection's goroutine
// holds while the websocket library waits for the next frame) stays small.
type connLoop struct {
	s      *session
	ctx    context.Context // the connection's: cancelled when readLoop ends
	cancel context.CancelFunc
	stop   func() // the downlink writer's (startWriter)

	epoch      string // the hello's: every batch must be of it
	ackLetters bool   // the hello's
	hint       int    // wire.ReadFrame's: the length of the connection's last frame

	// queue and failed are made at the first batch: their room (under 1 KiB) is not held by a
	// connection that sends none (memory per idle terminal, docs/SCALE.md). failed is closed
	// when a worker closed the connection after a failure.
	queue  chan upBatch
	failed chan struct{}
	mu     sync.Mutex // guards running, and orders a worker's exit with the next start
	// running: a batch worker runs.
	running bool
	workers sync.WaitGroup
	wants   chan wire.ContentWant // the content worker's queue, from the first want (content.go)
}

// readLoop reads frames until the connection ends, then ends the connection. Batches go to the
// connection's batch worker (storeLoop), so reading goes on while a commit is under way: pongs
// are read (a queued terminal is not taken for a dead link), down_acks move the cursor, and the
// next batches are decoded while the previous ones commit. The worker answers them in order.
// It runs only while batches wait: started by the first one queued, it ends when it finds the
// queue empty, so an idle connection holds no worker goroutine (and its stack).
//
// An idle connection's goroutine waits here, in the websocket library's read of the next
// frame's header, with about 1.7 KiB of stack: it fits the 4 KiB stack a new goroutine grows
// to at its first read. Handling a frame (JSON, the store) grows the stack further, and the
// runtime would not shrink it back while the goroutine waits (it halves a stack only when
// its use, plus a margin of 800 bytes, is under a quarter), so each frame's reader hands the
// next read to a fresh goroutine: an idle connection holds a 4 KiB stack, not 8 or 16.
//
// A batch that finds no worker running is stored by the goroutine that read it, once it has
// handed the next read on: its stack has grown already, where a worker goroutine of its own
// would start small and grow again (a goroutine start and two or three stack copies for every
// batch of a terminal that sends one at a time). It ends, as a worker does, when it finds the
// queue empty, so the idle connection still waits on the fresh reader alone.
func (r *Relay) readLoop(l *connLoop) {
	typ, rd, err := l.s.conn.Reader(context.Background()) // no context: see readFrame
	if err == nil {
		ok, work := r.takeFrame(l, typ, rd)
		if work {
			go r.readLoop(l) // ok: a worker starts only for a batch taken
			r.storeWorker(l)
			return
		}
		if ok {
			go r.readLoop(l)
			return
		}
	}
	r.endConn(l)
}

// storeWorker runs the connection's batch worker; takeFrame counted it in l.workers.
func (r *Relay) storeWorker(l *connLoop) {
	defer l.workers.Done()
	if !r.storeLoop(l.ctx, l.s, l.queue, l.idle) {
		close(l.failed) // once: a failed worker stays "running", so none follows it
	}
}

// takeFrame decodes one message of the connection and acts on it. ok is false when the
// connection is over (it was closed). work is true when it queued a batch and no worker was
// running: the caller must run storeWorker (it is counted in l.workers already).
func (r *Relay) takeFrame(l *connLoop, typ websocket.MessageType, rd io.Reader) (ok, work bool) {
	c := l.s.conn
	f, bodies, ok := r.decodeFrame(c, typ, rd, &l.hint)
	if !ok {
		return false, false
	}
	switch f.Type {
	case wire.TypeBatch:
		if f.Batch.Epoch != l.epoch {
			c.Close(websocket.StatusPolicyViolation, wire.ReasonWrongEpoch)
			return false, false
		}
		if l.queue == nil {
			// Before any worker starts (and reads them).
			l.queue, l.failed = make(chan upBatch, batchQueue), make(chan struct{})
		}
		// Prepared here, while the batches before it are stored: the store is one path per
		// connection, the reader another.
		ub := upBatch{Batch: *f.Batch, bodies: bodies, ackLetters: l.ackLetters}
		ub.preps = prepareAll(ub.Items, ub.bodies)
		select {
		case l.queue <- ub:
		case <-l.failed:
			return false, false // the worker closed the connection
		}
		l.mu.Lock()
		if !l.running {
			l.running = true
			l.workers.Add(1)
			work = true
		}
		l.mu.Unlock()
	case wire.TypeDownAck:
		r.downAck(l.s, *f.DownAck)
	case wire.TypeContentWant:
		l.wants = r.contentWant(l.ctx, l.s, l.wants, *f.ContentWant)
	default:
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnexpected)
		return false, false
	}
	return true, work
}

// idle ends a worker that found the queue empty, unless a batch came meanwhile; takeFrame
// queues before it looks at running, so a batch is never left without a worker.
func (l *connLoop) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) > 0 {
		return false
	}
	l.running = false
	return true
}

// endConn ends a connection whose reads ended: batches still queued are dropped unanswered
// (the terminal sends them again), one being stored finishes, the downlink writer and its
// timers stop, and the acknowledged position is written before the hub forgets the session.
func (r *Relay) endConn(l *connLoop) {
	l.cancel()
	l.workers.Wait()
	l.stop()
	r.flushAck(l.s)
	r.releaseOwner(l.s)
	r.hub.leave(l.s.conn, l.s)
	r.hub.exit()
}

// storeLoop stores the batches readLoop queued and answers each with its ack, in the order they
// came. What is queued when it turns to the queue goes into one transaction: the batches a
// terminal pipelined while the last commit was under way share the next one. It returns true
// when it found the queue empty and idle agreed to end it; false after a failure, which closed
// the connection.
func (r *Relay) storeLoop(ctx context.Context, s *session, queue <-chan upBatch, idle func() bool) bool {
	c := s.conn
	var group []upBatch
	for {
		var b upBatch
		select {
		case b = <-queue:
		default:
			if idle() {
				return true
			}
			continue // a batch came as the worker was ending
		}
		group = append(group[:0], b)
	more:
		for len(group) < batchQueue {
			select {
			case b := <-queue:
				group = append(group, b)
			default:
				break more
			}
		}
		if ctx.Err() != nil {
			continue // the connection ended: nobody to answer; the terminal sends them again
		}
		// Whether the terminal is still enrolled is checked in the transaction that stores
		// the batches (check); the record read for the batch before says which terminal it is
		// (its facility, mode and inmate never change), so only a connection's first batch
		// reads it before.
		t, found := s.term.last()
		if !found {
			var err error
			t, found, err = s.term.read(r, s.id)
			if err != nil {
				r.fail(c, "read terminal", err)
				return false
			}
			if !found || t.Revoked {
				c.Close(websocket.StatusPolicyViolation, wire.ReasonRevoked)
				return false
			}
		}
		own, err := s.owner()
		if err != nil {
			return false // the claim failed and closed the connection
		}
		for i := range group {
			group[i].own = own
			group[i].check = s.checkTerminal
		}
		s.flushMu.Lock() // ordered with flushAck, which may write the hello's record too
		acks, err := r.storeBatches(t.TerminalInfo, group, s.takeSeen())
		s.flushMu.Unlock()
		r.batchesStored.Add(uint64(len(acks)))
		if errors.Is(err, errRevoked) {
			c.Close(websocket.StatusPolicyViolation, wire.ReasonRevoked)
			return false
		}
		var seqErr *sequenceError
		if err != nil && !errors.As(err, &seqErr) {
			r.fail(c, "store batch from "+s.id, err)
			return false
		}
		// The acks of one transaction go out with one system call (termConn).
		if len(acks) > 1 {
			s.sock.cork()
		}
		for _, ack := range acks {
			if serr := r.send(ctx, c, ack); serr != nil {
				s.sock.uncork()
				return false
			}
		}
		if len(acks) > 1 {
			if err := s.sock.uncork(); err != nil {
				return false
			}
		}
		if seqErr != nil {
			// Nothing at or after the seq in question was acknowledged; the terminal starts a
			// new epoch and resends what waits (it is listed in GET /admin/v1/refusals).
			r.logf("relay: terminal %s epoch %s: %v", s.id, acks[len(acks)-1].Epoch, seqErr)
			reason := wire.ReasonNewEpoch
			if seqErr.gap {
				reason = wire.ReasonSequenceGap
			}
			c.Close(websocket.StatusPolicyViolation, reason)
			return false
		}
	}
}

// downAck takes a terminal's down_ack: the cursor moves in memory, and the writer is woken to
// send more when the window held it back, and to write the cursor once enough piled up (never
// a write on the read path).
func (r *Relay) downAck(s *session, da wire.DownAck) {
	prev, seq := s.acked.Load(), da.Seq
	if sent := s.sent.Load(); seq > sent {
		if s.clamped.CompareAndSwap(false, true) {
			r.logf("relay: terminal %s acknowledged downlink %d beyond the last sent %d; clamped", s.id, seq, sent)
		}
		seq = sent
	}
	if seq <= prev {
		return // nothing new: costs nothing
	}
	// %q: the reason is the terminal's text and must not forge a log line.
	for _, rf := range da.Refused {
		if rf.Seq > prev && rf.Seq <= seq {
			r.logf("relay: terminal %s refused downlink %d: %q", s.id, rf.Seq, rf.Reason)
		}
	}
	s.acked.Store(seq)
	s.armFlush()
	// The writer needs a look only if it may have stopped for a full window (it compares
	// what it sent with an acknowledged position at most prev, so sent-prev was at least the
	// window then, and sent only grows), or if the cursor is due to be written. Otherwise a
	// kick per down_ack (one per down frame: with charges fanning out, one per charge per
	// kiosk) started a writer goroutine to find nothing to do.
	if s.sent.Load()-prev >= downWindow || seq-s.flushed() >= ackFlushItems {
		s.down.kick()
	}
}

// flushed is the acknowledged seq last written to the store. It takes no lock: the writer
// asks while a batch of the connection may be committing under flushMu.
func (s *session) flushed() uint64 { return s.persisted.Load() }

// flushAck writes the connection's acknowledged downlink cursor to the store and prunes the
// items up to it, if it moved since the last write, together with the hello's record (last
// seen, software, queue length) if no batch wrote it yet.
func (r *Relay) flushAck(s *session) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.retired {
		return nil // a newer connection of the terminal took over its position
	}
	seq := s.acked.Load()
	seen := s.takeSeen()
	persisted := s.persisted.Load()
	pass := s.passTo.Load()
	passing := pass > s.passed.Load()
	if seq <= persisted && seen == nil && !passing {
		return nil
	}
	own, err := s.owner()
	if err != nil {
		s.putBackSeen(seen)
		return err
	}
	err = r.updateAsKeys(own, s.id, s.facility, "acknowledge downlink", func() []kv.Key { return ackKeys(s.id, own, seen != nil) }, 0, func(tx kv.Tx, f *fanout) error {
		if err := seenTx(tx, s.id, seen); err != nil {
			return err
		}
		if passing {
			// In the same transaction as the acknowledgement: a store restored to below what
			// was acknowledged is found replaced at its hello (snapshot), and never reads the
			// log from above what it lost.
			if err := passDownTx(tx, s.id, pass); err != nil {
				return err
			}
		}
		if seq <= persisted {
			return nil
		}
		var cur uint64
		return ackDownTx(tx, f, s.id, seq, &cur)
	})
	if err != nil {
		s.putBackSeen(seen)
		if r.stopped() {
			return nil // the relay closed; the next hello says where the terminal stands
		}
		return err
	}
	if seen != nil && own != nil {
		own.queue.Store(0) // the hello's queue, written beside a batch's: read it again
	}
	s.persisted.Store(max(persisted, seq))
	if passing {
		storeMax(&s.passed, pass)
	}
	if seq > persisted {
		r.pruneFacilityDue(s.facility)
	}
	return nil
}

// downWriter runs a connection's downlink writer only while it has work, as readLoop runs
// its batch worker: kick starts a writer goroutine, or tells the running one to look again,
// and the writer ends when a look found nothing to do and no kick came meanwhile. An idle
// connection then holds no writer goroutine (its stack) and no tickers: its pings and the
// periodic write of its acknowledged position run on timers (startWriter).
type downWriter struct {
	mu      sync.Mutex
	run     func() // starts the writer; nil before the connection is welcomed and after it ended
	running bool
	again   bool // kicked while running: look again before ending
	// queued is the highest number a commit of this relay queued for the terminal since the
	// connection's session was registered (hub.wake sets it before the kick).
	queued atomic.Uint64
	// drained (the writer's alone): its last read of the store found everything it held for the
	// terminal and sent it. Then, on a store no other gateway writes, nothing is left to read
	// unless a commit queued a number above what was sent (queued): a look skips the view.
	drained bool
	// readTo (the writer's alone, meaningful while drained): every item for the terminal
	// numbered at or below it was sent, or is not for it. A look on a bbolt file first tries
	// the facility's tail above it (tailDown), without a view of the store.
	readTo uint64
}

// queuedUpTo records that a commit queued number seq for the terminal.
func (w *downWriter) queuedUpTo(seq uint64) {
	for {
		cur := w.queued.Load()
		if seq <= cur || w.queued.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// kick asks for a look at the downlink: new items were queued, or the terminal acknowledged
// some (room in the window, a cursor to write). A kick before the writer is set up is
// dropped: the writer's first look, at the welcome, sends whatever is queued by then.
func (w *downWriter) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.running:
		w.again = true
	case w.run != nil:
		w.running = true
		go w.run()
	}
}

// idle ends a writer whose look found nothing to do, unless a kick came during it.
func (w *downWriter) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.again {
		w.again = false
		return false
	}
	w.running = false
	return true
}

// setRun installs the writer (nil stops kicks from starting one).
func (w *downWriter) setRun(run func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run = run
}

// armFlush makes sure the acknowledged cursor is written within ackFlushInterval: the flush
// timer runs only while something acknowledged (or the hello's record) waits to be written.
func (s *session) armFlush() {
	if s.flushTimer != nil && s.acked.Load() > s.flushed() && s.flushArmed.CompareAndSwap(false, true) {
		s.flushTimer.Reset(ackFlushInterval)
	}
}

// startWriter sets up the welcomed connection's downlink: a first look (what was queued
// before it connected), pings every PingInterval, and the write of the hello's record and of
// the acknowledged cursor within ackFlushInterval. The returned stop ends them with the
// connection.
func (r *Relay) startWriter(ctx context.Context, s *session) (stop func()) {
	// The hello's record waits to be written: the flush timer starts armed.
	s.flushArmed.Store(true)
	s.flushTimer = time.AfterFunc(ackFlushInterval, func() {
		if ctx.Err() != nil {
			return
		}
		// Armed until the write is done, so a down_ack meanwhile sets no second timer: on a
		// slow store the writes of one connection would pile up, each on a goroutine.
		if err := r.flushAck(s); err != nil {
			r.fail(s.conn, "acknowledge downlink of "+s.id, err)
			return
		}
		s.flushArmed.Store(false)
		s.armFlush() // acknowledged during the write
	})
	// The ping runs on the timer's own goroutine, alive only until the pong is read (by
	// readLoop) or PingInterval passed without one.
	var ping *time.Timer
	ping = time.AfterFunc(r.cfg.PingInterval, func() {
		if ctx.Err() != nil {
			return
		}
		// Not derived from ctx (see send): the ping ends when the connection closes anyway.
		pctx, cancel := context.WithTimeout(context.Background(), r.cfg.PingInterval)
		err := s.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.conn.Close(websocket.StatusPolicyViolation, ReasonNoPong)
			}
			return
		}
		ping.Reset(r.cfg.PingInterval)
	})
	s.down.setRun(func() { r.writeDown(ctx, s) })
	s.down.kick()
	return func() {
		s.down.setRun(nil)
		ping.Stop()
		s.flushTimer.Stop()
	}
}

// writeDown is the downlink writer: it sends what is queued after the last seq sent, at most
// downWindow unacknowledged, writes the acknowledged cursor once ackFlushItems piled up, and
// ends when a look found nothing more to do (downWriter). After a failure, which closed the
// connection, it ends still marked running, so no kick starts another.
func (r *Relay) writeDown(ctx context.Context, s *session) {
	for {
		if ctx.Err() != nil {
			return
		}
		sent := s.sent.Load() // only the writer moves it, and one writer runs at a time
		for sent-s.acked.Load() < downWindow {
			room := int(downWindow - (sent - s.acked.Load()))
			// Nothing to read (readDown's idle): nothing was queued since the last read that
			// sent all, or the store's feed holds nothing beyond it: no view.
			items, last, more, idle, err := r.readDown(s, sent, min(room, wire.MaxBatchItems), wire.MaxBatchBytes)
			if idle {
				break
			}
			if err != nil {
				if !r.stopped() {
					r.fail(s.conn, "read downlink of "+s.id, err)
				}
				return
			}
			s.down.drained = !more
			if len(items) == 0 {
				break
			}
			r.passBefore(s, sent, items[0])
			frame, err := downFrame(items)
			if err != nil {
				r.fail(s.conn, "encode downlink of "+s.id, err)
				return
			}
			// Before the write: the terminal may ack these before Write returns.
			sent = last
			s.sent.Store(sent)
			// Corked: a frame larger than the library's write buffer (connWriteBuf) goes out
			// with one system call, not its first part and then the rest.
			s.sock.cork()
			err = s.conn.Write(context.Background(), websocket.MessageText, frame) // termConn's deadline bounds it
			if uerr := s.sock.uncork(); err == nil {
				err = uerr
			}
			if err != nil {
				return
			}
			if !more {
				// The view held nothing more: whatever committed since woke this writer
				// (kick, after its commit), and s.down.idle below looks again. A second view
				// per wake-up, to find nothing, was half of the writer's reads.
				break
			}
		}
		if a, p := s.acked.Load(), s.flushed(); (a > p && a-p >= ackFlushItems) || r.passIdle(s) || s.passTo.Load() > s.passed.Load() {
			if err := r.flushAck(s); err != nil {
				r.fail(s.conn, "acknowledge downlink of "+s.id, err)
				return
			}
		}
		if s.down.idle() {
			return
		}
	}
}
