package relay

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// On a store shared by gateways (JetStream), a kiosk's downlink writer used to read the store at
// every wake-up: two Views' worth of leader round trips (bucket markers, its own bucket's
// listing, its position, the facility's counter, each read twice to validate), 20 kiosks a
// facility one after another for every charge, and nothing woke it for another gateway's
// writes. Now each gateway follows the store's facility logs and own downlink buckets with the
// store's watch feed (kv.Watcher), every gateway's commits in commit order, and feeds them
// into the facilities' in-memory tails (downtail.go) and the terminals' own items (downFeed),
// waking the terminals it holds. A writer reads the store only when its position is outside
// what the feed holds (docs/SCALE.md "Downlink").
//
// Why the feed never makes a writer skip or repeat an item: every number of a facility (its
// log's records and its terminals' own items) is taken from the facility's counter, and every
// transaction that takes one writes the counter, so the transactions that number a facility's
// items commit one after another, each ending with its counter's message in the stream after
// its records. The feed delivers the stream in order. When it delivers the counter at n, it
// has delivered every record and own item numbered up to n that was committed after the feed
// started, except those deleted before it got there (pruned: below every position that could
// read them). A facility's tail starts at the first counter the feed delivers (what was numbered
// up to it may predate the feed) and from then holds every log record up to the last counter
// delivered, and downFeed every own item of every terminal numbered since (per terminal up to
// ownFedMax, above its floor once it dropped some). A feed that missed anything (kv.Changes
// Lost) drops all of it and the writers read the store until the tails start again.

// ownFedMax bounds the own items the feed keeps for one terminal (a tablet offline while its
// inmate's letters come): past it the oldest go, and the terminal's writer reads the store for
// what is at or below them.
const ownFedMax = 256

// ownFedMaxBytes bounds what the feed keeps of every terminal's own items together (each
// gateway sees every terminal's, its own or not): past it the feed starts again as if lost.
const ownFedMaxBytes = 32 << 20

// ownFed is one terminal's own downlink items as the feed delivered them, by number.
type ownFed struct {
	recs []ownRec
	// floor: items at or below it may be missing (dropped past ownFedMax).
	floor uint64
}

type ownRec struct {
	seq  uint64
	item []byte // the wire.DownItem's JSON, checked; never changed (readers share it)
}

// downFeed is what the feed delivered that the tails do not hold: own items, and log records
// waiting for their counter.
type downFeed struct {
	r  *Relay
	mu sync.Mutex
	// own: terminal id -> its own items the feed delivered since it started.
	own map[string]*ownFed
	// staged: facility -> log records delivered whose counter has not come yet (a counter
	// message another commit overwrote before the feed read it is never delivered; its
	// records go with the next).
	staged map[string][]tailRec
	// ownBytes is what own holds, about.
	ownBytes int
	stop     func()
}

// WatchedRoots are the root buckets the relay's downlink feed follows: a store that can make
// their nested buckets cheap to follow is told so when it is opened (jskv.Options.WatchRoots).
func WatchedRoots() [][]byte { return [][]byte{[]byte(bFacDown), []byte(bDown)} }

// startDownFeed follows the store's downlink buckets if it offers a watch feed. Without one
// (or if it cannot start) the writers read the store as before.
func (r *Relay) startDownFeed() {
	w, ok := r.db.(kv.Watcher)
	if !ok {
		return
	}
	d := &downFeed{r: r, own: map[string]*ownFed{}, staged: map[string][]tailRec{}}
	stop, err := w.Watch(WatchedRoots(), d.apply)
	if err != nil {
		r.logf("relay: downlink feed: %v; the downlink writers read the store", err)
		return
	}
	d.stop = stop
	r.feed = d
}

// apply takes one transaction's changes (or a loss) from the feed.
func (d *downFeed) apply(cs kv.Changes) {
	if cs.Lost {
		d.lost()
		return
	}
	var counters map[string]uint64
	var here map[string]bool // whether a terminal is connected here, looked up once a transaction
	d.mu.Lock()
	for _, c := range cs.List {
		switch string(c.Root) {
		case bDown:
			id := string(c.Bucket)
			conn, ok := here[id]
			if !ok {
				if here == nil {
					here = map[string]bool{}
				}
				_, conn = d.r.hub.facilityOf(id)
				here[id] = conn
			}
			d.ownChange(c, conn)
		case bFacDown:
			fac := string(c.Bucket)
			switch {
			case c.BucketDeleted:
				// Never done by the relay; a tail must not outlive what it mirrors.
				d.r.downTails.get(fac).forget()
				delete(d.staged, fac)
			case c.Key == nil:
				if counters == nil {
					counters = map[string]uint64{}
				}
				counters[fac] = max(counters[fac], c.Sequence)
			case !c.Deleted && len(c.Key) == 8:
				tag, except, item, ok := logItem(c.Value)
				if !ok || !validItem(item) {
					// A damaged record: the tail cannot hold it, so it starts again after it
					// and the readers meet it in the store (and report it).
					d.r.downTails.get(fac).forget()
					delete(d.staged, fac)
					continue
				}
				d.staged[fac] = append(d.staged[fac], tailRec{seq: readU64(c.Key), tag: tag, except: except, item: item})
			}
		}
	}
	if d.ownBytes > ownFedMaxBytes {
		d.resetLocked()
		d.mu.Unlock()
		d.r.hub.kickFacilities(nil)
		return
	}
	// Own items are recorded before the tails move: a writer that sees a tail's end sees every
	// own item numbered up to it. Only the facilities of terminals held here keep a tail (each
	// gateway sees every facility's log); another's is forgotten, and starts again at its next
	// counter once one of its terminals connects here.
	held := d.r.hub.heldOf(counters)
	for fac, end := range counters {
		recs := d.staged[fac]
		delete(d.staged, fac)
		if d.r.held.of(fac) != nil {
			// Its tail is kept by its holder's commits (holds.go): what the feed sees of it is
			// their projection, late.
			delete(held, fac)
			continue
		}
		if !held[fac] {
			if v, ok := d.r.downTails.m.Load(fac); ok {
				v.(*downTail).forget()
			}
			continue
		}
		slices.SortFunc(recs, func(a, b tailRec) int { return cmpU64(a.seq, b.seq) })
		d.r.downTails.get(fac).feed(end, recs)
	}
	d.mu.Unlock()
	if len(held) > 0 {
		d.r.hub.kickFacilities(held)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// validItem is the check the store's reader makes of a record it sends (pendingDownRaw).
func validItem(v []byte) bool {
	return json.Valid(v) && bytes.HasPrefix(v, []byte(`{"seq":`))
}

// ownChange records a change to a terminal's own bucket (d.mu held). Only the items of a
// terminal connected here are kept: each gateway sees every terminal's, and a writer reads
// only its own connection's. Another's item raises its floor instead, so that the terminal's
// writer reads the store for it if the terminal connects here later (as for items dropped
// past ownFedMax). Kept for all, the snapshots of 10,000 kiosks enrolled and not yet
// connected were 28 and 41 MB of two gateways' heaps, up to ownFedMaxBytes on each
// (docs/SCALE.md, "10,000 idle kiosks, stop 44").
func (d *downFeed) ownChange(c kv.Change, connectedHere bool) {
	id := string(c.Bucket)
	o := d.own[id]
	switch {
	case c.BucketDeleted:
		if o != nil {
			for _, r := range o.recs {
				d.ownBytes -= len(r.item)
			}
		}
		delete(d.own, id)
	case c.Key == nil || len(c.Key) != 8:
	case c.Deleted:
		if o != nil {
			seq := readU64(c.Key)
			o.recs = slices.DeleteFunc(o.recs, func(r ownRec) bool {
				if r.seq == seq {
					d.ownBytes -= len(r.item)
				}
				return r.seq == seq
			})
			if len(o.recs) == 0 && o.floor == 0 {
				delete(d.own, id)
			}
		}
	default:
		if o == nil {
			o = &ownFed{}
			d.own[id] = o
		}
		seq := readU64(c.Key)
		if !connectedHere || !validItem(c.Value) { // a damaged one: the store's reader reports it
			o.floor = max(o.floor, seq)
			return
		}
		i, found := slices.BinarySearchFunc(o.recs, seq, func(r ownRec, s uint64) int { return cmpU64(r.seq, s) })
		d.ownBytes += len(c.Value)
		if found {
			d.ownBytes -= len(o.recs[i].item)
			o.recs[i] = ownRec{seq: seq, item: c.Value}
		} else {
			o.recs = slices.Insert(o.recs, i, ownRec{seq: seq, item: c.Value})
		}
		if len(o.recs) > ownFedMax {
			drop := len(o.recs) - ownFedMax/2
			for _, r := range o.recs[:drop] {
				d.ownBytes -= len(r.item)
			}
			o.floor = max(o.floor, o.recs[drop-1].seq)
			o.recs = append([]ownRec(nil), o.recs[drop:]...)
		}
	}
}

// lost drops what the feed delivered and sends every writer to the store.
func (d *downFeed) lost() {
	d.mu.Lock()
	d.resetLocked()
	d.mu.Unlock()
	d.r.hub.kickFacilities(nil)
}

// resetLocked forgets what the feed delivered: the tails start again at their facility's next
// counter, and own items numbered up to it are read from the store.
func (d *downFeed) resetLocked() {
	clear(d.own)
	clear(d.staged)
	d.ownBytes = 0
	d.r.downTails.m.Range(func(_, v any) bool {
		v.(*downTail).forget()
		return true
	})
}

// since is what the feed holds numbered in (after, upTo] for terminal id of the facility whose
// tail is given: the log's records and the terminal's own items, and whether it holds all of
// them. Under d.mu: a loss clears both together. The caller must not change what it gets.
func (d *downFeed) since(id string, tail *downTail, after, upTo uint64) ([]tailRec, []ownRec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, whole := tail.since(after, upTo)
	if !whole {
		return nil, nil, false
	}
	own, whole := d.ownSinceLocked(id, after, upTo)
	return recs, own, whole
}

// ownBetween is the numbers of terminal id's own items in (after, upTo], if the feed holds all
// of them: those an acknowledgement up to upTo deletes (pruneDown), known without listing the
// bucket.
func (d *downFeed) ownBetween(id, facility string, after, upTo uint64) ([]uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, whole := d.r.downTails.get(facility).since(after, upTo); !whole {
		return nil, false
	}
	own, whole := d.ownSinceLocked(id, after, upTo)
	if !whole {
		return nil, false
	}
	seqs := make([]uint64, len(own))
	for i, o := range own {
		seqs[i] = o.seq
	}
	return seqs, true
}

// ownSinceLocked is terminal id's own items numbered in (after, upTo], and whether the feed
// holds all of them (d.mu held; the tail of its facility must hold the range).
func (d *downFeed) ownSinceLocked(id string, after, upTo uint64) ([]ownRec, bool) {
	o := d.own[id]
	if o == nil {
		return nil, true
	}
	if after < o.floor {
		return nil, false
	}
	lo, _ := slices.BinarySearchFunc(o.recs, after+1, func(r ownRec, s uint64) int { return cmpU64(r.seq, s) })
	hi, _ := slices.BinarySearchFunc(o.recs, upTo+1, func(r ownRec, s uint64) int { return cmpU64(r.seq, s) })
	return slices.Clone(o.recs[lo:hi]), true
}

// facilityOf is the facility of terminal id if a connection of it is held here.
func (h *hub) facilityOf(id string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[id]; s != nil {
		return s.facility, true
	}
	return "", false
}

// heldOf is the facilities among facs that terminals connected here belong to.
func (h *hub) heldOf(facs map[string]uint64) map[string]bool {
	if len(facs) == 0 {
		return nil
	}
	held := map[string]bool{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if _, ok := facs[s.facility]; ok {
			held[s.facility] = true
		}
	}
	return held
}

// kickFacilities wakes the writers of the terminals held here in the given facilities (all of
// them for nil): the feed moved their facility's tail, or was lost.
func (h *hub) kickFacilities(facs map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if facs == nil || facs[s.facility] {
			s.down.kick()
		}
	}
}

// downRead is what a connection's downlink writer learnt from its last read of the store
// (the writer's alone): everything for the terminal numbered up to upTo was read, and its
// downFrom. known is false before the first read.
type downRead struct {
	known          bool
	upTo, downFrom uint64
}

// readDown reads what the writer of session s sends next after `sent`: up to maxItems items
// (about maxBytes), the number of the last, and whether more are waiting. idle says there is
// nothing to read now, without reading: on a bbolt file, nothing was queued since the last
// read that sent everything; with the feed, the feed holds nothing beyond what was read (a
// commit of this relay not yet delivered by the feed wakes the writer again when it is).
func (r *Relay) readDown(s *session, sent uint64, maxItems, maxBytes int) (items [][]byte, last uint64, more, idle bool, err error) {
	rd := downReader{id: s.id, facility: s.facility, mode: s.mode}
	// A facility this relay holds has its downlink written by this relay alone, on its held
	// state, which the feed sees only once projected: it is read as on a relay of its own
	// (its commits keep its tail, holds.go), never by the feed.
	held := r.held.of(rd.facility) != nil
	if r.feed == nil || held {
		alone := r.cfg.Store == nil || held // no other gateway writes this facility's downlink
		if s.down.drained && sent >= s.down.queued.Load() && alone {
			// Nothing was queued since the last read that sent all. On a shared store without
			// a feed another gateway's writes wake nobody here, so every look reads.
			return nil, 0, false, true, nil
		}
		if s.down.drained && alone {
			// Most looks of a busy facility's kiosk: what a commit just added to the log,
			// taken from memory without opening a read transaction (7-8 % of relayd's CPU
			// with charges fanning out, docs/BENCHMARKS.md, ninth round).
			var upTo uint64
			var fromTail bool
			items, last, upTo, more, fromTail = r.tailDown(rd, s.down.readTo, maxItems, maxBytes)
			if fromTail {
				s.down.readTo = upTo
				return items, last, more, false, nil
			}
		}
		var counter uint64
		rd.counter = &counter
		var info *downViewInfo
		if r.gateway != nil {
			info = &downViewInfo{}
		}
		items, last, more, err = r.pendingDownRawInfo(rd, sent, maxItems, maxBytes, info)
		if err == nil && info != nil && info.cut {
			if err = r.resyncCut(s); err == nil {
				items, last, more, err = r.pendingDownRawInfo(rd, sent, maxItems, maxBytes, info)
			}
		}
		if err == nil {
			// A read that found all leaves nothing for the terminal up to the view's counter.
			s.down.readTo = max(counter, sent)
		}
		return items, last, more, false, err
	}
	pos := sent
	if s.dread.known {
		pos = max(pos, s.dread.upTo)
	}
	tail := r.downTails.get(rd.facility)
	if from, to, known := tail.bounds(); known && s.dread.known && pos >= from {
		if pos >= to {
			return nil, 0, false, true, nil
		}
		if items, last, more, ok := r.feedRead(rd, tail, s.dread.downFrom, pos, to, maxItems, maxBytes); ok {
			if !more {
				s.dread.upTo = to
			}
			return items, last, more, false, nil
		}
	}
	var info downViewInfo
	items, last, more, err = r.pendingDownRawInfo(rd, pos, maxItems, maxBytes, &info)
	if err == nil && info.cut && r.gateway != nil {
		// What this read found may lack what the prune took: read again after the snapshot,
		// from what was sent (the facility's log from above the snapshot).
		s.dread = downRead{}
		if err = r.resyncCut(s); err == nil {
			items, last, more, err = r.pendingDownRawInfo(rd, sent, maxItems, maxBytes, &info)
		}
	}
	if err != nil {
		return nil, 0, false, false, err
	}
	s.dread.known, s.dread.downFrom = true, info.downFrom
	if !more {
		s.dread.upTo = max(s.dread.upTo, info.counter)
	}
	return items, last, more, false, nil
}

// feedRead is pendingDownRaw's merge over what the feed holds, numbered in (after, upTo]: the
// facility's tail and the terminal's own items. ok is false if the feed does not hold all of it.
func (r *Relay) feedRead(rd downReader, tail *downTail, downFrom, after, upTo uint64, maxItems, maxBytes int) (items [][]byte, last uint64, more, ok bool) {
	recs, own, whole := r.feed.since(rd.id, tail, after, upTo)
	if !whole {
		return nil, 0, false, false
	}
	size := 0
	for len(recs) > 0 || len(own) > 0 {
		var seq uint64
		var v []byte
		if len(recs) == 0 || (len(own) > 0 && own[0].seq < recs[0].seq) {
			seq, v = own[0].seq, own[0].item
			own = own[1:]
		} else {
			rec := &recs[0]
			recs = recs[1:]
			if rec.seq <= downFrom || string(rec.except) == rd.id || (rec.tag == logKiosks && rd.mode != wire.ModeKiosk) {
				continue
			}
			seq, v = rec.seq, rec.item
		}
		if len(items) >= maxItems || (len(items) > 0 && size+len(v) > maxBytes) {
			return items, last, true, true
		}
		items = append(items, v)
		last = seq
		size += len(v)
	}
	return items, last, false, true
}
