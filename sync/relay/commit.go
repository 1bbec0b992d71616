package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Group commit: every write of the relay goes through one queue. A committer goroutine (running
// only while there is work) takes whatever is queued, runs each write function in turn inside
// one bbolt transaction and commits it with one fsync; each caller waits for its own result.
// While one transaction commits, the next writes queue up, so a thousand connections share a
// few fsyncs a second instead of taking one each, with no fixed delay when the relay is idle.
//
// A write function that returns an error must fail alone: the transaction is rolled back, that
// caller gets its error (the state it saw is the one the writes before it left, so the error is
// the one it would have got running right after them), and the others run again in a new
// transaction. So a write function may run more than once and must be safe to re-run: it resets
// any state it sets outside the transaction at its start (the fanout does so itself), and it
// leaves logging to the fanout (f.logf), which speaks only after the commit.

// maxGroup bounds the write functions in one transaction: a failure re-runs those before it,
// and a huge transaction holds every caller in it until the slowest is done.
const maxGroup = 256

// A store may also bound what one transaction writes (JetStream: 1,000 messages per atomic
// batch, kv.ErrTxTooLarge beyond). What a write function will write is known only once it ran.
// Such a store's transaction says its size (kv.Size): after each commit the group size is set
// so that a group like it would fill the bound to groupFill; at a half and three quarters of
// a group, if what it wrote so far says the whole would come within a tenth of the bound, it
// takes only what fits and leaves the rest to the next transaction (willFit); and a group
// that ran over all the same is split where that share of it would have fitted, each part
// committed on its own (recursively, down to a single call, which then fails alone). A group too large was
// refused after all its functions ran and all its reads were made: it cost the gateway and
// the cluster a whole group's work for nothing. Growing the group by a quarter after each
// commit and halving it at each refusal, as before sizes were told, ran one group commit in
// ten over the bound under steady load. A bbolt file never refuses a size, so there groups
// stay at maxGroup.

// A busy held facility's committer waits a moment before it takes a group (Config.GroupLinger).
// Each group commit of a held facility is one log message and one CurrentView, whatever it
// carries, and the cluster's cost is in the round more than in the bytes: a 300-byte message
// cost it 467 µs of CPU with two publishers and 28 µs with a thousand, and one of 12 KB no
// more than one of 300 bytes with two (SCALE.md, "What a message costs the cluster"). Under
// load a group is whatever queued while the one before committed, about twenty status
// batches on two gateways with 1,000 kiosks; waiting 10 ms made them about thirty and a batch
// 5-12 % cheaper in CPU ("Group commits that wait for company").
// The wait is only while the facility is busy (its last group took more than one call; a
// queue run dry does not count, as under load it runs dry between many groups), so a facility
// whose batches come one at a time never waits, and it ends as soon as lingerTarget calls wait.
const lingerTarget = 64

// DefaultGroupLinger is relayd's Config.GroupLinger: 10 ms made a log message carry thirty
// status batches rather than twenty; 25 ms, tried once, no more than that.
const DefaultGroupLinger = 10 * time.Millisecond

// groupFill is the share of a store's bound a group is sized to fill: groups vary (a call may
// carry several batches, a charge writes more than a status report), so the rest is headroom.
const groupFill = 0.8

// writeCall is one queued write function and where its result goes.
type writeCall struct {
	fn func(tx kv.Tx, f *fanout) error
	f  *fanout
	// keys, if set, names keys fn is known to read: the group's are prefetched together
	// before its functions run (kv.Prefetch, prefetch.go). It is called only on a store that
	// prefetches: on bbolt working the keys out was a twentieth of the relay's CPU for nothing.
	keys func() []kv.Key
	// numbers is at most how many arrival numbers fn takes (the items of its batches): the
	// group's are reserved before it runs (itemnums.go).
	numbers int
	done    chan error
}

// committer queues write calls; the goroutine that commits them runs only while some wait.
type committer struct {
	// facility is the facility whose held state db is ("": the kv state's committer).
	facility string
	db       kv.Store
	ctx      context.Context // ends when the relay closes
	mu       sync.Mutex
	queue    []*writeCall
	running  bool
	// txs counts committed (or attempted) write transactions.
	txs func()
	// began, if set, is told that a run of a transaction starts (a store may run it more than
	// once); ended, if set, how the transaction ended: Update's error, and whether that error
	// is a write function's own (nothing committed) rather than the store's (itemnums.go).
	began func()
	ended func(err error, fnFailed bool)
	// reserve, if set, is told before each run of a transaction how many arrival numbers its
	// calls may take, to take them in a transaction of their own (itemnums.go). Its error is
	// not the group's: a group that runs short takes them in its own transaction.
	reserve func(ctx context.Context, numbers int) error
	// applied, if set, is told of each call of a committed transaction, in the order they ran,
	// before any caller hears of the commit (the facilities' downlink tails, downtail.go).
	applied func(f *fanout)
	// ids, if set, is the index of the facilities' item id records: each run of a
	// transaction gives its calls one txIDs, written after the last (facids.go).
	ids *idrecs.Index
	// nums hands out the arrival numbers its calls' items take (itemnums.go); began, ended
	// and reserve tell it of the transactions.
	nums *itemNumbers
	// limit is how many calls the next group takes (at most maxGroup, at least 1); 0 means
	// maxGroup. Only the committer goroutine touches it.
	limit int
	// linger, if above zero, is how long the committer of a busy facility waits for more
	// calls before it takes a group (lingerTarget), on clock. last is how many calls the
	// last group took (the committer goroutine's); full, while the committer waits, is closed
	// by the call that brings the queue to lingerTarget.
	linger time.Duration
	clock  clock.Clock
	last   int
	full   chan struct{}
}

// do queues fn and waits for the commit of the transaction it ran in (or its own error).
func (c *committer) do(call *writeCall) error {
	call.done = make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, call)
	if c.full != nil && len(c.queue) >= lingerTarget {
		close(c.full)
		c.full = nil
	}
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	return <-call.done
}

func (c *committer) run() {
	for {
		c.mu.Lock()
		if c.limit <= 0 {
			c.limit = maxGroup
		}
		n := min(len(c.queue), c.limit)
		if n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		if c.linger > 0 && c.last > 1 && n < min(lingerTarget, c.limit) {
			n = c.waitForCompany()
		}
		c.last = n
		group := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
		c.mu.Unlock()
		c.commit(group)
	}
}

// waitForCompany waits, with c.mu held on entry and on return, until lingerTarget calls are
// queued, the linger is over or the relay closes, and returns how many calls the group takes.
func (c *committer) waitForCompany() int {
	full := make(chan struct{})
	c.full = full
	c.mu.Unlock()
	t := c.clock.NewTimer(c.linger)
	select {
	case <-t.C():
	case <-full:
	case <-c.ctx.Done():
	}
	t.Stop()
	c.mu.Lock()
	c.full = nil
	return min(len(c.queue), c.limit)
}

// commit runs group in one transaction, taking out (and answering) each call that fails and
// re-running the rest, until a transaction of the remaining calls commits or none remain.
func (c *committer) commit(group []*writeCall) {
	for len(group) > 0 {
		failed := -1
		var failErr error
		if c.txs != nil {
			c.txs()
		}
		ctx, cancel := context.WithTimeout(c.ctx, txTimeout)
		size, bound, sized := 0, 0, false
		ran := len(group) // the calls the last run took; the rest go in the next transaction
		if c.reserve != nil {
			numbers := 0
			for _, call := range group {
				numbers += call.numbers
			}
			_ = c.reserve(ctx, numbers) // see reserve
		}
		err := c.db.Update(ctx, func(tx kv.Tx) error {
			if c.began != nil {
				c.began()
			}
			failed, failErr = -1, nil // a store may run this more than once (kv.Store.Update)
			var ids *txIDs
			if c.ids != nil {
				ids = &txIDs{tx: tx, ix: c.ids}
			}
			var lastItems *lastRecord
			if !onBolt(tx) {
				lastItems = &lastRecord{}
			}
			// What the group is known to read, fetched together first: on JetStream a read is
			// a round trip to the stream leader, and the functions below read one at a time.
			if kv.Prefetches(tx) {
				var keys []kv.Key
				for _, call := range group {
					if call.keys != nil {
						keys = append(keys, call.keys()...)
					}
				}
				kv.Prefetch(tx, keys)
			}
			ran = len(group)
			for i, call := range group {
				if i == ran {
					break
				}
				call.f.reset(tx)
				call.f.ids, call.f.nums, call.f.lastItems = ids, c.nums, lastItems
				if err := safeCall(call, tx); err != nil {
					failed, failErr = i, err
					return err
				}
				if i+1 == len(group)/2 || i+1 == len(group)*3/4 {
					ran = min(ran, c.willFit(tx, i+1, len(group)))
				}
			}
			if ids != nil {
				if err := ids.flush(); err != nil {
					return err
				}
			}
			size, bound, sized = kv.Size(tx)
			return nil
		})
		cancel()
		if c.ended != nil {
			c.ended(err, failed >= 0)
		}
		if failed < 0 && errors.Is(err, kv.ErrTxTooLarge) && len(group) > 1 {
			first := len(group) / 2
			if sized && size > bound {
				first = min(fitting(len(group), size, bound), len(group)-1)
			}
			c.limit = first
			c.commit(group[:first:first])
			// The rest in groups of the size the first part's commit set.
			for rest := group[first:]; len(rest) > 0; {
				n := min(len(rest), c.limit)
				c.commit(rest[:n:n])
				rest = rest[n:]
			}
			return
		}
		if failed < 0 {
			switch {
			case err == nil && sized:
				c.limit = fitting(ran, size, bound)
			case err == nil && len(group) >= c.limit && c.limit < maxGroup:
				c.limit = min(maxGroup, c.limit+c.limit/4+1)
			}
			if err == nil && c.applied != nil {
				for _, call := range group[:ran] {
					c.applied(call.f)
				}
			}
			if err == nil && ran < len(group) {
				for _, call := range group[:ran] {
					call.done <- nil
				}
				group = group[ran:] // stopped short of the bound: the rest in a transaction of their own
				continue
			}
			// Committed, or the commit itself failed: the same answer for every call.
			for _, call := range group {
				call.done <- err
			}
			return
		}
		group[failed].done <- failErr
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// willFit is how many of a group's calls (of calls) the transaction tx, which has run the
// first done of them, should take: all, unless what those wrote says the whole group would
// come within a tenth of the store's bound, in which case as many as fill it to groupFill (at
// least done). Asked halfway and three quarters through the group: a group is sized by the
// last one (fitting), and a group of larger calls (several batches each, charges rather than
// status reports) would otherwise be refused whole after all its work.
func (c *committer) willFit(tx kv.Tx, done, calls int) int {
	n, bound, ok := kv.Size(tx)
	if !ok || n <= 0 || float64(n)*float64(calls)/float64(done) <= 0.9*float64(bound) {
		return calls
	}
	return max(done, fitting(done, n, bound))
}

// fitting is how many calls of a group like one of calls calls that wrote size (against a
// store's bound) fill the bound to groupFill: at least 1, at most maxGroup.
func fitting(calls, size, bound int) int {
	if size <= 0 {
		return maxGroup
	}
	return max(1, min(maxGroup, int(float64(calls)*groupFill*float64(bound)/float64(size))))
}

// safeCall runs one write function, turning a panic into that caller's error so it cannot take
// the committer (and every other caller's write) down with it.
func safeCall(call *writeCall, tx kv.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return call.fn(tx, call.f)
}
