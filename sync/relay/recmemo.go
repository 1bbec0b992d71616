package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Records read on every batch, remembered decoded. Each uplink batch reads its terminal's
// record (is it still enrolled?), its facility's (the policy its items are checked against)
// and, for a letter, its inmate's (active? allowed to write?), and decoding them with
// encoding/json was nearly a third of the relay's CPU per one-item letter batch: the facility's
// policy alone, with its departments and notices, some 30 µs. These records change seldom (an
// admin edit, a roster, a hello), so the relay keeps the bytes it last decoded with what they
// decoded to, still reads the record every time, in the transaction that uses it (nothing
// comes from a cache that the store did not just give), and decodes it again only when the
// bytes differ. Equal bytes decode to equal values, so this changes no answer, whoever wrote
// the record (an admin call, another gateway of a shared store, a restored backup).

// recMemo is the last record bytes decoded and what they decoded to. The value is shared by
// every caller that gets it: callers only read it (nothing on the batch path writes into a
// terminal, facility or inmate record it was given, nor into their slices and maps).
type recMemo[T any] struct {
	raw []byte
	v   T
}

// decode returns raw decoded as a record of bucket: what it decoded to last time if raw is
// the same bytes, otherwise decoded now (and remembered; raw is copied, as a store's bytes are
// valid only inside their transaction). A record that does not decode is an error, as getJSON
// says it, and is not remembered.
func (m *recMemo[T]) decode(raw []byte, bucket, key string) (T, error) {
	if m.raw != nil && bytes.Equal(m.raw, raw) {
		return m.v, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: %w", key, err)}
	}
	m.raw, m.v = bytes.Clone(raw), v
	return v, nil
}

// keyedMemo remembers the decoding of each record of one bucket that batches read, by key,
// at most max of them: past that, an entry is dropped (any one: the map's order) for each
// one added, so a relay serving more records than that decodes some of them again, as it
// did before, and holds no more for them.
type keyedMemo[T any] struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*recMemo[T]
}

// read reads bucket[key] in tx, as getJSON would: found is false for a key without a record.
func (m *keyedMemo[T]) read(tx kv.Tx, bucket, key string) (v T, found bool, err error) {
	raw := getRaw(tx, bucket, key)
	if raw == nil {
		return v, false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	memo := m.byKey[key]
	if memo == nil {
		if m.byKey == nil {
			m.byKey = map[string]*recMemo[T]{}
		}
		if len(m.byKey) >= m.max {
			for k := range m.byKey {
				delete(m.byKey, k)
				break
			}
		}
		memo = new(recMemo[T])
		m.byKey[key] = memo
	}
	v, err = memo.decode(raw, bucket, key)
	return v, true, err
}

// Bounds of the relay's memos. Facilities are few (an admin makes each); inmates many, but
// those writing letters at one moment fewer: an entry is about a record's size (half a
// kilobyte for an inmate), so the bound holds the memo under a megabyte.
const (
	facilityMemoMax = 4096
	inmateMemoMax   = 2048
)

// facilityMemo remembers each facility record the batches read, with its policy.
type facilityMemo struct {
	keyedMemo[facilityPolicy]
}

// facilityPolicy is a facility record and the policy its items are checked against.
type facilityPolicy struct {
	fac facilityRec
	pol vocab.Policy
}

// UnmarshalJSON decodes a facility record and works out its policy once.
func (fp *facilityPolicy) UnmarshalJSON(raw []byte) error {
	if err := json.Unmarshal(raw, &fp.fac); err != nil {
		return err
	}
	fp.pol = fp.fac.policy()
	return nil
}

// facilityFor reads the facility record id in tx, as getJSON would, and its policy. A
// facility without a record (none was ever put) is the zero record and the default policy.
func (m *facilityMemo) facilityFor(tx kv.Tx, id string) (facilityRec, vocab.Policy, error) {
	fp, found, err := m.read(tx, bFacilities, id)
	if !found {
		var fac facilityRec
		return fac, fac.policy(), nil
	}
	return fp.fac, fp.pol, err
}

// terminalMemo remembers a connection's terminal record as its batches last read it. Only
// the connection's batch workers use it, one at a time (readLoop starts the next only after
// the last ended), and the worker's transactions, while the worker waits for them (check), so
// it needs no lock.
type terminalMemo struct {
	memo recMemo[terminalRec]
}

// read reads the terminal record id in its own read transaction, as Relay.terminal does.
func (m *terminalMemo) read(r *Relay, id string) (terminalRec, bool, error) {
	var t terminalRec
	var ok bool
	err := r.view("read terminal", func(tx kv.Tx) error {
		raw := getRaw(tx, bTerminals, id)
		if raw == nil {
			return nil
		}
		var err error
		ok = true
		t, err = m.memo.decode(raw, bTerminals, id)
		return err
	})
	return t, ok, err
}

// last is the record read last, if any: the connection's terminal as its previous batch's
// transaction found it enrolled.
func (m *terminalMemo) last() (terminalRec, bool) {
	return m.memo.v, m.memo.raw != nil
}

// checkTx is the check of a batch's transaction that terminal id is still enrolled:
// errRevoked if its record is revoked or gone. It runs first in the transaction that stores
// the batch, so a revocation committed before it (by this relay or by another gateway of a
// shared store) stops the batch, and none can come between the check and the store. A
// terminal's facility, mode and inmate never change once it is enrolled, so the record the
// batch worker took from last (or read) before the transaction names the same terminal.
func (m *terminalMemo) checkTx(tx kv.Tx, id string) error {
	raw := getRaw(tx, bTerminals, id)
	if raw == nil {
		return errRevoked
	}
	t, err := m.memo.decode(raw, bTerminals, id)
	if err != nil {
		return err
	}
	if t.Revoked {
		return errRevoked
	}
	return nil
}

// checkTerminal is the check of the connection's batches (upBatch.check).
func (s *session) checkTerminal(tx kv.Tx) error { return s.term.checkTx(tx, s.id) }

// SteadyRoots are the root buckets a networked store may serve a held facility's reads of by
// the bucket's version (jskv.Options.SteadyRoots): the terminal records, which each batch
// reads for checkTx and only enrollments and revocations write.
func SteadyRoots() [][]byte { return [][]byte{[]byte(bTerminals)} }
