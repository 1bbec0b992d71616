package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// What a held facility's transactions write of the state's records, due (SCALE.md, "A
// terminal's letter on a held facility"): the mirror of fanoutdue.go. A held transaction may
// not write the state's records: the kv state is theirs, and the holder's entry reaches it
// only for the facility's own records, by the projection. A record of the state's that is
// written once and never changed after (a PREA report under its id) is written instead under
// the facility, in state_due, in the same entry as everything else the item did; once the
// entry committed, its holder writes it into the kv state in a kv transaction of its own and
// takes it out of state_due (drainStateDue). A crash in between leaves it in state_due, in
// the facility's log: the next entry's drain, the next claim's or a beat writes it.
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
// Expect (nil: no record). Removal: a contact's removal, made again on the record as it is now
// where it changed meanwhile.
type stateWrite struct {
	Expect  []byte `json:"expect,omitempty"`
	Value   []byte `json:"value"`
	Removal bool   `json:"removal,omitempty"`
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
	f.stateDue = true
	return putRaw(tx, bStateDue, stateDueKey(facility, root, key), val)
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
	if prev := getRaw(tx, bStateDue, k); prev != nil {
		// Written already in an entry not drained yet: the condition is still the first one's.
		var w stateWrite
		if err := json.Unmarshal(prev, &w); err != nil {
			return fmt.Errorf("read %s %s: %w", bStateDue, k, err)
		}
		expect, removal = w.Expect, removal || w.Removal
	}
	raw, err := json.Marshal(stateWrite{Expect: expect, Value: val, Removal: removal})
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", bStateDue, k, err)
	}
	f.stateDue = true
	return putRaw(tx, bStateDue, k, raw)
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

// drainStateDue writes facility's state_due into the kv state, and takes what it wrote (or
// found written) out of state_due, on the facility's writer. A drain at a time per facility.
func (r *Relay) drainStateDue(facility string) error {
	const op = "write the state's records due"
	if h := r.hooks.stateDrain; h != nil && !h(facility) {
		return nil
	}
	mu := r.stateDrains.of(facility)
	mu.Lock()
	defer mu.Unlock()
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
		return forEachRaw(tx, bStateDue, facility+"/", func(k string, raw []byte) bool {
			recs = append(recs, record{k, bytes.Clone(raw)})
			return true
		})
	}); err != nil || len(recs) == 0 {
		return err
	}
	var written []string
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
				written = append(written, rec.key) // done, or dropped: never left
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
			written = append(written, rec.key)
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
		for _, k := range written {
			if err := deleteKey(tx, bStateDue, k); err != nil {
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
	if w.Removal {
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
