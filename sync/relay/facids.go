package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// Item ids by facility (docs/SCALE.md, "Item ids in a held facility"). A relay on a shared
// store (JetStream) keeps each item id its terminals send in its facility's id records
// (idrecs), grouped by the second the id says it was made, not one key an id in item_ids: a
// group commit of 40 status reports of one facility then writes one record, not 40 keys,
// and the records are what a facility held by one gateway will hold (faclog).
//
// A bbolt file keeps item_ids: there each facility in a group commit costs a leaf page of its
// own, which cost a fifth of the batches a second under tetherload (stop 33), and no gateway
// holds a facility. A test may make a bbolt file keep ids by facility (Config.FacilityIDs),
// so the layout is tested in every run of the suite.
//
// A store never goes back from facility records to item_ids (a resend would not be found).
// It goes the other way once: schema 21 notes the latest time an id in item_ids says it was
// made (kIDsBefore), and an id made before it is looked up there first. A terminal never
// moves between facilities (enrollKeyRule, enrollClaimRule), so a resend reaches the
// facility whose records hold its id.

const (
	// bFacIDs: facility -> its item id records (idrecs: span + "." + n -> entries), schema 21.
	bFacIDs = "fac_ids"
	// kIDLayout is "facility" on a bbolt file made to keep item ids by facility.
	kIDLayout = "item_id_layout"
	// kIDsBefore: no UUIDv7 in item_ids says it was made at or after this (Unix ms, u64); a
	// shared store made at schema 21 or later has none there.
	kIDsBefore = "item_ids_before"
	// kIDsOther: item_ids holds an id that is not a UUIDv7 (u64 1).
	kIDsOther = "item_ids_other"
)

// idIndexMax is how many records' sets a relay's index keeps (under 2 KB each at 4 KiB a
// record of some 43 version 2 entries, so at most some 8 MB): the current second's records of every facility a gateway
// serves (a state's 100, one or two each), many times over; an old resend reads its
// second's records again.
const idIndexMax = 4096

// facIDs is how a relay keeps item ids, read once at open: a store never changes it.
type facIDs struct {
	on bool // by facility; else item_ids alone
	// before, other: what item_ids may hold (kIDsBefore, kIDsOther)
	before uint64
	other  bool
	ix     *idrecs.Index
}

// legacy reports whether item_ids may hold id, which was stored before the switch.
func (ids *facIDs) legacy(id string) bool {
	if ids.before == 0 && !ids.other {
		return false // item_ids holds nothing (a store made at schema 21): no id to parse
	}
	if ms, ok := idrecs.MadeAt(id); ok {
		return ms < ids.before
	}
	return ids.other
}

// migrate20to21 makes the facilities' id records' bucket and notes what item_ids holds, for
// a shared store's switch to them (above). Every key is read: ids are any text the wire takes,
// and an upper-case UUID does not sort by its time.
func migrate20to21(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bFacIDs)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bFacIDs, err)
	}
	var before uint64
	other := false
	if b := tx.Bucket([]byte(bItemIDs)); b != nil {
		if err := b.ForEach(func(k, _ []byte) error {
			if ms, ok := idrecs.MadeAt(string(k)); ok {
				before = max(before, ms+1)
			} else {
				other = true
			}
			return nil
		}); err != nil {
			return fmt.Errorf("read %s: %w", bItemIDs, err)
		}
	}
	m := tx.Bucket([]byte(bMeta))
	if err := m.Put([]byte(kIDsBefore), u64(before)); err != nil {
		return fmt.Errorf("write %s: %w", kIDsBefore, err)
	}
	if other {
		if err := m.Put([]byte(kIDsOther), u64(1)); err != nil {
			return fmt.Errorf("write %s: %w", kIDsOther, err)
		}
	}
	return nil
}

// openIDLayout reads how db keeps item ids, first making a bbolt file that holds no item id
// yet keep them by facility if byFacility asks (Config.FacilityIDs).
func openIDLayout(db kv.Store, byFacility, beside bool) (facIDs, error) {
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	var ids facIDs
	err := retryOpening(ctx, func() error {
		return db.View(ctx, func(tx kv.Tx) error {
			m := tx.Bucket([]byte(bMeta))
			ids = facIDs{
				on:     idsByFacility(tx),
				before: readU64(m.Get([]byte(kIDsBefore))),
				other:  readU64(m.Get([]byte(kIDsOther))) == 1,
			}
			return nil
		})
	})
	if err != nil {
		return ids, fmt.Errorf("read how the store keeps item ids: %w", err)
	}
	if byFacility && !ids.on && !beside {
		err := retryOpening(ctx, func() error {
			return db.Update(ctx, func(tx kv.Tx) error {
				if k, _ := tx.Bucket([]byte(bItemIDs)).Cursor().First(); k != nil {
					return errHoldsIDs
				}
				ids.on = true
				return tx.Bucket([]byte(bMeta)).Put([]byte(kIDLayout), []byte("facility"))
			})
		})
		if err != nil && !errors.Is(err, errHoldsIDs) {
			return ids, fmt.Errorf("keep item ids by facility: %w", err)
		}
	}
	if ids.on {
		ids.ix = idrecs.NewIndex(idIndexMax, 0)
	}
	return ids, nil
}

// idsByFacility reports whether the store tx reads keeps item ids by facility.
func idsByFacility(tx kv.Tx) bool {
	return boltkv.BoltTx(tx) == nil || string(tx.Bucket([]byte(bMeta)).Get([]byte(kIDLayout))) == "facility"
}

// verifyIDRecords adds a problem for each span of a facility's id records that a look-up
// cannot read whole (findDamagedSpans, which relayd repair-ids rebuilds), and for each record
// not named span.n, which no look-up reads.
func verifyIDRecords(tx kv.Tx, add func(check, format string, args ...any)) {
	root := tx.Bucket([]byte(bFacIDs))
	if root == nil {
		add("id_records", "bucket %s is missing", bFacIDs)
		return
	}
	_ = root.ForEachBucket(func(fac []byte) error {
		return root.Bucket(fac).ForEach(func(k, _ []byte) error {
			if _, ok := recordNumber(k); !ok {
				add("id_records", "facility %s: record %q is not named span.n", fac, k)
			}
			return nil
		})
	})
	for _, d := range findDamagedSpans(tx) {
		add("id_records", "facility %s: span %s: %s (relayd repair-ids rebuilds it)", d.facility, d.span, d.why)
	}
}

// errHoldsIDs: a store that holds item ids in item_ids keeps them there.
var errHoldsIDs = errors.New("the store holds item ids in item_ids")

// txIDs is one group commit's item id records: each facility's that its calls looked ids up
// in or added to, written once after its last call (committer.commit), so that a group of
// one facility's status reports appends one record rather than one a call.
type txIDs struct {
	tx   kv.Tx
	ix   *idrecs.Index
	recs map[string]*idrecs.Records
}

// of is facility's records.
func (g *txIDs) of(facility string) (*idrecs.Records, error) {
	if recs, ok := g.recs[facility]; ok {
		return recs, nil
	}
	if facility == "" {
		return nil, errors.New("item ids: the terminal has no facility")
	}
	root := g.tx.Bucket([]byte(bFacIDs))
	if root == nil {
		return nil, fmt.Errorf("item ids: no %s bucket", bFacIDs)
	}
	b := root.Bucket([]byte(facility))
	if b == nil {
		var err error
		if b, err = root.CreateBucket([]byte(facility)); err != nil {
			return nil, fmt.Errorf("item ids: make the records of facility %s: %w", facility, err)
		}
	}
	recs := g.ix.In(b, facility)
	if g.recs == nil {
		g.recs = map[string]*idrecs.Records{}
	}
	g.recs[facility] = recs
	return recs, nil
}

// flush writes what the group's calls added.
func (g *txIDs) flush() error {
	for facility, recs := range g.recs {
		if err := recs.Flush(); err != nil {
			return fmt.Errorf("item ids of facility %s: %w", facility, err)
		}
	}
	return nil
}

// findItemID is the record of item id as terminal t's facility knows it: where it was first
// stored, if it was.
func (r *Relay) findItemID(tx kv.Tx, f *fanout, t TerminalInfo, id string) (itemRef, bool, error) {
	var ref itemRef
	if !r.ids.on || r.ids.legacy(id) {
		found, err := getJSON(tx, bItemIDs, id, &ref)
		if err != nil || found || !r.ids.on {
			return ref, found, err
		}
	}
	recs, err := r.idRecords(f, t)
	if err != nil {
		return ref, false, err
	}
	e, found, err := recs.Find(id)
	if err != nil || !found {
		return ref, false, err
	}
	return itemRef{Hash: e.Hash, TerminalID: e.Terminal, Epoch: e.Epoch, Seq: e.Seq, Refused: e.Refused}, true, nil
}

// addItemID records that item id was first stored as ref, by terminal t; findItemID found it
// nowhere.
func (r *Relay) addItemID(tx kv.Tx, f *fanout, t TerminalInfo, id string, ref itemRef) error {
	if !r.ids.on {
		// Item ids are UUIDv7s, made in time order (kv.HintAppended): half-full pages doubled
		// what this bucket wrote per letter.
		ids := tx.Bucket([]byte(bItemIDs))
		kv.HintAppended(ids)
		if err := ids.Put([]byte(id), encodeItemRef(ref)); err != nil {
			return fmt.Errorf("write %s record %q: %w", bItemIDs, id, err)
		}
		return nil
	}
	recs, err := r.idRecords(f, t)
	if err != nil {
		return err
	}
	return recs.Add(idrecs.Ref{ID: id, Terminal: ref.TerminalID, Epoch: ref.Epoch, Seq: ref.Seq, Hash: ref.Hash, Refused: ref.Refused})
}

func (r *Relay) idRecords(f *fanout, t TerminalInfo) (*idrecs.Records, error) {
	if f == nil || f.ids == nil {
		return nil, errors.New("item ids: not in a group commit") // the committer gives each call the group's
	}
	return f.ids.of(t.FacilityID)
}

// idKeys is what findItemID reads for id on a shared store, for the group's prefetch: the
// id's record in item_ids if it may be there, and the first two of its span's records (a busy
// second fills more than one).
func (ids *facIDs) keys(l *keyList, facility, id string) {
	if ids.legacy(id) {
		l.add(bItemIDs, id)
	}
	span := idrecs.Span(id)
	for n := range 2 {
		l.add(bFacIDs, facility+"/"+idrecs.Key(span, n))
	}
}

// migrate27to28 changes no record. From schema 28 a facility's id records take entries of
// idrecs' version 2 (each id, terminal and epoch a UUID's 16 bytes, the hash its 32: 96 bytes
// an entry where version 1 took 183), beside the version 1 entries they hold. The
// schema number is what keeps a relayd of an older build, which reads version 1 alone, from
// opening a store that holds them (docs/SCALE.md, "Denser id records").
func migrate27to28(kv.Tx) error { return nil }
