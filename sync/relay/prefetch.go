package relay

import (
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
	"slices"
)

// Keys a write is known to read, given to the store before the group commit runs its write
// functions (commit.go), so that a networked store fetches them together rather than one
// round trip after another as the functions ask (kv.Prefetcher; docs/SCALE.md "Where a
// gateway's time goes"). A hint only: the functions read what they read, and every read is
// validated at commit as before, so a key named here that a function does not read costs a
// fetch and nothing else, and a key it reads that is not named here costs the round trip it
// always did.

// storeKey is the kv key of a logical key of one of the relay's buckets: an owner-keyed
// bucket's key lives in its owner's nested bucket (slot). ok is false for a key slot would
// refuse.
func storeKey(bucket, key string) (kv.Key, bool) {
	if key == "" {
		return kv.Key{}, false
	}
	if !ownerKeyed(bucket) {
		return kv.Key{Path: [][]byte{[]byte(bucket)}, Key: []byte(key)}, true
	}
	owner, rest, err := splitOwner(bucket, key)
	if err != nil {
		return kv.Key{}, false
	}
	return kv.Key{Path: [][]byte{[]byte(bucket), []byte(owner)}, Key: []byte(rest)}, true
}

// keyList collects hinted keys.
type keyList []kv.Key

func (l *keyList) add(bucket, key string) {
	if k, ok := storeKey(bucket, key); ok {
		*l = append(*l, k)
	}
}

// batchKeys is what storing batches of terminal t reads whatever its items hold: the
// connection's owner record, the terminal's and its facility's records, each batch's
// high-water mark, each new item's id where the store keeps it (ids), and what an item's kind reads by the ids in its body
// (an account's usage record, balance and inmate for money; a letter's records for a
// message). Items at or below the high-water mark (resends) read other keys; they are rare.
func batchKeys(t TerminalInfo, own *owner, batches []upBatch, preps [][]prepared, ids *facIDs) []kv.Key {
	var l keyList
	if own != nil {
		l.add(bOwners, t.ID)
	}
	l.add(bTerminals, t.ID)
	l.add(bFacilities, t.FacilityID)
	l.add(bStampDue, t.ID)
	status := false
	for i, b := range batches {
		l.add(bDedupe, dedupeKey(t.ID, b.Epoch))
		for j, it := range b.Items {
			if ids.on {
				ids.keys(&l, t.FacilityID, it.ID)
			} else {
				l.add(bItemIDs, it.ID)
			}
			if it.Kind == wire.UpDeviceStatus && !status {
				l.add(bTermSeen, t.ID) // its queue (termseen.go): read unless the connection knows it
				status = true
			}
			if i < len(preps) && j < len(preps[i]) {
				bodyKeys(&l, it.Kind, preps[i][j].up.Value)
			}
		}
	}
	return l
}

// bodyKeys adds what applying an item of kind with the decoded body v reads by the ids in it.
func bodyKeys(l *keyList, kind string, v any) {
	switch b := v.(type) {
	case *vocab.Charge:
		l.add(bCharges, b.InmateID+"/"+b.RecordID)
		l.add(bBalances, b.InmateID)
		l.add(bInmates, b.InmateID)
	case *vocab.Credit:
		l.add(bCredits, b.InmateID+"/"+b.RecordID)
		l.add(bBalances, b.InmateID)
		l.add(bInmates, b.InmateID)
	case *vocab.Message:
		l.add(bLetterAt, b.ID)
		l.add(bPREA, b.ID)
		l.add(bInmates, b.InmateID)
		if kind == wire.UpMessage && b.Peer != "" {
			l.add(bContacts, b.Peer)
		}
	}
}

// updateAsKeys is update for a write made on behalf of a terminal's connection: fn runs only
// while the connection still owns the terminal (own; nil: no claims, a single relay), with
// the keys fn is known to read and the arrival numbers it may take (updateKeys), on the
// terminal's facility's held state where this relay holds it (holds.go).
func (r *Relay) updateAsKeys(own *owner, id, facility, op string, keys func() []kv.Key, numbers int, fn func(tx kv.Tx, f *fanout) error) error {
	w := r.writerFor(facility)
	if w == r.writes && facility != "" {
		fn = r.fenced(facility, fn)
		if keys != nil {
			ks := keys
			keys = func() []kv.Key { return append(ks(), kv.Key{Path: [][]byte{[]byte(bHolds)}, Key: []byte(facility)}) }
		}
	}
	if own == nil {
		return r.updateOn(w, op, keys, numbers, fn)
	}
	held := w != r.writes
	if held && keys != nil {
		ks := keys // the owner record is not read (ownerTx)
		keys = func() []kv.Key {
			return slices.DeleteFunc(ks(), func(k kv.Key) bool { return len(k.Path) == 1 && string(k.Path[0]) == bOwners })
		}
	}
	return r.updateOn(w, op, keys, numbers, func(tx kv.Tx, f *fanout) error {
		if err := ownerTx(tx, id, own, held); err != nil {
			return err
		}
		return fn(tx, f)
	})
}

// prefetchPositions names, for a prune of a facility's downlink log, each terminal's
// positions (acknowledged, and below which the log holds nothing for it), which the prune
// reads for every terminal of the facility's route list (terms): two round trips a terminal
// otherwise. Walking terms here reads its values ahead, so the prune's own walk reads none.
func prefetchPositions(tx kv.Tx, terms kv.Bucket) {
	if !kv.Prefetches(tx) {
		return // bbolt: the walk would be for nothing
	}
	var keys []kv.Key
	c := terms.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, kv.Key{Path: [][]byte{[]byte(bDownAcked)}, Key: k}, kv.Key{Path: [][]byte{[]byte(bDownFrom)}, Key: k})
	}
	kv.Prefetch(tx, keys)
}

// prefetchLog names the numbers first..last of a facility's downlink log, which a prune reads
// one by one (by number, not with a cursor: pruneFacilityDown says why).
func prefetchLog(tx kv.Tx, facility string, first, last uint64) {
	if last < first || !kv.Prefetches(tx) {
		return
	}
	keys := make([]kv.Key, 0, last-first+1)
	path := [][]byte{[]byte(bFacDown), []byte(facility)}
	for n := first; n <= last; n++ {
		keys = append(keys, kv.Key{Path: path, Key: u64(n)})
	}
	kv.Prefetch(tx, keys)
}

// ackKeys is what a connection's acknowledgement write reads (flushAck): its owner record,
// its terminal's record when it carries the hello's, its acknowledged position and whether it
// has a downlink bucket of its own (the bucket's lookup: a Key without a key).
func ackKeys(id string, own *owner, seen bool) []kv.Key {
	var l keyList
	if own != nil {
		l.add(bOwners, id)
	}
	if seen {
		l.add(bTerminals, id)
		l.add(bTermSeen, id)
	}
	l.add(bDownAcked, id)
	return append(l, kv.Key{Path: [][]byte{[]byte(bDown), []byte(id)}})
}
