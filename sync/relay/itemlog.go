package relay

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// The item log. Every uplink item the relay stores has an arrival number (bItems' sequence),
// which letter records name (letterRec.BodyItem) and the admin API lists items by. Up to
// schema 9 each item was its own record in bItems: a B-tree put of a kilobyte or more per
// item, the largest of the five a letter cost. From schema 10 the items one transaction stores
// (the batches of one connection's group commit) are one log record, keyed by the arrival
// number of its first item, holding the items of consecutive arrival numbers:
//
//	'L' ( length (4 bytes, big-endian) StoredItem JSON )...
//
// Each item is the JSON a schema-8 record held (storedItemJSON), so readers decode it as
// before. A record is cut at logRecordMax bytes (a JetStream message is at most 1 MB by
// default, and an item alone may be up to wire.MaxBatchBytes), on a bbolt file at
// logRecordMaxBolt, so an item is found from its number by the last record keyed at or below
// it. A record that starts with '{' is a
// schema-8 item record: readers take both, so migrations up to 9 (which read items) run
// unchanged, and migrate9to10 rewrites the old records as log records.

const (
	logMagic     = 'L'
	logRecordMax = 256 << 10
	// logRecordMaxBolt is the cut on a bbolt file. bbolt never splits a leaf of four records
	// or fewer, and keeps at least two on each side of a split, so with records larger than a
	// page the log's last leaf holds the last two to four records, and each commit that
	// appends to the log writes that leaf again whole: with 256 KiB records some 1 KB a
	// letter of a drain was the previous commits' items written again (bbolt's pending pages,
	// BenchmarkDrainStore), and a one-letter commit after a backlog wrote 844 KiB. Cut at
	// 32 KiB, what a commit writes again is at most 128 KiB.
	logRecordMaxBolt = 32 << 10
)

// itemLog gathers the items one transaction stores, written as log records at flush.
type itemLog struct {
	first uint64 // arrival number of the first item in buf
	next  uint64 // the number the next item must have to join buf
	buf   []byte // the record being built; empty when nothing waits
	recs  []logRec
	// hint is about the bytes the transaction's items take: a record's buffer is sized by
	// it once rather than grown (and copied) item by item.
	hint int
	// max is where a record is cut (0: logRecordMax).
	max int
	// times keeps the text of the times the transaction's records carry (the receive time
	// of every item), for the item records and the letters' records alike.
	times timeMemo
}

// logRec is a record already cut, waiting for flush.
type logRec struct {
	key  uint64
	next uint64 // the arrival number after its last item
	raw  []byte
}

// add appends item n (its StoredItem JSON) to the log. An item whose number does not follow
// the previous one, or one that would take the record past logRecordMax, starts a new record.
func (l *itemLog) add(n uint64, item []byte) {
	l.open(n, len(item))
	l.buf = binary.BigEndian.AppendUint32(l.buf, uint32(len(item)))
	l.buf = append(l.buf, item...)
	l.next = n + 1
}

// addItem is add of the StoredItem h with body, encoded straight into the record.
func (l *itemLog) addItem(n uint64, h storedHead, body []byte) error {
	l.open(n, storedHeadSize(h, body))
	at := len(l.buf)
	buf, err := appendStoredHead(append(l.buf, 0, 0, 0, 0), h, body, &l.times)
	if err != nil {
		l.buf = l.buf[:at]
		return fmt.Errorf("encode item %d: %w", h.Seq, err)
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	l.buf, l.next = buf, n+1
	return nil
}

// open makes room for item n of about size bytes: a new record if n does not follow the
// previous item or the record would pass its limit (l.max).
func (l *itemLog) open(n uint64, size int) {
	limit := l.max
	if limit <= 0 {
		limit = logRecordMax
	}
	if len(l.buf) > 0 && (n != l.next || len(l.buf)+4+size > limit) {
		l.cut()
	}
	if len(l.buf) == 0 {
		l.first = n
		c := min(l.hint, limit)
		l.buf = append(make([]byte, 0, max(c, 5+size)), logMagic)
	}
}

// cut closes the record being built.
func (l *itemLog) cut() {
	if len(l.buf) > 0 {
		l.recs = append(l.recs, logRec{key: l.first, next: l.next, raw: l.buf})
		l.buf = nil
	}
}

// get returns item n if it waits in the log (not yet written), else nil.
func (l *itemLog) get(n uint64) []byte {
	if len(l.buf) > 0 && n >= l.first && n < l.next {
		return logEntry(l.buf, n-l.first)
	}
	for _, r := range l.recs {
		if n >= r.key {
			if it := logEntry(r.raw, n-r.key); it != nil {
				return it
			}
		}
	}
	return nil
}

// flush writes what waits as records of bItems. With last (the group commit's, shared by its
// calls) a first record that carries on where the transaction's last one ended is added to
// that one's end (kv.Append) rather than written as a record of its own; last then names the
// transaction's last record.
func (l *itemLog) flush(tx kv.Tx, last *lastRecord) error {
	l.cut()
	b := tx.Bucket([]byte(bItems))
	kv.HintAppended(b) // arrival numbers only grow
	limit := l.max
	if limit <= 0 {
		limit = logRecordMax
	}
	for _, r := range l.recs {
		if last != nil && last.size > 0 && r.key == last.next && last.size+len(r.raw)-1 <= limit {
			if err := kv.Append(b, u64(last.key), r.raw[1:]); err != nil {
				return fmt.Errorf("add to item log record %d: %w", last.key, err)
			}
			last.size += len(r.raw) - 1
		} else {
			if err := b.Put(u64(r.key), r.raw); err != nil {
				return fmt.Errorf("write item log record %d: %w", r.key, err)
			}
			if last != nil {
				last.key, last.size = r.key, len(r.raw)
			}
		}
		if last != nil {
			last.next = r.next
		}
	}
	l.recs = l.recs[:0]
	return nil
}

// lastRecord is the last item log record a group commit's calls wrote, for the next call's
// items to join it (itemLog.flush). On a shared store each record is a message of the commit
// and a key the holder's projection writes again: one a call made a group of one-item
// batches cost a message a batch, against one a group (docs/SCALE.md, "One item record a
// group commit"). On a bbolt file each call writes its own: there adding to a record reads
// and writes it again whole, and a record is no costlier than its bytes.
type lastRecord struct {
	key  uint64 // its key, the arrival number of its first item
	next uint64 // the arrival number after its last item
	size int    // its bytes; 0: no record written yet
}

// logTx is a write transaction that stores items through an item log: reads of an item by its
// number (storedItemRaw) see the items stored earlier in the same transaction, not yet written.
type logTx struct {
	kv.Tx
	log *itemLog
	// bounded: the transaction keeps a keyBound for each of boundedBuckets (keybound.go).
	bounded bool
	bounds  [len(boundedBuckets)]keyBound
	wrapped [len(boundedBuckets)]kv.Bucket // each made at its first use
}

// eachLogEntry calls fn with each item of a record (a log record or a schema-8 item record)
// and its index, until fn returns false. It returns false for a record it cannot read.
func eachLogEntry(raw []byte, fn func(i uint64, item []byte) bool) bool {
	if len(raw) > 0 && raw[0] == '{' {
		fn(0, raw)
		return true
	}
	if len(raw) == 0 || raw[0] != logMagic {
		return false
	}
	rest := raw[1:]
	for i := uint64(0); len(rest) > 0; i++ {
		if len(rest) < 4 {
			return false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(len(rest)-4) < uint64(n) {
			return false
		}
		if !fn(i, rest[4:4+n]) {
			return true
		}
		rest = rest[4+n:]
	}
	return true
}

// logEntry returns item i of a record, or nil if it has none.
func logEntry(raw []byte, i uint64) []byte {
	var out []byte
	eachLogEntry(raw, func(j uint64, item []byte) bool {
		if j == i {
			out = item
			return false
		}
		return true
	})
	return out
}

// storedItemRaw returns the StoredItem JSON of item n, or nil if no item has that number.
func storedItemRaw(tx kv.Tx, n uint64) []byte {
	if lt, ok := tx.(*logTx); ok {
		if it := lt.log.get(n); it != nil {
			return it
		}
		tx = lt.Tx
	}
	if h, ok := tx.(interface{ Outside() kv.Tx }); ok {
		// A held facility's transaction, which cannot walk the item log (the holder writes
		// only its own blocks of it): the item is read from the kv state, where every item a
		// letter's record names is. A letter written on a held state keeps its text in its
		// record (applyPREA), so the items a record names are the kv path's, stored with it.
		tx = h.Outside()
	}
	c := tx.Bucket([]byte(bItems)).Cursor()
	k, v := c.Seek(u64(n))
	if k == nil || readU64(k) != n {
		k, v = c.Prev()
	}
	if k == nil || readU64(k) > n {
		return nil
	}
	return logEntry(v, n-readU64(k))
}

// forEachItemRaw calls fn with each stored item's arrival number and StoredItem JSON, in
// arrival order, until fn returns false. A record it cannot read is reported to bad (if not
// nil, and the walk goes on) or else ends the walk with a KindCorrupt error.
func forEachItemRaw(tx kv.Tx, bad func(key string, err error), fn func(n uint64, raw []byte) bool) error {
	c := tx.Bucket([]byte(bItems)).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			err := fmt.Errorf("key is %d bytes, not an arrival number", len(k))
			if bad == nil {
				return &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bItems, Err: fmt.Errorf("record %q: %w", k, err)}
			}
			bad(string(k), err)
			continue
		}
		first := readU64(k)
		more := true
		if !eachLogEntry(v, func(i uint64, item []byte) bool {
			more = fn(first+i, item)
			return more
		}) {
			err := fmt.Errorf("not an item log record")
			if bad == nil {
				return &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bItems, Err: fmt.Errorf("record %d: %w", first, err)}
			}
			bad(string(k), err)
		}
		if !more {
			break
		}
	}
	return nil
}

// forEachStoredItem decodes every stored item in arrival order and calls fn until it returns
// false.
func forEachStoredItem(tx kv.Tx, fn func(n uint64, it StoredItem) bool) error {
	var derr error
	err := forEachItemRaw(tx, nil, func(n uint64, raw []byte) bool {
		var it StoredItem
		if err := json.Unmarshal(raw, &it); err != nil {
			derr = &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bItems, Err: fmt.Errorf("item %d: %w", n, err)}
			return false
		}
		return fn(n, it)
	})
	if err != nil {
		return err
	}
	return derr
}

// logBatchKey is what makes consecutive schema-8 item records one log record in migrate9to10:
// items of one terminal, epoch and arrival time came in one transaction.
type logBatchKey struct {
	TerminalID string          `json:"terminal_id"`
	Epoch      string          `json:"epoch"`
	ReceivedAt json.RawMessage `json:"received_at"`
}

// migrate9to10 rewrites each run of schema-8 item records of consecutive arrival numbers that
// came in one transaction (one terminal, epoch and arrival time) as one log record, keyed by
// its first number. It walks the bucket once, holding one run at a time.
func migrate9to10(tx kv.Tx) error {
	b := tx.Bucket([]byte(bItems))
	var next []byte // where to go on; nil: the start
	for {
		c := b.Cursor()
		var k, v []byte
		if next == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(next)
		}
		// Skip what is already a log record.
		for k != nil && len(v) > 0 && v[0] != '{' {
			k, v = c.Next()
		}
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("item record %q: key is not an arrival number", k)
		}
		var log itemLog
		var run logBatchKey
		var keys [][]byte
		for ; k != nil && len(v) > 0 && v[0] == '{'; k, v = c.Next() {
			var bk logBatchKey
			if err := json.Unmarshal(v, &bk); err != nil {
				return fmt.Errorf("item record %d: %w", readU64(k), err)
			}
			n := readU64(k)
			if len(keys) > 0 && (len(k) != 8 || n != log.next || bk.TerminalID != run.TerminalID || bk.Epoch != run.Epoch ||
				string(bk.ReceivedAt) != string(run.ReceivedAt) || len(log.buf)+4+len(v) > logRecordMax) {
				break
			}
			run = bk
			run.ReceivedAt = append(json.RawMessage(nil), bk.ReceivedAt...)
			log.add(n, v) // copies v
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, key := range keys[1:] {
			if err := b.Delete(key); err != nil {
				return fmt.Errorf("delete item record %d: %w", readU64(key), err)
			}
		}
		if err := log.flush(tx, nil); err != nil {
			return err
		}
		next = u64(log.next)
	}
}

// logRecordCut is where a transaction's item log records are cut: smaller on a bbolt file,
// where a commit writes the log's last leaf again whole (logRecordMaxBolt), than on JetStream,
// where each record is a message of the commit.
func logRecordCut(bolt bool) int {
	if bolt {
		return logRecordMaxBolt
	}
	return logRecordMax
}
