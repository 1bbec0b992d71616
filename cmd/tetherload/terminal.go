package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/wire"
)

// Bounds of one simulated terminal's network calls: nothing waits forever.
const (
	handshakeTimeout = 20 * time.Second
	frameTimeout     = 30 * time.Second
	backoffBase      = 50 * time.Millisecond
	backoffCap       = 2 * time.Second
)

// terminal is one simulated kiosk: an enrolled key, an epoch, an uplink queue with sequence
// numbers, and the highest downlink seq it has applied. It speaks the protocol through
// sync/wire the way sync/client does, minus the store: its "queue" is memory, which is all a
// load test needs because the tool itself never crashes between ack and apply.
type terminal struct {
	idx      int
	id       string
	facility string
	inmates  []string
	priv     ed25519.PrivateKey
	epoch    string
	mix      Mix
	rng      *rand.Rand
	run      *run

	// downSparse: the last welcome said down_sparse (a gap in downlink seqs is no anomaly).
	downSparse atomic.Bool
	// gw is the gateway (index in run.eps) the terminal connects to; redirected says a
	// gateway sent it there since its last welcome (-homes).
	gw         int
	redirected bool

	nextSeq uint64      // the last seq made
	pending []wire.Item // made and not yet acknowledged, in seq order
	batches int         // batches of new items made
	due     time.Time   // with -rate, when the terminal may make its next batch
	started bool        // the load has begun
	done    bool        // nothing more to make and everything made is acknowledged
	// downApplied is written by the connection's reader and read by the terminal's loop.
	downApplied atomic.Uint64
	lat         []time.Duration
	rejected    int64
}

// flight is a batch written on the current connection and not yet acknowledged.
type flight struct {
	last uint64
	at   time.Time
}

// endKind says why a connection ended.
type endKind int

const (
	endLost  endKind = iota // the relay or the network ended it
	endCut                  // the tool cut it on purpose (-cut-every, -cut-prob)
	endStorm                // the tool cut it for the reconnect storm
	endExit                 // the run is over
)

// loop runs the terminal until the run is over or ctx ends: connect, sync, reconnect.
func (t *terminal) loop(ctx context.Context) {
	r := t.run
	defer r.exitWG.Done()
	welcomed := false
	// Without -storm nothing closes r.storm: a nil channel keeps it out of every select (each
	// of which locks and queues on all its channels, for every batch).
	var stormCh <-chan struct{}
	if r.cfg.Storm {
		stormCh = r.storm
	}
	stormPending := false
	fails := 0
	for ctx.Err() == nil && !closed(r.runOver) {
		c, err := t.connect(ctx, !welcomed)
		if errors.Is(err, errRedirected) {
			continue // to its facility's gateway, at once
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.failed(err)
			fails++
			wait := time.Duration(t.rng.Int64N(int64(min(backoffCap, backoffBase<<min(fails, 16)))))
			select {
			case <-ctx.Done():
				return
			case <-r.runOver:
				return
			case <-stormCh:
				stormCh, stormPending = nil, true
			case <-time.After(wait):
			}
			continue
		}
		fails = 0
		if !welcomed {
			welcomed = true
			r.firstWelcomes[t.gw].Add(1) // where it is held: its home, once redirected
			r.rampWG.Done()
		}
		if stormPending {
			stormPending = false
			r.stormWelcomed()
		}
		switch t.session(ctx, c, &stormCh) {
		case endStorm:
			stormPending = true
		case endExit:
			return
		case endCut, endLost:
		}
	}
}

// connect dials and runs hello, challenge, auth and welcome. The first connection of each
// terminal waits for a slot so the ramp measures the relay's handshake rate, not how many
// connections its unauthenticated limit refuses; reconnects (cuts, storms) do not wait.
func (t *terminal) connect(ctx context.Context, first bool) (*websocket.Conn, error) {
	r := t.run
	if first {
		select {
		case r.dialSem <- struct{}{}:
			defer func() { <-r.dialSem }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	c, _, err := websocket.Dial(hctx, r.eps[t.gw].ws, &websocket.DialOptions{
		HTTPClient:      r.hc,
		Subprotocols:    []string{wire.Subprotocol},
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c.SetReadLimit(wire.MaxFrameBytes)
	if c.Subprotocol() != wire.Subprotocol {
		c.Close(websocket.StatusPolicyViolation, wire.ReasonUnsupportedVersion)
		return nil, errors.New("the relay did not select " + wire.Subprotocol)
	}
	fail := func(what string, err error) (*websocket.Conn, error) {
		c.CloseNow()
		return nil, fmt.Errorf("handshake %s: %w", what, err)
	}
	if err := write(hctx, c, wire.Hello{TerminalID: t.id, Epoch: t.epoch, DownApplied: t.downApplied.Load(),
		Software: software, Waiting: len(t.pending), AckLetters: !t.run.cfg.NoAckLetters,
		Redirects: t.run.cfg.Homes, Redirected: t.redirected}); err != nil {
		return fail("hello", err)
	}
	f, err := read(hctx, c)
	if err != nil {
		return fail("challenge", err)
	}
	if f.Type != wire.TypeChallenge {
		return fail("challenge", fmt.Errorf("got a %s frame", f.Type))
	}
	if err := write(hctx, c, wire.Auth{Signature: wire.SignAuth(t.priv, t.id, f.Challenge.Nonce)}); err != nil {
		return fail("auth", err)
	}
	if f, err = read(hctx, c); err != nil {
		return fail("welcome", err)
	}
	if f.Type == wire.TypeRedirect && !t.redirected {
		c.CloseNow()
		to := slices.IndexFunc(r.eps, func(ep endpoints) bool { return ep.http == strings.TrimSuffix(f.Redirect.URL, "/") })
		if to < 0 {
			return fail("welcome", fmt.Errorf("redirected to %s, not one of the gateways", f.Redirect.URL))
		}
		t.gw, t.redirected = to, true
		r.redirects.Add(1)
		return nil, errRedirected
	}
	t.redirected = false
	if f.Type != wire.TypeWelcome {
		return fail("welcome", fmt.Errorf("got a %s frame", f.Type))
	}
	if f.Welcome.TerminalID != t.id || f.Welcome.Facility != t.facility {
		return fail("welcome", fmt.Errorf("welcomed as %s of %s", f.Welcome.TerminalID, f.Welcome.Facility))
	}
	// A relay that numbers a facility's downlink with one counter says so: gaps are normal.
	t.downSparse.Store(f.Welcome.DownSparse)
	r.handshakes.Add(1)
	return c, nil
}

// errRedirected: the gateway sent the terminal to its facility's; it connects there next.
var errRedirected = errors.New("redirected to the facility's gateway")

func write(ctx context.Context, c *websocket.Conn, msg any) error {
	_, err := writeN(ctx, c, msg)
	return err
}

// writeN writes msg as one frame and says how many bytes it encoded to (before compression).
func writeN(ctx context.Context, c *websocket.Conn, msg any) (int, error) {
	b, err := wire.Encode(msg)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, frameTimeout)
	defer cancel()
	return len(b), c.Write(wctx, websocket.MessageText, b)
}

func read(ctx context.Context, c *websocket.Conn) (wire.Frame, error) {
	var hint int
	return readHinted(ctx, c, &hint)
}

// readHinted reads and decodes one frame into a buffer sized from the connection's last frame
// (wire.ReadFrame, as sync/client and the relay read), not grown from 512 bytes as
// websocket.Conn.Read grows it: a kiosk of a busy facility reads a down frame of several
// kilobytes for each few charges of its neighbours.
func readHinted(ctx context.Context, c *websocket.Conn, hint *int) (wire.Frame, error) {
	_, rd, err := c.Reader(ctx)
	if err != nil {
		return wire.Frame{}, err
	}
	b, err := wire.ReadFrame(rd, hint)
	if err != nil {
		return wire.Frame{}, err
	}
	f, err := wire.DecodeFrame(b)
	if err != nil {
		c.Close(websocket.StatusPolicyViolation, wire.CloseReason(wire.ReasonMalformed+": "+err.Error()))
		return wire.Frame{}, fmt.Errorf("relay sent a malformed frame: %w", err)
	}
	return f, nil
}

// session runs one authenticated connection: it sends batches while fewer than the window are
// unacknowledged (resending first whatever the relay has not acknowledged), applies and
// acknowledges downlink, and cuts the link when told to.
func (t *terminal) session(ctx context.Context, c *websocket.Conn, stormCh *<-chan struct{}) endKind {
	r := t.run
	cfg := &r.cfg
	acks := make(chan wire.Ack, cfg.Window+8) // at most one ack per batch in flight
	downCh := make(chan struct{}, 1)
	readerDone := make(chan error, 1)
	quit := make(chan struct{})
	go t.read(c, acks, downCh, readerDone, quit)
	readerEnded := false
	defer func() {
		close(quit)
		c.CloseNow()
		if !readerEnded {
			<-readerDone
		}
	}()

	// The relay holds everything below the oldest pending item; a reconnect resends from there.
	sentUpTo := t.nextSeq
	if len(t.pending) > 0 {
		sentUpTo = t.pending[0].Seq - 1
	}
	var inflight []flight
	downAcked := t.downApplied.Load()
	start, loadOver, runOver := r.start, r.loadOver, r.runOver
	if closed(start) {
		t.started = true
	}
	if t.started {
		start = nil
	}
	var cut <-chan time.Time
	armCut := func() {
		if cfg.CutEvery > 0 {
			// Jittered around the period so terminals do not all cut at once (that is -storm).
			cut = time.After(cfg.CutEvery/2 + time.Duration(t.rng.Int64N(int64(cfg.CutEvery))))
		}
	}
	if t.started {
		armCut()
	}
	// With -rate a terminal makes a batch when it is due, and the pacer wakes it then.
	var pacer *time.Timer
	var paced <-chan time.Time
	defer func() {
		if pacer != nil {
			pacer.Stop()
		}
	}()
	// lost classifies an end the tool did not ask for, using the reader's error when it has one
	// (it carries the relay's close code and reason).
	lost := func(werr error) endKind {
		err := werr
		if !readerEnded {
			select {
			case rerr := <-readerDone:
				readerEnded, err = true, rerr
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil || closed(r.runOver) {
			return endExit
		}
		r.lost(err)
		return endLost
	}
	for {
		for t.started && len(inflight) < cfg.Window {
			var items []wire.Item
			i := 0
			for i < len(t.pending) && t.pending[i].Seq <= sentUpTo {
				i++
			}
			switch {
			case i < len(t.pending):
				items = t.pending[i:min(i+cfg.BatchItems, len(t.pending))]
			case t.canMake() && t.isDue():
				now := time.Now().UTC()
				for range cfg.BatchItems {
					t.pending = append(t.pending, t.newItem(now))
				}
				t.batches++
				t.paced(time.Now()) // not now: UTC drops the monotonic reading
				items = t.pending[len(t.pending)-cfg.BatchItems:]
			}
			if items == nil {
				break
			}
			at := time.Now()
			n, err := writeN(ctx, c, wire.Batch{Epoch: t.epoch, Items: items})
			if err != nil {
				return lost(err)
			}
			r.batchBytes.Add(int64(n))
			r.batchFrames.Add(1)
			inflight = append(inflight, flight{last: items[len(items)-1].Seq, at: at})
			sentUpTo = items[len(items)-1].Seq
			if cfg.CutProb > 0 && t.rng.Float64() < cfg.CutProb {
				r.cuts.Add(1)
				return endCut
			}
		}
		if t.started && !t.done && !t.canMake() && len(t.pending) == 0 {
			t.done = true
			r.finishedWG.Done()
		}
		paced = nil
		if cfg.Rate > 0 && t.canMake() && len(inflight) < cfg.Window {
			if pacer == nil {
				pacer = time.NewTimer(time.Until(t.due))
			} else {
				pacer.Reset(time.Until(t.due))
			}
			paced = pacer.C
		}
		select {
		case a := <-acks:
			t.acked(a, sentUpTo, &inflight)
		case <-downCh:
			if seq := t.downApplied.Load(); seq > downAcked {
				if err := write(ctx, c, wire.DownAck{Seq: seq}); err != nil {
					return lost(err)
				}
				downAcked = seq
				r.downAcks.Add(1)
			}
		case err := <-readerDone:
			readerEnded = true
			return lost(err)
		case <-cut:
			r.cuts.Add(1)
			return endCut
		case <-*stormCh:
			*stormCh = nil
			return endStorm
		case <-paced: // due: the loop above makes the batch
		case <-start:
			start, t.started = nil, true
			armCut()
		case <-loadOver:
			loadOver = nil // canMake sees it; loop again
		case <-runOver:
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() { <-cctx.Done(); c.CloseNow() }()
			c.Close(websocket.StatusNormalClosure, "load test over")
			return endExit
		case <-ctx.Done():
			return endExit
		}
	}
}

// canMake reports whether the terminal may make a new batch now.
func (t *terminal) canMake() bool {
	cfg := &t.run.cfg
	return t.started && !closed(t.run.loadOver) && (cfg.Batches == 0 || t.batches < cfg.Batches)
}

// isDue reports whether a paced terminal's next batch is due (always, unpaced). A terminal's
// first batch is due at a random point of its first interval, so that the terminals do not
// all send at once.
func (t *terminal) isDue() bool {
	rate := t.run.cfg.Rate
	if rate == 0 {
		return true
	}
	if t.due.IsZero() {
		t.due = time.Now().Add(time.Duration(t.rng.Float64() * float64(t.interval())))
	}
	return !time.Now().Before(t.due)
}

// paced moves a paced terminal's next batch one interval on from the last one due, or from now
// if it fell more than an interval behind (its window full, or its link down): a terminal
// that could not keep up does not send a burst to catch up.
func (t *terminal) paced(now time.Time) {
	if t.run.cfg.Rate == 0 {
		return
	}
	iv := t.interval()
	t.due = t.due.Add(iv)
	if t.due.Before(now) {
		t.due = now
	}
}

// interval is the time between a paced terminal's batches.
func (t *terminal) interval() time.Duration {
	return time.Duration(float64(t.run.cfg.Terminals) / t.run.cfg.Rate * float64(time.Second))
}

// acked applies an ack: only up to the highest seq sent on this connection counts (the
// protocol's rule, so refusals of items not yet resent are not missed).
func (t *terminal) acked(a wire.Ack, sentUpTo uint64, inflight *[]flight) {
	r := t.run
	if a.Epoch != t.epoch {
		r.anomaly("ack for another epoch")
		return
	}
	upTo := min(a.Seq, sentUpTo)
	n := 0
	for n < len(t.pending) && t.pending[n].Seq <= upTo {
		n++
	}
	if n == 0 {
		return
	}
	first := t.pending[0].Seq
	for _, rj := range a.Rejected {
		if rj.Seq >= first && rj.Seq <= upTo {
			t.rejected++
			r.anomaly("item refused: " + rj.Reason)
		}
	}
	t.pending = t.pending[n:]
	now := time.Now()
	k := 0
	for k < len(*inflight) && (*inflight)[k].last <= upTo {
		t.lat = append(t.lat, now.Sub((*inflight)[k].at))
		k++
	}
	*inflight = (*inflight)[k:]
	r.items.Add(int64(n))
	r.batches.Add(int64(k))
	r.lastAck.Store(now.UnixNano())
}

// read is the connection's reader: acks go to the loop, downlink is applied here (only the
// next seq counts, like kiosk.Terminal.ApplyDownlink) and the loop is told to acknowledge it.
func (t *terminal) read(c *websocket.Conn, acks chan<- wire.Ack, downCh chan<- struct{}, done chan<- error, quit <-chan struct{}) {
	r := t.run
	var hint int
	for {
		f, err := readHinted(context.Background(), c, &hint)
		if err != nil {
			done <- err
			return
		}
		switch f.Type {
		case wire.TypeAck:
			select {
			case acks <- *f.Ack:
			case <-quit:
				done <- nil
				return
			}
		case wire.TypeDown:
			applied := t.downApplied.Load()
			var n int64
			for _, it := range f.Down.Items {
				if it.Seq <= applied {
					continue // already applied (resent after a reconnect)
				}
				if it.Seq != applied+1 && !t.downSparse.Load() {
					r.anomaly("downlink gap")
				}
				applied = it.Seq
				n++
			}
			t.downApplied.Store(applied)
			r.downItems.Add(n)
			select {
			case downCh <- struct{}{}:
			default:
			}
		default:
			c.Close(websocket.StatusPolicyViolation, wire.ReasonUnexpected)
			done <- fmt.Errorf("relay sent an unexpected %s frame", f.Type)
			return
		}
	}
}

// reason names why a connection or a handshake ended, in few enough words to count by: the
// relay's close code and reason when it sent one.
func reason(err error) string {
	var ce websocket.CloseError
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, &ce):
		return fmt.Sprintf("%d %s", int(ce.Code), ce.Reason)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection ended without a close frame"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timed out"
	}
	s := err.Error()
	if i := strings.Index(s, "status code"); i >= 0 {
		s = s[i:] // "dial: failed to WebSocket dial: expected handshake response status code 101 but got 503"
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
