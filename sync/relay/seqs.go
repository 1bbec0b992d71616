package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A terminal numbers its uplink items per epoch; the relay keeps, per (terminal, epoch), the
// highest contiguous seq H it holds. A seq alone does not say which item it was: a terminal
// restored from a backup numbers new items with seqs the relay already holds. So the relay
// remembers what each seq held (bSeqs) and where each item id was first seen (bItemIDs), and
// compares before it acknowledges anything.

// Reasons in the refusals listing for a seq that was not acknowledged (not item refusals: the
// terminal starts a new epoch and resends).
const (
	// ConflictSequence: the terminal sent another item at a seq the relay already holds.
	ConflictSequence = "sequence_conflict"
	// ConflictGap: the terminal skipped seqs the relay does not hold (the relay was restored
	// from a backup, or the terminal kept its epoch under a new terminal id).
	ConflictGap = "sequence_gap"
)

// seqRec is what one (terminal, epoch, seq) held.
type seqRec struct {
	ItemID string `json:"item_id"`
	Hash   string `json:"hash"` // itemHash of the item's kind and body
}

// itemRef is where an item id was first stored, and what became of it.
type itemRef struct {
	Hash       string `json:"hash"`
	TerminalID string `json:"terminal_id"`
	Epoch      string `json:"epoch"`
	Seq        uint64 `json:"seq"`
	Refused    string `json:"refused,omitempty"`
}

// Refusal is what staff see of an uplink item refused for good, or of a sequence conflict or
// gap (Reason ConflictSequence or ConflictGap: that item was not acknowledged).
type Refusal struct {
	TerminalID string    `json:"terminal_id"`
	Epoch      string    `json:"epoch"`
	Seq        uint64    `json:"seq"`
	ItemID     string    `json:"item_id"`
	Kind       string    `json:"kind"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
	// HeldItemID is, for a sequence conflict, the item the relay already holds at that seq.
	HeldItemID string `json:"held_item_id,omitempty"`
}

// seqKey keys bSeqs, bRefusals and bConflicts.
func seqKey(termID, epoch string, seq uint64) string {
	// As fmt's "%s/%s/%020d" writes it, without fmt: one is made per stored item.
	b := make([]byte, 0, len(termID)+len(epoch)+22)
	b = append(append(append(b, termID...), '/'), epoch...)
	b = append(b, '/')
	var d [20]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + seq%10)
		seq /= 10
	}
	return string(append(b, d[:]...))
}

// itemHash identifies an item's content: sha256 of its kind and its body as the relay stores it
// (compact JSON), so a resend of the same stored bytes always hashes the same.
func itemHash(kind string, body json.RawMessage) string {
	canon, err := json.Marshal(body)
	if err != nil {
		canon = body
	}
	return canonHash(kind, canon)
}

// canonHash is itemHash of a body already in the stored (compact) form.
func canonHash(kind string, canon []byte) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// sequenceError ends a connection without acknowledging the item at seq: another item is held
// there (conflict), or seqs before it are missing (gap).
type sequenceError struct {
	gap       bool
	want, got uint64 // gap: the seq expected, the seq sent
	held, id  string // conflict: the item id held at seq, the one sent
}

func (e *sequenceError) Error() string {
	if e.gap {
		return fmt.Sprintf("sequence gap: expected seq %d, got %d", e.want, e.got)
	}
	return fmt.Sprintf("sequence conflict at seq %d: the relay holds item %q there, the terminal sent item %q", e.got, e.held, e.id)
}

// recordConflict makes a sequence conflict or gap visible to staff, once per (terminal, epoch,
// seq): a terminal that does not start a new epoch would otherwise add one per connection.
func recordConflict(tx kv.Tx, rf Refusal) error {
	k := seqKey(rf.TerminalID, rf.Epoch, rf.Seq)
	if tx.Bucket([]byte(bConflicts)).Get([]byte(k)) != nil {
		return nil
	}
	return putJSON(tx, bConflicts, k, rf)
}

// recordRefusal lists an item refused for good in the staff view.
func recordRefusal(tx kv.Tx, rf Refusal) error {
	// Numbered per terminal (schema 9): one bucket-wide sequence made every two terminals'
	// refusals one conflict on JetStream. Only one connection per terminal commits at a time,
	// so its own sequence is not contended; Refusals orders the listing by time.
	b, err := tx.Bucket([]byte(bRefused)).CreateBucketIfNotExists([]byte(rf.TerminalID))
	if err != nil {
		return fmt.Errorf("refusals of terminal %q: %w", rf.TerminalID, err)
	}
	n, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("number refusal: %w", err)
	}
	return putJSON(tx, bRefused, rf.TerminalID+"/"+string(u64(n)), rf)
}

// RefusalFilter narrows Refusals; empty fields match everything.
type RefusalFilter struct {
	TerminalID string
}

// Refusals lists every uplink item refused for good and every sequence conflict or gap, oldest
// first: what staff need to see of items that did not become records.
func (r *Relay) Refusals(flt RefusalFilter) ([]Refusal, error) {
	out := []Refusal{}
	keep := func(_ string, rf Refusal) bool {
		if flt.TerminalID == "" || rf.TerminalID == flt.TerminalID {
			out = append(out, rf)
		}
		return true
	}
	err := r.view("list refusals", func(tx kv.Tx) error {
		prefix := ""
		if flt.TerminalID != "" {
			prefix = flt.TerminalID + "/" // that terminal's bucket alone
		}
		if err := forEachJSON(tx, bRefused, prefix, keep); err != nil {
			return err
		}
		return forEachJSON(tx, bConflicts, "", keep)
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, err
}

// migrate1to2 adds the seq and item id indexes and the refusals listing, filled from the items
// already stored, so a resend of anything stored before the upgrade is still recognised.
func migrate1to2(tx kv.Tx) error {
	for _, name := range []string{bSeqs, bItemIDs, bRefused, bConflicts} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	var werr error
	err := forEachStoredItem(tx, func(_ uint64, it StoredItem) bool {
		h := itemHash(it.Kind, it.Body)
		if werr = putJSON(tx, bSeqs, seqKey(it.TerminalID, it.Epoch, it.Seq), seqRec{ItemID: it.ID, Hash: h}); werr != nil {
			return false
		}
		if tx.Bucket([]byte(bItemIDs)).Get([]byte(it.ID)) == nil {
			ref := itemRef{Hash: h, TerminalID: it.TerminalID, Epoch: it.Epoch, Seq: it.Seq, Refused: it.Refused}
			if werr = putJSON(tx, bItemIDs, it.ID, ref); werr != nil {
				return false
			}
		}
		if it.Refused != "" {
			werr = recordRefusal(tx, Refusal{TerminalID: it.TerminalID, Epoch: it.Epoch, Seq: it.Seq, ItemID: it.ID,
				Kind: it.Kind, Reason: it.Refused, At: it.ReceivedAt})
		}
		return werr == nil
	})
	if err != nil {
		return err
	}
	return werr
}
