package relay

import (
	"encoding/json"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Stamps: under a policy that prices letters per message, a terminal charges a stamp on each
// letter to a contact (kiosk/stamps.go) and forwards it as a charge item right after the
// letter. The relay does not take the terminal's word for the money: it records a stamp only
// for a letter it holds from that terminal (or the terminal it replaced) and inmate, for the
// amount the facility's policy charges for that letter; and only the relay gives a stamp back,
// when its staff reject the letter, as a credit it sends to the inmate's terminals itself.

// stampPrice is what policy p charges a stamp, 0 when it charges none.
func stampPrice(p vocab.Policy) vocab.Cents {
	if !p.ChargesStamps() {
		return 0
	}
	return p.StampPrice
}

// notePolicyChange keeps the stamp price the facility charged before p replaces its policy:
// a terminal offline across the change still stamps at the old price, and that is accepted
// (see checkStamp). A change that leaves the price alone keeps the earlier previous price.
func notePolicyChange(fac *facilityRec, p vocab.Policy) {
	if old := stampPrice(fac.policy()); old != stampPrice(p) {
		fac.PrevStampPrice = old
	}
}

// checkStamp decides a stamp charge c from terminal t ("" lets it through). The rule for a
// policy change in flight: the amount must be the stamp price of the policy in force now, or
// of the one it replaced last (the terminal had not heard of the change yet); any other amount
// is refused stamp_price and the terminal gives the stamp back itself, so a price the relay
// does not know is never charged. A letter to a department is free under any policy.
func checkStamp(tx kv.Tx, t TerminalInfo, fac facilityRec, pol vocab.Policy, c vocab.Charge) (string, error) {
	if c.MessageID == "" || c.RecordID != vocab.StampRecordID(c.MessageID) || c.SessionID != "" || c.Minute != 0 {
		return wire.RefuseInvalid, nil
	}
	rec, found, err := getLetter(tx, bLetters, t.FacilityID+"/"+c.MessageID) // the terminal's letter: its facility's
	if err != nil {
		return "", err
	}
	if !found || rec.InmateID != c.InmateID {
		return wire.RefuseStampNoLetter, nil
	}
	same, err := sameTerminalLineage(tx, t.ID, rec.TerminalID)
	if err != nil {
		return "", err
	}
	if !same {
		return wire.RefuseStampNoLetter, nil
	}
	for _, d := range pol.Departments {
		if d.ID == rec.Peer {
			return wire.RefuseStampPrice, nil
		}
	}
	if rec.Status == vocab.MsgRejected && unpaidReason(rec.Reason) {
		return wire.RefuseStampLate, nil // the letter went unpaid: it is not paid for afterwards
	}
	if rec.StampDue > 0 {
		// What the letter owed when it came (settleStampDue), whatever the policy says now.
		if c.Cents != rec.StampDue && (rec.StampPrevDue <= 0 || c.Cents != rec.StampPrevDue) {
			return wire.RefuseStampPrice, nil
		}
		return "", nil
	}
	if c.Cents <= 0 || (c.Cents != stampPrice(pol) && c.Cents != fac.PrevStampPrice) {
		return wire.RefuseStampPrice, nil
	}
	return "", nil
}

// stampRecorded runs after a stamp charge was stored by a terminal of facility: a letter
// staff already rejected (the charge came in a later batch than its letter) is refunded at
// once.
func stampRecorded(tx kv.Tx, f *fanout, facility string, c vocab.Charge, now time.Time) error {
	rec, found, err := getLetter(tx, bLetters, facility+"/"+c.MessageID)
	if err != nil || !found || rec.Status != vocab.MsgRejected {
		return err
	}
	return refundStampTx(tx, f, rec.Outbound, now)
}

// refundStampTx gives back the stamp on letter o, once: nothing if it carried none or was
// refunded already. The credit takes the stamp's record id, so a second one cannot be stored;
// it goes to every kiosk of the facility and the inmate's tablets, the one that charged it too.
func refundStampTx(tx kv.Tx, f *fanout, o Outbound, now time.Time) error {
	key := o.InmateID + "/" + vocab.StampRecordID(o.ID)
	var ch UsageRecord
	found, err := getJSON(tx, bCharges, key, &ch)
	if err != nil || !found {
		return err
	}
	if getRaw(tx, bCredits, key) != nil {
		return nil
	}
	u := UsageRecord{Kind: "credit", RecordID: ch.RecordID, InmateID: ch.InmateID, Cents: ch.Cents,
		Reason: vocab.CreditStampRejected, At: now, MessageID: o.ID}
	if err := putJSON(tx, bCredits, key, u); err != nil {
		return err
	}
	if err := addTotals(tx, u.InmateID, func(tt *totals) { tt.Credits += u.Cents }); err != nil {
		return err
	}
	f.logf("relay: stamp on letter %s refunded (%s): rejected at review", o.ID, u.Cents)
	cr := vocab.Credit{RecordID: u.RecordID, InmateID: u.InmateID, Cents: u.Cents, Reason: u.Reason, At: now, MessageID: o.ID}
	return f.toInmate(facilityOf(tx, o.InmateID, o.FacilityID), o.InmateID, "", wire.DownRemoteCredit, cr)
}

// The rule for an unpaid letter. The relay takes a letter before its stamp (the stamp is the
// item after it), so a letter to a contact that the facility's policy prices arrives owing
// its stamp: the price in force then (StampDue) or the one before the last change
// (StampPrevDue, for a terminal that had not heard of it). It is held, not approvable, until
// the stamp is recorded. The terminal queues the stamp in the same transaction as the letter,
// right after it, so the stamp is the next new item the relay takes from that terminal (or the
// terminal that replaced it, after enrolling again), in this batch or any later one, under
// this epoch or a new one: a resend of something the relay already holds decides nothing. If
// that next new item is the stamp and it is recorded, the letter is released (delivered, or
// left for review); if it is anything else, or the stamp is refused, the letter is rejected
// stamp_missing (or with the stamp's refusal reason) and no money moves. A letter whose
// terminal never sends another item waits, held and visible to staff as awaiting its stamp.

// stampDueRec is the letter a terminal sent last that waits for its stamp (bStampDue).
type stampDueRec struct {
	LetterID string `json:"letter_id"`
	Epoch    string `json:"epoch"`
	Seq      uint64 `json:"seq"`
}

// stampDue is a letter waiting for its stamp and the terminal it is filed under.
type stampDue struct {
	terminal string
	rec      stampDueRec
}

// owesStamp marks o, a new letter (not to a department: the caller sees to that, and
// StampCost too), with what it owes under pol: held and awaiting its stamp when not free.
func owesStamp(fac facilityRec, pol vocab.Policy, o *Outbound) {
	due := pol.StampCost(o.Peer, 0) // letters from terminals carry no photos
	if due <= 0 {
		return
	}
	o.StampDue, o.AwaitingStamp = due, true
	if fac.PrevStampPrice != due {
		o.StampPrevDue = fac.PrevStampPrice
	}
	o.Status, o.State = vocab.MsgHeld, vocab.MsgHeld
}

// noteStampDue files letter id (the item at epoch/seq) as terminal t's letter waiting for its stamp.
func noteStampDue(tx kv.Tx, t TerminalInfo, epoch string, seq uint64, id string) error {
	return putJSON(tx, bStampDue, t.ID, stampDueRec{LetterID: id, Epoch: epoch, Seq: seq})
}

// stampDueOf finds the letter waiting for its stamp from terminal t or a terminal it replaced
// (nil: none). Only a terminal enrolled again walks its lineage.
func stampDueOf(tx kv.Tx, t TerminalInfo) (*stampDue, error) {
	ids := []string{t.ID}
	if t.Replaces != "" {
		family, err := lineage(tx, t.ID)
		if err != nil {
			return nil, err
		}
		for id := range family {
			if id != t.ID { // its own first, the ones it replaced after
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		var rec stampDueRec
		found, err := getJSON(tx, bStampDue, id, &rec)
		if err != nil {
			return nil, err
		}
		if found {
			return &stampDue{terminal: id, rec: rec}, nil
		}
	}
	return nil, nil
}

// settleStampDue decides letter due (waiting for its stamp) by the new item it that the relay
// just took from the same terminal (reason: its refusal, "" if taken). The same letter again
// under another item id decides nothing. lt, if not nil, is the batch's letter states: a letter
// of this batch released by its stamp is listed delivered there instead of by a downlink.
func (r *Relay) settleStampDue(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, due *stampDue, epoch string,
	it wire.Item, p prepared, reason string, lt *wire.Letters, now time.Time) error {
	if due == nil {
		return nil
	}
	isStamp := false
	switch it.Kind {
	case wire.UpMessage:
		if v, err := p.upBody(it); err == nil && v.(*vocab.Message).ID == due.rec.LetterID {
			return nil // the letter itself again (a restored store): its stamp still follows
		}
	case wire.UpCharge:
		var c vocab.Charge
		isStamp = json.Unmarshal(it.Body, &c) == nil && c.RecordID == vocab.StampRecordID(due.rec.LetterID)
	}
	// The item may be a letter owing its own stamp, filed under the same terminal just now.
	var cur stampDueRec
	if found, err := getJSON(tx, bStampDue, due.terminal, &cur); err != nil {
		return err
	} else if found && cur.LetterID == due.rec.LetterID {
		if err := tx.Bucket([]byte(bStampDue)).Delete([]byte(due.terminal)); err != nil {
			return err
		}
	}
	rec, found, err := getLetter(tx, bLetters, t.FacilityID+"/"+due.rec.LetterID) // its facility is the terminal's
	if err != nil || !found || !rec.AwaitingStamp {
		return err
	}
	o := rec.Outbound
	o.AwaitingStamp = false
	if o.Status != vocab.MsgHeld { // rejected by staff meanwhile: a stamp recorded was refunded
		return putOutbound(tx, f, o, rec.BodyItem, false)
	}
	state, why := vocab.MsgHeld, ""
	switch {
	case isStamp && reason == "":
		if !r.holdsLetter(fac, false) {
			state = vocab.MsgDelivered
		}
	case isStamp:
		state, why = vocab.MsgRejected, reason
	default:
		state, why = vocab.MsgRejected, wire.ReasonStampMissing
	}
	if state == vocab.MsgRejected {
		o.ReviewedAt = now
		f.logf("relay: letter %s from terminal %s rejected %s: the item after it (%s) did not pay its stamp",
			o.ID, o.TerminalID, why, it.Kind)
	}
	o.Status, o.State, o.Reason, o.UpdatedAt = state, state, why, now
	if err := putOutbound(tx, f, o, rec.BodyItem, true); err != nil {
		return err
	}
	if state == vocab.MsgHeld {
		return nil // paid, and waiting for review as any letter: nothing new to tell
	}
	st := wire.MessageStatus{MessageID: o.ID, InmateID: o.InmateID, State: state, Reason: why, At: now}
	if state == vocab.MsgDelivered && lt != nil && due.terminal == t.ID && due.rec.Epoch == epoch &&
		len(lt.Held) > 0 && lt.Held[len(lt.Held)-1] == due.rec.Seq {
		// The letter is the item just before, in this batch: its ack says delivered (every
		// seq listed so far is below the stamp's, so the list stays in order); the inmate's
		// tablets hear it as they hear a review.
		lt.Held = lt.Held[:len(lt.Held)-1]
		lt.Delivered = append(lt.Delivered, due.rec.Seq)
		return f.queue(t.FacilityID, scopeTablets, o.InmateID, t.ID, wire.DownMessageStatus, st)
	}
	holder, err := liveHolder(tx, o.TerminalID)
	if err != nil {
		return err
	}
	return f.toHolder(facilityOf(tx, o.InmateID, o.FacilityID), o.InmateID, holder, wire.DownMessageStatus, st)
}

// unpaidReason says a letter's rejection was the relay's, for want of its stamp (settleStampDue),
// not a reviewer's.
func unpaidReason(reason string) bool {
	switch reason {
	case wire.ReasonStampMissing, wire.RefuseStampPrice, wire.RefuseStampNoLetter, wire.RefuseInvalid, wire.RefuseNotYours:
		return true
	}
	return false
}
