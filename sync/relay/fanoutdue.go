package relay

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// What a kv-path call would do to a held facility's records, due (SCALE.md, "The second
// writer"). A call that writes the state's records in a kv transaction and then the
// facility's (queues what changed for its terminals, writes its lists, refunds a stamp,
// enrolls or revokes a terminal) is two transactions where this relay holds the facility: its
// kv transaction cannot write the facility's records, which are the holder's, so it records
// what it would have done here, under the facility, due. Once it commits, the facility's
// writer does it and the record goes (drainDue). A crash between them leaves the record,
// which the relay's next start or a gateway's beat drains (finishDue). Where the facility is
// not held here, the call does it all in its own transaction, as before.
//
// A facility's records are drained in the order they were made, each facility by one drain
// at a time on a gateway: an older policy queued after a newer one would leave the
// terminals on the older. A record drained twice (a crash after it was done, before its
// removal) is done twice: terminals apply downlink items by their ids, a blind write writes
// the same again, and a refund, an enrollment's or a revocation's half looks first whether it
// was done.

// bFanoutsDue holds the fan-outs due, one nested bucket per facility (ownerKeyed, from schema
// 25): facility + "/" + a UUIDv7 (made in time order) -> the JSON of a dueRecord. The state's
// root, made on first use. A drain lists its own facility's records alone: on JetStream a
// listing reads every key of its bucket, and a bucket for the whole state made each drain's
// cost grow with what waited for every facility (10,000 enrollments crawled, SCALE.md).
const bFanoutsDue = "fanouts_due"

// dueRecord is what one call left due to one facility.
type dueRecord struct {
	// At is when the call ran, by the relay's clock: a gateway's sweep leaves younger
	// records to the call at work on them.
	At    time.Time `json:"at"`
	Items []dueItem `json:"items"`
}

// dueItem is one thing a call would have done to the facility's records: a downlink item
// queued for one terminal (Terminal, its own bucket) or for the facility's terminals in Scope
// (fanout.queue); a record written blind, that is, whatever the call read (Put or Delete, the
// root, and Key and Value); or a letter's stamp refunded (StampRefund), which reads the
// inmate's charge and account on the facility's writer, and which is done once however often
// it is asked.
type dueItem struct {
	Terminal    string          `json:"terminal,omitempty"`
	Scope       scope           `json:"scope"`
	Inmate      string          `json:"inmate,omitempty"`
	Except      string          `json:"except,omitempty"`
	Kind        string          `json:"kind,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	Put         string          `json:"put,omitempty"`
	Delete      string          `json:"delete,omitempty"`
	Key         string          `json:"key,omitempty"`
	Value       []byte          `json:"value,omitempty"`
	StampRefund *stampRefund    `json:"stamp_refund,omitempty"`
	// Enrolled and Revoked: a terminal's enrollment or revocation, whose facility half
	// (enrollFacilityTx, revokeFacilityTx) is the holder's.
	Enrolled *dueEnrolled `json:"enrolled,omitempty"`
	Revoked  string       `json:"revoked,omitempty"`
	// Handover: an inmate who left the facility, whose records its holder hands over
	// (handover.go). Arrived: an inmate who came to the facility, whose terminals are sent the
	// inmate's money, sessions, contacts and letters (arrive).
	Handover string `json:"handover,omitempty"`
	Arrived  string `json:"arrived,omitempty"`
}

// dueEnrolled is a terminal enrolled, and when.
type dueEnrolled struct {
	Terminal string    `json:"terminal"`
	At       time.Time `json:"at"`
}

// stampRefund is what refundStampTx needs of a rejected letter.
type stampRefund struct {
	LetterID   string    `json:"letter_id"`
	InmateID   string    `json:"inmate_id"`
	FacilityID string    `json:"facility_id"`
	At         time.Time `json:"at"`
}

// deferTo says whether what this call queues for facility waits for its holder: a call in a
// kv transaction for a facility this relay or another gateway holds (heldelsewhere.go). What
// is due to a facility held elsewhere is drained by its holder, told so (notifyDue).
func (f *fanout) deferTo(facility string) bool {
	if !f.kvPath {
		return false
	}
	if f.r.held.of(facility) != nil {
		return true
	}
	err := f.r.heldElsewhere(f.tx, facility)
	var he *HeldElsewhereError
	switch {
	case errors.As(err, &he):
		return true
	case err != nil:
		f.elsewhere = cmp.Or(f.elsewhere, err) // who holds it cannot be read: the call fails
		return true
	}
	return false
}

// putDue records it in this call's record of what is due to facility.
func (f *fanout) putDue(tx kv.Tx, facility string, it dueItem) error {
	if f.dueKey == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("name a fan-out due: %w", err)
		}
		f.dueKey = id.String()
	}
	if f.due == nil {
		f.due = map[string]*dueRecord{}
	}
	rec := f.due[facility]
	if rec == nil {
		rec = &dueRecord{At: f.r.clock.Now().UTC()}
		f.due[facility] = rec
	}
	rec.Items = append(rec.Items, it)
	if _, err := tx.CreateBucketIfNotExists([]byte(bFanoutsDue)); err != nil {
		return err
	}
	return putJSON(tx, bFanoutsDue, facility+"/"+f.dueKey, rec)
}

// putIn sets bucket[key] to val, a record of facility's the call writes blind: at once, or
// due where the call runs in a kv transaction and this relay holds the facility. What the
// call reads afterwards does not see a write made due.
func (f *fanout) putIn(tx kv.Tx, facility, bucket, key string, val []byte) error {
	if f.deferTo(facility) {
		return f.putDue(tx, facility, dueItem{Put: bucket, Key: key, Value: val})
	}
	return putRaw(tx, bucket, key, val)
}

// deleteIn removes bucket[key], a record of facility's, as putIn writes one.
func (f *fanout) deleteIn(tx kv.Tx, facility, bucket, key string) error {
	if f.deferTo(facility) {
		return f.putDue(tx, facility, dueItem{Delete: bucket, Key: key})
	}
	return deleteKey(tx, bucket, key)
}

// refundStamp refunds rejected letter o's stamp (refundStampTx) on the writer of the
// inmate's facility: at once, or due.
func (f *fanout) refundStamp(tx kv.Tx, o Outbound, now time.Time) error {
	facility, err := inmatePlace(tx, "refund a stamp", o.InmateID, o.FacilityID)
	if err != nil {
		return err
	}
	if f.deferTo(facility) {
		return f.putDue(tx, facility, dueItem{StampRefund: &stampRefund{LetterID: o.ID, InmateID: o.InmateID, FacilityID: o.FacilityID, At: now}})
	}
	return refundStampTx(tx, f, o, now)
}

// enrolledIn does terminal t's enrollment's facility half (enrollFacilityTx): at once, or due.
func (f *fanout) enrolledIn(tx kv.Tx, t TerminalInfo, now time.Time) error {
	if f.deferTo(t.FacilityID) {
		return f.putDue(tx, t.FacilityID, dueItem{Enrolled: &dueEnrolled{Terminal: t.ID, At: now}})
	}
	return f.r.enrollFacilityTx(tx, f, t, now)
}

// revokedIn does terminal id's revocation's facility half (revokeFacilityTx): at once, or due.
func (f *fanout) revokedIn(tx kv.Tx, facility, id string) error {
	if f.deferTo(facility) {
		return f.putDue(tx, facility, dueItem{Revoked: id})
	}
	return revokeFacilityTx(tx, facility, id)
}

// arrivedIn sends inmate in's terminals in facility what an inmate new there needs (arrive): at
// once, or due. Its holder reads its own list of terminals, which the kv state's may lack a
// terminal of (enrolled on the held state, not projected yet).
func (f *fanout) arrivedIn(tx kv.Tx, facility string, in vocab.Inmate) error {
	if facility == "" {
		return nil
	}
	if f.deferTo(facility) {
		return f.putDue(tx, facility, dueItem{Arrived: in.ID})
	}
	return f.r.arrive(tx, f, facility, []vocab.Inmate{in})
}

// arrive sends facility's terminals that serve them the inmates' money, sessions, contacts and
// letters, as for inmates new to the facility, with their mail read once for all of them.
func (r *Relay) arrive(tx kv.Tx, f *fanout, facility string, inmates []vocab.Inmate) error {
	m, err := mailOf(tx, inmates, nil, false) // kiosks too: no copies of letters
	if err != nil {
		return err
	}
	for _, in := range inmates {
		if err := forTerminals(tx, facility, in.ID, func(termID string) error {
			return r.snapshotInmate(tx, f, termID, in, m)
		}); err != nil {
			return err
		}
	}
	return nil
}

// queueDue does it as the call that recorded it would have (on facility's writer).
func (f *fanout) queueDue(tx kv.Tx, facility string, it dueItem) error {
	switch {
	case it.Arrived != "":
		var in inmateRec
		if ok, err := getJSON(tx, bInmates, it.Arrived, &in); err != nil || !ok || in.FacilityID != facility || in.MovingFrom != "" {
			return err // moved on since, or off the roster: what follows says so
		}
		return f.r.arrive(tx, f, facility, []vocab.Inmate{in.Inmate})
	case it.Put != "":
		return putRaw(tx, it.Put, it.Key, it.Value)
	case it.Delete != "":
		return deleteKey(tx, it.Delete, it.Key)
	case it.Revoked != "":
		return revokeFacilityTx(tx, facility, it.Revoked)
	case it.Enrolled != nil:
		var t terminalRec
		if ok, err := getJSON(tx, bTerminals, it.Enrolled.Terminal, &t); err != nil || !ok || t.Revoked {
			return err // revoked since: its revocation's half follows
		}
		return f.r.enrollFacilityTx(tx, f, t.TerminalInfo, it.Enrolled.At)
	case it.StampRefund != nil:
		s := it.StampRefund
		return refundStampTx(tx, f, Outbound{Message: vocab.Message{ID: s.LetterID, InmateID: s.InmateID}, FacilityID: s.FacilityID}, s.At)
	}
	if it.Terminal != "" {
		return f.appendRaw(it.Terminal, it.Kind, it.Body)
	}
	if it.Scope == scopeTablets {
		return f.queueRaw(facility, it.Scope, it.Inmate, it.Except, it.Kind, it.Body)
	}
	return f.queue(facility, it.Scope, it.Inmate, it.Except, it.Kind, it.Body)
}

// dueLocks are the relay's locks of draining, one per facility.
type dueLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

func (d *dueLocks) of(facility string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]*sync.Mutex{}
	}
	if d.m[facility] == nil {
		d.m[facility] = &sync.Mutex{}
	}
	return d.m[facility]
}

// drainDue queues what is due to facility on its writer, record by record in the order they
// were made, and removes each record once its items are queued. It says how many records it
// drained.
func (r *Relay) drainDue(facility string) (int, error) { return r.drainDueFrom(facility, 0) }

// drainDueFrom is drainDue reading the records no older than pos, a position another gateway's
// note handed over (listenDue).
func (r *Relay) drainDueFrom(facility string, pos uint64) (int, error) {
	if h := r.hooks.dueDrain; h != nil && !h(facility) {
		return 0, nil
	}
	// What a handover leaves due to another facility (the inmate's arrival) is drained once
	// this facility's lock is let go: two facilities handing inmates to each other would
	// each wait for the other's lock.
	var after []*fanout
	n, err := r.drainDueLocked(facility, pos, &after)
	for _, f := range after {
		r.afterCommit("hand an inmate's records over", f)
	}
	return n, err
}

// drainDueLocked is drainDueFrom under facility's drain lock; the handovers' commits whose
// dues are to be drained after it are added to after.
func (r *Relay) drainDueLocked(facility string, pos uint64, after *[]*fanout) (int, error) {
	const op = "queue the fan-outs due"
	mu := r.draining.of(facility)
	mu.Lock()
	defer mu.Unlock()
	type record struct {
		key   string
		items []dueItem
	}
	var recs []record
	// The records are read as of their own moment (currentViewFrom): one this gateway's call
	// left, or another's that told it so (its note's position, pos), is there; one committed
	// meanwhile is drained by the call that left it, after its own commit. A View here ran
	// again at every record a concurrent call put under the facility, and read again every key
	// it had listed, the drained ones' tombstones too, from the leader.
	err := r.currentViewFrom(op, pos, func(tx kv.Tx) error {
		recs = recs[:0]
		if tx.Bucket([]byte(bFanoutsDue)) == nil {
			return nil
		}
		return forEachRaw(tx, bFanoutsDue, facility+"/", func(k string, raw []byte) bool {
			var rec dueRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				r.logf("relay: fan-out due %s does not decode, left in place: %v", k, err)
				return true
			}
			recs = append(recs, record{k, rec.Items})
			return true
		})
	})
	if err != nil {
		return 0, err
	}
	for i, rec := range recs {
		if inmates, rest := handoverItems(rec.items); len(inmates) > 0 {
			f, err := r.handOver(facility, rec.key, rest, inmates)
			if f != nil {
				*after = append(*after, f)
			}
			if err != nil {
				return i, err
			}
			continue
		}
		if err := r.updateFor(facility, op, func(tx kv.Tx, f *fanout) error {
			for _, it := range rec.items {
				if err := f.queueDue(tx, facility, it); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return i, err
		}
		if err := r.update(op, func(tx kv.Tx, _ *fanout) error { return deleteKey(tx, bFanoutsDue, rec.key) }); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

// finishFanouts drains the fan-outs due whose oldest record was made at least age before now,
// for the facilities this gateway serves (all, on a relay without homes). It reads each
// served facility's oldest record only.
func (r *Relay) finishFanouts(now time.Time, age time.Duration) (int, error) {
	var facilities []string
	err := r.currentViewFrom("find the fan-outs due", 0, func(tx kv.Tx) error {
		facilities = facilities[:0]
		root := tx.Bucket([]byte(bFanoutsDue))
		if root == nil {
			return nil
		}
		var all []string
		if err := root.ForEachBucket(func(name []byte) error { all = append(all, string(name)); return nil }); err != nil {
			return fmt.Errorf("list %s: %w", bFanoutsDue, err)
		}
		for _, facility := range all {
			if !r.servesHere(facility) {
				continue
			}
			old := false
			if err := forEachRaw(tx, bFanoutsDue, facility+"/", func(_ string, raw []byte) bool {
				var rec dueRecord
				// An undecodable record is drainDue's to name.
				old = json.Unmarshal(raw, &rec) != nil || now.Sub(rec.At) >= age
				return false
			}); err != nil {
				return err
			}
			if old {
				facilities = append(facilities, facility)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, facility := range facilities {
		n, err := r.drainDue(facility)
		total += n
		if err != nil {
			return total, err
		}
		r.logf("relay: %d fan-outs due to facility %s queued after they were cut off", n, facility)
	}
	return total, nil
}

// migrate24to25 nests the fan-outs due under their facilities (bFanoutsDue). A key that names
// no facility stays where it is; no drain reads it.
func migrate24to25(tx kv.Tx) error {
	b := tx.Bucket([]byte(bFanoutsDue))
	if b == nil {
		return nil // made on first use
	}
	return nestByOwner(b, bFanoutsDue, func(k, _ []byte) (string, []byte, error) {
		facility, rest, err := splitOwner(bFanoutsDue, string(k))
		if err != nil || checkID("", "", facility) != nil {
			return "", nil, nil
		}
		return facility, []byte(rest), nil
	})
}

// finishDue finishes what a crash cut in two, made at least age before now: deposits not yet
// credited (depositdue.go), refunds not yet debited (refunddue.go) and fan-outs not yet
// queued; and the state's records a held facility's entries wrote due, not yet written
// (statedue.go).
func (r *Relay) finishDue(now time.Time, age time.Duration) error {
	_, derr := r.finishDeposits(now, age)
	_, rerr := r.finishRefunds(now, age)
	_, ferr := r.finishFanouts(now, age)
	serr := r.finishStateDue()
	return errors.Join(derr, rerr, ferr, serr)
}
