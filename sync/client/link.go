package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/wire"
)

// link is one authenticated connection: a reader, the uplink sender, the downlink applier
// and the pinger, each on its own goroutine; the first to fail ends them all.
type link struct {
	e     *Engine
	conn  *websocket.Conn
	epoch string
	acks  chan wire.Ack
	downs chan wire.Down
	// sparse: the welcome said down_sparse, so a jump in downlink seq is normal.
	sparse bool
	// contents carries content frames to the fetcher (content.go).
	contents chan wire.Frame
	// arena and frame are the uplink's buffers, reused batch after batch: the queued items'
	// bytes (kiosk.Store.PendingWireInto) and the batch frame built from them.
	arena, frame []byte
}

// writeTimeout bounds one frame write; a relay that cannot take 1 MiB in this long is gone.
const writeTimeout = 30 * time.Second

func (l *link) send(ctx context.Context, msg any) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return writeFrame(wctx, l.conn, msg)
}

// read hands acks to the uplink and downlink frames to the applier. Reading also lets the
// websocket library answer pings and see pongs.
func (l *link) read(ctx context.Context) error {
	var hint int // readMessage's: the length of the last message
	for {
		f, err := readFrame(ctx, l.conn, !l.e.cfg.NoBinaryChunks, &hint)
		if err != nil {
			return peerClosed("receive", err)
		}
		switch {
		case f.Ack != nil:
			if f.Ack.Epoch != l.epoch {
				return protocolErr(wire.ReasonUnexpected, "relay acknowledged epoch %q, ours is %q", f.Ack.Epoch, l.epoch)
			}
			select {
			case l.acks <- *f.Ack:
			case <-ctx.Done():
				return nil
			}
		case f.Down != nil:
			select {
			case l.downs <- *f.Down:
			case <-ctx.Done():
				return nil
			}
		case f.ContentManifest != nil, f.Chunk != nil, f.ContentMissing != nil:
			l.contentFrame(ctx, f)
		default:
			return protocolErr(wire.ReasonUnexpected, "relay sent an unexpected %s frame", f.Type)
		}
	}
}

// uplink sends batches from the forwarding queue, up to Window unacknowledged at a time, and
// marks items forwarded as acks come back.
//
// An ack frees its batch's place in the window at once, but what it says is written to the
// store by the ack writer (ackWriter), on its own goroutine, all the acks taken since its last
// transaction in one: the uplink goes on sending while the terminal's commit waits for the
// disk, so the relay always has batches to store. Nothing rests on the order: an ack not yet
// written when the connection or the terminal stops only makes its items go again, and the
// relay recognises them (exactly once is the relay's seq and item id checks, not the
// terminal's cursor).
func (l *link) uplink(ctx context.Context) (err error) {
	cfg := l.e.cfg
	var (
		sent      uint64        // highest seq sent on this connection
		inflight  []uint64      // last seq of each unacknowledged batch
		waiting   bool          // items wait for a batch, since waitSince
		waitSince time.Duration // on the engine's timers clock, as every duration here
		tick      = l.e.tick
		lastAck   = tick.Mono()
		poll      = tick.NewTimer(0)
	)
	defer poll.Stop()
	aw := startAckWriter(l)
	defer func() {
		if len(inflight) > 0 { // cut (or stopped) with batches unacknowledged: smaller ones next
			l.e.batchShift.Store(min(l.e.batchShift.Load()+1, maxBatchShift))
		}
		// Stopped: what the relay acknowledged is not sent again at the next start. Cut: the
		// writer's transaction under way ends, the rest goes again.
		if werr := aw.stop(err == nil); err == nil {
			err = werr
		}
	}()
	take := func(a wire.Ack) {
		for len(inflight) > 0 && inflight[0] <= min(a.Seq, sent) {
			inflight = inflight[1:]
		}
		// With batches still in flight another ack is due: a few are written together.
		aw.add(a, sent, len(inflight) == 0)
		lastAck = tick.Mono()
		l.grow()
	}
	for {
		// Take every ack already here before deciding what to send.
		for drained := false; !drained; {
			select {
			case a := <-l.acks:
				take(a)
			default:
				drained = true
			}
		}
		next := cfg.BatchDelay
		maxItems, maxBytes, window := l.batchLimits()
		// The writer keeps up with the acks unless the disk does not: then the uplink waits
		// rather than run ever further ahead of what the store knows was stored.
		for aw.backlog() >= maxHeldAcks {
			select {
			case <-ctx.Done():
				return nil
			case <-aw.done:
				return aw.err
			case <-aw.taken:
			}
		}
		if len(inflight) < window {
			items, full, err := l.nextBatch(sent, maxItems, maxBytes)
			if err != nil {
				return err
			}
			switch {
			case len(items) == 0:
				waiting = false
			default:
				if !waiting {
					waiting, waitSince = true, tick.Mono()
				}
				due := full || tick.Mono()-waitSince >= cfg.BatchDelay
				if !due {
					// A batch not yet full goes at once if its first item already waited long
					// enough (e.g. queued while the link was down).
					first, err := items[0].Decode()
					if err != nil {
						return fmt.Errorf("read forwarding queue: %w", err)
					}
					due = l.e.clock.Now().Sub(first.CreatedAt) >= cfg.BatchDelay
				}
				if due {
					last, err := l.sendBatch(ctx, items)
					if err != nil {
						return err
					}
					if len(inflight) == 0 {
						lastAck = tick.Mono()
					}
					sent = last
					inflight = append(inflight, last)
					waiting = false
					continue
				}
				next = cfg.BatchDelay - (tick.Mono() - waitSince)
			}
		}
		if len(inflight) > 0 && tick.Mono()-lastAck > cfg.AckTimeout {
			return fmt.Errorf("relay acknowledged nothing for %v", cfg.AckTimeout)
		}
		poll.Reset(max(next, time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-aw.done:
			return aw.err
		case a := <-l.acks:
			take(a)
		case <-l.e.wake:
			waiting, waitSince = true, tick.Mono()-cfg.BatchDelay // send what waits now
		case <-poll.C():
		}
	}
}

// maxHeldAcks bounds the acks taken and not yet handed to a transaction (ackWriter): on a disk
// slower than the link, the items a restart sends again stay a few batches' worth.
const maxHeldAcks = 16

// ackGroup is how many acks the writer waits for while batches are in flight: in a drain each
// transaction (two fdatasyncs, on the disk the relay may share) then writes several batches.
const ackGroup = 4

// ackWriter writes the uplink's acks to the store on a goroutine of its own, each transaction
// with every ack taken while the one before was committing.
type ackWriter struct {
	l     *link
	mu    sync.Mutex
	held  heldAcks      // taken, not yet in a transaction (mu)
	wake  chan struct{} // an ack was added
	quit  chan struct{} // the uplink ends
	taken chan struct{} // the writer took the held acks
	done  chan struct{} // closed when the writer ends; err is then set
	err   error
}

func startAckWriter(l *link) *ackWriter {
	w := &ackWriter{l: l, wake: make(chan struct{}, 1), quit: make(chan struct{}),
		taken: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *ackWriter) run() {
	defer close(w.done)
	var cur heldAcks
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		cur.acks, w.held.acks = w.held.acks, cur.acks
		w.mu.Unlock()
		select {
		case w.taken <- struct{}{}:
		default:
		}
		if err := w.l.writeAcks(&cur); err != nil {
			w.err = err
			return
		}
		clear(cur.acks[:cap(cur.acks)]) // the letters' lists go with the acks written
	}
}

// add hands the writer an ack taken when the connection had sent up to sent; the writer
// takes it at once if now, or once ackGroup acks wait.
func (w *ackWriter) add(a wire.Ack, sent uint64, now bool) {
	w.mu.Lock()
	w.held.add(a, sent)
	n := len(w.held.acks)
	w.mu.Unlock()
	if !now && n < ackGroup {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// backlog is the number of acks taken and not yet in a transaction.
func (w *ackWriter) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held.acks)
}

// stop ends the writer once its transaction under way is done and, if flush, writes the acks
// still held; it returns the first error of either.
func (w *ackWriter) stop(flush bool) error {
	close(w.quit)
	<-w.done
	if w.err != nil {
		return w.err
	}
	if !flush {
		return nil
	}
	return w.l.writeAcks(&w.held)
}

// heldAcks are acks taken by the uplink and not yet written to the store, in order.
type heldAcks struct {
	acks []heldAck
}

// heldAck is one ack as it is written: how far it moves the cursor (never past what the
// connection had sent when it came) and what it says of the items up to there.
type heldAck struct {
	upTo     uint64
	rejected []wire.Rejection
	letters  *wire.Letters
}

func (h *heldAcks) add(a wire.Ack, sent uint64) {
	h.acks = append(h.acks, heldAck{upTo: min(a.Seq, sent), rejected: a.Rejected, letters: a.Letters})
}

// writeAcks writes the held acks: each refusal first (so a refused item is never marked
// forwarded), then the acknowledged range up to the last of them, with the letters' states,
// in one transaction.
func (l *link) writeAcks(h *heldAcks) error {
	if len(h.acks) == 0 {
		return nil
	}
	now := l.e.clock.Now()
	var upTo uint64
	n := 0
	for _, a := range h.acks {
		for _, r := range a.rejected {
			if r.Seq > a.upTo {
				break
			}
			if err := l.e.term.MarkRefused(r.Seq, r.Reason); err != nil {
				return fmt.Errorf("record refusal of item %d: %w", r.Seq, err)
			}
			l.e.logf("sync: relay refused item %d: %s", r.Seq, r.Reason)
		}
		upTo = max(upTo, a.upTo)
		n += a.letters.Len()
	}
	if upTo > 0 {
		var letters []kiosk.AckedLetter
		if n > 0 {
			letters = make([]kiosk.AckedLetter, 0, n)
			for _, a := range h.acks {
				if a.letters == nil {
					continue
				}
				for _, seq := range a.letters.Delivered {
					letters = append(letters, kiosk.AckedLetter{Seq: seq, State: kiosk.MsgDelivered})
				}
				for _, seq := range a.letters.Held {
					letters = append(letters, kiosk.AckedLetter{Seq: seq, State: kiosk.MsgHeld})
				}
			}
		}
		if _, err := l.e.term.MarkForwardedLetters(upTo, letters); err != nil {
			return fmt.Errorf("mark items up to %d forwarded: %w", upTo, err)
		}
		if l.e.ownedPending.Load() {
			l.e.FetchContent() // a purchase may now be the relay's: its media can be fetched
		}
	}
	h.acks = h.acks[:0]
	l.e.update(func(st *status.Link) { st.LastSuccess = now })
	return nil
}

// maxBatchShift bounds Engine.batchShift: 2^12 shrinks any configured batch to one item.
const maxBatchShift = 12

// batchLimits are the batch size and window for the next batch: the configured ones, or after
// connections cut with batches in flight, halved once per such cut (down to one item, which
// the queue hands out whatever its size) with one batch in flight, until acks bring them back.
func (l *link) batchLimits() (maxItems, maxBytes, window int) {
	cfg := l.e.cfg
	shift := l.e.batchShift.Load()
	if shift == 0 {
		return cfg.BatchItems, cfg.BatchBytes, cfg.Window
	}
	return max(cfg.BatchItems>>shift, 1), max(cfg.BatchBytes>>shift, 1), 1
}

// grow doubles the batches again after an ack, up to the configured size (batchLimits).
func (l *link) grow() {
	if shift := l.e.batchShift.Load(); shift > 0 {
		l.e.batchShift.Store(shift - 1)
	}
}

// nextBatch reads the items after seq sent, at most maxItems and maxBytes, as stored (their
// wire encoding); full says the batch should go without waiting. Items too large to ever send
// are refused here, as the relay would refuse them.
func (l *link) nextBatch(sent uint64, maxItems, maxBytes int) ([]kiosk.QueuedItem, bool, error) {
	for {
		// The last batch's items are sent (or dropped) by now: their bytes' room is reused.
		items, arena, err := l.e.store.PendingWireInto(l.arena, sent, maxItems, maxBytes)
		l.arena = arena
		if err != nil {
			return nil, false, fmt.Errorf("read forwarding queue: %w", err)
		}
		var refused bool
		for _, q := range items {
			if len(q.JSON) <= wire.MaxItemBytes {
				continue // the body is shorter than the item
			}
			it, err := q.Decode()
			if err != nil {
				return nil, false, fmt.Errorf("read forwarding queue: %w", err)
			}
			if len(it.Body) > wire.MaxItemBytes {
				l.e.logf("sync: item %d (%s) is %d bytes, over %d: refused", it.Seq, it.Kind, len(it.Body), wire.MaxItemBytes)
				if err := l.e.term.MarkRefused(it.Seq, wire.RefuseTooLarge); err != nil {
					return nil, false, fmt.Errorf("refuse oversized item %d: %w", it.Seq, err)
				}
				refused = true
			}
		}
		if refused {
			continue
		}
		if len(items) == 0 || len(items) >= maxItems {
			return items, len(items) > 0, nil
		}
		// Fewer than BatchItems: full only if the byte budget stopped it, i.e. more items wait.
		more, err := l.e.store.PendingWire(items[len(items)-1].Seq, 1, 1)
		if err != nil {
			return nil, false, fmt.Errorf("read forwarding queue: %w", err)
		}
		return items, len(more) > 0, nil
	}
}

// sendBatch writes items as one or more batch frames (a frame over the limit is split).
func (l *link) sendBatch(ctx context.Context, items []kiosk.QueuedItem) (last uint64, err error) {
	for len(items) > 0 {
		n := len(items)
		for {
			err = l.sendFrame(ctx, items[:n])
			if errors.Is(err, wire.ErrTooLarge) && n > 1 {
				n /= 2
				continue
			}
			break
		}
		if err != nil {
			return 0, err
		}
		last = items[n-1].Seq
		items = items[n:]
	}
	return last, nil
}

func (l *link) sendFrame(ctx context.Context, items []kiosk.QueuedItem) error {
	b, err := batchFrame(l.frame[:0], l.epoch, items)
	if err != nil {
		return err
	}
	l.frame = b // Write is done with it when it returns: the next frame is built in it
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := l.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// batchFrame is the batch frame wire.Encode(wire.Batch{...}) writes for these items, byte for
// byte, built by copying each item's stored encoding between the envelope's bytes instead of
// decoding and encoding every item twice (TestBatchFrameIsWireEncoding keeps them equal).
func batchFrame(dst []byte, epoch string, items []kiosk.QueuedItem) ([]byte, error) {
	ep, err := json.Marshal(epoch)
	if err != nil {
		return nil, fmt.Errorf("encode batch frame: %w", err)
	}
	const head, mid, tail = `{"type":"batch","body":{"epoch":`, `,"items":[`, `]}}`
	size := len(head) + len(ep) + len(mid) + len(tail) + len(items)
	for _, it := range items {
		size += len(it.JSON)
	}
	if size > wire.MaxFrameBytes {
		return nil, fmt.Errorf("encode batch frame: %w (%d bytes, limit %d)", wire.ErrTooLarge, size, wire.MaxFrameBytes)
	}
	b := dst[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = append(append(append(b, head...), ep...), mid...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.JSON...)
	}
	return append(b, tail...), nil
}

// downlink applies each frame in one store transaction (kiosk.Terminal.ApplyDownlinkBatch), in
// order, then acknowledges the position it reached and the items refused for good.
func (l *link) downlink(ctx context.Context) error {
	for {
		var d wire.Down
		select {
		case <-ctx.Done():
			return nil
		case d = <-l.downs:
		}
		items := make([]kiosk.DownlinkItem, len(d.Items))
		for i, it := range d.Items {
			items[i] = kiosk.DownlinkItem{Seq: it.Seq, Kind: it.Kind, Body: it.Body}
		}
		// Photos are retained before their letters are applied, so no letter is ever stored
		// (and acknowledged) without its photos being wanted.
		fetch, err := l.e.retainPhotos(d.Items)
		if err != nil {
			return err
		}
		apply := l.e.term.ApplyDownlinkBatch
		if l.sparse {
			apply = l.e.term.ApplyDownlinkSparse
		}
		applied, refusals, err := apply(items)
		if err != nil {
			first, last := uint64(0), uint64(0)
			if len(items) > 0 {
				first, last = items[0].Seq, items[len(items)-1].Seq
			}
			return fmt.Errorf("apply downlink items %d..%d: %w", first, last, err)
		}
		var refused []wire.Rejection
		for _, r := range refusals {
			refused = append(refused, wire.Rejection{Seq: r.Seq, Reason: r.Reason})
		}
		if err := l.send(ctx, wire.DownAck{Seq: applied, Refused: refused}); err != nil {
			return err
		}
		if fetch {
			l.e.FetchContent()
		}
		now := l.e.clock.Now()
		l.e.update(func(st *status.Link) { st.LastSuccess = now })
	}
}

// ping checks the link every PingInterval; two pings in a row without a pong end it.
func (l *link) ping(ctx context.Context) error {
	iv := l.e.cfg.PingInterval
	t := l.e.tick.NewTimer(iv)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		// The next ping is due iv after this one; a pong not back by then is missed. The pong
		// is awaited on its own goroutine, not by cancelling Ping: a cancelled write closes
		// the connection. That goroutine ends with the pong or with the link.
		t.Reset(iv)
		pong := make(chan error, 1)
		go func() { pong <- l.conn.Ping(ctx) }()
		select {
		case <-ctx.Done():
			return nil
		case err := <-pong:
			if err == nil {
				missed = 0
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
		case <-t.C():
			t.Reset(0) // the next ping is due now
		}
		if missed++; missed >= 2 {
			return fmt.Errorf("link dead: no pong to two pings %v apart", iv)
		}
	}
}
