package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

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
	r     *Relay
	tx    kv.Tx
	woken []string
	logs  []string
	// inmates remembers the inmate records read in this write call (fanout.inmateFor).
	inmates map[string]inmateLookup
	// counts are the uplink items this write stored, counted once it commits (metrics.go).
	counts []itemCount
}

func (f *fanout) reset(tx kv.Tx) {
	f.tx = tx
	f.woken = f.woken[:0]
	f.logs = f.logs[:0]
	f.counts = f.counts[:0]
	clear(f.inmates)
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

// toTablets queues kind/body for the tablets bound to the inmate, except the terminal `except`:
// a letter's status for a sender that takes it in the ack (hello ack_letters).
func (f *fanout) toTablets(facility, inmateID, except, kind string, body any) error {
	return f.queue(facility, scopeTablets, inmateID, except, kind, body)
}

// queue queues kind/body for the terminals of facility in scope sc, except `except`. The body
// is encoded once, at the first terminal it goes to: none (a letter's status with no tablet to
// tell, the common case) costs no encoding.
func (f *fanout) queue(facility string, sc scope, inmateID, except, kind string, body any) error {
	var raw json.RawMessage
	return f.eachRoute(facility, sc, inmateID, except, func(id string) error {
		if raw == nil {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return fmt.Errorf("encode downlink %s: %w", kind, err)
			}
		}
		return f.appendRaw(id, kind, raw)
	})
}

func (f *fanout) queueRaw(facility string, sc scope, inmateID, except, kind string, raw json.RawMessage) error {
	return f.eachRoute(facility, sc, inmateID, except, func(id string) error { return f.appendRaw(id, kind, raw) })
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

func (f *fanout) appendRaw(id, kind string, raw json.RawMessage) error {
	b, err := f.tx.Bucket([]byte(bDown)).CreateBucketIfNotExists([]byte(id))
	if err != nil {
		return fmt.Errorf("downlink of %s: %w", id, err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("downlink of %s: %w", id, err)
	}
	// raw came from json.Marshal once for every recipient: written as it is, not checked and
	// compacted again per terminal. kind is one of wire's constants (plain letters and _).
	enc := make([]byte, 0, len(raw)+len(kind)+48)
	enc = append(enc, `{"seq":`...)
	enc = strconv.AppendUint(enc, seq, 10)
	enc = append(enc, `,"kind":`...)
	enc = strconv.AppendQuote(enc, kind)
	enc = append(enc, `,"body":`...)
	enc = append(enc, raw...)
	enc = append(enc, '}')
	if err := b.Put(u64(seq), enc); err != nil {
		return fmt.Errorf("queue downlink %s for %s: %w", kind, id, err)
	}
	if len(f.woken) == 0 || f.woken[len(f.woken)-1] != id {
		f.woken = append(f.woken, id)
	}
	return nil
}

// downState is where a terminal's downlink stands: last queued and last acknowledged seq.
func downState(tx kv.Tx, id string) (last, acked uint64) {
	if b := tx.Bucket([]byte(bDown)).Bucket([]byte(id)); b != nil {
		last = b.Sequence()
	}
	return last, readU64(tx.Bucket([]byte(bDownAcked)).Get([]byte(id)))
}

// pendingDown reads up to maxItems items (about maxBytes) after seq `after`.
func (r *Relay) pendingDown(id string, after uint64, maxItems, maxBytes int) ([]wire.DownItem, error) {
	raw, _, err := r.pendingDownRaw(id, after, maxItems, maxBytes)
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
// stored (the JSON of a wire.DownItem, see appendRaw), and the seq of the last one.
func (r *Relay) pendingDownRaw(id string, after uint64, maxItems, maxBytes int) (items [][]byte, last uint64, err error) {
	err = r.view("read downlink", func(tx kv.Tx) error {
		items, last = items[:0], 0
		b := tx.Bucket([]byte(bDown)).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		size := 0
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			if len(items) >= maxItems || (len(items) > 0 && size+len(v) > maxBytes) {
				break
			}
			// A value is copied out (bbolt's memory is only valid in the transaction) and
			// checked, so a damaged record is the relay's error, not a frame the terminal
			// refuses as malformed.
			if !json.Valid(v) || !bytes.HasPrefix(v, []byte(`{"seq":`)) {
				return fmt.Errorf("downlink %s item %d: stored record is not a downlink item", id, readU64(k))
			}
			items = append(items, bytes.Clone(v))
			last = readU64(k)
			size += len(v)
		}
		return nil
	})
	return items, last, err
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
func (r *Relay) uplinkHigh(id, epoch string) (uint64, error) {
	var high uint64
	err := r.view("read uplink position", func(tx kv.Tx) error {
		high = readU64(tx.Bucket([]byte(bDedupe)).Get([]byte(dedupeKey(id, epoch))))
		return nil
	})
	return high, err
}

func (r *Relay) downPosition(id string) (last, acked uint64, err error) {
	err = r.view("read downlink position", func(tx kv.Tx) error {
		last, acked = downState(tx, id)
		return nil
	})
	return last, acked, err
}

// ackDown records that terminal id applied every item up to seq and drops them; it returns the
// cursor now stored. A seq beyond what was ever queued is clamped. It is one transaction: the
// connection calls it at the hello and then only now and then (flushAck), never per down_ack.
func (r *Relay) ackDown(id string, seq uint64) (uint64, error) {
	var cur uint64
	err := r.update("acknowledge downlink", func(tx kv.Tx, f *fanout) error {
		cur = 0
		return ackDownTx(tx, f, id, seq, &cur)
	})
	return cur, err
}

// ackDownTx is ackDown's write inside a transaction; cur receives the cursor now stored.
func ackDownTx(tx kv.Tx, f *fanout, id string, seq uint64, cur *uint64) error {
	last, acked := downState(tx, id)
	if seq > last {
		f.logf("relay: terminal %s acknowledged downlink %d beyond the last queued %d; clamped", id, seq, last)
		seq = last
	}
	*cur = acked
	if seq <= acked {
		return nil
	}
	if err := pruneDown(tx, id, seq); err != nil {
		return err
	}
	*cur = seq
	return tx.Bucket([]byte(bDownAcked)).Put([]byte(id), u64(seq))
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
