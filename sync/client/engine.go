package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Config wires an Engine. DataDir and Terminal are required; zero values take the defaults.
type Config struct {
	DataDir  string          // holds identity.key and enrollment.json
	Terminal *kiosk.Terminal // the store is Terminal.Store(); downlink goes to ApplyDownlinkBatch
	Logf     kiosk.Logf
	Clock    clock.Clock // default Terminal.Clock(); stamps acks and status
	// Timers paces batches, pings, ack timeouts and reconnects (default a real clock, not the
	// terminal's, which tests stop at will); tests give a fake one and Advance it.
	Timers clock.Clock
	// RelayURL and Transport override the enrolled ones (e.g. a technician moved the relay).
	RelayURL  string
	Transport *Transport
	// RelayURLs are further gateways of the same relay (docs/SCALE.md), tried in order after
	// RelayURL (or the enrolled URL) when a connection fails; after a full round without a
	// welcome the engine backs off as with one URL. At most MaxRelayURLs in all.
	RelayURLs []string
	Software  string
	// NoCompression offers the relay no permessage-deflate. Compression (the default) costs
	// CPU on both ends, about a sixth of a backlog's drain on loopback (docs/BENCHMARKS.md),
	// and saves bytes on a slow facility link; turn it off where the link is fast.
	NoCompression bool
	// NoAckLetters leaves hello's ack_letters out, as a terminal before it did: the relay then
	// reports every letter's state on the downlink (for tests of that path).
	NoAckLetters bool
	// NoBinaryChunks leaves hello's binary_chunks out, as a terminal before it did: the relay
	// then sends content chunks as JSON text frames (for tests and benchmarks of that path).
	NoBinaryChunks bool

	BatchItems   int           // a batch closes at this many items (256)
	BatchBytes   int           // ... or this many stored bytes (1 MiB, at most wire.MaxBatchBytes)
	BatchDelay   time.Duration // ... or this long after its first item was seen (200 ms)
	Window       int           // unacknowledged batches in flight (8)
	PingInterval time.Duration // websocket ping period; two missed pongs end the link (30 s)
	AckTimeout   time.Duration // no ack progress this long with batches in flight ends the link (60 s)
	Handshake    time.Duration // dial + hello..welcome (15 s)
	BackoffMin   time.Duration // first reconnect wait bound (1 s)
	BackoffMax   time.Duration // largest reconnect wait bound (60 s)
	// Rand returns a float in [0,1) for the backoff jitter (default math/rand/v2).
	Rand func() float64
	// OnStatus, if set, is called after each status change, from the engine's goroutines.
	OnStatus func(status.Link)
	// Content, if set, is the store of photos and media: what it wants is fetched (content.go).
	Content *content.Store
}

// Engine forwards the terminal's queue and applies the relay's downlink, on its own goroutines.
type Engine struct {
	cfg   Config
	term  *kiosk.Terminal
	store *kiosk.Store
	clock clock.Clock // stamps
	tick  clock.Clock // paces (Config.Timers)
	logf  kiosk.Logf
	enr   Enrollment
	eps   []endpoints // the relay's gateways in the order they are tried; eps[0] is the enrolled one
	at    int         // index in eps of the gateway being tried or connected to
	ep    endpoints   // eps[at]
	// savedGateways are the further gateways in the enrollment file (Run's goroutine only).
	savedGateways []string
	// redirected: a gateway sent this terminal to another since its last welcome (Run's
	// goroutine only); the next hellos say so and are served wherever they land.
	redirected bool
	key        ed25519.PrivateKey
	hc         *http.Client

	wake        chan struct{}
	contentWake chan struct{} // FetchContent
	// ownedPending: a purchase made here waits for the relay; its acknowledgement wakes the
	// content fetcher, which then retains the purchase's media (library.go).
	ownedPending atomic.Bool
	// batchShift halves the uplink's batches (items and bytes) and holds the window at one
	// batch: a connection that ended with batches unacknowledged raises it, each ack lowers it
	// (link.go). A link that drops every few kilobytes would otherwise resend the same
	// full-size batch, cut at the same place, forever: the tablet that never syncs.
	batchShift atomic.Int32

	mu sync.Mutex
	st status.Link
}

// adoptEnrollment records the enrollment file's identity in the store when the store knows the
// terminal by another one, or by none: a store restored from a backup taken before a
// re-enrollment, or a wiped store. The file is what the relay knows this terminal as; recording
// it (kiosk.Terminal.SetEnrollment) starts the downlink position again for the new id's stream,
// the uplink on a new epoch, and binds a tablet to its inmate, so the store neither skips the
// stream's items as applied nor reuses seqs the relay holds.
func adoptEnrollment(term *kiosk.Terminal, enr Enrollment) error {
	cur, ok, err := term.Enrollment()
	if err != nil {
		return fmt.Errorf("read the store's enrollment: %w", err)
	}
	if ok && cur.TerminalID == enr.TerminalID {
		return nil
	}
	return term.SetEnrollment(kiosk.Enrollment{TerminalID: enr.TerminalID, Facility: enr.Facility, Mode: enr.Mode, InmateID: enr.InmateID})
}

// New loads the enrollment and the identity key from cfg.DataDir; it fails on a terminal
// that was never enrolled (ErrNotEnrolled).
func New(cfg Config) (*Engine, error) {
	if cfg.DataDir == "" || cfg.Terminal == nil {
		return nil, fmt.Errorf("sync engine: data directory and terminal are required")
	}
	enr, err := LoadEnrollment(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	key, err := LoadKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	if err := adoptEnrollment(cfg.Terminal, enr); err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	if cfg.RelayURL == "" {
		cfg.RelayURL = enr.RelayURL
	}
	if len(cfg.RelayURLs) == 0 {
		cfg.RelayURLs = enr.RelayURLs
	}
	tr := enr.Transport
	if cfg.Transport != nil {
		tr = *cfg.Transport
	}
	eps, err := relayEndpoints(cfg.RelayURL, cfg.RelayURLs, tr)
	if err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	hc, err := tr.httpClient(0)
	if err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.BatchItems, 256)
	def(&cfg.BatchBytes, 1<<20)
	cfg.BatchItems = min(cfg.BatchItems, wire.MaxBatchItems)
	cfg.BatchBytes = min(cfg.BatchBytes, wire.MaxBatchBytes)
	def(&cfg.Window, 8)
	defD(&cfg.BatchDelay, 200*time.Millisecond)
	defD(&cfg.PingInterval, 30*time.Second)
	defD(&cfg.AckTimeout, 60*time.Second)
	defD(&cfg.Handshake, 15*time.Second)
	defD(&cfg.BackoffMin, time.Second)
	defD(&cfg.BackoffMax, 60*time.Second)
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Timers == nil {
		cfg.Timers = clock.NewReal()
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Terminal.Clock()
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	e := &Engine{cfg: cfg, term: cfg.Terminal, store: cfg.Terminal.Store(), clock: cfg.Clock, tick: cfg.Timers, logf: cfg.Logf,
		enr: enr, eps: eps, ep: eps[0], savedGateways: enr.RelayURLs, key: key, hc: hc, wake: make(chan struct{}, 1), contentWake: make(chan struct{}, 1)}
	e.st = status.Link{Enrolled: true, RelayURL: eps[0].base, TerminalID: enr.TerminalID, Facility: enr.Facility,
		Mode: enr.Mode, InmateID: enr.InmateID}
	return e, nil
}

// Enrollment is what the engine was enrolled as.
func (e *Engine) Enrollment() Enrollment { return e.enr }

// Status reports the link, with the queue counted now.
func (e *Engine) Status() status.Link {
	e.mu.Lock()
	st := e.st
	e.mu.Unlock()
	if n, oldest, err := e.store.QueueStats(); err == nil {
		st.Waiting, st.OldestWaiting = n, oldest
	}
	if seq, err := e.term.DownlinkApplied(); err == nil {
		st.DownApplied = seq
	}
	return st
}

// SyncNow wakes the engine: a batch waiting for its delay goes now, and a reconnect waiting
// for its backoff is tried now.
func (e *Engine) SyncNow() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) update(fn func(st *status.Link)) {
	e.mu.Lock()
	fn(&e.st)
	e.mu.Unlock()
	if e.cfg.OnStatus != nil {
		e.cfg.OnStatus(e.Status())
	}
}

// refusedAfterWelcome says whether a session that was welcomed ended because the relay could
// not do its work (it closed with an internal error, or asked to try again later): a
// connection that never gets its batch stored is a failure, and backs off as one. Counted as
// a success, such a session reset the backoff, and a terminal whose batch the relay refused
// every time (a relay bug, a store without quorum) reconnected twice a second, for ever.
func refusedAfterWelcome(err error) bool {
	switch websocket.CloseStatus(err) {
	case websocket.StatusInternalError, websocket.StatusTryAgainLater:
		return true
	}
	return false
}

// Backoff is the wait before reconnect attempt n (n >= 1): full jitter, uniformly random in
// [0, min(max, base*2^(n-1))).
func Backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	ceil := float64(max)
	if n < 63 {
		ceil = math.Min(ceil, float64(base)*math.Pow(2, float64(n-1)))
	}
	return time.Duration(rnd() * ceil)
}

// Run connects, syncs and reconnects until ctx ends; it returns nil then. The terminal keeps
// working whatever happens here.
func (e *Engine) Run(ctx context.Context) error {
	failures, renewals := 0, 0
	tried := 0 // gateways tried since the last welcome or the last full round
	for ctx.Err() == nil {
		welcomed, err := e.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if welcomed && !refusedAfterWelcome(err) {
			failures, tried = 0, 0
			e.redirected = false
		}
		var re *redirectError
		if errors.As(err, &re) && !e.redirected {
			// Not a failure: the facility is served by another gateway. Go there at once, or, if
			// this terminal's transport settings refuse its URL, ask again where it was; either
			// way only once. A relay that redirects a hello saying it was redirected already is
			// broken: that counts as a failed connection, with its backoff.
			e.redirected = true
			if ep, ok := e.redirectTarget(re.url); ok {
				e.ep = ep
				e.logf("sync: relay sent this terminal to gateway %s", e.ep.base)
			} else {
				e.logf("sync: relay sent this terminal to a gateway its transport settings refuse; staying with %s", e.ep.base)
			}
			continue
		}
		// The next gateway is tried at once until every one was tried in this round; only a
		// full round without a welcome waits, so a dead gateway costs a dial, not a backoff.
		tried++
		e.nextGateway()
		roundDone := tried >= len(e.eps)
		if roundDone {
			tried = 0
			failures++
		}
		wait := Backoff(max(failures, 1), e.cfg.BackoffMin, e.cfg.BackoffMax, e.cfg.Rand)
		if !roundDone {
			wait = 0
		}
		if err != nil && !kiosk.Retryable(classify(err)) {
			// Asking again soon would fail the same way: a technician must act (re-enroll,
			// free the store). Keep trying, at the slowest pace, so the fix is noticed.
			wait = e.cfg.BackoffMax
		}
		msg := "connection ended"
		if err != nil {
			msg = err.Error()
		}
		if reason := newEpochNeeded(err); reason != "" {
			if epoch, nerr := e.term.NewEpoch(reason); nerr != nil {
				msg = fmt.Sprintf("%s; starting a new epoch failed: %v", msg, nerr)
			} else {
				// Everything waiting goes again under the new epoch, at once: the relay knows
				// what it already holds by item id. Repeated renewals back off as failures do.
				renewals++
				failures = 0
				wait = Backoff(renewals, e.cfg.BackoffMin, e.cfg.BackoffMax, e.cfg.Rand)
				msg = fmt.Sprintf("relay refused the uplink numbering (%s): resending everything waiting under new epoch %s", reason, epoch)
				now := e.clock.Now()
				e.update(func(st *status.Link) { st.LastRecovery, st.LastRecoveryAt = msg, now })
			}
		} else {
			renewals = 0
		}
		e.logf("sync: %s; retrying %s in %v", msg, e.ep.base, wait.Round(time.Millisecond))
		e.update(func(st *status.Link) { st.Connected, st.LastError, st.RelayURL = false, msg, e.ep.base })
		if wait <= 0 {
			continue // the next gateway of this round, at once
		}
		t := e.tick.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		case <-e.wake:
		}
		t.Stop()
	}
	e.update(func(st *status.Link) { st.Connected = false })
	return nil
}

// adoptGateways takes the gateways the relay announced in welcome as the URLs tried after the
// first, and keeps them with the enrollment so that a terminal restarted while the relay is
// out of reach still knows them. A list this terminal cannot use (a plain URL off loopback
// without insecure, say) is logged and the old one kept: the connection it came on works.
// It runs on Run's goroutine, between dials, like every other use of eps.
func (e *Engine) adoptGateways(announced []string) {
	eps, err := relayEndpoints(e.eps[0].base, announced, e.enr.Transport)
	if e.cfg.Transport != nil {
		eps, err = relayEndpoints(e.eps[0].base, announced, *e.cfg.Transport)
	}
	if err != nil {
		e.logf("sync: relay announced gateways this terminal cannot use, keeping its list: %v", err)
		return
	}
	more := make([]string, 0, len(eps)-1)
	for _, ep := range eps[1:] {
		more = append(more, ep.base)
	}
	if slices.Equal(more, e.savedGateways) {
		return
	}
	// The position moves to the current gateway in the new list, or before its start (the
	// next round begins at the first) when the relay no longer lists it.
	at := -1
	for i, ep := range eps {
		if ep.base == e.ep.base {
			at = i
		}
	}
	e.eps, e.at = eps, at
	// e.enr stays as loaded: other goroutines read it (Enrollment) without a lock.
	enr := e.enr
	enr.RelayURLs = more
	if err := saveEnrollment(e.cfg.DataDir, enr); err != nil {
		e.logf("sync: keep the relay's gateways with the enrollment: %v", err)
		return
	}
	e.savedGateways = more
	e.logf("sync: relay gateways now %d: %s", len(eps), strings.Join(more, ", "))
}

// redirectTarget is the gateway a redirect names, if this terminal's transport settings take
// its URL. It need not be in eps: a terminal enrolled through one gateway learns the others
// from its first welcome, and the relay it authenticated is trusted with that list as much
// as with this URL. e.at moves to it if it is in eps, and otherwise stays, so that the round
// goes on from there.
func (e *Engine) redirectTarget(raw string) (endpoints, bool) {
	tr := e.enr.Transport
	if e.cfg.Transport != nil {
		tr = *e.cfg.Transport
	}
	if len(raw) > wire.MaxRelayURLLen {
		return endpoints{}, false
	}
	ep, err := parseRelayURL(raw, tr)
	if err != nil {
		return endpoints{}, false
	}
	if at := slices.IndexFunc(e.eps, func(g endpoints) bool { return g.base == ep.base }); at >= 0 {
		e.at = at
	}
	return ep, true
}

// redirectError ends a handshake the relay answered with a redirect frame.
type redirectError struct{ url string }

func (r *redirectError) Error() string { return "relay redirected the terminal to another gateway" }

// nextGateway moves to the next of the relay's gateways, wrapping to the first.
func (e *Engine) nextGateway() {
	e.at = (e.at + 1) % len(e.eps)
	e.ep = e.eps[e.at]
}

// classify gives a session's end the kiosk.Kind its retry depends on: the relay refusing this
// terminal for good is KindRefused; a store that is damaged, read-only or refused to us
// keeps its own kind; everything else (the relay out of reach, a dropped connection, a
// timeout, a full disk) is KindTransient and is retried with backoff.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if refusedForGood(err) {
		return &kiosk.Error{Kind: kiosk.KindRefused, Op: "sync", Err: err}
	}
	var ke *kiosk.Error
	if errors.As(err, &ke) {
		return err
	}
	return &kiosk.Error{Kind: kiosk.KindTransient, Op: "sync", Err: err}
}

// refusedForGood reports a relay that will refuse this terminal until a technician acts.
func refusedForGood(err error) bool {
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		return false
	}
	switch ce.Reason {
	case wire.ReasonUnknownTerminal, wire.ReasonRevoked, wire.ReasonBadSignature, wire.ReasonUnsupportedVersion:
		return true
	}
	return false
}

// newEpochNeeded returns why the relay cannot take this store's numbering, or "": it closed
// with a sequence conflict (this store was restored from a backup) or a gap (the relay lost
// items, or does not know this epoch under this terminal id).
func newEpochNeeded(err error) string {
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
		return ""
	}
	switch ce.Reason {
	case wire.ReasonNewEpoch, wire.ReasonSequenceGap:
		return ce.Reason
	}
	return ""
}

// linkError ends a session; close says how to close the websocket.
type linkError struct {
	code   websocket.StatusCode
	reason string
	err    error
}

func (l *linkError) Error() string { return l.err.Error() }
func (l *linkError) Unwrap() error { return l.err }

func protocolErr(reason string, format string, args ...any) error {
	return &linkError{code: websocket.StatusPolicyViolation, reason: reason, err: fmt.Errorf(format, args...)}
}

// peerClosed turns the relay's close frame into an error that names its reason.
func peerClosed(op string, err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: relay closed the connection (%d): %s: %w", op, ce.Code, ce.Reason, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// session runs one connection from dial to its end; welcomed reports a completed handshake.
func (e *Engine) session(parent context.Context) (welcomed bool, err error) {
	dctx, cancel := context.WithTimeout(parent, e.cfg.Handshake)
	defer cancel()
	compression := websocket.CompressionNoContextTakeover
	if e.cfg.NoCompression {
		compression = websocket.CompressionDisabled
	}
	conn, _, err := websocket.Dial(dctx, e.ep.websocket, &websocket.DialOptions{
		HTTPClient:      e.hc,
		Subprotocols:    []string{wire.Subprotocol},
		CompressionMode: compression,
	})
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", e.ep.base, err)
	}
	defer conn.CloseNow()
	defer func() {
		var le *linkError
		if errors.As(err, &le) && le.code != 0 {
			conn.Close(le.code, le.reason)
		}
	}()
	if conn.Subprotocol() != wire.Subprotocol {
		return false, protocolErr(wire.ReasonUnsupportedVersion, "relay did not select subprotocol %s (got %q)", wire.Subprotocol, conn.Subprotocol())
	}
	conn.SetReadLimit(wire.MaxFrameBytes)

	// The epoch and the next seq are read together: NewEpoch changes both at once.
	info, err := e.store.Info()
	if err != nil {
		return false, fmt.Errorf("read store epoch: %w", err)
	}
	epoch := info.Epoch
	applied, err := e.term.DownlinkApplied()
	if err != nil {
		return false, fmt.Errorf("read downlink position: %w", err)
	}
	waiting, oldest, err := e.store.QueueStats()
	if err != nil {
		return false, fmt.Errorf("read queue length: %w", err)
	}
	if err := writeFrame(dctx, conn, wire.Hello{TerminalID: e.enr.TerminalID, Epoch: epoch, DownApplied: applied,
		Software: e.cfg.Software, Waiting: waiting, OldestWaiting: oldest.UTC(), UplinkNext: info.NextSeq, AckLetters: !e.cfg.NoAckLetters,
		BinaryChunks: !e.cfg.NoBinaryChunks, Redirects: true, Redirected: e.redirected}); err != nil {
		return false, err
	}
	var hint int // readMessage's
	f, err := readFrame(dctx, conn, false, &hint)
	if err != nil {
		return false, peerClosed("handshake", err)
	}
	if f.Challenge == nil {
		return false, protocolErr(wire.ReasonUnexpected, "handshake: expected challenge, got %s", f.Type)
	}
	if err := writeFrame(dctx, conn, wire.Auth{Signature: wire.SignAuth(e.key, e.enr.TerminalID, f.Challenge.Nonce)}); err != nil {
		return false, err
	}
	if f, err = readFrame(dctx, conn, false, &hint); err != nil {
		return false, peerClosed("handshake", err)
	}
	if f.Redirect != nil {
		return false, &redirectError{url: f.Redirect.URL}
	}
	if f.Welcome == nil {
		return false, protocolErr(wire.ReasonUnexpected, "handshake: expected welcome, got %s", f.Type)
	}
	if f.Welcome.TerminalID != e.enr.TerminalID {
		return false, protocolErr(wire.ReasonUnexpected, "handshake: relay welcomed terminal %q, we are %q", f.Welcome.TerminalID, e.enr.TerminalID)
	}
	w := *f.Welcome
	// The relay's clock bounds what the terminal destroys by date (kiosk.Terminal.AgreedNow);
	// failing to store it only delays such expiry, so it does not end the connection.
	offset, err := e.term.NoteRelayTime(w.ServerTime)
	if err != nil {
		e.logf("sync: relay time not stored: %v", err)
	}
	e.update(func(st *status.Link) {
		st.Connected, st.LastError, st.LastSuccess = true, "", e.clock.Now()
		st.RelayURL = e.ep.base // the gateway it reached: after a redirect, not the one it dialled first
		st.Facility, st.Mode, st.InmateID = w.Facility, w.Mode, w.InmateID
		st.ClockOffset = offset
	})
	e.logf("sync: connected to %s as %s (%s, %s)", e.ep.base, w.TerminalID, w.Facility, w.Mode)
	if len(w.RelayURLs) > 0 && len(e.cfg.RelayURLs) == 0 {
		e.adoptGateways(w.RelayURLs)
	}

	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	l := &link{e: e, conn: conn, epoch: epoch, sparse: w.DownSparse, acks: make(chan wire.Ack, 64), downs: make(chan wire.Down, 16),
		contents: make(chan wire.Frame, contentFrames)}
	var wg sync.WaitGroup
	var readErr error // the reader's own end: the relay's close frame, if it sent one
	for i, fn := range []func(context.Context) error{l.read, l.uplink, l.downlink, l.ping, l.content} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx)
			if i == 0 {
				readErr = err
			}
			if err != nil {
				stop(err)
			}
		}()
	}
	<-ctx.Done()
	cause := context.Cause(ctx)
	var le *linkError
	if errors.As(cause, &le) && le.code != 0 {
		conn.Close(le.code, le.reason)
	} else if parent.Err() != nil {
		conn.Close(websocket.StatusGoingAway, "terminal shutting down")
	}
	conn.CloseNow()
	wg.Wait()
	if parent.Err() != nil {
		return true, nil
	}
	if newEpochNeeded(readErr) != "" {
		// The relay's reason decides the recovery, whichever goroutine noticed the end first.
		return true, readErr
	}
	return true, cause
}

func writeFrame(ctx context.Context, conn *websocket.Conn, msg any) error {
	b, err := wire.Encode(msg)
	if err != nil {
		return err
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// readMessage is websocket.Conn.Read (the same limit, the same errors) through
// wire.ReadFrame, which sizes the buffer from the connection's last message (*hint).
func readMessage(ctx context.Context, conn *websocket.Conn, hint *int) (websocket.MessageType, []byte, error) {
	typ, rd, err := conn.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	buf, err := wire.ReadFrame(rd, hint)
	if err != nil {
		return 0, nil, err
	}
	return typ, buf, nil
}

// readFrame reads one frame. binaryChunks: the hello offered binary_chunks, so a binary
// message is a chunk (wire.DecodeBinaryChunk); otherwise, and before welcome, a binary message
// ends the connection as it always did.
func readFrame(ctx context.Context, conn *websocket.Conn, binaryChunks bool, hint *int) (wire.Frame, error) {
	typ, b, err := readMessage(ctx, conn, hint)
	if err != nil {
		return wire.Frame{}, err
	}
	if typ == websocket.MessageBinary && binaryChunks {
		c, err := wire.DecodeBinaryChunk(b)
		if err != nil {
			return wire.Frame{}, protocolErr(wire.CloseReason(wire.ReasonMalformed+": "+err.Error()), "relay sent a bad frame: %w", err)
		}
		return wire.Frame{Type: wire.TypeChunk, Chunk: &c}, nil
	}
	if typ != websocket.MessageText {
		return wire.Frame{}, protocolErr(wire.ReasonBinary, "relay sent a binary message")
	}
	f, err := wire.DecodeFrame(b)
	if err != nil {
		return wire.Frame{}, protocolErr(wire.CloseReason(wire.ReasonMalformed+": "+err.Error()), "relay sent a bad frame: %w", err)
	}
	return f, nil
}
