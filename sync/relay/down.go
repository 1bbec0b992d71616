package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// termRoute is the fan-out index value: what decides which items a terminal receives.
type termRoute struct {
	Mode     string `json:"mode"`
	InmateID string `json:"inmate_id,omitempty"`
}

// kioskRoute is the fan-out index value of every kiosk, as putJSON writes termRoute{Mode:
// kiosk}: most of a facility's terminals, recognised without decoding.
const kioskRoute = `{"mode":"` + wire.ModeKiosk + `"}`

// decodeRoute reads a fan-out index value. A facility's 20 entries are read for every item
// that fans out, so the common one (a kiosk) is compared, not decoded.
func decodeRoute(v []byte) (termRoute, error) {
	if string(v) == kioskRoute {
		return termRoute{Mode: wire.ModeKiosk}, nil
	}
	var rt termRoute
	err := json.Unmarshal(v, &rt)
	return rt, err
}

// fanout queues downlink items inside one transaction and remembers whom to wake, and what to
// log, after commit. A write function may run more than once (group commit): reset forgets what
// an earlier run left.
type fanout struct {
	r  *Relay
	tx kv.Tx
	// woken is whom to wake after the commit, each with the last number queued for it.
	woken []wakeUp
	logs  []string
	// inmates remembers the inmate records read in this write call (fanout.inmateFor).
	inmates map[string]inmateLookup
	// counts are the uplink items this write stored, counted once it commits (metrics.go).
	counts []itemCount
	// facs remembers the terminals' facilities read in this write call (facilityOfTerminal).
	facs map[string]string
	// runs is what this write call did to each facility's downlink counter and log, for the
	// facility's in-memory tail once the call commits (downtail.go).
	runs map[string]*facRun
	// ids is the group commit's item id records, which its calls share (facids.go): set by
	// the committer on a store that keeps ids by facility.
	ids *txIDs
	// nums hands out the arrival numbers of the items this call stores: its committer's
	// (the relay's, or a held facility's, holds.go).
	nums *itemNumbers
	// lastItems is the last item log record the group commit's calls wrote, which this
	// call's items join where their numbers follow it (itemLog.flush): set by the committer
	// on a shared store; nil, each call writes records of its own.
	lastItems *lastRecord
	// waiting is one more than the queue length this call's last status report left in its
	// terminal's term_seen record (0: not known), for the connection once the call commits
	// (owner.queue).
	waiting int64
	// kvPath: the call runs in a kv transaction, not on a held facility's state. What it
	// queues for a facility this relay holds is recorded due instead (fanoutdue.go): due, by
	// facility, under the key dueKey.
	kvPath bool
	due    map[string]*dueRecord
	dueKey string
	// heldBy is the facility whose held state the call runs on ("": a kv transaction), and
	// stateDue the keys of the records of the state's it wrote there, due (statedue.go).
	heldBy   string
	stateDue []string
	// elsewhere: the call on the kv path could not read who holds a facility it writes for
	// (deferTo), which fails it.
	elsewhere error
}

func (f *fanout) reset(tx kv.Tx) {
	f.tx = tx
	f.woken = f.woken[:0]
	f.logs = f.logs[:0]
	f.counts = f.counts[:0]
	clear(f.inmates)
	clear(f.facs)
	clear(f.runs)
	f.waiting = 0
	clear(f.due)
	f.dueKey = ""
	f.stateDue = f.stateDue[:0]
	f.elsewhere = nil
}

// takeNumber takes the facility's next downlink number from its counter fb, and remembers for
// the facility's tail where the counter stood when this call first took one.
func (f *fanout) takeNumber(facility string, fb kv.Bucket) (uint64, error) {
	run := f.runs[facility]
	if run == nil {
		if f.runs == nil {
			f.runs = map[string]*facRun{}
		}
		run = &facRun{start: fb.Sequence()}
		f.runs[facility] = run
	}
	seq, err := fb.NextSequence()
	if err != nil {
		return 0, err
	}
	run.end = seq
	return seq, nil
}

// logf keeps a log line until the transaction commits: a run that is rolled back and run again
// must not log twice, nor log what never happened.
func (f *fanout) logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// scope picks the terminals of a facility an item goes to.
type scope int

const (
	// scopeInmate: every kiosk of the facility and the tablets bound to the inmate.
	scopeInmate scope = iota
	// scopeAll: every terminal of the facility (policy, notices).
	scopeAll
	// scopeKiosks: kiosks only (technicians' roster entries).
	scopeKiosks
	// scopeTablets: the tablets bound to the inmate only.
	scopeTablets
)

// toInmate queues kind/body for every kiosk of facility and the inmate's tablets, except the terminal `except`.
func (f *fanout) toInmate(facility, inmateID, except, kind string, body any) error {
	return f.queue(facility, scopeInmate, inmateID, except, kind, body)
}

// toFacility queues kind/body for every terminal of facility, except `except`.
func (f *fanout) toFacility(facility, except, kind string, body any) error {
	return f.queue(facility, scopeAll, "", except, kind, body)
}

// toKiosks queues kind/body for every kiosk of facility: technicians' badges and PIN hashes
// are for the kiosks' maintenance screens, and a tablet has no business holding them.
func (f *fanout) toKiosks(facility, kind string, body any) error {
	return f.queue(facility, scopeKiosks, "", "", kind, body)
}

// toHolder queues a message's status for the terminal that holds the message (holder: the one
// that forwarded it, or the live terminal that replaced it; "" if none) and for the tablets
// bound to the inmate, not for every kiosk: only the holder has a copy whose status changes,
// and one uplinked letter must not cost a downlink item on each of a facility's kiosks.
func (f *fanout) toHolder(facility, inmateID, holder, kind string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode downlink %s: %w", kind, err)
	}
	if holder != "" {
		if err := f.appendRaw(holder, kind, raw); err != nil {
			return err
		}
	}
	return f.queueRaw(facility, scopeTablets, inmateID, holder, kind, raw)
}

// liveHolder is the live terminal that holds what terminal id forwarded: id itself, or the
// terminal that replaced it by enrolling again with its store (and so on, through replaced
// terminals that were themselves replaced); "" if there is none (revoked for good, or unknown).
func liveHolder(tx kv.Tx, id string) (string, error) {
	for i := 0; id != "" && i < maxLineage; i++ {
		var t terminalRec
		ok, err := getJSON(tx, bTerminals, id, &t)
		if err != nil || !ok {
			return "", err
		}
		if !t.Revoked {
			return id, nil
		}
		// Forward through the terminals that replaced it, revoked ones too (a store enrolled
		// again twice): ReplacedBy, or for records written before it existed, a search.
		next := t.ReplacedBy
		if next == "" {
			if err := forEachJSON(tx, bTerminals, "", func(k string, c terminalRec) bool {
				if c.Replaces == id {
					next = k
					return false
				}
				return true
			}); err != nil {
				return "", err
			}
		}
		id = next
	}
	return "", nil
}

// queue queues kind/body for the terminals of facility in scope sc, except `except`. What
// every kiosk (or every terminal) of the facility receives is written once, to the facility's
// downlink log (facLog); what goes to tablets only, to each tablet's own bucket. The body is
// encoded once, at the first place it goes to: none (a letter's status with no tablet to tell,
// the common case) costs no encoding.
func (f *fanout) queue(facility string, sc scope, inmateID, except, kind string, body any) error {
	if f.deferTo(facility) {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode downlink %s: %w", kind, err)
		}
		return f.putDue(f.tx, facility, dueItem{Scope: sc, Inmate: inmateID, Except: except, Kind: kind, Body: raw})
	}
	var raw json.RawMessage
	enc := func() error {
		if raw != nil {
			return nil
		}
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode downlink %s: %w", kind, err)
		}
		return nil
	}
	if sc != scopeTablets {
		if err := enc(); err != nil {
			return err
		}
		if err := f.appendFacility(facility, sc, inmateID, except, kind, raw); err != nil {
			return err
		}
		if sc != scopeInmate {
			return nil
		}
		// scopeInmate: the kiosks read the facility log; the inmate's tablets get their own copy.
	}
	return f.eachRoute(facility, scopeTablets, inmateID, except, func(id string) error {
		if err := enc(); err != nil {
			return err
		}
		return f.appendRawIn(facility, id, kind, raw)
	})
}

func (f *fanout) queueRaw(facility string, sc scope, inmateID, except, kind string, raw json.RawMessage) error {
	if f.deferTo(facility) {
		return f.putDue(f.tx, facility, dueItem{Scope: sc, Inmate: inmateID, Except: except, Kind: kind, Body: raw})
	}
	return f.eachRoute(facility, sc, inmateID, except, func(id string) error { return f.appendRawIn(facility, id, kind, raw) })
}

// eachRoute calls fn with every terminal of facility in scope sc, except `except`.
func (f *fanout) eachRoute(facility string, sc scope, inmateID, except string, fn func(id string) error) error {
	// The facility's own bucket (schema 9): a scan of one shared index conflicted with every
	// enrollment anywhere.
	terms := f.tx.Bucket([]byte(bFacTerms)).Bucket([]byte(facility))
	if terms == nil {
		return nil
	}
	c := terms.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		id := string(k)
		if id == except {
			continue
		}
		rt, err := decodeRoute(v)
		if err != nil {
			return fmt.Errorf("read fan-out index %q: %w", k, err)
		}
		switch {
		case sc == scopeTablets:
			if rt.Mode != wire.ModeTablet || rt.InmateID != inmateID {
				continue
			}
		case rt.Mode == wire.ModeKiosk:
		case sc == scopeAll:
		case sc == scopeInmate && rt.InmateID == inmateID:
		default:
			continue
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// toTerminal queues one item for one terminal.
func (f *fanout) toTerminal(id, kind string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode downlink %s: %w", kind, err)
	}
	return f.appendRaw(id, kind, raw)
}

// facilityOfTerminal is the facility terminal id belongs to, read once per write run: its own
// downlink items are numbered by that facility's counter.
func (f *fanout) facilityOfTerminal(id string) (string, error) {
	if fac, ok := f.facs[id]; ok {
		return fac, nil
	}
	var t terminalRec
	ok, err := getJSON(f.tx, bTerminals, id, &t)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("downlink of %s: no such terminal", id)
	}
	f.knowFacility(id, t.FacilityID)
	return t.FacilityID, nil
}

// knowFacility tells the fanout a terminal's facility (a snapshot's terminal, perhaps enrolled
// in this very transaction).
func (f *fanout) knowFacility(id, facility string) {
	if f.facs == nil {
		f.facs = map[string]string{}
	}
	f.facs[id] = facility
}

// appendRaw queues one item in terminal id's own bucket.
func (f *fanout) appendRaw(id, kind string, raw json.RawMessage) error {
	facility, err := f.facilityOfTerminal(id)
	if err != nil {
		return err
	}
	if f.deferTo(facility) {
		return f.putDue(f.tx, facility, dueItem{Terminal: id, Kind: kind, Body: raw})
	}
	return f.appendRawIn(facility, id, kind, raw)
}

// facCounter is facility's downlink log bucket, whose sequence numbers every downlink item of
// the facility: its log's and each of its terminals' own (docs/SCALE.md, "Downlink").
func facCounter(tx kv.Tx, facility string) (kv.Bucket, error) {
	b, err := tx.Bucket([]byte(bFacDown)).CreateBucketIfNotExists([]byte(facility))
	if err != nil {
		return nil, fmt.Errorf("downlink log of facility %s: %w", facility, err)
	}
	return b, nil
}

// encodeDownItem is the JSON of a wire.DownItem, as the writer sends it.
func encodeDownItem(dst []byte, seq uint64, kind string, raw json.RawMessage) []byte {
	// raw came from json.Marshal once for every recipient: written as it is, not checked and
	// compacted again per terminal. kind is one of wire's constants (plain letters and _).
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"kind":`...)
	dst = strconv.AppendQuote(dst, kind)
	dst = append(dst, `,"body":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

// appendRawIn queues one item in terminal id (of facility)'s own bucket, numbered by the
// facility's counter.
func (f *fanout) appendRawIn(facility, id, kind string, raw json.RawMessage) error {
	fb, err := facCounter(f.tx, facility)
	if err != nil {
		return err
	}
	b, err := f.tx.Bucket([]byte(bDown)).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return fmt.Errorf("downlink of %s: %w", id, err)
	}
	seq, err := f.takeNumber(facility, fb)
	if err != nil {
		return fmt.Errorf("downlink of %s: %w", id, err)
	}
	enc := encodeDownItem(make([]byte, 0, len(raw)+len(kind)+48), seq, kind, raw)
	if err := b.Put(u64(seq), enc); err != nil {
		return fmt.Errorf("queue downlink %s for %s: %w", kind, id, err)
	}
	f.wake(id, seq)
	return nil
}

// A facility log record is a tag and the item: one byte of scope (logAll: every terminal of the
// facility; logKiosks: its kiosks), one byte of length and the id of the terminal it is not for
// ("" for none: the terminal whose uplink caused it already has it), then the wire.DownItem's
// JSON as appendRawIn stores it.
const (
	logAll    = 'a'
	logKiosks = 'k'
)

// appendFacility queues one item in facility's downlink log, for every terminal of scope sc
// (scopeAll: all of them; scopeKiosks and scopeInmate: its kiosks) except `except`, and wakes
// those that are to read it.
func (f *fanout) appendFacility(facility string, sc scope, inmateID, except, kind string, raw json.RawMessage) error {
	tag := byte(logKiosks)
	if sc == scopeAll {
		tag = logAll
	}
	if len(except) > maxIDLen {
		return fmt.Errorf("downlink %s of facility %s: terminal id %q is too long", kind, facility, except)
	}
	fb, err := facCounter(f.tx, facility)
	if err != nil {
		return err
	}
	seq, err := f.takeNumber(facility, fb)
	if err != nil {
		return fmt.Errorf("downlink log of facility %s: %w", facility, err)
	}
	enc := make([]byte, 0, 2+len(except)+len(raw)+len(kind)+48)
	enc = append(enc, tag, byte(len(except)))
	enc = append(enc, except...)
	enc = encodeDownItem(enc, seq, kind, raw)
	if err := fb.Put(u64(seq), enc); err != nil {
		return fmt.Errorf("queue downlink %s for facility %s: %w", kind, facility, err)
	}
	// enc is not written to again: the tail's readers share it once the call commits.
	run := f.runs[facility]
	run.recs = append(run.recs, tailRec{seq: seq, tag: tag, except: enc[2 : 2+len(except)], item: enc[2+len(except):]})
	// Who reads it: the terminals of the scope, woken after commit. The index is read as the
	// per-terminal fan-out read it; only the writes are gone.
	wake := scopeKiosks
	if sc == scopeAll {
		wake = scopeAll
	}
	return f.eachRoute(facility, wake, inmateID, except, func(id string) error {
		f.wake(id, seq)
		return nil
	})
}

// wakeUp is a terminal to wake after the commit and the last number queued for it.
type wakeUp struct {
	id  string
	seq uint64
}

// wake remembers to wake terminal id, for which number seq was queued.
func (f *fanout) wake(id string, seq uint64) {
	if n := len(f.woken); n > 0 && f.woken[n-1].id == id {
		f.woken[n-1].seq = max(f.woken[n-1].seq, seq)
		return
	}
	f.woken = append(f.woken, wakeUp{id: id, seq: seq})
}

// logItem splits a facility log record into its tag, the terminal it is not for, and the item.
func logItem(v []byte) (tag byte, except, item []byte, ok bool) {
	if len(v) < 2 || (v[0] != logAll && v[0] != logKiosks) || len(v) < 2+int(v[1]) {
		return 0, nil, nil, false
	}
	return v[0], v[2 : 2+int(v[1])], v[2+int(v[1]):], true
}

// downFromKey: bDownFrom holds, per terminal, the facility number below which (inclusive) the
// facility's log holds nothing for it: the number its enrollment started at, or what it had
// acknowledged when a snapshot replaced its store (resync), or what an idle connection's
// writer found it at (passIdle: nothing there it has not applied).
func downFrom(tx kv.Tx, id string) uint64 {
	return readU64(tx.Bucket([]byte(bDownFrom)).Get([]byte(id)))
}

// downState is where a terminal's downlink stands: the last number queued in its facility
// (its own items and its facility's are numbered together, docs/SCALE.md "Downlink"; an older
// own bucket's sequence if higher) and the last seq it acknowledged.
func downState(tx kv.Tx, id, facility string) (last, acked uint64) {
	if b := tx.Bucket([]byte(bDown)).Bucket([]byte(id)); b != nil {
		last = b.Sequence()
	}
	if fb := tx.Bucket([]byte(bFacDown)).Bucket([]byte(facility)); fb != nil {
		last = max(last, fb.Sequence())
	}
	return last, readU64(tx.Bucket([]byte(bDownAcked)).Get([]byte(id)))
}

// lastDownFor is the seq of the last item queued for terminal rd (0 if none ever was): its own
// bucket's last, or the last of its facility's log it is to read. Numbers are shared by the
// facility: the facility's counter says nothing of what this terminal was sent. For the
// console and metrics (a backlog of numbers, not items), not for a hot path. tails keeps the
// end of each facility's log read by earlier calls of the same transaction: listing every
// terminal's facility log once per terminal would list each log 20 times (on JetStream, a
// listing of the bucket each).
func lastDownFor(tx kv.Tx, rd downReader, tails map[string][]logTail) uint64 {
	var last uint64
	if b := tx.Bucket([]byte(bDown)).Bucket([]byte(rd.id)); b != nil {
		if k, _ := b.Cursor().Last(); k != nil {
			last = readU64(k)
		}
	}
	// Items acknowledged are pruned: the bucket may be empty with items sent before.
	last = max(last, readU64(tx.Bucket([]byte(bDownAcked)).Get([]byte(rd.id))))
	fb := tx.Bucket([]byte(bFacDown)).Bucket([]byte(rd.facility))
	if fb == nil {
		return last
	}
	floor := max(last, downFrom(tx, rd.id))
	tail, ok := tails[rd.facility]
	if !ok {
		c := fb.Cursor()
		for k, v := c.Last(); k != nil && len(tail) < logTailLen; k, v = c.Prev() {
			tag, except, _, good := logItem(v)
			if good {
				tail = append(tail, logTail{seq: readU64(k), tag: tag, except: string(except)})
			}
		}
		tails[rd.facility] = tail
	}
	for _, it := range tail {
		if it.seq <= floor {
			return last
		}
		if it.except != rd.id && (it.tag == logAll || rd.mode == wire.ModeKiosk) {
			return it.seq
		}
	}
	// Not among the last few (a tablet behind kiosk-only items): walk on from there.
	c := fb.Cursor()
	k, v := c.Last()
	if len(tail) > 0 {
		// Seek for its position only: on the oldest item kept, for Prev to step back from.
		c.Seek(u64(tail[len(tail)-1].seq))
		k, v = c.Prev()
	}
	for ; k != nil && readU64(k) > floor; k, v = c.Prev() {
		tag, except, _, good := logItem(v)
		if good && string(except) != rd.id && (tag == logAll || rd.mode == wire.ModeKiosk) {
			return readU64(k)
		}
	}
	return last
}

// logTail is one of the last items of a facility's log, as lastDownFor keeps them.
type logTail struct {
	seq    uint64
	tag    byte
	except string
}

// logTailLen is how many of a facility's last log items lastDownFor keeps.
const logTailLen = 4

// downReader is whose downlink is read: a terminal, its facility and its mode.
type downReader struct {
	id, facility, mode string
	// counter, when set, receives the facility's counter as the read's view saw it (0 if the
	// facility has no counter yet): a read that found everything (not more) leaves nothing for
	// the terminal at or below it (writeDown, tailDown).
	counter *uint64
}

// pendingDown reads up to maxItems items (about maxBytes) after seq `after` of terminal id.
func (r *Relay) pendingDown(id string, after uint64, maxItems, maxBytes int) ([]wire.DownItem, error) {
	t, _, err := r.terminal(id)
	if err != nil {
		return nil, err
	}
	rd := downReader{id: id, facility: t.FacilityID, mode: t.Mode}
	if t.Revoked {
		rd.facility = "" // it reads nothing more; its facility's log is for the others
	}
	raw, _, _, err := r.pendingDownRaw(rd, after, maxItems, maxBytes)
	if err != nil {
		return nil, err
	}
	items := make([]wire.DownItem, len(raw))
	for i, v := range raw {
		if err := json.Unmarshal(v, &items[i]); err != nil {
			return nil, fmt.Errorf("downlink %s after %d: %w", id, after, err)
		}
	}
	return items, nil
}

// pendingDownRaw reads up to maxItems items (about maxBytes) after seq `after` as they are
// stored (the JSON of a wire.DownItem, see appendRawIn), and the seq of the last one: the
// merge, by number, of the terminal's own bucket and its facility's log (what the log holds
// for the terminal's mode, not what the terminal itself caused, and nothing at or below its
// downFrom). One view: every number below the highest it sees is committed (the facility's
// counter is written by every transaction that takes a number), so the merge skips nothing that
// could still appear. more says it stopped at maxItems or maxBytes with more to read; false,
// it read everything its view held for the terminal.
func (r *Relay) pendingDownRaw(rd downReader, after uint64, maxItems, maxBytes int) (items [][]byte, last uint64, more bool, err error) {
	return r.pendingDownRawInfo(rd, after, maxItems, maxBytes, nil)
}

// downViewInfo is what a read of the store tells the writer beyond the items: the facility's
// counter in its view (every item for the terminal numbered up to it was read, when the read
// did not stop early) and the terminal's downFrom.
type downViewInfo struct {
	counter, downFrom uint64
	// cut: a prune passed the terminal as lapsed (bDownCut): what the log held for it above
	// its position may be gone.
	cut bool
}

// pendingDownRawInfo is pendingDownRaw, telling info (if not nil) what the view saw.
//
// A held facility's terminals read their downlink from its held state (viewFor): the kv
// state has what its holder queued only once projected, and the wake its commit gave the
// terminal would find nothing there.
func (r *Relay) pendingDownRawInfo(rd downReader, after uint64, maxItems, maxBytes int, info *downViewInfo) (items [][]byte, last uint64, more bool, err error) {
	err = r.viewFor(rd.facility, "read downlink", func(tx kv.Tx) error {
		items, last, more = items[:0], 0, false
		if info != nil {
			*info = downViewInfo{downFrom: downFrom(tx, rd.id)}
			if cb := tx.Bucket([]byte(bDownCut)); cb != nil {
				info.cut = cb.Get([]byte(rd.id)) != nil
			}
		}
		var ok, ov []byte
		var oc kv.Cursor
		if b := tx.Bucket([]byte(bDown)).Bucket([]byte(rd.id)); b != nil {
			oc = b.Cursor()
			ok, ov = oc.Seek(u64(after + 1))
		}
		// The facility's log, from its in-memory tail when that holds all the view can see
		// above the position (downtail.go), else from the store.
		var lg logReader
		if rd.counter != nil {
			*rd.counter = 0
		}
		if fb := tx.Bucket([]byte(bFacDown)).Bucket([]byte(rd.facility)); fb != nil {
			if rd.counter != nil {
				*rd.counter = fb.Sequence()
			}
			from := max(after, downFrom(tx, rd.id))
			counter := fb.Sequence()
			if info != nil {
				info.counter = counter
			}
			if recs, whole := r.downTails.get(rd.facility).since(from, counter); whole {
				lg.tail, lg.fromTail = recs, true
			} else {
				lg.c = fb.Cursor()
				lg.k, lg.v = lg.c.Seek(u64(from + 1))
			}
		}
		size := 0
		for {
			lseq, tag, except, item, lhas, err := lg.peek(rd.facility)
			if err != nil {
				return err
			}
			if ok == nil && !lhas {
				break
			}
			var v []byte
			var k uint64
			checked := false
			if !lhas || (ok != nil && readU64(ok) < lseq) {
				k, v = readU64(ok), ov
				ok, ov = oc.Next()
			} else {
				k, v, checked = lseq, item, lg.fromTail
				lg.next()
				if string(except) == rd.id || (tag == logKiosks && rd.mode != wire.ModeKiosk) {
					continue
				}
			}
			if len(items) >= maxItems || (len(items) > 0 && size+len(v) > maxBytes) {
				more = true
				break
			}
			if !checked {
				// A value is copied out (bbolt's memory is only valid in the transaction) and
				// checked, so a damaged record is the relay's error, not a frame the terminal
				// refuses as malformed. A tail's record is this relay's own encoding, shared
				// and never changed.
				if !json.Valid(v) || !bytes.HasPrefix(v, []byte(`{"seq":`)) {
					return fmt.Errorf("downlink %s item %d: stored record is not a downlink item", rd.id, k)
				}
				v = bytes.Clone(v)
			}
			items = append(items, v)
			last = k
			size += len(v)
		}
		return nil
	})
	return items, last, more, err
}

// tailDown reads what follows `after` for a terminal from its facility's in-memory tail alone,
// without a view of the store, when that is enough to know all of it: everything up to `after`
// was read (a view that found all, or an earlier tailDown), and the tail holds a record for every
// number in (after, to], to being the last number the tail knows committed. Every number of a
// facility is taken once from its counter, either by a record of its log or by an item of one
// terminal's own bucket (appendRawIn); a range the log fills whole therefore holds no item of
// any terminal's own bucket, and the log's records are all the terminal has there. A number
// missing from the tail (an item in some terminal's own bucket, or numbers the tail did not
// see) answers ok false, and the caller reads the store. Only for a store no other gateway
// writes: another gateway's numbers are in no tail of this relay.
//
// It returns the items (the tail's shared records, not to be changed), the last one's number,
// upTo (everything at or below it is read: to, or below the record where maxItems or maxBytes
// stopped it) and more (stopped at a limit).
func (r *Relay) tailDown(rd downReader, after uint64, maxItems, maxBytes int) (items [][]byte, last, upTo uint64, more, ok bool) {
	t := r.downTails.get(rd.facility)
	t.mu.Lock()
	to := t.to
	t.mu.Unlock()
	recs, whole := t.since(after, to)
	if !whole || uint64(len(recs)) != to-after {
		return nil, 0, 0, false, false
	}
	size := 0
	upTo = to
	for _, rec := range recs {
		if string(rec.except) == rd.id || (rec.tag == logKiosks && rd.mode != wire.ModeKiosk) {
			continue
		}
		if len(items) >= maxItems || (len(items) > 0 && size+len(rec.item) > maxBytes) {
			more, upTo = true, rec.seq-1
			break
		}
		items = append(items, rec.item)
		last = rec.seq
		size += len(rec.item)
	}
	return items, last, upTo, more, true
}

// logReader walks a facility's downlink log for pendingDownRaw: its in-memory tail, or a
// cursor of the store.
type logReader struct {
	fromTail bool
	tail     []tailRec
	c        kv.Cursor
	k, v     []byte
}

// peek is the record the reader stands at (has false at the end).
func (l *logReader) peek(facility string) (seq uint64, tag byte, except, item []byte, has bool, err error) {
	if l.fromTail {
		if len(l.tail) == 0 {
			return 0, 0, nil, nil, false, nil
		}
		t := &l.tail[0]
		return t.seq, t.tag, t.except, t.item, true, nil
	}
	if l.k == nil {
		return 0, 0, nil, nil, false, nil
	}
	tag, except, item, good := logItem(l.v)
	if !good {
		return 0, 0, nil, nil, false, fmt.Errorf("downlink log of facility %s item %d: stored record is not a downlink item", facility, readU64(l.k))
	}
	return readU64(l.k), tag, except, item, true, nil
}

func (l *logReader) next() {
	if l.fromTail {
		l.tail = l.tail[1:]
		return
	}
	l.k, l.v = l.c.Next()
}

// downFrame is the `down` frame wire.Encode would write for items stored by appendRaw, put
// together from their stored JSON instead of decoding and encoding each one again.
func downFrame(items [][]byte) ([]byte, error) {
	const head, tail = `{"type":"` + wire.TypeDown + `","body":{"items":[`, `]}}`
	n := len(head) + len(tail) + len(items)
	for _, it := range items {
		n += len(it)
	}
	if n > wire.MaxFrameBytes {
		return nil, fmt.Errorf("encode down frame: %w (%d bytes, limit %d)", wire.ErrTooLarge, n, wire.MaxFrameBytes)
	}
	out := make([]byte, 0, n)
	out = append(out, head...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, tail...), nil
}

// downPosition reads where a terminal's downlink stands: last queued and last acknowledged seq.
// uplinkHigh is the highest contiguous uplink seq the relay holds for (terminal, epoch).
func (r *Relay) uplinkHigh(id, facility, epoch string) (uint64, error) {
	var high uint64
	err := r.viewFor(facility, "read uplink position", func(tx kv.Tx) error {
		high = readU64(tx.Bucket([]byte(bDedupe)).Get([]byte(dedupeKey(id, epoch))))
		return nil
	})
	return high, err
}

// downPosition is where terminal id's downlink stands (downState) and the number below which
// its facility's log holds nothing for it (downFrom).
func (r *Relay) downPosition(id, facility string) (last, acked, from uint64, err error) {
	err = r.viewFor(facility, "read downlink position", func(tx kv.Tx) error {
		last, acked = downState(tx, id, facility)
		from = downFrom(tx, id)
		return nil
	})
	return last, acked, from, err
}

// ackDownTx records that terminal id applied every item up to seq and drops its own items up to
// it; cur receives the cursor now stored. The facility's log is pruned apart
// (pruneFacilityDown), not per ack.
func ackDownTx(tx kv.Tx, f *fanout, id string, seq uint64, cur *uint64) error {
	// seq is at most what this relay sent the terminal (downAck clamps it), so it is never
	// beyond what was queued, and the facility's counter is not read: every downlink write of
	// the facility moves it, and on a shared store each acknowledgement would conflict with them.
	acked := readU64(tx.Bucket([]byte(bDownAcked)).Get([]byte(id)))
	*cur = acked
	if seq <= acked {
		return nil
	}
	if err := f.pruneOwn(tx, id, acked, seq); err != nil {
		return err
	}
	*cur = seq
	return tx.Bucket([]byte(bDownAcked)).Put([]byte(id), u64(seq))
}

// pruneOwn deletes terminal id's own downlink items in (acked, seq] (those up to acked went
// with earlier acknowledgements). On a store with a watch feed that holds the range (downfeed.go)
// it deletes the items the feed says are there, without listing the bucket: one listing per
// acknowledgement was most of a kiosk's cost in a group commit, for a bucket that is nearly
// always empty. The range is closed (numbers are taken upwards, and seq was sent, so the feed
// delivered it), so the list is exact; otherwise it lists the bucket (pruneDown).
func (f *fanout) pruneOwn(tx kv.Tx, id string, acked, seq uint64) error {
	if f.r == nil || f.r.feed == nil {
		return pruneDown(tx, id, seq)
	}
	facility, ok := f.r.hub.facilityOf(id)
	if !ok {
		return pruneDown(tx, id, seq)
	}
	seqs, ok := f.r.feed.ownBetween(id, facility, acked, seq)
	if !ok {
		return pruneDown(tx, id, seq)
	}
	if len(seqs) == 0 {
		return nil
	}
	b := tx.Bucket([]byte(bDown)).Bucket([]byte(id))
	if b == nil {
		return nil
	}
	for _, n := range seqs {
		if err := b.Delete(u64(n)); err != nil {
			return fmt.Errorf("prune downlink of %s: %w", id, err)
		}
	}
	return nil
}

// pruneDown deletes terminal id's downlink items up to seq. It lists them with one cursor and
// then deletes them: kv cursors cannot delete, and a cursor opened again after each delete
// would cost a listing of the bucket per item on JetStream (and bbolt's cursor is not to be
// trusted across deletes made through its bucket).
func pruneDown(tx kv.Tx, id string, seq uint64) error {
	b := tx.Bucket([]byte(bDown)).Bucket([]byte(id))
	if b == nil {
		return nil
	}
	var done [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && readU64(k) <= seq; k, _ = c.Next() {
		done = append(done, append([]byte(nil), k...)) // a key is valid only in the transaction's reads
	}
	for _, k := range done {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("prune downlink of %s: %w", id, err)
		}
	}
	return nil
}

// lowest is the lowest and second lowest position of a set of terminals, and who holds the
// lowest: an item not for that one (its except) waits only for the second.
type lowest struct {
	first, second uint64
	who           string
}

func (l *lowest) add(id string, pos uint64) {
	switch {
	case pos < l.first:
		l.second, l.first, l.who = l.first, pos, id
	case pos < l.second:
		l.second = pos
	}
}

// need is the position every terminal of the set but except has reached.
func (l lowest) need(except []byte) uint64 {
	if l.who != "" && string(except) == l.who {
		return l.second
	}
	return l.first
}

// pruneFacilityDown deletes the items of facility's downlink log above `after` that every
// terminal they are for has acknowledged (or, enrolled or given a snapshot after them, never
// needs), looking at no more than maxPruneGets numbers. It reads the facility's terminals'
// positions once, then the log's numbers one by one (Get, not a cursor: on JetStream a cursor
// lists the whole bucket and would conflict with every item the facility queues meanwhile;
// numbers below the positions are committed and nobody writes them again). known is false when
// `after` is not known (the first prune since the relay started): the log's first key is read
// then. It returns the number below which (inclusive) the log now holds nothing, and whether
// it stopped at maxPruneGets (more to do).
//
// It runs now and then per facility (pruneFacilityDue), not per acknowledgement: one read of
// the facility's 20 cursors per downPruneInterval instead of per down_ack. A terminal that
// stays offline holds every item of its scope queued after its position, one copy each, until
// it comes back, is revoked, or lags more than bound numbers behind the facility's counter: then
// it holds nothing (unless online says it is connected here: a terminal catching up is not cut
// off in mid-read), and its hello gets a snapshot instead of the log (resync; docs/SCALE.md
// "Downlink").
func pruneFacilityDown(tx kv.Tx, facility string, after uint64, known bool, bound uint64, online func(id string) bool) (upTo uint64, more bool, err error) {
	fb := tx.Bucket([]byte(bFacDown)).Bucket([]byte(facility))
	if fb == nil {
		return after, false, nil
	}
	if !known {
		if k, _ := fb.Cursor().First(); k != nil {
			after = readU64(k) - 1
		} else {
			after = fb.Sequence() // nothing at or below it: every number up to it is committed
		}
	}
	const inf = ^uint64(0)
	kiosks, all := lowest{first: inf, second: inf}, lowest{first: inf, second: inf}
	var cutOff []cutTerminal
	if terms := tx.Bucket([]byte(bFacTerms)).Bucket([]byte(facility)); terms != nil {
		acked, from := tx.Bucket([]byte(bDownAcked)), tx.Bucket([]byte(bDownFrom))
		prefetchPositions(tx, terms)
		c := terms.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rt, err := decodeRoute(v)
			if err != nil {
				return after, false, fmt.Errorf("read fan-out index %q: %w", k, err)
			}
			pos := max(readU64(acked.Get(k)), readU64(from.Get(k)))
			id := string(k)
			if lapsedBehind(fb.Sequence(), pos, bound) && (online == nil || !online(id)) {
				// Past the cap: it gets a snapshot when it comes back (resync), or, if it is
				// connected to another gateway after all, when that gateway's writer finds it
				// cut off (markCut).
				cutOff = append(cutOff, cutTerminal{id: id, pos: pos})
				continue
			}
			all.add(id, pos)
			if rt.Mode == wire.ModeKiosk {
				kiosks.add(id, pos)
			}
		}
	}
	// Nothing beyond the second lowest position of either set can go, nor beyond what was
	// numbered when this transaction read the counter.
	limit := min(max(kiosks.second, all.second), fb.Sequence())
	if limit <= after {
		return after, false, nil
	}
	end := limit
	if limit-after > maxPruneGets {
		end, more = after+maxPruneGets, true
	}
	upTo = end
	stuck := false
	prefetchLog(tx, facility, after+1, end)
	for n := after + 1; n <= end; n++ {
		v := fb.Get(u64(n))
		if v == nil {
			continue // a terminal's own item, or pruned already
		}
		tag, except, _, ok := logItem(v)
		if !ok {
			return after, false, fmt.Errorf("downlink log of facility %s item %d: stored record is not a downlink item", facility, n)
		}
		need := all.need(except)
		if tag == logKiosks {
			need = kiosks.need(except)
		}
		if n > need {
			if !stuck {
				stuck, upTo = true, n-1
			}
			continue
		}
		if err := fb.Delete(u64(n)); err != nil {
			return after, false, fmt.Errorf("prune downlink log of facility %s: %w", facility, err)
		}
	}
	if err := markCut(tx, cutOff, upTo); err != nil {
		return after, false, fmt.Errorf("prune downlink log of facility %s: %w", facility, err)
	}
	return upTo, more && !stuck, nil
}

// cutTerminal is a terminal a prune passed as lapsed, at its stored position.
type cutTerminal struct {
	id  string
	pos uint64
}

// bDownCut holds, per terminal, the stored position at which a prune first passed it as lapsed
// (pruneFacilityDown), until a snapshot brings it up to date (resync). Only gateways of a
// shared store keep it (startOwners makes it): there a gateway prunes past a terminal that is
// connected to another gateway and fell more than the cap behind while online (it counts
// only its own connections as online), and that other gateway's writer, reading the store,
// would otherwise skip what was pruned without a word. Its writer finds the mark and queues
// the snapshot a hello would (resyncCut). A relay on its own bbolt file keeps every terminal
// connected to it, and a hello finds every other lapsed one by the cap alone.
const bDownCut = "down_cut"

// markCut records the terminals a prune passed, pruned up to upTo: one write per terminal and
// episode (a mark already there stays until the snapshot clears it).
func markCut(tx kv.Tx, cut []cutTerminal, upTo uint64) error {
	b := tx.Bucket([]byte(bDownCut))
	if b == nil || len(cut) == 0 {
		return nil
	}
	for _, c := range cut {
		if c.pos >= upTo || b.Get([]byte(c.id)) != nil {
			continue
		}
		if err := b.Put([]byte(c.id), u64(c.pos)); err != nil {
			return fmt.Errorf("mark terminal %s cut off: %w", c.id, err)
		}
	}
	return nil
}

// DefaultDownLogCap is Config.DownLogCap's default: 100,000 numbers of a facility's downlink
// counter, weeks of a facility's downlink (a facility of 20 terminals queues a few thousand a
// day), and a snapshot of a facility (some thousand items) is far cheaper than a backlog of that.
const DefaultDownLogCap = 100_000

// lapsedBehind reports whether a position pos is more than bound numbers behind a facility's
// counter last: the facility's log is no longer kept for it, and it is brought up to date by a
// snapshot. Pruning and hello decide with it alike; the counter only grows, so a terminal
// pruning passed is one its hello finds lapsed.
func lapsedBehind(last, pos, bound uint64) bool { return last > pos && last-pos > bound }

// An idle terminal is not behind. A terminal's stored position moves with what it
// acknowledges, so a tablet whose inmate gets nothing while its kiosks are sent a cap's worth of
// numbers would look lapsed, and a gateway it is not connected to would prune past it an item
// for every terminal that it has not read yet. Its writer knows better: everything for it up to
// what its last read covered was sent, and once all of that is acknowledged the log holds
// nothing it still needs at or below that number, which is what down_from says; and when a
// read finds items for it after it acknowledged all it was sent, the same holds below the
// first of them. So the writer of a connection on a shared store moves down_from up to there
// (passIdle, passBefore; written by flushAck), at most once per passStep numbers: a write per
// idle connection per quarter of the cap, none for a terminal that acknowledges anyway.
// Nothing is leased or kept alive: a gateway that dies stops moving its terminals, which then
// lapse as any offline terminal does (docs/SCALE.md, "Downlink").

// passStep is how far an idle connection's stored position may fall behind what its writer
// read before the writer moves it: a quarter of the cap, so it never comes near the cap.
func passStep(bound uint64) uint64 { return max(bound/4, 1) }

// passIdle reports whether the writer of s should move the terminal's stored position up to
// what it read (s.passTo, written by flushAck): after a look that found nothing to send, when
// the terminal acknowledged everything sent. Called by the writer alone (s.dread, s.down are
// its own).
func (r *Relay) passIdle(s *session) bool {
	if r.gateway == nil {
		return false
	}
	var upTo uint64
	if r.feed != nil && r.held.of(s.facility) == nil { // a held facility is read as without a feed (readDown)
		if !s.dread.known {
			return false
		}
		upTo = s.dread.upTo
	} else {
		if !s.down.drained {
			return false
		}
		upTo = s.down.readTo
	}
	if s.acked.Load() < s.sent.Load() {
		return false // it may still need what was sent
	}
	r.notePass(s, upTo)
	return s.passTo.Load() > s.passed.Load()
}

// passBefore notes, for a read that found items for the terminal after everything sent was
// acknowledged, that nothing it has not applied is numbered below the first of them: a burst
// of other terminals' numbers that came with an item for this one does not leave its stored
// position behind the burst.
func (r *Relay) passBefore(s *session, sent uint64, first []byte) {
	if r.gateway == nil || s.acked.Load() < sent {
		return
	}
	if seq, ok := itemSeq(first); ok && seq > 0 {
		r.notePass(s, seq-1)
	}
}

// notePass records upTo as a position the terminal may be moved to, if it is passStep beyond
// where it is stored (only on a shared store: one relay's own pruning keeps the terminals
// connected to it).
func (r *Relay) notePass(s *session, upTo uint64) {
	pos := max(s.flushed(), s.dread.downFrom, s.passed.Load(), s.passTo.Load())
	if upTo > pos && upTo-pos >= passStep(r.cfg.DownLogCap) {
		storeMax(&s.passTo, upTo)
	}
}

// itemSeq is the seq of a stored downlink item (encodeDownItem: it starts {"seq":N,).
func itemSeq(item []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(item, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	n, _, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(n), 10, 64)
	return seq, err == nil
}

// passDownTx raises terminal id's down_from to pos (never lowers it): the log holds nothing
// the terminal still needs at or below pos.
func passDownTx(tx kv.Tx, id string, pos uint64) error {
	if pos <= downFrom(tx, id) {
		return nil
	}
	if err := tx.Bucket([]byte(bDownFrom)).Put([]byte(id), u64(pos)); err != nil {
		return fmt.Errorf("move the downlink position of %s: %w", id, err)
	}
	return nil
}

// storeMax raises v to n if n is higher.
func storeMax(v *atomic.Uint64, n uint64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// maxPruneGets bounds the numbers one prune transaction looks at: each is a read (and a
// message of the commit on JetStream, whose commits hold at most 1,000).
const maxPruneGets = 800

// downPruneInterval is how often a facility's downlink log is pruned, at most: on the first
// acknowledgement written after it passed.
const downPruneInterval = 5 * time.Second

// prunedLog is what a relay remembers of a facility's downlink log (Relay.downPruned): when it
// was last pruned and the number at or below which it holds nothing since.
type prunedLog struct {
	mu    sync.Mutex
	at    time.Time
	upTo  uint64
	known bool
}

// pruneFacilityDue prunes facility's downlink log if downPruneInterval passed since this relay
// last pruned it (gateways of a shared store each prune now and then, which is harmless: a
// prune deletes only what every reader has passed). A failure is logged and tried again at the
// next interval: nothing is lost while the log waits.
func (r *Relay) pruneFacilityDue(facility string) {
	v, _ := r.downPruned.LoadOrStore(facility, &prunedLog{})
	pl := v.(*prunedLog)
	if !pl.mu.TryLock() {
		return // being pruned
	}
	defer pl.mu.Unlock()
	now := r.clock.Now()
	if pl.known && now.Sub(pl.at) < downPruneInterval {
		return
	}
	pl.at = now
	if err := r.pruneFacility(facility, pl); err != nil && !r.stopped() {
		r.logf("relay: prune the downlink log of facility %s: %v", facility, err)
	}
}

// pruneFacility prunes facility's downlink log as far as it can now, one transaction per
// maxPruneGets numbers; pl (locked by the caller) says where the last prune stopped.
func (r *Relay) pruneFacility(facility string, pl *prunedLog) error {
	for {
		var upTo uint64
		var more bool
		err := r.updateFor(facility, "prune facility downlink", func(tx kv.Tx, _ *fanout) error {
			var err error
			upTo, more, err = pruneFacilityDown(tx, facility, pl.upTo, pl.known, r.cfg.DownLogCap, r.hub.connected)
			return err
		})
		if err != nil {
			return err
		}
		pl.upTo, pl.known = max(pl.upTo, upTo), true
		if !more {
			return nil
		}
	}
}
