package kiosk

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// enqueue appends an item in the caller's transaction, so the record and its forwarding
// entry are written together or not at all.
func enqueue(tx *bolt.Tx, now time.Time, kind ItemKind, body any) (Item, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return Item{}, fmt.Errorf("encode %s item: %w", kind, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Item{}, fmt.Errorf("make %s item id: %w", kind, err)
	}
	meta := tx.Bucket([]byte(bMeta))
	next := meta.Get([]byte(kNextSeq))
	if len(next) != 8 {
		// A damaged counter must not panic mid-transaction nor restart at 1 and reuse seqs.
		return Item{}, &Error{Kind: KindCorrupt, Op: "queue " + string(kind) + " item",
			Err: fmt.Errorf("forwarding sequence counter is %d bytes, want 8", len(next))}
	}
	seq := binary.BigEndian.Uint64(next)
	if err := meta.Put([]byte(kNextSeq), u64(seq+1)); err != nil {
		return Item{}, fmt.Errorf("advance forwarding sequence: %w", err)
	}
	it := Item{Seq: seq, ID: id.String(), Kind: kind, CreatedAt: now.UTC(), Body: raw}
	enc, err := json.Marshal(it)
	if err != nil {
		return Item{}, fmt.Errorf("encode %s item: %w", kind, err)
	}
	if err := tx.Bucket([]byte(bOutq)).Put(u64(seq), enc); err != nil {
		return Item{}, fmt.Errorf("queue %s item: %w", kind, err)
	}
	if needsFollowUp(kind) {
		if err := tx.Bucket([]byte(bOutFollow)).Put(u64(seq), []byte(kind)); err != nil {
			return Item{}, fmt.Errorf("queue %s item: %w", kind, err)
		}
	}
	if _, err := addCount(tx, kOutqCount, 1); err != nil {
		return Item{}, err
	}
	return it, nil
}

// needsFollowUp says which kinds of item need work of their own when acknowledged: a PREA
// report's text is erased, a charge stops counting against the offline cap. Everything else
// is settled by the acknowledged cursor alone (an outbox message reads as "sent" once the
// cursor passes its item, see messageStateTx).
func needsFollowUp(kind ItemKind) bool { return kind == ItemPREA || kind == ItemCharge }

// ackCursorTx is where acknowledgement stands in the current queue generation: every item of
// this generation with seq <= the cursor was acknowledged (or refused). gen counts the epochs
// this store started (NewEpoch renumbers what waits and starts the cursor again at 0).
func ackCursorTx(tx *bolt.Tx) (gen, cursor uint64) {
	meta := tx.Bucket([]byte(bMeta))
	return metaU64(meta, kQueueGen), metaU64(meta, kAckedSeq)
}

// ackLogKey is the ack log's key for cursor position seq of generation gen.
func ackLogKey(gen, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, gen)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// ackedAtTx is when the item at seq of generation gen was acknowledged, from the ack log
// (ok=false if no entry covers it).
func ackedAtTx(tx *bolt.Tx, gen, seq uint64) (at time.Time, ok bool) {
	k, v := tx.Bucket([]byte(bAckLog)).Cursor().Seek(ackLogKey(gen, seq))
	if len(k) != 16 || binary.BigEndian.Uint64(k) != gen {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, string(v))
	return at, err == nil
}

func metaU64(meta *bolt.Bucket, key string) uint64 {
	v := meta.Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Pending returns waiting items with Seq > after, in order, up to maxItems items and about
// maxBytes of bodies (always at least one item if any waits). Nothing is marked by reading.
func (s *Store) Pending(after uint64, maxItems, maxBytes int) ([]Item, error) {
	var items []Item
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bOutq)).Cursor()
		size := 0
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			if len(items) >= maxItems || (len(items) > 0 && size+len(v) > maxBytes) {
				break
			}
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: fmt.Errorf("item %d: %w", binary.BigEndian.Uint64(k), err)}
			}
			items = append(items, it)
			size += len(v)
		}
		return nil
	})
	return items, err
}

// QueuedItem is a waiting item as the store holds it: its seq and its JSON, which is the item's
// wire encoding ({"seq","id","kind","created_at","body"} in that order: the shape of sync/wire's
// Item, written by encoding/json at enqueue and never edited in place), so a batch is built by
// copying these bytes, not by decoding and encoding each item again.
type QueuedItem struct {
	Seq  uint64
	JSON []byte
}

// Decode parses the item, for the few uses that need its fields.
func (q QueuedItem) Decode() (Item, error) {
	var it Item
	if err := json.Unmarshal(q.JSON, &it); err != nil {
		return Item{}, &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: fmt.Errorf("item %d: %w", q.Seq, err)}
	}
	return it, nil
}

// PendingWire is Pending without decoding: the items with Seq > after, in order, as stored
// (copied out of the transaction). Each must open with its own seq ({"seq":N,) and be one JSON
// object; one that does not is KindCorrupt, as Pending reports an item that does not decode.
func (s *Store) PendingWire(after uint64, maxItems, maxBytes int) ([]QueuedItem, error) {
	items, _, err := s.PendingWireInto(nil, after, maxItems, maxBytes)
	return items, err
}

// PendingWireInto is PendingWire that copies the items' bytes into arena's room (grown if too
// small) and returns it with them: a caller that reads batch after batch (the uplink) passes
// the last one back once it is done with those items, and a drain allocates no batch twice.
func (s *Store) PendingWireInto(arena []byte, after uint64, maxItems, maxBytes int) ([]QueuedItem, []byte, error) {
	var items []QueuedItem
	var ends []int
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bOutq)).Cursor()
		// First the batch's extent (count and bytes, no copy), so the arena and the lists are
		// allocated once at their size: grown by appending, a 300 KB batch allocated about
		// three times its bytes, a third of the terminal's garbage in a drain.
		n, size := 0, 0
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			if n >= maxItems || (n > 0 && size+len(v) > maxBytes) {
				break
			}
			n, size = n+1, size+len(v)
		}
		if cap(arena) < size {
			arena = make([]byte, 0, size)
		}
		items, arena, ends = make([]QueuedItem, 0, n), arena[:0], make([]int, 0, n)
		var prefix []byte
		for k, v := c.Seek(u64(after + 1)); k != nil && len(items) < n; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			prefix = strconv.AppendUint(append(prefix[:0], `{"seq":`...), seq, 10)
			prefix = append(prefix, ',')
			if !bytes.HasPrefix(v, prefix) || v[len(v)-1] != '}' {
				return &Error{Kind: KindCorrupt, Op: "read forwarding queue",
					Err: fmt.Errorf("item %d is not stored as a JSON item of that seq", seq)}
			}
			items = append(items, QueuedItem{Seq: seq})
			arena = append(arena, v...)
			ends = append(ends, len(arena))
		}
		return nil
	})
	start := 0
	for i, end := range ends {
		items[i].JSON = arena[start:end:end]
		start = end
	}
	return items, arena, err
}

// QueueStats reports how many items wait and when the oldest was made (zero if none).
func (s *Store) QueueStats() (waiting int, oldest time.Time, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bOutq))
		waiting = int(readCount(tx, kOutqCount))
		if _, v := b.Cursor().First(); v != nil {
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: err}
			}
			oldest = it.CreatedAt
		}
		return nil
	})
	return waiting, oldest, err
}

// Ack marks every item with Seq <= upTo as forwarded, in one transaction: the acknowledged
// cursor moves to upTo (never past the last seq handed out, never back), the range leaves the
// queue, and only the items that need it get work of their own (a PREA text is erased, a
// charge settles against Account.Unsynced, once per inmate for the whole range). An outbox
// message needs no write: it reads as "sent" from the cursor. Acknowledging the same range twice
// changes nothing the second time.
func (s *Store) Ack(now time.Time, upTo uint64) (acked int, err error) {
	return s.AckLetters(now, upTo, nil)
}

// AckedLetter is a relay's report, with an acknowledgement, of where the outbox message queued
// at Seq stands: MsgHeld or MsgDelivered.
type AckedLetter struct {
	Seq   uint64
	State string
}

// AckLetters is Ack that also records, in the same transaction, the states the relay reported
// for letters among the items it acknowledges (a small entry each, bMsgState: the messages are
// not rewritten). A state for a seq outside what this acknowledgement moves the cursor over is
// ignored: one already acknowledged had its report then, one beyond comes with a later ack.
func (s *Store) AckLetters(now time.Time, upTo uint64, letters []AckedLetter) (acked int, err error) {
	for _, l := range letters {
		if l.State != MsgHeld && l.State != MsgDelivered {
			return 0, errInvalid("acknowledge forwarded items", "letter %d: state %q is not held or delivered", l.Seq, l.State)
		}
	}
	err = s.update("acknowledge forwarded items", func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bMeta))
		next := meta.Get([]byte(kNextSeq))
		if len(next) != 8 {
			return &Error{Kind: KindCorrupt, Op: "acknowledge forwarded items",
				Err: fmt.Errorf("forwarding sequence counter is %d bytes, want 8", len(next))}
		}
		// A relay cannot acknowledge what was never queued: a cursor past it would make
		// messages queued later read as sent before they left.
		upTo = min(upTo, binary.BigEndian.Uint64(next)-1)
		if err := followUpsTx(tx, now, upTo); err != nil {
			return err
		}
		b := tx.Bucket([]byte(bOutq))
		// The items acknowledged, in seq order: what is removed below, and what a letter's
		// state is looked up in (one walk of the queue, not a look-up in it per letter).
		var done [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo; k, _ = c.Next() {
			done = append(done, append([]byte(nil), k...))
		}
		if len(letters) > 0 {
			gen, cursor := ackCursorTx(tx)
			st := tx.Bucket([]byte(bMsgState))
			for _, l := range letters {
				// Only an item still waiting: a relay cannot report on what was never sent.
				if l.Seq <= cursor || l.Seq > upTo {
					continue
				}
				if _, waiting := slices.BinarySearchFunc(done, l.Seq, func(k []byte, seq uint64) int {
					return cmp.Compare(binary.BigEndian.Uint64(k), seq)
				}); !waiting {
					continue
				}
				if err := st.Put(ackLogKey(gen, l.Seq), []byte(l.State)); err != nil {
					return fmt.Errorf("record state of letter %d: %w", l.Seq, err)
				}
			}
		}
		for _, k := range done {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("remove item %d: %w", binary.BigEndian.Uint64(k), err)
			}
		}
		if gen, cursor := ackCursorTx(tx); upTo > cursor {
			if err := meta.Put([]byte(kAckedSeq), u64(upTo)); err != nil {
				return fmt.Errorf("move acknowledged cursor: %w", err)
			}
			if metaU64(meta, kLastMsgSeq) > cursor {
				if err := tx.Bucket([]byte(bAckLog)).Put(ackLogKey(gen, upTo), []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
					return fmt.Errorf("log acknowledgement: %w", err)
				}
			}
		}
		acked = len(done)
		_, err := addCount(tx, kOutqCount, -int64(acked))
		return err
	})
	return acked, err
}

// followUpsTx does the per-item work of the items up to upTo that need it (needsFollowUp) and
// removes their follow-up entries. Charges settle summed per inmate: one account write each.
func followUpsTx(tx *bolt.Tx, now time.Time, upTo uint64) error {
	fb, q := tx.Bucket([]byte(bOutFollow)), tx.Bucket([]byte(bOutq))
	var done [][]byte
	settle := map[string]Cents{}
	var inmates []string // in first-seen order, so the writes are the same on every run
	c := fb.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo; k, _ = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		done = append(done, append([]byte(nil), k...))
		v := q.Get(k)
		if v == nil {
			return &Error{Kind: KindCorrupt, Op: "acknowledge forwarded items",
				Err: fmt.Errorf("follow-up entry %d names no queued item", seq)}
		}
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: fmt.Errorf("item %d: %w", seq, err)}
		}
		switch it.Kind {
		case ItemPREA:
			if err := preaForwardedTx(tx, now, it); err != nil {
				return fmt.Errorf("item %d (%s): %w", it.Seq, it.Kind, err)
			}
		case ItemCharge:
			var ch struct {
				RecordID string `json:"record_id"`
				InmateID string `json:"inmate_id"`
				Cents    Cents  `json:"cents"`
				ItemID   string `json:"item_id"`
			}
			if err := json.Unmarshal(it.Body, &ch); err != nil {
				return &Error{Kind: KindCorrupt, Op: "settle charge", Err: fmt.Errorf("item %d: %w", seq, err)}
			}
			if ch.ItemID != "" && vocab.IsPurchaseRecord(ch.RecordID) {
				if err := purchaseSyncedTx(tx, ch.RecordID, ch.InmateID, ch.ItemID); err != nil {
					return err
				}
			}
			if _, seen := settle[ch.InmateID]; !seen {
				inmates = append(inmates, ch.InmateID)
			}
			settle[ch.InmateID] += ch.Cents
		}
	}
	for _, k := range done {
		if err := fb.Delete(k); err != nil {
			return fmt.Errorf("remove follow-up entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
	}
	for _, id := range inmates {
		if err := settleUnsyncedTx(tx, id, settle[id]); err != nil {
			return err
		}
	}
	return nil
}

// Reject records that the relay refused item seq for good, with its reason, and stops
// sending it. A seq no longer waiting is ignored (the refusal was already applied).
func (s *Store) Reject(now time.Time, seq uint64, reason string) error {
	return s.update("record refused item", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bOutq))
		v := b.Get(u64(seq))
		if v == nil {
			return nil
		}
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: err}
		}
		if err := onRefused(tx, now, it, reason); err != nil {
			return fmt.Errorf("item %d (%s): %w", it.Seq, it.Kind, err)
		}
		if err := b.Delete(u64(seq)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bOutFollow)).Delete(u64(seq)); err != nil {
			return err
		}
		_, err := addCount(tx, kOutqCount, -1)
		return err
	})
}

// newEpochID makes a store epoch: 16 random bytes in hex, as at store creation.
func newEpochID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make store epoch: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NewEpoch starts a new uplink epoch, for when the relay cannot take the current numbering
// (this store was restored from a backup and reuses seqs the relay holds, or the relay lost
// items). In one transaction: a fresh random epoch; every waiting item renumbered 1..n in the
// same order, keeping its id, kind, creation time and body (the relay knows an item it already
// holds by its id), with its follow-up entry and its outbox message's queue position moved
// along; a new queue generation with the acknowledged cursor back at 0 (a message acknowledged
// under the old generation stays sent); the next seq n+1; and an audit event saying why.
// Nothing waiting is lost.
func (s *Store) NewEpoch(now time.Time, reason string) (string, error) {
	epoch, err := newEpochID()
	if err != nil {
		return "", err
	}
	err = s.update("start new epoch", func(tx *bolt.Tx) error { return newEpochTx(tx, now, epoch, reason) })
	if err != nil {
		return "", err
	}
	return epoch, nil
}

// newEpochTx is NewEpoch in the caller's transaction.
func newEpochTx(tx *bolt.Tx, now time.Time, epoch, reason string) error {
	meta := tx.Bucket([]byte(bMeta))
	old := string(meta.Get([]byte(kEpoch)))
	b := tx.Bucket([]byte(bOutq))
	var items []Item
	var keys [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: fmt.Errorf("item %d: %w", binary.BigEndian.Uint64(k), err)}
		}
		items, keys = append(items, it), append(keys, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("renumber item %d: %w", binary.BigEndian.Uint64(k), err)
		}
	}
	if _, err := clearBucket(tx, bOutFollow, nil); err != nil {
		return err
	}
	gen, _ := ackCursorTx(tx)
	gen++
	if err := meta.Put([]byte(kLastMsgSeq), u64(0)); err != nil {
		return fmt.Errorf("reset last message seq: %w", err)
	}
	for i := range items {
		items[i].Seq = uint64(i + 1)
		enc, err := json.Marshal(items[i])
		if err != nil {
			return fmt.Errorf("encode item %s: %w", items[i].ID, err)
		}
		if err := b.Put(u64(items[i].Seq), enc); err != nil {
			return fmt.Errorf("renumber item %s: %w", items[i].ID, err)
		}
		if err := trackItemTx(tx, items[i], gen); err != nil {
			return err
		}
	}
	if err := meta.Put([]byte(kQueueGen), u64(gen)); err != nil {
		return fmt.Errorf("set queue generation: %w", err)
	}
	if err := meta.Put([]byte(kAckedSeq), u64(0)); err != nil {
		return fmt.Errorf("reset acknowledged cursor: %w", err)
	}
	if err := meta.Put([]byte(kEpoch), []byte(epoch)); err != nil {
		return fmt.Errorf("set epoch: %w", err)
	}
	if err := meta.Put([]byte(kNextSeq), u64(uint64(len(items))+1)); err != nil {
		return fmt.Errorf("set next seq: %w", err)
	}
	return appendAudit(tx, now, "new_epoch", "", map[string]string{
		"reason": reason, "old_epoch": old, "new_epoch": epoch, "renumbered": fmt.Sprint(len(items))})
}

// trackItemTx writes the bookkeeping of a waiting item at its (new) seq in queue generation
// gen: its follow-up entry, and for an outbox message still queued, the message's queue
// position. NewEpoch and the upgrade from schema 1 use it.
func trackItemTx(tx *bolt.Tx, it Item, gen uint64) error {
	if needsFollowUp(it.Kind) {
		if err := tx.Bucket([]byte(bOutFollow)).Put(u64(it.Seq), []byte(it.Kind)); err != nil {
			return fmt.Errorf("track item %d: %w", it.Seq, err)
		}
	}
	if it.Kind != ItemMessage && it.Kind != ItemPREA {
		return nil
	}
	var ref struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(it.Body, &ref); err != nil {
		return &Error{Kind: KindCorrupt, Op: "read " + string(it.Kind) + " item", Err: fmt.Errorf("item %d: %w", it.Seq, err)}
	}
	var sm storedMessage
	found, err := getJSON(tx, bMessages, ref.ID, &sm)
	if err != nil || !found || sm.State != MsgQueued {
		return err // a message the relay already reported on needs no position
	}
	sm.QueueGen, sm.QueueSeq = gen, it.Seq
	if err := putJSON(tx, bMessages, sm.ID, sm); err != nil {
		return err
	}
	return tx.Bucket([]byte(bMeta)).Put([]byte(kLastMsgSeq), u64(it.Seq)) // items come in seq order
}

// NewEpoch is Store.NewEpoch for the sync engine, at the terminal's clock; the screens hear of it.
func (t *Terminal) NewEpoch(reason string) (string, error) {
	now := t.clock.Now()
	epoch, err := t.store.NewEpoch(now, reason)
	if err == nil {
		t.emit(Event{Kind: EventChanged, At: now})
	}
	return epoch, err
}

// preaForwardedTx is what an acknowledgement means for a PREA report: the message reads
// "sent", its text leaves the terminal, and it no longer counts against the waiting bound.
func preaForwardedTx(tx *bolt.Tx, now time.Time, it Item) error {
	if err := messageForwarded(tx, now, it); err != nil {
		return err
	}
	if err := preaSettledTx(tx, it); err != nil {
		return err
	}
	return markScrubPending(tx) // the text just erased is still in the freed pages
}

// onRefused applies what a permanent refusal means for each kind of item.
func onRefused(tx *bolt.Tx, now time.Time, it Item, reason string) error {
	switch it.Kind {
	case ItemMessage:
		return messageRefused(tx, now, it, reason)
	case ItemPREA:
		if err := messageRefused(tx, now, it, reason); err != nil {
			return err
		}
		return preaSettledTx(tx, it)
	case ItemCharge:
		if err := chargeSettledTx(tx, it); err != nil { // refused for good: no longer pending either
			return err
		}
		if err := stampRefusedTx(tx, now, it); err != nil { // a stamp or a purchase the relay never took comes back
			return err
		}
		return printRefusedTx(tx, now, it) // and so does a print charge
	case ItemContactRequest:
		return contactRequestRefused(tx, now, it, reason)
	default:
		return nil
	}
}

// MarkForwarded is Store.Ack for the sync engine, telling the screens that states moved
// (a message now "sent") when anything was acknowledged. A PREA text erased by the ack is
// scrubbed from the file at once.
func (t *Terminal) MarkForwarded(upTo uint64) (int, error) {
	return t.MarkForwardedLetters(upTo, nil)
}

// MarkForwardedLetters is Store.AckLetters for the sync engine: the acknowledgement and the
// states of the letters it reports, in one transaction.
func (t *Terminal) MarkForwardedLetters(upTo uint64, letters []AckedLetter) (int, error) {
	now := t.clock.Now()
	n, err := t.store.AckLetters(now, upTo, letters)
	if err == nil && n > 0 {
		t.scrub()
		t.emit(Event{Kind: EventChanged, At: now})
	}
	return n, err
}

// MarkRefused is Store.Reject for the sync engine; the inmate sees the refusal at once.
func (t *Terminal) MarkRefused(seq uint64, reason string) error {
	now := t.clock.Now()
	if err := t.store.Reject(now, seq, reason); err != nil {
		return err
	}
	t.scrub()
	t.emit(Event{Kind: EventChanged, At: now})
	return nil
}

// scrub runs a scrub an erase asked for; one that fails is not the acknowledgement's failure:
// the request stays and is retried at the next acknowledgement or start.
func (t *Terminal) scrub() {
	if _, err := t.store.Scrub(); err != nil {
		t.logf("store: scrub of erased text failed, will retry: %v", err)
	}
}
