package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// What a held facility's transactions write of the state's records, due (SCALE.md, "A
// terminal's letter on a held facility"): the mirror of fanoutdue.go. A held transaction may
// not write the state's records: the kv state is theirs, and the holder's entry reaches it
// only for the facility's own records, by the projection. A record of the state's that is
// written once and never changed after (a PREA report under its id) is written instead under
// the facility, in state_due, in the same entry as everything else the item did; once the
// entry committed, its holder writes it into the kv state in a kv transaction of its own and
// takes it out of state_due (flushStateDue; the calls of a facility that commit while a drain
// runs share the next one, so that under load a drain costs one kv transaction and one entry
// for many letters). A crash in between leaves it in state_due, in the facility's log: the
// next claim's drain or a beat writes it (drainStateDue).
//
// Until it is drained, the facility's own reads of such a record look in state_due first
// (onceGet): a report resent under another item id is the same report, not a second one.
//
// Written once: a key that the kv state holds already is left as it is. The same value there
// is a drain done twice (a crash after the write, before the removal); another value is a
// collision of ids (another facility's terminal chose the same id before this one's drain,
// which a terminal cannot do by chance with UUIDv7s), and the pending record stays where it
// is, in the facility's records, still shown to the facility's staff and named by verify
// (state_due), so that nothing of it is lost.

// A contact (bContacts) is the state's record too, but one the console changes after a
// terminal asked for it. A held facility's terminal writes it only on a condition, recorded
// with it (stateWrite): that the kv state's record is still what the terminal's transaction
// read. The drain writes it where the condition holds, or where it is written already. Where
// the console changed the contact meanwhile, a request is dropped (the console's later word
// reaches the terminals by its own downlink) and a removal is made again on the record as it
// is now: an inmate's removal of a contact always stands, and its open invitation's code goes
// with it (dropCodeTx, the state's, done by the drain).

// bStateDue holds the writes of the state's records a held facility's transactions made:
// facility + "/" + root + "/" + key -> the value, or for a record written on a condition
// (condRoot) the stateWrite (v23). The facility's records.
const bStateDue = "state_due"

// condRoot reports whether a held transaction may write root's records through state_due on a
// condition (stateWrite).
func condRoot(root string) bool {
	return root == bContacts
}

// stateWrite is a record of the state's written on a condition: Value where the kv state holds
// Expect (nil: no record). Removal: the last write is a contact's removal, made again on the
// record as it is now where it changed meanwhile. DropCode: a removal was among the writes,
// so the contact's invitation code goes where the record is written.
type stateWrite struct {
	Expect   []byte `json:"expect,omitempty"`
	Value    []byte `json:"value"`
	Removal  bool   `json:"removal,omitempty"`
	DropCode bool   `json:"drop_code,omitempty"`
}

// onceRoot reports whether a held transaction may write root's records through state_due:
// the state's records written once, never changed after.
func onceRoot(root string) bool {
	return root == bPREA || root == bLetterAt
}

// stateDueKey is the key of root[key] in facility's state_due.
func stateDueKey(facility, root, key string) string {
	return facility + "/" + root + "/" + key
}

// putOnce writes root[key] = val, a record of the state's written once, for facility: in the
// kv state at once where the call runs in a kv transaction, in the facility's state_due where
// it runs on the facility's held state.
func (f *fanout) putOnce(tx kv.Tx, facility, root, key string, val []byte) error {
	if !onceRoot(root) {
		return fmt.Errorf("write %s record %q: %s is not a root of records written once", root, key, root)
	}
	if f.heldBy == "" {
		return putAppended(tx, root, key, val) // their keys are UUIDv7s, made in time order
	}
	if f.heldBy != facility {
		return fmt.Errorf("write %s record %q for facility %s on the held state of %s", root, key, facility, f.heldBy)
	}
	k := stateDueKey(facility, root, key)
	f.dueToState(k)
	return putRaw(tx, bStateDue, k, val)
}

// putIf writes root[key] = val, a record of the state's (condRoot), for facility: at once in a
// kv transaction, or due on the condition that the kv state still holds expect (what the call
// read; nil: nothing) where the call runs on the facility's held state. removal marks a
// contact's removal (stateWrite).
func (f *fanout) putIf(tx kv.Tx, facility, root, key string, expect, val []byte, removal bool) error {
	if !condRoot(root) {
		return fmt.Errorf("write %s record %q: %s is not a root of records written on a condition", root, key, root)
	}
	if f.heldBy == "" {
		return putRaw(tx, root, key, val)
	}
	if f.heldBy != facility {
		return fmt.Errorf("write %s record %q for facility %s on the held state of %s", root, key, facility, f.heldBy)
	}
	k := stateDueKey(facility, root, key)
	dropCode := removal
	if prev := getRaw(tx, bStateDue, k); prev != nil {
		// Written already in an entry not drained yet: the condition is still the first one's,
		// and a removal among them still drops the code; whether the write is a removal is the
		// last one's to say (a contact removed and asked for again is asked for).
		var w stateWrite
		if err := json.Unmarshal(prev, &w); err != nil {
			return fmt.Errorf("read %s %s: %w", bStateDue, k, err)
		}
		expect, dropCode = w.Expect, dropCode || w.DropCode
	}
	raw, err := json.Marshal(stateWrite{Expect: expect, Value: val, Removal: removal, DropCode: dropCode})
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", bStateDue, k, err)
	}
	f.dueToState(k)
	return putRaw(tx, bStateDue, k, raw)
}

// dueToState notes that the call wrote key of state_due, for its drain once it commits.
func (f *fanout) dueToState(key string) {
	if !slices.Contains(f.stateDue, key) {
		f.stateDue = append(f.stateDue, key)
	}
}

// eachListed calls fn with each record of root that facility's list names, as facility sees
// it (onceGet), the records fetched together where the store can; an id with no record is
// passed over.
func eachListed(tx kv.Tx, facility, list, root string, fn func(id string, raw []byte) error) error {
	ids, err := listedUnder(tx, []string{facility}, list)
	if err != nil {
		return err
	}
	var keys keyList
	for _, id := range ids {
		keys.add(root, id)
	}
	kv.Prefetch(tx, keys)
	for _, id := range ids {
		if raw := onceGet(tx, facility, root, id); raw != nil {
			if err := fn(id, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// onceGet reads root[key], a record of the state's written once or on a condition, as facility
// sees it: its own write not yet drained into the kv state first, the kv state's record
// otherwise.
func onceGet(tx kv.Tx, facility, root, key string) []byte {
	if facility != "" && tx.Bucket([]byte(bStateDue)) != nil {
		if raw := getRaw(tx, bStateDue, stateDueKey(facility, root, key)); raw != nil {
			if !condRoot(root) {
				return raw
			}
			var w stateWrite
			if json.Unmarshal(raw, &w) == nil {
				return w.Value
			}
		}
	}
	return getRaw(tx, root, key)
}

// errStateDueCollides: a record due to the state collides with another the kv state holds
// under its key (see above).
var errStateDueCollides = errors.New("another record holds its key")

// drainStateDue writes all of facility's state_due into the kv state (the next claim's, or a
// beat's, for what a drain that failed, or a holder that stopped, left).
func (r *Relay) drainStateDue(facility string) error {
	var keys []string
	if err := r.viewFor(facility, "find the state's records due", func(tx kv.Tx) error {
		keys = keys[:0]
		if tx.Bucket([]byte(bStateDue)) == nil {
			return nil
		}
		return forEachRaw(tx, bStateDue, facility+"/", func(k string, _ []byte) bool {
			keys = append(keys, k)
			return true
		})
	}); err != nil || len(keys) == 0 {
		return err
	}
	return r.flushStateDue(facility, keys)
}

// stateFlush gathers the state_due keys of one facility that calls wrote while a drain of
// them ran, for the next drain: under load one drain writes what many calls left, as a group
// commit does (one kv transaction, one entry of the facility's log).
type stateFlush struct {
	mu      sync.Mutex
	keys    map[string]bool
	waiters []chan error
	running bool
}

// stateFlushes are the relay's stateFlush, one per facility.
type stateFlushes struct {
	mu sync.Mutex
	m  map[string]*stateFlush
}

func (s *stateFlushes) of(facility string) *stateFlush {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*stateFlush{}
	}
	if s.m[facility] == nil {
		s.m[facility] = &stateFlush{keys: map[string]bool{}}
	}
	return s.m[facility]
}

// flushStateDue writes the records under keys of facility's state_due into the kv state and
// returns once a drain that read them after they were written is done.
func (r *Relay) flushStateDue(facility string, keys []string) error {
	if h := r.hooks.stateDrain; h != nil && !h(facility) {
		return nil
	}
	fl := r.stateFlushes.of(facility)
	done := make(chan error, 1)
	fl.mu.Lock()
	for _, k := range keys {
		fl.keys[k] = true
	}
	fl.waiters = append(fl.waiters, done)
	if !fl.running {
		fl.running = true
		go r.runStateFlush(facility, fl)
	}
	fl.mu.Unlock()
	return <-done
}

// runStateFlush drains what is gathered in fl until nothing more is.
func (r *Relay) runStateFlush(facility string, fl *stateFlush) {
	for {
		fl.mu.Lock()
		if len(fl.waiters) == 0 {
			fl.running = false
			fl.mu.Unlock()
			return
		}
		keys := make([]string, 0, len(fl.keys))
		for k := range fl.keys {
			keys = append(keys, k)
		}
		waiters := fl.waiters
		fl.keys, fl.waiters = map[string]bool{}, nil
		fl.mu.Unlock()
		slices.Sort(keys) // in the order the records were made where their keys' ids are UUIDv7s
		err := r.writeStateDue(facility, keys)
		for _, w := range waiters {
			w <- err
		}
	}
}

// writeStateDue writes the records under keys of facility's state_due, read by key from the
// facility's writer, into the kv state in one kv transaction, and takes out of state_due, in
// one transaction of the facility's writer, each written (or found written, or dropped) that
// no call wrote again meanwhile.
func (r *Relay) writeStateDue(facility string, keys []string) error {
	const op = "write the state's records due"
	type record struct {
		key string // in state_due
		val []byte
	}
	var recs []record
	if err := r.viewFor(facility, op, func(tx kv.Tx) error {
		recs = recs[:0]
		if tx.Bucket([]byte(bStateDue)) == nil {
			return nil
		}
		for _, k := range keys {
			if raw := getRaw(tx, bStateDue, k); raw != nil {
				recs = append(recs, record{k, bytes.Clone(raw)})
			}
		}
		return nil
	}); err != nil || len(recs) == 0 {
		return err
	}
	var written []record
	var problems []error
	if err := r.update(op, func(tx kv.Tx, _ *fanout) error {
		written, problems = written[:0], problems[:0]
		for _, rec := range recs {
			root, key, ok := strings.Cut(strings.TrimPrefix(rec.key, facility+"/"), "/")
			if ok && condRoot(root) {
				problem, err := writeOnCondition(tx, root, key, rec.val)
				if err != nil {
					return err
				}
				if problem != nil {
					problems = append(problems, fmt.Errorf("%s %s: %w", root, key, problem))
				}
				written = append(written, rec) // done, or dropped: never left
				continue
			}
			if !ok || !onceRoot(root) || tx.Bucket([]byte(root)) == nil {
				problems = append(problems, fmt.Errorf("%s: not a record written once", rec.key))
				continue
			}
			switch cur := getRaw(tx, root, key); {
			case cur == nil:
				if err := putAppended(tx, root, key, rec.val); err != nil {
					return err
				}
			case !bytes.Equal(cur, rec.val):
				problems = append(problems, fmt.Errorf("%s %s: %w", root, key, errStateDueCollides))
				continue
			}
			written = append(written, rec)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, p := range problems {
		if errors.Is(p, errStateDueCollides) {
			r.logf("relay: facility %s: a record due to the state is left in state_due: %v", facility, p)
		} else {
			r.logf("relay: facility %s: a record due to the state: %v", facility, p)
		}
	}
	if len(written) == 0 {
		return nil
	}
	return r.updateFor(facility, op, func(tx kv.Tx, _ *fanout) error {
		for _, rec := range written {
			if !bytes.Equal(getRaw(tx, bStateDue, rec.key), rec.val) {
				continue // written again since it was read: its own drain writes it
			}
			if err := deleteKey(tx, bStateDue, rec.key); err != nil {
				return err
			}
		}
		return nil
	})
}

// errStateChanged: a record due on a condition whose condition no longer holds (the console
// changed the record since the terminal's transaction read it).
var errStateChanged = errors.New("changed since the terminal's transaction read it: the terminal's write is dropped")

// writeOnCondition writes raw, a stateWrite of root[key], in kv transaction tx: where the kv
// state holds what the terminal's transaction read, or the value already; a removal on the
// record as it is now otherwise. problem names a write dropped.
func writeOnCondition(tx kv.Tx, root, key string, raw []byte) (problem, err error) {
	var w stateWrite
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("does not decode, dropped: %w", err), nil
	}
	cur, val := getRaw(tx, root, key), w.Value
	switch {
	case bytes.Equal(cur, w.Value):
		val = nil // written already
	case bytes.Equal(cur, w.Expect):
	case w.Removal:
		if val, err = removedAgain(cur, w.Value); err != nil {
			return fmt.Errorf("%w; the removal cannot be made again: %w", errStateChanged, err), nil
		}
	default:
		return errStateChanged, nil
	}
	if val != nil {
		if err := putRaw(tx, root, key, val); err != nil {
			return nil, err
		}
	}
	if w.Removal || w.DropCode {
		return nil, dropCodeTx(tx, key) // the removed contact's invitation opens nothing
	}
	return nil, nil
}

// finishStateDue drains what a failed drain left in state_due: of the facilities this relay
// holds, and of those it serves (all, on a relay without homes) that nobody holds, whose
// state_due the release projected into the kv state (finishDue).
func (r *Relay) finishStateDue() error {
	var facilities []string
	if err := r.view("find the state's records due", func(tx kv.Tx) error {
		facilities = facilities[:0]
		b := tx.Bucket([]byte(bStateDue))
		if b == nil {
			return nil
		}
		return b.ForEachBucket(func(name []byte) error {
			if facility := string(name); r.held.of(facility) != nil || r.servesHere(facility) {
				facilities = append(facilities, facility)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	r.held.mu.Lock()
	for facility := range r.held.m {
		if !slices.Contains(facilities, facility) {
			facilities = append(facilities, facility)
		}
	}
	r.held.mu.Unlock()
	var errs []error
	for _, facility := range facilities {
		if err := r.drainStateDue(facility); err != nil {
			errs = append(errs, fmt.Errorf("facility %s: %w", facility, err))
		}
	}
	return errors.Join(errs...)
}

// migrate22to23 adds state_due.
func migrate22to23(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bStateDue)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bStateDue, err)
	}
	return nil
}
