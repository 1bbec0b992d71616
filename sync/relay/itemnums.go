package relay

import (
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
// A block is taken inside the write transaction that needs it, and counts only once that
// transaction committed: a transaction that runs again starts from the numbers of the last
// commit (what a failed run took was never stored), and a commit whose outcome is unknown
// drops the block (the next one is read from the store, past anything that landed).
type itemNumbers struct {
	block uint64 // numbers a block holds; 1 is NextSequence's numbering (bbolt)

	mu        sync.Mutex
	next, end uint64 // committed: the numbers [next, end) are this relay's to hand out
	// While a run of the committer's transaction is under way (running), [tnext, tend) is
	// what is left to it. Only the committer's transactions take numbers, one run at a time
	// (commit.go tells began and ended).
	running     bool
	tnext, tend uint64
}

// began is told that a run of the committer's transaction starts: it takes from the numbers
// the last commit left (a run again forgets what the failed run took, which was never stored).
func (in *itemNumbers) began() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.running, in.tnext, in.tend = true, in.next, in.end
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
		in.tnext, in.tend = first, first+in.block
	}
	n := in.tnext
	in.tnext++
	return n, nil
}

// ended is told how the committer's transaction ended. Committed (err nil): what its last run
// took is gone. A write function's own error (fnFailed): nothing was committed, what it took is
// free again. Any other error drops the block, since a commit whose answer was lost may have
// stored items under numbers of it; the next block is read from the store, past them.
func (in *itemNumbers) ended(err error, fnFailed bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case fnFailed:
	case err != nil:
		in.next, in.end = 0, 0
	case in.running:
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
