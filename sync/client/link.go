package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
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
	for {
		f, err := readFrame(ctx, l.conn)
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
		default:
			return protocolErr(wire.ReasonUnexpected, "relay sent an unexpected %s frame", f.Type)
		}
	}
}

// uplink sends batches from the forwarding queue, up to Window unacknowledged at a time, and
// marks items forwarded as acks come back.
func (l *link) uplink(ctx context.Context) error {
	cfg := l.e.cfg
	var (
		sent      uint64   // highest seq sent on this connection
		inflight  []uint64 // last seq of each unacknowledged batch
		waitSince time.Time
		lastAck   = time.Now()
		poll      = time.NewTimer(0)
	)
	defer poll.Stop()
	for {
		// Take every ack already here before deciding what to send.
		for drained := false; !drained; {
			select {
			case a := <-l.acks:
				var err error
				if inflight, err = l.acked(a, sent, inflight); err != nil {
					return err
				}
				lastAck = time.Now()
			default:
				drained = true
			}
		}
		next := cfg.BatchDelay
		if len(inflight) < cfg.Window {
			items, full, err := l.nextBatch(sent)
			if err != nil {
				return err
			}
			switch {
			case len(items) == 0:
				waitSince = time.Time{}
			default:
				if waitSince.IsZero() {
					waitSince = time.Now()
				}
				age := l.e.clock.Now().Sub(items[0].CreatedAt)
				if full || time.Since(waitSince) >= cfg.BatchDelay || age >= cfg.BatchDelay {
					last, err := l.sendBatch(ctx, items)
					if err != nil {
						return err
					}
					if len(inflight) == 0 {
						lastAck = time.Now()
					}
					sent = last
					inflight = append(inflight, last)
					waitSince = time.Time{}
					continue
				}
				next = cfg.BatchDelay - time.Since(waitSince)
			}
		}
		if len(inflight) > 0 && time.Since(lastAck) > cfg.AckTimeout {
			return fmt.Errorf("relay acknowledged nothing for %v", cfg.AckTimeout)
		}
		poll.Reset(max(next, time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case a := <-l.acks:
			var err error
			if inflight, err = l.acked(a, sent, inflight); err != nil {
				return err
			}
			lastAck = time.Now()
		case <-l.e.wake:
			waitSince = time.Now().Add(-cfg.BatchDelay) // send what waits now
		case <-poll.C:
		}
	}
}

// nextBatch reads the items after seq sent; full says the batch should go without waiting.
// Items too large to ever send are refused here, as the relay would refuse them.
func (l *link) nextBatch(sent uint64) ([]kiosk.Item, bool, error) {
	cfg := l.e.cfg
	for {
		items, err := l.e.store.Pending(sent, cfg.BatchItems, cfg.BatchBytes)
		if err != nil {
			return nil, false, fmt.Errorf("read forwarding queue: %w", err)
		}
		var refused bool
		for _, it := range items {
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
		if len(items) == 0 || len(items) >= cfg.BatchItems {
			return items, len(items) > 0, nil
		}
		// Fewer than BatchItems: full only if the byte budget stopped it, i.e. more items wait.
		more, err := l.e.store.Pending(items[len(items)-1].Seq, 1, 1)
		if err != nil {
			return nil, false, fmt.Errorf("read forwarding queue: %w", err)
		}
		return items, len(more) > 0, nil
	}
}

// sendBatch encodes and writes items as one or more frames (a frame over the limit is split).
func (l *link) sendBatch(ctx context.Context, items []kiosk.Item) (last uint64, err error) {
	b := wire.Batch{Epoch: l.epoch, Items: make([]wire.Item, len(items))}
	for i, it := range items {
		b.Items[i] = wire.Item{Seq: it.Seq, ID: it.ID, Kind: string(it.Kind), CreatedAt: it.CreatedAt, Body: it.Body}
	}
	for len(b.Items) > 0 {
		n := len(b.Items)
		for {
			err = l.send(ctx, wire.Batch{Epoch: b.Epoch, Items: b.Items[:n]})
			if errors.Is(err, wire.ErrTooLarge) && n > 1 {
				n /= 2
				continue
			}
			break
		}
		if err != nil {
			return 0, err
		}
		last = b.Items[n-1].Seq
		b.Items = b.Items[n:]
	}
	return last, nil
}

// acked applies one ack: refusals first (so a refused item is never marked forwarded), then
// the acknowledged range. An ack never counts past what this connection sent.
func (l *link) acked(a wire.Ack, sent uint64, inflight []uint64) ([]uint64, error) {
	now := l.e.clock.Now()
	upTo := min(a.Seq, sent)
	for _, r := range a.Rejected {
		if r.Seq > upTo {
			break
		}
		if err := l.e.term.MarkRefused(r.Seq, r.Reason); err != nil {
			return inflight, fmt.Errorf("record refusal of item %d: %w", r.Seq, err)
		}
		l.e.logf("sync: relay refused item %d: %s", r.Seq, r.Reason)
	}
	if upTo > 0 {
		if _, err := l.e.term.MarkForwarded(upTo); err != nil {
			return inflight, fmt.Errorf("mark items up to %d forwarded: %w", upTo, err)
		}
	}
	for len(inflight) > 0 && inflight[0] <= upTo {
		inflight = inflight[1:]
	}
	l.e.update(func(st *Status) { st.LastSuccess = now })
	return inflight, nil
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
		applied, refusals, err := l.e.term.ApplyDownlinkBatch(items)
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
		now := l.e.clock.Now()
		l.e.update(func(st *Status) { st.LastSuccess = now })
	}
}

// ping checks the link every PingInterval; two pings in a row without a pong end it.
func (l *link) ping(ctx context.Context) error {
	iv := l.e.cfg.PingInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, iv)
		err := l.conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			missed = 0
			continue
		}
		if missed++; missed >= 2 {
			return fmt.Errorf("link dead: no pong to two pings %v apart", iv)
		}
	}
}
