package kiosk

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// ItemKind names what a forwarded item carries; the relay dispatches on it.
type ItemKind string

const (
	ItemMessage        ItemKind = "message"         // Body: Message (outbox)
	ItemPREA           ItemKind = "prea"            // Body: Message to PREAChannel; text erased on ack
	ItemContactRequest ItemKind = "contact_request" // Body: Contact
	ItemContactRemove  ItemKind = "contact_remove"  // Body: Contact
	ItemCharge         ItemKind = "charge"          // Body: Charge
	ItemCredit         ItemKind = "credit"          // Body: Credit
	ItemSessionEnd     ItemKind = "session_end"     // Body: Session
	ItemAudit          ItemKind = "audit"           // Body: AuditEvent
	ItemDeviceStatus   ItemKind = "device_status"   // Body: whatever the device layer reports
)

// Item is one record waiting in the forwarding queue. Seq is unique and increasing within the
// store's epoch; ID is a UUIDv7 the relay dedupes on together with (epoch, seq).
type Item struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Kind      ItemKind        `json:"kind"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"body"`
}

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
	if _, err := addCount(tx, kOutqCount, 1); err != nil {
		return Item{}, err
	}
	return it, nil
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

// Ack marks every item with Seq <= upTo as forwarded: each kind's follow-up (a message becomes
// "sent", a PREA text is erased) and the removal from the queue happen in one transaction.
// Acknowledging the same range twice changes nothing the second time.
func (s *Store) Ack(now time.Time, upTo uint64) (acked int, err error) {
	err = s.update("acknowledge forwarded items", func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bOutq))
		c := b.Cursor()
		var done [][]byte
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo; k, v = c.Next() {
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read forwarding queue", Err: err}
			}
			if err := onForwarded(tx, now, it); err != nil {
				return fmt.Errorf("item %d (%s): %w", it.Seq, it.Kind, err)
			}
			done = append(done, append([]byte(nil), k...))
		}
		for _, k := range done {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		acked = len(done)
		_, err := addCount(tx, kOutqCount, -int64(acked))
		return err
	})
	return acked, err
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
// holds by its id); the next seq n+1; and an audit event saying why. Nothing waiting is lost.
// Nothing else keys on queue seqs: acknowledgement and refusal follow-ups read item bodies.
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
	for i := range items {
		items[i].Seq = uint64(i + 1)
		enc, err := json.Marshal(items[i])
		if err != nil {
			return fmt.Errorf("encode item %s: %w", items[i].ID, err)
		}
		if err := b.Put(u64(items[i].Seq), enc); err != nil {
			return fmt.Errorf("renumber item %s: %w", items[i].ID, err)
		}
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

// NewEpoch is Store.NewEpoch for the sync engine, at the terminal's clock; the screens hear of it.
func (t *Terminal) NewEpoch(reason string) (string, error) {
	now := t.clock.Now()
	epoch, err := t.store.NewEpoch(now, reason)
	if err == nil {
		t.emit(Event{Kind: EventChanged, At: now})
	}
	return epoch, err
}

// onForwarded applies what an acknowledgement means for each kind of item.
func onForwarded(tx *bolt.Tx, now time.Time, it Item) error {
	switch it.Kind {
	case ItemMessage:
		return messageForwarded(tx, now, it)
	case ItemPREA:
		if err := messageForwarded(tx, now, it); err != nil {
			return err
		}
		if err := preaSettledTx(tx, it); err != nil {
			return err
		}
		return markScrubPending(tx) // the text just erased is still in the freed pages
	case ItemCharge:
		return chargeSettledTx(tx, it)
	default:
		return nil
	}
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
		return chargeSettledTx(tx, it) // refused for good: no longer pending either
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
	now := t.clock.Now()
	n, err := t.store.Ack(now, upTo)
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
