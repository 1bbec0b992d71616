package faclog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// bProjected is the root bucket of how far each facility's log is in the kv state: facility
// -> the sequence of the last entry applied (8 bytes, big-endian). It is written in the same
// transaction as the entries' writes, so the state and its mark never part.
const bProjected = "faclog_projected"

// ErrGap: the entries to project do not follow the kv state's mark. An entry is missing
// between them: a kv state restored from a backup older than the log's trimmed entries, or a
// log read from the wrong place. Nothing is applied; an operator must look.
var ErrGap = errors.New("faclog: the log does not follow the kv state")

// Projected is the sequence of the last entry of facility's log in the kv state, 0 if none.
func Projected(ctx context.Context, s kv.Store, facility string) (uint64, error) {
	var at uint64
	err := s.View(ctx, func(tx kv.Tx) error {
		at = projectedIn(tx, facility)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("faclog: how far facility %q is projected: %w", facility, err)
	}
	return at, nil
}

func projectedIn(tx kv.Tx, facility string) uint64 {
	b := tx.Bucket([]byte(bProjected))
	if b == nil {
		return 0
	}
	v := b.Get([]byte(facility))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Project applies entries of facility's log, in order, to the kv state in one transaction,
// with the mark of the last. Entries at or before the mark are skipped, so projecting again
// (a transaction whose answer was lost, a new holder catching up) changes nothing. Each entry
// must follow the one before it (Entry.Prev), the first the mark: otherwise ErrGap, and
// nothing is applied. It returns the mark after.
func Project(ctx context.Context, s kv.Store, facility string, entries []Entry) (uint64, error) {
	// The writes are decoded once, outside the transaction, which may run more than once.
	writes := make([][]Write, len(entries))
	for i, e := range entries {
		if e.Claim() {
			continue
		}
		ws, err := DecodeWrites(e.Data)
		if err != nil {
			return 0, fmt.Errorf("faclog: facility %q entry %d: %w", facility, e.Seq, err)
		}
		writes[i] = ws
	}
	var at uint64
	err := s.Update(ctx, func(tx kv.Tx) error {
		at = projectedIn(tx, facility)
		start := at
		for i, e := range entries {
			if e.Seq <= start {
				continue
			}
			if e.Prev != at {
				return fmt.Errorf("%w: facility %q entry %d follows %d, the kv state is at %d", ErrGap, facility, e.Seq, e.Prev, at)
			}
			if err := Apply(tx, writes[i]); err != nil {
				return fmt.Errorf("facility %q entry %d: %w", facility, e.Seq, err)
			}
			at = e.Seq
		}
		if at == start {
			return nil
		}
		b, err := tx.CreateBucketIfNotExists([]byte(bProjected))
		if err != nil {
			return err
		}
		return b.Put([]byte(facility), binary.BigEndian.AppendUint64(nil, at))
	})
	if err != nil {
		return 0, fmt.Errorf("faclog: project facility %q: %w", facility, err)
	}
	return at, nil
}

// ProjectEach projects entries in transactions of at most perTx entries, halving perTx while
// the store finds a transaction too large. It returns the mark after (0 if nothing was
// projected) and the perTx it ended with, for the next call.
func ProjectEach(ctx context.Context, s kv.Store, facility string, entries []Entry, perTx int) (at uint64, _ int, _ error) {
	perTx = max(1, perTx)
	for len(entries) > 0 {
		n := min(perTx, len(entries))
		next, err := Project(ctx, s, facility, entries[:n])
		if errors.Is(err, kv.ErrTxTooLarge) && n > 1 {
			perTx = max(1, n/2)
			continue
		}
		if err != nil {
			return at, perTx, err
		}
		at, entries = next, entries[n:]
	}
	return at, perTx, nil
}

// CatchUp projects what facility's log holds after the kv state's mark, up to through, in
// transactions of at most perTx entries (halved while the store finds one too large). It is
// what a gateway does before it serves a facility it claimed (through: its claim), and it
// returns the mark after.
func CatchUp(ctx context.Context, l Log, s kv.Store, facility string, through uint64, perTx int) (uint64, error) {
	at, err := Projected(ctx, s, facility)
	if err != nil {
		return at, err
	}
	if at > through {
		// A claim is appended after every entry, and the mark names an entry: a kv state past
		// it follows another log (this one made again, or restored from before the kv state).
		// Its entries' sequences would be at or below the mark, and each skipped as projected.
		return at, fmt.Errorf("%w: facility %q: the kv state is at entry %d, past the claim at %d: the log was made again or restored from before the kv state",
			ErrGap, facility, at, through)
	}
	if at == through {
		return at, nil
	}
	var batch []Entry
	flush := func() error {
		next, n, err := ProjectEach(ctx, s, facility, batch, perTx)
		if next != 0 {
			at = next
		}
		batch, perTx = nil, n
		return err
	}
	errEnough := errors.New("read through")
	err = l.Read(ctx, facility, at, func(e Entry) error {
		if e.Seq > through {
			return errEnough
		}
		batch = append(batch, e)
		if len(batch) >= perTx {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return at, fmt.Errorf("faclog: catch up facility %q: %w", facility, err)
	}
	if err := flush(); err != nil {
		return at, err
	}
	return at, nil
}
