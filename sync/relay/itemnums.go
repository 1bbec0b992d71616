package relay

import (
	"context"
	"fmt"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Arrival numbers in blocks (docs/SCALE.md "Arrival numbers in blocks"). Every stored uplink
// item has an arrival number, bItems' sequence. Taken one at a time (NextSequence), every write
// that stores an item reads and writes that one sequence, so on JetStream any two gateways'
// commits conflict and one runs again, the whole group of batches with it. A gateway instead
// takes a block of numbers at once (the sequence moves by the block) and hands them out from
// memory: the sequence is read and written once a block, so gateways conflict only when two
// take a block at the same moment. Numbers stay unique (a block is taken under the sequence's
// compare-and-set) and increasing within a gateway; across gateways they follow blocks, not
// time, and a gateway that stops leaves the rest of its block unused (gaps: a number names
// at most one item, never every number an item). Nothing reads the numbers as a count.
//
// Where numbers come in blocks, a block is taken in a kv transaction of its own (reserve),
// before the group commit that needs it runs: the sequence is the state's, and a facility's
// held state (faclog.Held) refuses a write of it, so a group committed there could not take a
// block itself. A block so taken is committed before any number of it is handed out, and a
// number handed out is never handed out again: a run of the group that failed, or whose commit
// got no answer, leaves the numbers it took unused (gaps). Only a run again within one Update
// (the store refused its commit, so nothing of it landed) starts from the numbers the run
// before it started from.
//
// Where a group runs short all the same (its calls said fewer items than they stored, or the
// block could not be taken), or numbers are taken one at a time (a block of 1, bbolt), the
// numbers are taken inside the group's transaction, as before stop 35. Such a block counts
// only once that transaction committed, and a commit whose outcome is unknown drops it (the
// next one is read from the store, past anything that landed).
type itemNumbers struct {
	block uint64 // numbers a block holds; 1 is NextSequence's numbering (bbolt)

	mu        sync.Mutex
	next, end uint64 // committed: the numbers [next, end) are this relay's to hand out
	// While a run of the committer's transaction is under way (running), [tnext, tend) is
	// what is left to it. Only the committer's transactions take numbers, one run at a time
	// (commit.go tells began and ended).
	running     bool
	tnext, tend uint64
	// inTx: the run took [tnext, tend) in its own transaction, so the block is not the
	// store's until that commits.
	inTx bool
	// keep: these are a held facility's numbers, so reserve keeps each block it took in
	// blocks, oldest first, for as long as the hold lasts: the facility's scope holds the items
	// log's records they number (facscope.go). The relay's own numbers keep none.
	keep   bool
	blocks []numberBlock
	// gate, where set, is held while a block is taken: a relay and every facility it holds
	// take their blocks on the items bucket's one sequence, and after relayd starts the held
	// facilities all took their first at once, so that each conflicted with the others and
	// ran again (0.6–1.0 re-runs a kv commit in a short run, docs/SCALE.md "What this machine
	// lets the throughput goal show"). Taken one at a time on a gateway, only gateways' blocks
	// meet.
	// A chan of one slot rather than a mutex: a take that waits for the gate gives up with
	// its context, as its transaction would.
	gate chan struct{}
}

// numberBlock is the arrival numbers [first, end).
type numberBlock struct{ first, end uint64 }

// reserve makes sure the committed block holds at least n more numbers, taking a new one of
// max(block, n) numbers in a kv transaction of its own on db when it does not (the rest of
// the old one is left unused). With a block of 1 it does nothing: numbers are taken in the
// group's transaction.
func (in *itemNumbers) reserve(ctx context.Context, db kv.Store, n int) error {
	if in.block <= 1 || n <= 0 {
		return nil
	}
	in.mu.Lock()
	left := in.end - in.next
	in.mu.Unlock()
	if left >= uint64(n) {
		return nil
	}
	size := max(in.block, uint64(n))
	if in.gate != nil {
		select {
		case in.gate <- struct{}{}:
			defer func() { <-in.gate }()
		case <-ctx.Done():
			return fmt.Errorf("take %d arrival numbers: wait for the relay's other blocks: %w", size, ctx.Err())
		}
	}
	var first uint64
	err := db.Update(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bItems))
		first = b.Sequence() + 1
		return b.SetSequence(first + size - 1)
	})
	if err != nil {
		return fmt.Errorf("take %d arrival numbers: %w", size, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.next, in.end = first, first+size
	if in.keep {
		in.blocks = append(in.blocks, numberBlock{first, first + size})
	}
	return nil
}

// reserved reports whether the number n is in a block reserve took.
func (in *itemNumbers) reserved(n uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i := len(in.blocks) - 1; i >= 0; i-- {
		if b := in.blocks[i]; n >= b.first && n < b.end {
			return true
		}
	}
	return false
}

// began is told that a run of the committer's transaction starts: it takes from the numbers
// the last commit left (a run again forgets what the failed run took, which was never stored).
func (in *itemNumbers) began() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.running, in.tnext, in.tend, in.inTx = true, in.next, in.end, false
}

// take returns the next arrival number for an item stored in tx, the committer's running
// transaction (or a wrapper of it).
func (in *itemNumbers) take(tx kv.Tx) (uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.running {
		return 0, fmt.Errorf("take an arrival number: not in a group commit")
	}
	if in.tnext >= in.tend {
		b := tx.Bucket([]byte(bItems))
		first := b.Sequence() + 1
		if err := b.SetSequence(first + in.block - 1); err != nil {
			return 0, fmt.Errorf("take arrival numbers %d..%d: %w", first, first+in.block-1, err)
		}
		in.tnext, in.tend, in.inTx = first, first+in.block, true
	}
	n := in.tnext
	in.tnext++
	return n, nil
}

// ended is told how the committer's transaction ended. Committed (err nil): what its last run
// took is gone. A write function's own error (fnFailed): nothing was committed, what it took is
// free again. Any other error leaves what the run took unused, since a commit whose answer was
// lost may have stored items under those numbers; a block the run took itself is dropped
// whole (the next one is read from the store, past them).
func (in *itemNumbers) ended(err error, fnFailed bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case fnFailed || !in.running:
	case err != nil && in.inTx:
		in.next, in.end = 0, 0
	default:
		in.next, in.end = in.tnext, in.tend
	}
	in.running = false
}

// defaultItemNumberBlock: a gateway takes a block every one to four seconds at 1,000 to 4,000
// items a second, and items listed by number are in time order to within about that. The
// sequence a gateway reads to take a block is its cached one, which the other gateways' blocks
// have moved since, so nearly every block taken costs its group commit one run again: at 256
// a block, two gateways storing 1,500-2,300 status reports a second between them ran 0.2-0.7
// of their commits twice, each time the whole group, its reads from the stream's leader.
const defaultItemNumberBlock = 4096
