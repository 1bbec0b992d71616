package relay

import (
	"errors"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// storeBatches stores what a connection sent (storeBatchesOnce) in one transaction if the
// store takes it, and else in parts. A JetStream commit holds at most 1,000 messages
// (kv.ErrTxTooLarge beyond), and a full batch of 256 items writes several keys per item, and
// downlink for each terminal of the facility: too much for one commit, however the committer
// groups it. A batch need not be stored in one transaction: the relay keeps, per item, the
// highest contiguous seq and what each seq held, so a part stored before a crash is
// recognised when the terminal sends the batch again (PROTOCOL.md, "ack"). So batches are
// stored one by one, and a batch in halves (recursively), and each batch still gets one ack,
// sent after its last part committed: the last part's seq, with the refusals and letters of
// every part.
func (r *Relay) storeBatches(t TerminalInfo, batches []upBatch, seen *seenRec) ([]wire.Ack, error) {
	acks, err := r.storeBatchesOnce(t, batches, seen)
	if !errors.Is(err, kv.ErrTxTooLarge) {
		return acks, err
	}
	acks = nil
	for i, b := range batches {
		if i > 0 {
			seen = nil // written with the first part
		}
		ack, err := r.storeInParts(t, b, seen)
		var seqErr *sequenceError
		if err != nil && !errors.As(err, &seqErr) {
			return nil, err // as storeBatchesOnce: any other error answers none
		}
		acks = append(acks, ack)
		if err != nil {
			return acks, err
		}
	}
	return acks, nil
}

// storeInParts stores one batch, in halves if it is too large for one transaction, and
// returns its one ack. A *sequenceError in a part stops there, as in a whole batch.
func (r *Relay) storeInParts(t TerminalInfo, b upBatch, seen *seenRec) (wire.Ack, error) {
	acks, err := r.storeBatchesOnce(t, []upBatch{b}, seen)
	if !errors.Is(err, kv.ErrTxTooLarge) || len(b.Items) < 2 {
		if len(acks) == 0 {
			return wire.Ack{}, err
		}
		return acks[0], err
	}
	half := len(b.Items) / 2
	first, second := b, b
	first.Items, second.Items = b.Items[:half:half], b.Items[half:]
	if b.bodies != nil {
		first.bodies, second.bodies = b.bodies[:half:half], b.bodies[half:]
	}
	if len(b.preps) == len(b.Items) {
		first.preps, second.preps = b.preps[:half:half], b.preps[half:]
	} else {
		first.preps, second.preps = nil, nil
	}
	a1, err := r.storeInParts(t, first, seen)
	if err != nil {
		return a1, err
	}
	a2, err := r.storeInParts(t, second, nil)
	var seqErr *sequenceError
	if err != nil && !errors.As(err, &seqErr) {
		return wire.Ack{}, err
	}
	return mergeAcks(a1, a2), err
}

// mergeAcks is the ack of a batch stored as two parts: the second part's seq (the highest
// contiguous, so past the first part's) with both parts' refusals and letters, in seq order.
func mergeAcks(a1, a2 wire.Ack) wire.Ack {
	out := a2
	out.Rejected = append(append([]wire.Rejection(nil), a1.Rejected...), a2.Rejected...)
	if len(out.Rejected) == 0 {
		out.Rejected = nil
	}
	if a1.Letters != nil || a2.Letters != nil {
		var l wire.Letters
		for _, p := range []*wire.Letters{a1.Letters, a2.Letters} {
			if p != nil {
				l.Delivered = append(l.Delivered, p.Delivered...)
				l.Held = append(l.Held, p.Held...)
			}
		}
		out.Letters = &l
	}
	return out
}
