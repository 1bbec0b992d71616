package relay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// A terminal numbers its uplink items per epoch; the relay keeps, per (terminal, epoch), the
// highest contiguous seq H it holds. A seq alone does not say which item it was: a terminal
// restored from a backup numbers new items with seqs the relay already holds. So the relay
// knows where each item id was first seen (bItemIDs: terminal, epoch, seq and hash) and what
// each seq held, and compares before it acknowledges anything.
//
// Up to schema 11 every stored seq had its own record in bSeqs. Its key (terminal, epoch,
// seq) put each terminal's newest seq on a page of its own, so every letter wrote one more
// B-tree page than it needed: of about five a one-letter batch wrote, a third of the relay's
// page writes. From schema 12 a seq has a record in bSeqs only when the item id's record does
// not already say it: when the item at that seq was an item id the relay held before (a resend
// under a new epoch or terminal id, or an id_conflict). (On JetStream the record was kept
// until the record saved there, one message of three in a status report's commit, was shown
// to cost more than naming a conflict's held item at the staff listing: fillHeld.) Otherwise
// the item stored at seq s of (terminal, epoch) is the one whose bItemIDs record names exactly
// that terminal, epoch and seq, so a resend (a seq at or below H) is checked by the id it
// carries:
//   - bSeqs holds a record for the seq (every seq stored before schema 12, every seq a
//     JetStream relay stored before that change, or one of the cases above): the item is the
//     one it names, with its hash;
//   - otherwise the item's id record names this terminal, epoch and seq: it is that item (and
//     the hashes are compared as before);
//   - otherwise another item is held there: a sequence conflict. Which one is looked up only
//     then, for staff (heldItemID).
// Nothing is migrated: records written before are read first, and nothing else reads bSeqs.

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

// heldAt is what seq of (terminal t, epoch) holds (sk its seqKey), as far as the records say
// without a search, given that the item sent at that seq has id sentID: found is false if the
// records do not show that seq holds sentID (another item is held there).
func (r *Relay) heldAt(tx kv.Tx, f *fanout, t TerminalInfo, epoch string, seq uint64, sk, sentID string) (seqRec, bool, error) {
	var held seqRec
	if found, err := getJSON(tx, bSeqs, sk, &held); err != nil || found {
		return held, found, err
	}
	ref, found, err := r.findItemID(tx, f, t, sentID)
	if err != nil || !found || ref.TerminalID != t.ID || ref.Epoch != epoch || ref.Seq != seq {
		return seqRec{}, false, err
	}
	return seqRec{ItemID: sentID, Hash: ref.Hash}, true, nil
}

// heldScanMax bounds the items heldItemID reads: a sequence conflict ends the connection, so a
// terminal that keeps reusing seqs could otherwise make the relay read its whole item log on
// every connection.
const heldScanMax = 8192

// heldItemID is the id of the item seq of (termID, epoch) holds, for a sequence conflict's
// listing: the one a conflict already listed at that seq names, else, on a bbolt store, the
// one found among the newest heldScanMax items, newest first. It is "" if the item is older
// than that, or the store is not a bbolt file: on JetStream a cursor lists the whole item log
// and makes the transaction conflict with every gateway's writes. The staff listing then
// names it (fillHeld).
func heldItemID(tx kv.Tx, termID, epoch string, seq uint64, sk string) string {
	var rf Refusal
	if found, err := getJSON(tx, bConflicts, sk, &rf); err == nil && found && rf.HeldItemID != "" {
		return rf.HeldItemID
	}
	if !onBolt(tx) {
		return ""
	}
	var head struct {
		Seq        uint64 `json:"seq"`
		ID         string `json:"id"`
		TerminalID string `json:"terminal_id"`
		Epoch      string `json:"epoch"`
	}
	read, term := 0, []byte(termID)
	c := tx.Bucket([]byte(bItems)).Cursor()
	for k, v := c.Last(); k != nil && read < heldScanMax; k, v = c.Prev() {
		var items [][]byte
		eachLogEntry(v, func(_ uint64, item []byte) bool {
			items = append(items, item)
			return true
		})
		for i := len(items) - 1; i >= 0 && read < heldScanMax; i-- {
			read++
			// A quick look first: most items are another terminal's.
			if !bytes.Contains(items[i], term) {
				continue
			}
			head.ID = ""
			if json.Unmarshal(items[i], &head) == nil && head.TerminalID == termID && head.Epoch == epoch && head.Seq == seq {
				return head.ID
			}
		}
	}
	return ""
}

// fillHeld names, for the staff listing, the item held at the seq of each sequence conflict
// that could not name it when it was listed (on a bbolt file, an item older than the newest
// heldScanMax items; on another store any item: heldItemID): one walk of the item log, newest
// first, until each is found. A staff request pays for the walk, not a terminal's connection,
// so a terminal that keeps reusing seqs cannot make the relay read its whole log at every
// hello; and what it found is written back (keepHeld), so it is paid once a conflict. It
// returns the refusals it named.
func fillHeld(tx kv.Tx, rs []Refusal) []Refusal {
	want := map[string][]int{} // seqKey -> the refusals waiting for its item
	var terms [][]byte
	for i, rf := range rs {
		if rf.Reason != ConflictSequence || rf.HeldItemID != "" {
			continue
		}
		sk := seqKey(rf.TerminalID, rf.Epoch, rf.Seq)
		if _, ok := want[sk]; !ok && !slices.ContainsFunc(terms, func(t []byte) bool { return string(t) == rf.TerminalID }) {
			terms = append(terms, []byte(rf.TerminalID))
		}
		want[sk] = append(want[sk], i)
	}
	if len(want) == 0 {
		return nil
	}
	var named []Refusal
	var head struct {
		Seq        uint64 `json:"seq"`
		ID         string `json:"id"`
		TerminalID string `json:"terminal_id"`
		Epoch      string `json:"epoch"`
	}
	c := tx.Bucket([]byte(bItems)).Cursor()
	for k, v := c.Last(); k != nil && len(want) > 0; k, v = c.Prev() {
		eachLogEntry(v, func(_ uint64, item []byte) bool {
			// A quick look first: most items are other terminals'.
			if !slices.ContainsFunc(terms, func(t []byte) bool { return bytes.Contains(item, t) }) {
				return true
			}
			head.ID, head.TerminalID = "", ""
			if json.Unmarshal(item, &head) != nil || head.ID == "" {
				return true
			}
			sk := seqKey(head.TerminalID, head.Epoch, head.Seq)
			for _, i := range want[sk] {
				rs[i].HeldItemID = head.ID
			}
			if is, ok := want[sk]; ok {
				named = append(named, rs[is[0]])
			}
			delete(want, sk)
			return len(want) > 0
		})
	}
	return named
}

// keepHeld writes the held item fillHeld named into each conflict's record that still names
// none, so the next listing need not walk the log for it again.
func keepHeld(tx kv.Tx, named []Refusal) error {
	for _, rf := range named {
		k := seqKey(rf.TerminalID, rf.Epoch, rf.Seq)
		var stored Refusal
		found, err := getJSON(tx, bConflicts, k, &stored)
		if err != nil {
			return err
		}
		if !found || stored.HeldItemID != "" {
			continue
		}
		stored.HeldItemID = rf.HeldItemID
		if err := putJSON(tx, bConflicts, k, stored); err != nil {
			return err
		}
	}
	return nil
}

// onBolt reports whether tx is a bbolt file's transaction (an item log's too). Only there does
// heldItemID look for a conflict's held item in the terminal's transaction: on JetStream a
// cursor over the item log lists every key and conflicts with every gateway's writes, so the
// staff listing names it instead (fillHeld).
func onBolt(tx kv.Tx) bool {
	if lt, ok := tx.(*logTx); ok {
		tx = lt.Tx
	}
	return boltkv.BoltTx(tx) != nil
}

// migrate11to12 changes nothing stored: from schema 12 a seq has a bSeqs record only where its
// item id's record does not say what it holds (heldAt reads both). The number keeps a relay of
// schema 11, which reads only bSeqs, from taking the seqs stored since as conflicts.
func migrate11to12(kv.Tx) error { return nil }

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
	if e.held == "" {
		return fmt.Sprintf("sequence conflict at seq %d: the relay holds another item there, the terminal sent item %q", e.got, e.id)
	}
	return fmt.Sprintf("sequence conflict at seq %d: the relay holds item %q there, the terminal sent item %q", e.got, e.held, e.id)
}

// recordConflict makes a sequence conflict or gap visible to staff, once per (terminal, epoch,
// seq): a terminal that does not start a new epoch would otherwise add one per connection.
func recordConflict(tx kv.Tx, rf Refusal) error {
	k := seqKey(rf.TerminalID, rf.Epoch, rf.Seq)
	if getRaw(tx, bConflicts, k) != nil {
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
	var named []Refusal // conflicts whose held item the walk found
	keep := func(_ string, rf Refusal) bool {
		if flt.TerminalID == "" || rf.TerminalID == flt.TerminalID {
			out = append(out, rf)
		}
		return true
	}
	err := r.view("list refusals", func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		prefix := ""
		if flt.TerminalID != "" {
			prefix = flt.TerminalID + "/" // that terminal's bucket alone
		}
		if err := forEachJSON(tx, bRefused, prefix, keep); err != nil {
			return err
		}
		return forEachJSON(tx, bConflicts, prefix, keep) // by terminal too since schema 26
	})
	if err == nil {
		out, err = r.heldRefusals(out, flt)
	}
	if err == nil && slices.ContainsFunc(out, func(rf Refusal) bool { return rf.Reason == ConflictSequence && rf.HeldItemID == "" }) {
		// The walk of the item log goes in a view of its own that may read stale states: on
		// JetStream a View that read the item log would conflict with every batch any gateway
		// stores, and could run again until its deadline. A stored item never changes, and
		// the one a conflict names was stored before the conflict; a replica too far behind
		// to hold it leaves it unnamed until the next listing.
		err = r.staleView("name held items", func(tx kv.Tx) error {
			named = fillHeld(tx, out)
			return nil
		})
	}
	if err == nil && len(named) > 0 {
		// Best effort: the listing is right without it, and a store refusing writes now
		// (no quorum) leaves the walk to the next listing.
		// A conflict is its terminal's record, written by the writer of its facility.
		byTerminal := map[string][]Refusal{}
		for _, rf := range named {
			byTerminal[rf.TerminalID] = append(byTerminal[rf.TerminalID], rf)
		}
		for id, rfs := range byTerminal {
			place := func(tx kv.Tx) (string, error) {
				var t terminalRec
				_, err := getJSON(tx, bTerminals, id, &t)
				return t.FacilityID, err
			}
			if werr := r.updateAt("keep held items", place, func(tx kv.Tx, _ *fanout, _ string) error { return keepHeld(tx, rfs) }); werr != nil {
				r.logf("could not keep the held items a listing found: %v", werr)
				break
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, err
}

// heldRefusals is out with the refusals and conflicts of the terminals of each facility this
// relay holds read from its held state instead: the kv state's are behind it by the
// projector, and a conflict's held item kept since (keepHeld, on the holder) is there first.
func (r *Relay) heldRefusals(out []Refusal, flt RefusalFilter) ([]Refusal, error) {
	for _, facility := range r.held.facilities() {
		var mine []string
		var theirs []Refusal
		err := r.viewFor(facility, "list refusals", func(tx kv.Tx) error {
			theirs, mine = theirs[:0], mine[:0] // a View may run again
			ids, err := listedUnder(tx, []string{facility}, bFacTerms, bFacRevoked)
			if err != nil {
				return err
			}
			keep := func(_ string, rf Refusal) bool { theirs = append(theirs, rf); return true }
			for _, id := range ids {
				if flt.TerminalID != "" && id != flt.TerminalID {
					continue
				}
				mine = append(mine, id)
				if err := forEachJSON(tx, bRefused, id+"/", keep); err != nil {
					return err
				}
				if err := forEachJSON(tx, bConflicts, id+"/", keep); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		out = slices.DeleteFunc(out, func(rf Refusal) bool { return slices.Contains(mine, rf.TerminalID) })
		out = append(out, theirs...)
	}
	return out, nil
}

// migrate25to26 nests each terminal's sequence conflicts under it (ownerKeyed): a held
// facility's listing of its terminals' conflicts reads their buckets in its held state, which
// walks no root it holds only part of. A key that names no terminal stays where it is.
func migrate25to26(tx kv.Tx) error {
	b := tx.Bucket([]byte(bConflicts))
	if b == nil {
		return fmt.Errorf("the %s bucket is missing", bConflicts)
	}
	return nestByOwner(b, bConflicts, func(k, _ []byte) (string, []byte, error) {
		terminal, rest, err := splitOwner(bConflicts, string(k))
		if err != nil {
			return "", nil, nil
		}
		return terminal, []byte(rest), nil
	})
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
