package relay

import "sync"

// A facility's downlink log is read by each of its terminals: a charge at one of 20 kiosks is
// one record, read 19 times, each time by a cursor seek into the log, a check of its JSON and a
// copy. The relay keeps the newest records of each facility's log in memory, as its own writes
// committed them (downTail), and a reader whose position is inside that tail takes the records
// from there instead; the store stays the truth: the tail is used only when it holds every
// record of the log the reader's view can see above the reader's position, and otherwise the
// reader reads the store as before.
//
// Why the tail is complete: every number of a facility (its log's records and its terminals'
// own items) is taken from the facility's counter (facCounter), and every write of this relay
// runs through the group commit, one transaction after another, each call of a transaction
// after the one before it. A call records the counter as it first found it (start) and the
// numbers it took, with the records it wrote to the log; after the commit, in commit order,
// the committer hands each call to downTails.committed. A call whose start is where the tail
// ends continues it (no number was taken between them, by anyone: another gateway of a shared
// store writing the counter would have moved it); any other starts the tail afresh at its own
// start. So the tail holds every record numbered in (from, to], and a view whose counter is
// at most `to` sees exactly those of them at or below its counter. A record pruned from the
// store is below every position that could read it (pruneFacilityDown), so a reader never
// reaches it in the tail either.

// tailRec is one record of a facility's downlink log, as appendFacility wrote it.
type tailRec struct {
	seq    uint64
	tag    byte
	except []byte // the terminal it is not for (see logItem), part of the stored record
	item   []byte // the wire.DownItem's JSON; never changed once in a tail (readers share it)
}

// facRun is what one write call did to a facility's counter: the value it found, the last
// number it took, and the log records it wrote.
type facRun struct {
	start, end uint64
	recs       []tailRec
}

// downTail is the newest part of one facility's downlink log.
type downTail struct {
	mu sync.Mutex
	// known: from and to mean something (a write call of this relay committed since it started).
	known    bool
	from, to uint64
	// recs are the log's records numbered in (from, to], in order. The slice is only appended
	// to; starting afresh or trimming makes a new one, so a reader may keep a sub-slice.
	recs []tailRec
}

// downTailMax is how many records a facility's tail holds at most (trimmed to half when it
// passes it): a reader further behind reads the store. At 20 kiosks a facility, the tail covers
// the last few seconds of a busy facility's charges, which is where connected readers are.
const downTailMax = 1024

// downTails is the tails of every facility this relay wrote downlink for.
type downTails struct {
	m sync.Map // facility -> *downTail
}

func (d *downTails) get(facility string) *downTail {
	if v, ok := d.m.Load(facility); ok {
		return v.(*downTail)
	}
	v, _ := d.m.LoadOrStore(facility, &downTail{})
	return v.(*downTail)
}

// committed extends the tails with what one committed write call did. The committer calls it
// in commit order, before any caller hears of the commit (so before any reader is woken).
func (d *downTails) committed(f *fanout) {
	for facility, run := range f.runs {
		d.get(facility).add(run)
	}
}

func (t *downTail) add(run *facRun) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known || run.start != t.to {
		// Numbers were taken that this relay did not see (another gateway, or a write before the
		// relay started): what is held says nothing about them. Start at this call.
		t.known, t.from, t.to = true, run.start, run.end
		t.recs = append([]tailRec(nil), run.recs...)
		return
	}
	t.to = run.end
	t.recs = append(t.recs, run.recs...)
	if len(t.recs) > downTailMax {
		keep := t.recs[len(t.recs)-downTailMax/2:]
		t.from = t.recs[len(t.recs)-downTailMax/2-1].seq
		t.recs = append([]tailRec(nil), keep...)
	}
}

// since is the records numbered in (after, upTo], and whether the tail holds all of them: upTo
// is the counter of the reader's view. The caller must not change what it gets.
func (t *downTail) since(after, upTo uint64) ([]tailRec, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known || after < t.from || upTo > t.to {
		return nil, false
	}
	if after >= upTo {
		return nil, true
	}
	lo := searchTail(t.recs, after)
	hi := searchTail(t.recs, upTo)
	return t.recs[lo:hi:hi], true
}

// searchTail is the index of the first record numbered above seq.
func searchTail(recs []tailRec, seq uint64) int {
	lo, hi := 0, len(recs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if recs[m].seq <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// feed extends the tail with what the store's watch feed delivered (downfeed.go): the
// facility's counter at end, and the log records delivered since its last counter, in order.
// The first counter a tail gets starts it (what was numbered up to it may predate the feed);
// after that, records in (to, end] are every record numbered there, since the feed delivers
// each counter after the records numbered up to it.
func (t *downTail) feed(end uint64, recs []tailRec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known {
		t.known, t.from, t.to, t.recs = true, end, end, nil
		return
	}
	if end <= t.to {
		return // an older counter (a commit this tail already covers)
	}
	lo := searchTail(recs, t.to)
	hi := searchTail(recs, end)
	t.to = end
	t.recs = append(t.recs, recs[lo:hi]...)
	if len(t.recs) > downTailMax {
		keep := t.recs[len(t.recs)-downTailMax/2:]
		t.from = t.recs[len(t.recs)-downTailMax/2-1].seq
		t.recs = append([]tailRec(nil), keep...)
	}
}

// forget makes the tail hold nothing until it starts again.
func (t *downTail) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.known, t.recs = false, nil
}

// bounds is (from, to] and whether the tail holds it.
func (t *downTail) bounds() (from, to uint64, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.from, t.to, t.known
}
