package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// An inmate leaving a held facility (docs/SCALE.md, "Roster moves between held facilities").
// An inmate's own records (charges, credits, sessions, their account, their statement index,
// what they own) are written by the writer of their facility: its holder, where a gateway
// holds it, whose held state is ahead of the kv state by what it has not projected yet. A
// roster put that takes the inmate out of a held facility (to another facility, or off every
// roster) moves the state's records at once, in its kv transaction; the inmate's own records
// stay the old holder's until it has handed them over:
//
//  1. the roster put records the handover (handovers/<inmate>), marks the inmate record
//     (MovingFrom) and leaves the handover due to the old facility (fanoutdue.go);
//  2. the old facility's holder, draining it, lets go of the inmate (heldFacility.forget, so
//     its scope refuses their records from here), waits for the group commits under way,
//     projects what its held state appended and forgets it (faclog.Holding.Flush);
//  3. then, in one kv transaction, it deletes the handover and the mark, and leaves the
//     inmate's arrival to their new facility's writer, which sends their terminals the
//     inmate's money, sessions, contacts and letters read from the kv state, now current.
//
// Meanwhile nothing writes the inmate's records anywhere else: a batch naming the inmate fails
// for now (errInmateMoving, retried by its terminal), the new facility's holder does not take
// them in (its scope's placed finds the mark), a console call on their money is refused as
// temporary (inmatePlace) or left due (a deposit's credit), and a second roster change of the
// inmate waits for the first. Nothing depends on time: a holder that stopped leaves the
// handover due, drained by the holder that takes the facility up next, whose claim projected
// what the stopped one appended. A facility no gateway holds has nothing unprojected, and its
// inmates leave it in the roster's transaction as they always did.

// bHandovers holds the handovers under way: inmate -> the JSON of a handoverRec. The state's
// root, made on first use.
const bHandovers = "handovers"

// handoverRec is an inmate's records being handed over by the holder of From; To is their new
// facility ("" for an inmate taken off every roster).
type handoverRec struct {
	From string    `json:"from"`
	To   string    `json:"to,omitempty"`
	At   time.Time `json:"at"`
}

// errInmateMoving: the inmate's records are being handed over between facilities' writers; the
// same call succeeds in a few seconds.
type errInmateMoving struct{ inmate, from string }

func (e *errInmateMoving) Error() string {
	return fmt.Sprintf("inmate %s is being moved out of facility %s: try again in a few seconds", e.inmate, e.from)
}

// movingErr is the error of a call on inmate's records while they are handed over from facility
// from: temporary, so a console shows it as "try again" and a terminal sends its batch again.
func movingErr(op, inmate, from string) error {
	return &vocab.Error{Kind: vocab.KindTransient, Op: op, Err: &errInmateMoving{inmate: inmate, from: from}}
}

// handoverOf is the handover of inmate under way as tx reads it, or false.
func handoverOf(tx kv.Tx, inmate string) (handoverRec, bool, error) {
	var h handoverRec
	if tx.Bucket([]byte(bHandovers)) == nil {
		return h, false, nil
	}
	found, err := getJSON(tx, bHandovers, inmate, &h)
	return h, found, err
}

// inmatePlace is the facility whose writer writes inmate's records (fallback for an inmate no
// roster lists), for a call on their money; a handover under way is movingErr.
func inmatePlace(tx kv.Tx, op, inmate, fallback string) (string, error) {
	h, moving, err := handoverOf(tx, inmate)
	if err != nil {
		return "", err
	}
	if moving {
		return "", movingErr(op, inmate, h.From)
	}
	return facilityOf(tx, inmate, fallback), nil
}

// leaveHeld records, in a roster put's transaction, that inmate left facility from, which is
// held (here or by another gateway), for to ("" for no facility): the handover, and its due
// item for from's holder. The inmate record, if it stays, carries MovingFrom (set by the
// caller).
func (f *fanout) leaveHeld(tx kv.Tx, inmate, from, to string, now time.Time) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bHandovers)); err != nil {
		return err
	}
	if err := putJSON(tx, bHandovers, inmate, handoverRec{From: from, To: to, At: now}); err != nil {
		return err
	}
	return f.putDue(tx, from, dueItem{Handover: inmate})
}

// handOver is step 2 and 3 for the due record key of facility, whose items (what else the
// roster put left due to facility: the notice that the inmate left, to its terminals) are
// queued on facility's writer first, and whose handovers are inmates. It returns the last
// transaction's fanout, whose dues (the arrival, where the new facility is held) the caller
// drains once it let go of facility's drain lock (afterCommit).
func (r *Relay) handOver(facility, key string, items []dueItem, inmates []string) (*fanout, error) {
	const op = "hand an inmate's records over"
	hf := r.ready(facility)
	if hf != nil {
		for _, id := range inmates {
			hf.forget(id)
		}
	}
	// Through the facility's writer: its committer runs one group at a time, so once this call
	// returns no group that took an inmate as the facility's is still to commit. Where another
	// gateway holds the facility this is HeldElsewhereError: its holder drains the record.
	if err := r.updateFor(facility, op, func(tx kv.Tx, f *fanout) error {
		for _, it := range items {
			if err := f.queueDue(tx, facility, it); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if hf != nil {
		ctx, cancel := context.WithTimeout(r.ctx, txTimeout)
		err := hf.holding.Flush(ctx)
		cancel()
		if err != nil {
			return nil, ioErr(op, err)
		}
	}
	// The items are queued: a run again of this record (a crash before the end) queues them
	// once more, which terminals take by their ids. The handover's end and the record's
	// removal are one transaction.
	return r.commitOn(r.writes, op, nil, 0, r.fenced(facility, func(tx kv.Tx, f *fanout) error {
		for _, id := range inmates {
			if err := r.endHandover(tx, f, facility, id); err != nil {
				return err
			}
		}
		return deleteKey(tx, bFanoutsDue, key)
	}))
}

// endHandover ends inmate's handover from facility, if it is still under way: the handover and
// the inmate record's mark go, and where the inmate is in a facility now, their arrival there
// is done by its writer.
func (r *Relay) endHandover(tx kv.Tx, f *fanout, facility, inmate string) error {
	h, moving, err := handoverOf(tx, inmate)
	if err != nil || !moving || h.From != facility {
		return err
	}
	if err := deleteKey(tx, bHandovers, inmate); err != nil {
		return err
	}
	var in inmateRec
	found, err := getJSON(tx, bInmates, inmate, &in)
	if err != nil || !found {
		return err
	}
	in.MovingFrom = ""
	if err := putJSON(tx, bInmates, inmate, in); err != nil {
		return err
	}
	return f.arrivedIn(tx, in.FacilityID, in.Inmate)
}

// handoverItems splits a due record's items into its handovers' inmates and the rest.
func handoverItems(items []dueItem) (inmates []string, rest []dueItem) {
	for _, it := range items {
		if it.Handover != "" {
			inmates = append(inmates, it.Handover)
		} else {
			rest = append(rest, it)
		}
	}
	return inmates, rest
}
