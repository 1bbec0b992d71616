package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// StoredItem is one uplink item as the relay keeps it.
type StoredItem struct {
	wire.Item
	TerminalID string    `json:"terminal_id"`
	Epoch      string    `json:"epoch"`
	ReceivedAt time.Time `json:"received_at"`
	Refused    string    `json:"refused,omitempty"` // the refusal reason, if refused for good
}

// Refusal reason beyond wire's list: the inmate already has max_contacts contacts.
const RefuseContactLimit = "contact_limit"

// errGap is returned by storeBatch when a batch skips sequence numbers; the connection is closed.
type gapError struct{ want, got uint64 }

func (e *gapError) Error() string {
	return fmt.Sprintf("sequence gap: expected seq %d, got %d", e.want, e.got)
}

func dedupeKey(termID, epoch string) string { return termID + "/" + epoch }

func refusalKey(termID, epoch string, seq uint64) string {
	return fmt.Sprintf("%s/%s/%020d", termID, epoch, seq)
}

// storeBatch stores a batch in one transaction and returns the ack: the highest contiguous seq
// held for (terminal, epoch) and every refusal among the batch's seqs (remembered, so a resent
// refused item is listed again). A gap stores what precedes it and returns *gapError too.
func (r *Relay) storeBatch(t TerminalInfo, b wire.Batch) (wire.Ack, error) {
	now := r.clock.Now().UTC()
	ack := wire.Ack{Epoch: b.Epoch}
	var gap error
	err := r.update("store batch", func(tx *bolt.Tx, f *fanout) error {
		ack.Rejected = nil
		gap = nil
		dk := []byte(dedupeKey(t.ID, b.Epoch))
		dd := tx.Bucket([]byte(bDedupe))
		high := readU64(dd.Get(dk))
		ref := tx.Bucket([]byte(bRefusals))
		var fac facilityRec
		if _, err := getJSON(tx, bFacilities, t.FacilityID, &fac); err != nil {
			return err
		}
		pol := fac.policy()
		for _, it := range b.Items {
			if it.Seq <= high {
				if reason := ref.Get([]byte(refusalKey(t.ID, b.Epoch, it.Seq))); reason != nil {
					ack.Rejected = append(ack.Rejected, wire.Rejection{Seq: it.Seq, Reason: string(reason)})
				}
				continue
			}
			if it.Seq != high+1 {
				gap = &gapError{want: high + 1, got: it.Seq}
				break
			}
			var reason string
			if json.Valid(it.Body) {
				var err error
				if reason, err = r.applyItem(tx, f, t, fac, pol, it, now); err != nil {
					return fmt.Errorf("item %d (%s): %w", it.Seq, it.Kind, err)
				}
			} else {
				// wire.DecodeFrame never yields this; a direct caller might. Keep the record storable.
				reason, it.Body = wire.RefuseInvalid, json.RawMessage("null")
			}
			if reason != "" {
				ack.Rejected = append(ack.Rejected, wire.Rejection{Seq: it.Seq, Reason: reason})
				if err := ref.Put([]byte(refusalKey(t.ID, b.Epoch, it.Seq)), []byte(reason)); err != nil {
					return err
				}
			}
			items := tx.Bucket([]byte(bItems))
			n, err := items.NextSequence()
			if err != nil {
				return err
			}
			if err := putJSON(tx, bItems, string(u64(n)), StoredItem{Item: it, TerminalID: t.ID, Epoch: b.Epoch, ReceivedAt: now, Refused: reason}); err != nil {
				return err
			}
			high = it.Seq
		}
		ack.Seq = high
		return dd.Put(dk, u64(high))
	})
	if err != nil {
		return wire.Ack{}, err
	}
	return ack, gap
}

// applyItem stores one new item by kind and queues what other terminals must learn. It returns
// a refusal reason for an item refused for good; an error aborts the whole batch.
func (r *Relay) applyItem(tx *bolt.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol kiosk.Policy, it wire.Item, now time.Time) (string, error) {
	decode := func(v any) bool { return json.Unmarshal(it.Body, v) == nil }
	switch it.Kind {
	case wire.UpMessage, wire.UpPREA:
		var m kiosk.Message
		if !decode(&m) || wire.CheckUpBody(it.Kind, it.Body) != nil { // a prea may be anonymous
			return wire.RefuseInvalid, nil
		}
		if it.Kind == wire.UpPREA || m.Peer == kiosk.PREAChannel {
			return r.applyPREA(tx, t, m, now)
		}
		return r.applyMessage(tx, f, t, fac, pol, m, now)
	case wire.UpContactRequest:
		var c kiosk.Contact
		if !decode(&c) || checkID("", "", c.ID) != nil || strings.TrimSpace(c.Name) == "" || c.InmateID == "" {
			return wire.RefuseInvalid, nil
		}
		return r.applyContactRequest(tx, t, pol, c, now)
	case wire.UpContactRemove:
		var c kiosk.Contact
		if !decode(&c) || c.ID == "" || c.InmateID == "" {
			return wire.RefuseInvalid, nil
		}
		return r.applyContactRemove(tx, f, t, c, now)
	case wire.UpCharge, wire.UpCredit:
		return r.applyUsage(tx, f, t, it)
	case wire.UpSessionEnd:
		var s kiosk.Session
		if !decode(&s) || wire.CheckUpBody(it.Kind, it.Body) != nil {
			return wire.RefuseInvalid, nil
		}
		s.Terminal = t.ID // what the relay saw, not what the body claims
		if _, ok, err := inmateFor(tx, t, s.InmateID); err != nil || !ok {
			return wire.RefuseNotYours, err
		}
		key := s.InmateID + "/" + s.ID
		if tx.Bucket([]byte(bSessions)).Get([]byte(key)) != nil {
			return "", nil
		}
		if err := putJSON(tx, bSessions, key, s); err != nil {
			return "", err
		}
		return "", f.toInmate(t.FacilityID, s.InmateID, t.ID, wire.DownRemoteSessionEnd, s)
	case wire.UpAudit:
		var ev kiosk.AuditEvent
		if !decode(&ev) || wire.CheckUpBody(it.Kind, it.Body) != nil {
			return wire.RefuseInvalid, nil
		}
		return "", putJSON(tx, bAudit, t.ID+"/"+ev.ID, ev)
	case wire.UpDeviceStatus:
		var st map[string]any
		if !decode(&st) || st == nil {
			return wire.RefuseInvalid, nil
		}
		if err := tx.Bucket([]byte(bDevices)).Put([]byte(t.ID), it.Body); err != nil {
			return "", err
		}
		if n, ok := st["items_waiting"].(float64); ok && n >= 0 && n < 1e9 {
			var rec terminalRec
			if _, err := getJSON(tx, bTerminals, t.ID, &rec); err != nil {
				return "", err
			}
			rec.ItemsWaiting = int(n)
			return "", putJSON(tx, bTerminals, t.ID, rec)
		}
		return "", nil
	default:
		return wire.RefuseUnknownKind, nil
	}
}

// inmateFor finds the inmate a terminal speaks for: in its facility and, for a tablet, its own.
func inmateFor(tx *bolt.Tx, t TerminalInfo, id string) (inmateRec, bool, error) {
	var in inmateRec
	ok, err := getJSON(tx, bInmates, id, &in)
	if err != nil || !ok {
		return in, false, err
	}
	if in.FacilityID != t.FacilityID || (t.Mode == wire.ModeTablet && in.ID != t.InmateID) {
		return in, false, nil
	}
	return in, true, nil
}

// applyPREA stores a PREA report: never held, never refused for the inmate's status.
func (r *Relay) applyPREA(tx *bolt.Tx, t TerminalInfo, m kiosk.Message, now time.Time) (string, error) {
	if tx.Bucket([]byte(bPREA)).Get([]byte(m.ID)) != nil {
		return "", nil
	}
	o := Outbound{Message: m, FacilityID: t.FacilityID, TerminalID: t.ID, Status: kiosk.MsgDelivered, ReceivedAt: now}
	r.logf("relay: PREA report %s received from terminal %s", m.ID, t.ID)
	return "", putJSON(tx, bPREA, m.ID, o)
}

func (r *Relay) applyMessage(tx *bolt.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol kiosk.Policy, m kiosk.Message, now time.Time) (string, error) {
	if tx.Bucket([]byte(bOutbound)).Get([]byte(m.ID)) != nil {
		return "", nil
	}
	in, ok, err := inmateFor(tx, t, m.InmateID)
	if err != nil {
		return "", err
	}
	if !ok {
		return wire.RefuseInvalid, nil
	}
	if in.Status != kiosk.StatusActive || !in.Messaging {
		return wire.RefuseSuspended, nil
	}
	if !utf8.ValidString(m.Body) || !utf8.ValidString(m.Subject) {
		return wire.RefuseInvalid, nil
	}
	if utf8.RuneCountInString(m.Body) > pol.MaxMessageChars {
		return wire.RefuseTooLarge, nil
	}
	known := false
	for _, d := range pol.Departments {
		known = known || d.ID == m.Peer
	}
	if !known {
		var c ContactRecord
		found, err := getJSON(tx, bContacts, m.Peer, &c)
		if err != nil {
			return "", err
		}
		known = found && c.InmateID == m.InmateID && c.State == kiosk.ContactApproved
	}
	if !known {
		return wire.RefuseUnknownContact, nil
	}
	status := kiosk.MsgDelivered
	if r.holds(fac) {
		status = kiosk.MsgHeld
	}
	m.Box, m.State, m.UpdatedAt = kiosk.BoxOutbox, status, now
	o := Outbound{Message: m, FacilityID: t.FacilityID, TerminalID: t.ID, Status: status, ReceivedAt: now}
	if err := putJSON(tx, bOutbound, m.ID, o); err != nil {
		return "", err
	}
	return "", f.toInmate(t.FacilityID, m.InmateID, "", wire.DownMessageStatus,
		wire.MessageStatus{MessageID: m.ID, InmateID: m.InmateID, State: status, At: now})
}

func (r *Relay) applyContactRequest(tx *bolt.Tx, t TerminalInfo, pol kiosk.Policy, c kiosk.Contact, now time.Time) (string, error) {
	in, ok, err := inmateFor(tx, t, c.InmateID)
	if err != nil {
		return "", err
	}
	if !ok || len(c.Name) > 200 || len(c.Email) > 254 {
		return wire.RefuseInvalid, nil
	}
	var prev ContactRecord
	found, err := getJSON(tx, bContacts, c.ID, &prev)
	if err != nil {
		return "", err
	}
	if found && prev.InmateID != c.InmateID {
		return wire.RefuseInvalid, nil
	}
	if found && (prev.State == kiosk.ContactPending || prev.State == kiosk.ContactApproved) {
		return "", nil // asked again for a contact already pending or approved: nothing new
	}
	if in.Status != kiosk.StatusActive {
		return wire.RefuseSuspended, nil
	}
	n := 0
	all, err := inmateContacts(tx, c.InmateID)
	if err != nil {
		return "", err
	}
	for _, x := range all {
		if x.State == kiosk.ContactPending || x.State == kiosk.ContactApproved {
			n++
		}
	}
	if n >= pol.MaxContacts {
		return RefuseContactLimit, nil
	}
	c.State, c.Reason, c.UpdatedAt = kiosk.ContactPending, "", now
	rec := ContactRecord{Contact: c, FacilityID: t.FacilityID, TerminalID: t.ID, CreatedAt: now}
	if err := tx.Bucket([]byte(bByInmate)).Put(indexKey(c.InmateID, "c", c.ID), nil); err != nil {
		return "", err
	}
	// Other terminals learn of the contact once it is decided (approved or declined), not while pending.
	return "", putJSON(tx, bContacts, c.ID, rec)
}

func (r *Relay) applyContactRemove(tx *bolt.Tx, f *fanout, t TerminalInfo, c kiosk.Contact, now time.Time) (string, error) {
	var prev ContactRecord
	found, err := getJSON(tx, bContacts, c.ID, &prev)
	if err != nil {
		return "", err
	}
	if !found || prev.State == kiosk.ContactRemoved {
		return "", nil
	}
	if _, ok, err := inmateFor(tx, t, prev.InmateID); err != nil {
		return "", err
	} else if !ok || prev.InmateID != c.InmateID {
		return wire.RefuseInvalid, nil
	}
	prev.State, prev.Reason, prev.UpdatedAt = kiosk.ContactRemoved, "", now
	if err := putJSON(tx, bContacts, c.ID, prev); err != nil {
		return "", err
	}
	return "", f.toInmate(t.FacilityID, prev.InmateID, t.ID, wire.DownContact, prev.Contact)
}

// applyUsage records a billed or credited minute once per record id: money the terminal already
// took is never refused for the inmate's status, only for a body that breaks the rules or an
// inmate the terminal does not serve.
func (r *Relay) applyUsage(tx *bolt.Tx, f *fanout, t TerminalInfo, it wire.Item) (string, error) {
	var u UsageRecord
	var down any
	switch it.Kind {
	case wire.UpCharge:
		var c kiosk.Charge
		if json.Unmarshal(it.Body, &c) != nil {
			return wire.RefuseInvalid, nil
		}
		u = UsageRecord{Kind: "charge", RecordID: c.RecordID, SessionID: c.SessionID, InmateID: c.InmateID, Minute: c.Minute, Cents: c.Cents, At: c.At}
		down = c
	default:
		var c kiosk.Credit
		if json.Unmarshal(it.Body, &c) != nil {
			return wire.RefuseInvalid, nil
		}
		u = UsageRecord{Kind: "credit", RecordID: c.RecordID, SessionID: c.SessionID, InmateID: c.InmateID, Minute: c.Minute, Cents: c.Cents, Reason: c.Reason, At: c.At}
		down = c
	}
	u.TerminalID = t.ID
	if u.RecordID == "" || len(u.RecordID) > wire.MaxIDLen || checkID("", "", u.InmateID) != nil ||
		u.Cents < 0 || u.Cents > kiosk.MaxRatePerMinute || u.Minute < 0 {
		return wire.RefuseInvalid, nil
	}
	// A terminal bills only inmates of its own facility (a tablet only its own inmate): an
	// authenticated but hostile terminal must not move another facility's balances.
	if _, ok, err := inmateFor(tx, t, u.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	bucket, kind := bCharges, wire.DownRemoteCharge
	if u.Kind == "credit" {
		bucket, kind = bCredits, wire.DownRemoteCredit
	}
	key := u.InmateID + "/" + u.RecordID
	if tx.Bucket([]byte(bucket)).Get([]byte(key)) != nil {
		return "", nil
	}
	if err := putJSON(tx, bucket, key, u); err != nil {
		return "", err
	}
	if err := addTotals(tx, u.InmateID, func(tt *totals) {
		if u.Kind == "credit" {
			tt.Credits += u.Cents
		} else {
			tt.Charges += u.Cents
		}
	}); err != nil {
		return "", err
	}
	return "", f.toInmate(t.FacilityID, u.InmateID, t.ID, kind, down)
}

// ItemFilter narrows Items; empty fields match everything.
type ItemFilter struct {
	TerminalID string
	Kind       string
}

// Items lists every stored uplink item in arrival order (refused ones with their reason).
func (r *Relay) Items(flt ItemFilter) ([]StoredItem, error) {
	out := []StoredItem{}
	err := r.view("list items", func(tx *bolt.Tx) error {
		return forEachJSON(tx, bItems, "", func(_ string, it StoredItem) bool {
			if (flt.TerminalID == "" || it.TerminalID == flt.TerminalID) && (flt.Kind == "" || it.Kind == flt.Kind) {
				out = append(out, it)
			}
			return true
		})
	})
	return out, err
}
