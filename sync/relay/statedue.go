package relay

import (
	"bytes"
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

// bStateDue holds the writes of the state's records a held facility's transactions made:
// facility + "/" + root + "/" + key -> the value (v23). The facility's records.
const bStateDue = "state_due"

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

// onceGet reads root[key], a record of the state's written once, as facility sees it: its
// own write not yet drained into the kv state first, the kv state's record otherwise.
func onceGet(tx kv.Tx, facility, root, key string) []byte {
	if facility != "" && tx.Bucket([]byte(bStateDue)) != nil {
		if raw := getRaw(tx, bStateDue, stateDueKey(facility, root, key)); raw != nil {
			return raw
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
		r.logf("relay: facility %s: a record due to the state is left in state_due: %v", facility, p)
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
