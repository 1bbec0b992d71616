package relay

import (
	"fmt"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A snapshot is everything a terminal serves, queued on its downlink as the ordinary kinds: a
// terminal applies each once by its id (ref, record id, message id...), so a snapshot on top of
// what a terminal holds changes nothing twice. It is queued for a new terminal (enrollment, a
// re-enrollment that replaces another) and for one whose store was replaced (hello's
// down_applied below what it acknowledged: wiped, or a backup restored). docs/PROTOCOL.md,
// "Snapshot", lists what it holds.

// maxLineage bounds the walk back through the terminals a terminal replaced.
const maxLineage = 64

// snapshot queues the complete current state terminal t serves: policy, technicians and the
// technicians removed (kiosks only), each inmate it serves with their money, sessions, contacts and mail, and the notices
// still in force.
func (r *Relay) snapshot(tx kv.Tx, f *fanout, t TerminalInfo, now time.Time) error {
	f.knowFacility(t.ID, t.FacilityID)
	var fac facilityRec
	if _, err := getJSON(tx, bFacilities, t.FacilityID, &fac); err != nil {
		return err
	}
	if fac.Policy != nil {
		if err := f.toTerminal(t.ID, wire.DownPolicy, fac.Policy); err != nil {
			return err
		}
	}
	// The library before the money, so a purchase's remote_charge finds its item.
	if err := snapshotCatalog(tx, f, t); err != nil {
		return err
	}
	// Who left the facility's roster, first: a store restored from a backup taken before a
	// release must not let them in again, and any badge of theirs that someone else holds now
	// goes to that person below (a terminal gives a badge to the person named last).
	var gone []vocab.Inmate
	if err := forEachJSON(tx, bReleased, t.FacilityID+"/", func(_ string, in vocab.Inmate) bool {
		if t.Mode == wire.ModeKiosk || in.ID == t.InmateID {
			gone = append(gone, in)
		}
		return true
	}); err != nil {
		return err
	}
	for _, in := range gone {
		if err := f.toTerminal(t.ID, wire.DownInmate, in); err != nil {
			return err
		}
	}
	if t.Mode == wire.ModeKiosk {
		var techs []vocab.Technician
		if err := forEachJSON(tx, bTechnicians, t.FacilityID+"/", func(_ string, tc vocab.Technician) bool {
			techs = append(techs, tc)
			return true
		}); err != nil {
			return err
		}
		for _, tc := range techs {
			if err := f.toTerminal(t.ID, wire.DownTechnician, tc); err != nil {
				return err
			}
		}
		// Who was taken off the roster: a store that missed the removal (restored from a
		// backup, or past the downlink log's cap) would still let their badge in. A kiosk that
		// never had them ignores the removal.
		var gone []wire.TechnicianRemoved
		if err := forEachJSON(tx, bTechsGone, t.FacilityID+"/", func(_ string, g wire.TechnicianRemoved) bool {
			gone = append(gone, g)
			return true
		}); err != nil {
			return err
		}
		for _, g := range gone {
			if err := f.toTerminal(t.ID, wire.DownTechnicianRemove, g); err != nil {
				return err
			}
		}
	}
	var inmates []vocab.Inmate
	served := map[string]bool{}
	// The facility's list (schema 9), not every inmate of the state: a snapshot reads what it
	// sends, and conflicts only with changes to its own facility's roster.
	ids := []string{t.InmateID}
	if t.Mode == wire.ModeKiosk {
		ids = facilityInmates(tx, t.FacilityID)
	}
	for _, id := range ids {
		var in inmateRec
		found, err := getJSON(tx, bInmates, id, &in)
		if err != nil {
			return err
		}
		if found && in.FacilityID == t.FacilityID && !served[id] {
			inmates = append(inmates, in.Inmate)
			served[in.ID] = true
		}
	}
	family, err := lineage(tx, t.ID)
	if err != nil {
		return err
	}
	m, err := mailOf(tx, inmates, family, t.Mode == wire.ModeTablet)
	if err != nil {
		return err
	}
	var pol vocab.Policy
	if fac.Policy != nil {
		pol = *fac.Policy
	}
	libSince := libraryDaysSince(pol, now)
	for _, in := range inmates {
		if err := r.snapshotInmate(tx, f, t.ID, in, m); err != nil {
			return err
		}
		// The library minutes the inmate began elsewhere today: a terminal past the cap or
		// restored would otherwise count only its own against the day's allowance.
		if err := snapshotLibraryUse(tx, f, t.ID, in.ID, family, libSince); err != nil {
			return err
		}
	}
	for _, n := range fac.Notices {
		if (n.InmateID == "" || served[n.InmateID]) && inForce(n, now) {
			if err := f.toTerminal(t.ID, wire.DownNotice, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// lineage is the terminal and every terminal it replaced (re-enrollments with the same key).
func lineage(tx kv.Tx, id string) (map[string]bool, error) {
	ids := map[string]bool{}
	for i := 0; id != "" && !ids[id] && i < maxLineage; i++ {
		ids[id] = true
		var t terminalRec
		ok, err := getJSON(tx, bTerminals, id, &t)
		if err != nil {
			return nil, fmt.Errorf("lineage of terminal %s: %w", id, err)
		}
		if !ok {
			break
		}
		id = t.Replaces
	}
	return ids, nil
}

// mail is the letters a snapshot carries, by inmate.
type mail struct {
	inbound  map[string][]vocab.Message
	statuses map[string][]wire.MessageStatus
	sent     map[string][]vocab.Message // a tablet's: every letter its inmate wrote
}

// mailOf reads, for the given inmates, every inbound message and the status of every outbound
// message that terminals in own forwarded (only the terminal that sent a message holds a copy
// whose status can change; the others ignore it). For a tablet (copies), every letter of its
// inmates comes whole too: a tablet holds its inmate's history, and one wiped gets it back
// (a letter it holds is left as it is).
//
// The letters are found through each inmate's index (by_inmate "i" and "m", schema 9), not a
// walk of every letter of the state.
func mailOf(tx kv.Tx, inmates []vocab.Inmate, own map[string]bool, copies bool) (mail, error) {
	m := mail{inbound: map[string][]vocab.Message{}, statuses: map[string][]wire.MessageStatus{}, sent: map[string][]vocab.Message{}}
	for _, in := range inmates {
		for _, id := range indexed(tx, in.ID, "i") {
			var msg vocab.Message
			found, err := getJSON(tx, bInbound, id, &msg)
			if err != nil {
				return m, err
			}
			if found && msg.InmateID == in.ID {
				m.inbound[in.ID] = append(m.inbound[in.ID], msg)
			}
		}
		for _, id := range indexed(tx, in.ID, "m") {
			var rec letterRec
			at := letterAt(tx, "", id)
			found, err := false, error(nil)
			if at != "" {
				found, err = getJSON(tx, bLetters, at+"/"+id, &rec)
			}
			if err != nil {
				return m, err
			}
			if !found || rec.InmateID != in.ID {
				continue
			}
			if copies { // the text too, which may be kept in the item that carried it
				if err := fillBody(tx, bLetters, at+"/"+id, &rec); err != nil {
					return m, err
				}
			}
			o := rec.Outbound
			if own[o.TerminalID] {
				at := o.UpdatedAt
				if !o.ReviewedAt.IsZero() {
					at = o.ReviewedAt
				}
				m.statuses[o.InmateID] = append(m.statuses[o.InmateID],
					wire.MessageStatus{MessageID: o.ID, InmateID: o.InmateID, State: o.Status, Reason: o.Reason, At: at})
			}
			if copies {
				m.sent[o.InmateID] = append(m.sent[o.InmateID], sentCopy(o))
			}
		}
	}
	for _, list := range m.inbound {
		sort.SliceStable(list, func(i, j int) bool { return list[i].CreatedAt.Before(list[j].CreatedAt) })
	}
	return m, nil
}

// snapshotInmate queues one inmate's roster entry, deposits, every charge and credit (those of
// termID itself too: its store may have lost them, and a terminal skips a record it holds in its
// own ledger), last session end, decided contacts, inbound messages and the statuses in m.
func (r *Relay) snapshotInmate(tx kv.Tx, f *fanout, termID string, in vocab.Inmate, m mail) error {
	if err := f.toTerminal(termID, wire.DownInmate, in); err != nil {
		return err
	}
	type item struct {
		kind string
		body any
	}
	var items []item
	for _, ref := range indexed(tx, in.ID, "d") {
		var d vocab.Deposit
		if _, err := getJSON(tx, bDeposits, ref, &d); err != nil {
			return err
		}
		items = append(items, item{wire.DownDeposit, d})
	}
	for _, ref := range indexed(tx, in.ID, "r") {
		var rf vocab.Refund
		if _, err := getJSON(tx, bRefunds, ref, &rf); err != nil {
			return err
		}
		items = append(items, item{wire.DownRefund, rf})
	}
	for _, b := range []struct{ bucket, kind string }{{bCharges, wire.DownRemoteCharge}, {bCredits, wire.DownRemoteCredit}} {
		if err := forEachJSON(tx, b.bucket, in.ID+"/", func(_ string, u UsageRecord) bool {
			items = append(items, item{b.kind, u.record()})
			return true
		}); err != nil {
			return err
		}
	}
	var last *vocab.Session
	if err := forEachJSON(tx, bSessions, in.ID+"/", func(_ string, s vocab.Session) bool {
		if last == nil || s.End.After(last.End) {
			s := s
			last = &s
		}
		return true
	}); err != nil {
		return err
	}
	if last != nil {
		items = append(items, item{wire.DownRemoteSessionEnd, *last})
	}
	contacts, err := inmateContacts(tx, "", in.ID)
	if err != nil {
		return err
	}
	for _, c := range contacts {
		// Pending requests stay with the terminal that made them, as in the fan-out; a decided
		// contact (removed too: a restored terminal may still hold it approved) goes everywhere.
		if c.State != vocab.ContactPending {
			items = append(items, item{wire.DownContact, c.Contact})
		}
	}
	for _, msg := range m.inbound[in.ID] {
		items = append(items, item{wire.DownInboundMessage, msg})
		if msg.Read {
			items = append(items, item{wire.DownMessageRead, wire.MessageRead{MessageID: msg.ID, InmateID: msg.InmateID, At: msg.UpdatedAt}})
		}
	}
	for _, msg := range m.sent[in.ID] {
		items = append(items, item{wire.DownSentMessage, msg})
	}
	for _, st := range m.statuses[in.ID] {
		items = append(items, item{wire.DownMessageStatus, st})
	}
	for _, x := range items {
		if err := f.toTerminal(termID, x.kind, x.body); err != nil {
			return err
		}
	}
	return nil
}

// inForce reports whether a notice is still to be shown at now.
func inForce(n wire.Notice, now time.Time) bool { return n.Until.IsZero() || now.Before(n.Until) }

// resync queues a complete snapshot for a terminal whose position is more than DownLogCap behind
// its facility's counter (lapsed: its facility's log was pruned past it), or whose hello
// reports a downlink position below the one it acknowledged: its store was replaced (wiped, or a backup restored) and what it
// acknowledged was deleted here. The snapshot goes after the last seq queued; the terminal
// accepts the jump from its position. The acknowledged position moves down to the hello's, so
// a terminal that reconnects before applying anything does not get a second snapshot. It
// reports whether a snapshot was queued.
//
// floor is what the terminal's previous connection acknowledged, perhaps not yet written.
//
// own is the connection's owner claim (owner.go): a newer connection's position is not reset.
//
// cut: a prune passed the terminal while it is connected here (bDownCut, resyncCut): it is
// treated as lapsed, and what it acknowledged on the connection (applied) stays acknowledged.
func (r *Relay) resync(own *owner, t TerminalInfo, applied, floor uint64, restored, cut bool) (bool, error) {
	now := r.clock.Now().UTC()
	queued := false
	err := r.updateAsKeys(own, t.ID, t.FacilityID, "resync terminal", nil, 0, func(tx kv.Tx, f *fanout) error {
		queued = false
		last, acked := downState(tx, t.ID, t.FacilityID)
		acked = max(acked, min(floor, last))
		from := downFrom(tx, t.ID)
		// Lapsed: more than DownLogCap behind, so pruning may have passed it (down.go).
		lapsed := cut || lapsedBehind(last, max(applied, acked, from), r.cfg.DownLogCap)
		if applied >= acked && !restored && !lapsed {
			return nil
		}
		// The snapshot brings it up to date: a prune's mark that it was passed goes.
		if cb := tx.Bucket([]byte(bDownCut)); cb != nil && cb.Get([]byte(t.ID)) != nil {
			if err := cb.Delete([]byte(t.ID)); err != nil {
				return err
			}
		}
		ti, ackTo := t, applied
		if cut {
			ackTo = max(applied, acked)
			// The record as it is now, not as the connection's hello read it: a tablet reissued
			// meanwhile gets nothing of its former inmate's (nor a revoked terminal anything).
			var cur terminalRec
			found, err := getJSON(tx, bTerminals, t.ID, &cur)
			if err != nil {
				return err
			}
			if !found || cur.Revoked {
				return nil
			}
			ti = cur.TerminalInfo
		}
		// What it acknowledged is gone from its store and is not resent: the snapshot holds it.
		if err := pruneDown(tx, t.ID, acked); err != nil {
			return err
		}
		// Nor is what its facility's log held up to there: the log's items stay for the other
		// terminals, and this one reads the log from above it. A lapsed terminal reads it from
		// above the last number queued: the snapshot holds what the log held for it (what
		// pruning left of it would come twice, and what pruning took would leave gaps). Its
		// own items (its own bucket, never pruned past it) still come, after `applied`.
		start := acked
		if lapsed {
			start = last
		}
		if start > from {
			if err := tx.Bucket([]byte(bDownFrom)).Put([]byte(t.ID), u64(start)); err != nil {
				return err
			}
		}
		if err := r.snapshot(tx, f, ti, now); err != nil {
			return err
		}
		queued = true
		return tx.Bucket([]byte(bDownAcked)).Put([]byte(t.ID), u64(ackTo))
	})
	return queued, err
}

// resyncCut queues a complete snapshot for the terminal of connection s, which a prune of its
// facility's log passed as lapsed while it was connected here (by another gateway, which
// counts only its own connections as online; markCut). Called by the connection's writer when
// its read of the store found the mark: the log may lack what the prune took.
func (r *Relay) resyncCut(s *session) error {
	own, err := s.owner()
	if err != nil {
		return err
	}
	acked := s.acked.Load()
	queued, err := r.resync(own, s.info, acked, acked, false, true)
	if err != nil {
		return fmt.Errorf("resync terminal %s passed by a prune: %w", s.id, err)
	}
	if queued {
		r.logf("relay: terminal %s was passed by a prune of its facility's log while connected here, more than %d behind: complete snapshot queued",
			s.id, r.cfg.DownLogCap)
	}
	return nil
}
