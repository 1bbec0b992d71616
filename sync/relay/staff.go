package relay

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// What the staff console (sync/relay/console) needs of the relay beyond the admin API's
// methods: a bucket of its own in the relay's one store, and a few read-only lists.

// bStaff is the console's bucket: staff accounts, sessions and the staff audit log, in nested
// buckets the console manages. It is made by the first StaffUpdate rather than by a schema
// migration: nothing the relay already stored changes, a relayd without a console ignores it,
// and an older relayd opening the file leaves it alone.
const bStaff = "staff_console"

// errNoStaffBucket is StaffView before any StaffUpdate made the bucket.
var errNoStaffBucket = errors.New("the staff console's bucket does not exist yet")

// StaffUpdate runs fn in a write transaction on the console's bucket (made if missing). fn may
// run more than once (group commit) and must be safe to re-run.
func (r *Relay) StaffUpdate(fn func(b kv.Bucket) error) error {
	return r.update("staff console", func(tx kv.Tx, _ *fanout) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bStaff))
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// StaffView runs fn in a read transaction on the console's bucket; it fails before the first
// StaffUpdate made it (the console makes it as it starts).
func (r *Relay) StaffView(fn func(b kv.Bucket) error) error {
	return r.view("staff console", func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bStaff))
		if b == nil {
			return errNoStaffBucket
		}
		return fn(b)
	})
}

// Facilities lists the ids of the facilities the relay knows (a roster or policy was put).
func (r *Relay) Facilities() ([]string, error) {
	out := []string{}
	err := r.view("list facilities", func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		return tx.Bucket([]byte(bFacilities)).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// InmateInfo is a roster entry as staff see it: no PIN hash.
type InmateInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	FacilityID string `json:"facility_id"`
	Status     string `json:"status"`
	Language   string `json:"language"`
}

// rosterOf reads the inmates on a facility's list (fac_inmates), fetched together where the
// store can, rather than every inmate of the state; an entry whose inmate is gone or now of
// another facility is passed over.
func rosterOf(tx kv.Tx, facility string) ([]inmateRec, error) {
	ids := facilityInmates(tx, facility)
	var keys keyList
	for _, id := range ids {
		keys.add(bInmates, id)
	}
	kv.Prefetch(tx, keys)
	var out []inmateRec
	for _, id := range ids {
		var in inmateRec
		ok, err := getJSON(tx, bInmates, id, &in)
		if err != nil {
			return nil, err
		}
		if ok && in.FacilityID == facility {
			out = append(out, in)
		}
	}
	return out, nil
}

// Inmates lists a facility's inmates ("" for every facility), by id.
func (r *Relay) Inmates(facility string) ([]InmateInfo, error) {
	out := []InmateInfo{}
	err := r.view("list inmates", func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		// One facility's: its roster (fac_inmates), not the state's inmates.
		if facility != "" {
			ins, err := rosterOf(tx, facility)
			for _, in := range ins {
				out = append(out, InmateInfo{ID: in.ID, Name: in.Name, FacilityID: in.FacilityID, Status: in.Status, Language: in.Language})
			}
			return err
		}
		return forEachJSON(tx, bInmates, "", func(_ string, in inmateRec) bool {
			if facility == "" || in.FacilityID == facility {
				out = append(out, InmateInfo{ID: in.ID, Name: in.Name, FacilityID: in.FacilityID, Status: in.Status, Language: in.Language})
			}
			return true
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// DeviceStatus is the last device_status body a terminal sent (found false if none).
func (r *Relay) DeviceStatus(terminalID string) (body json.RawMessage, found bool, err error) {
	err = r.view("device status", func(tx kv.Tx) error {
		if v := tx.Bucket([]byte(bDevices)).Get([]byte(terminalID)); v != nil {
			body, found = append(json.RawMessage(nil), v...), true
		}
		return nil
	})
	return body, found, err
}

// DeviceStatuses is DeviceStatus of several terminals in one read: a page of terminals
// costs one read of the store, not one a terminal. A terminal that sent none is left out.
// Reports are for a person to look at, so they are read as FleetOf reads (kv.StaleViewer).
func (r *Relay) DeviceStatuses(terminalIDs ...string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := r.staleView("device statuses", func(tx kv.Tx) error {
		clear(out) // a View may run again
		var keys keyList
		for _, id := range terminalIDs {
			keys.add(bDevices, id)
		}
		kv.Prefetch(tx, keys)
		b := tx.Bucket([]byte(bDevices))
		for _, id := range terminalIDs {
			if v := b.Get([]byte(id)); v != nil {
				out[id] = append(json.RawMessage(nil), v...)
			}
		}
		return nil
	})
	return out, err
}

// Replies gives the answers already sent to requests (inbound messages with a reply_to), by
// the request they answer, oldest first: one pass over the inbound letters for a whole page.
func (r *Relay) Replies() (map[string][]vocab.Message, error) {
	out := map[string][]vocab.Message{}
	err := r.view("list replies", func(tx kv.Tx) error {
		clear(out) // a View may run again
		return forEachJSON(tx, bInbound, "", func(_ string, m vocab.Message) bool {
			if m.ReplyTo != "" {
				out[m.ReplyTo] = append(out[m.ReplyTo], m)
			}
			return true
		})
	})
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i].CreatedAt.Before(ms[j].CreatedAt) })
	}
	return out, err
}

// SendInvitation sends again an approved contact's invitation that was never sent (no notifier
// then, or it failed), now rather than at the next RetryInvitations, which would send every
// facility's: a console clerk acts on the contacts of their own facilities only. An invitation
// already sent, answered or expired is not sent (an expired one is ReissueInvitation's). A send
// that fails again is kept for retry and the invitation is returned with its error.
func (r *Relay) SendInvitation(ctx context.Context, contactID string) (Invitation, error) {
	const op = "send invitation"
	if err := checkID(op, "id", contactID); err != nil {
		return Invitation{}, err
	}
	v, err := r.invitation(contactID)
	if err != nil {
		return Invitation{}, err
	}
	if v.ContactID == "" {
		return Invitation{}, notFound(op, "id", "no contact %q", contactID)
	}
	if v.Sent || v.State != vocab.InviteInvited {
		return v, conflict(op, "id", "the invitation of contact %q is %s (sent: %v): only an unsent invitation is sent again", contactID, v.State, v.Sent)
	}
	if sendingHeld(v.SendingUntil, r.clock.Now()) {
		return v, conflict(op, "id", "the invitation of contact %q is being sent now, by another gateway or an earlier attempt: look again after %s",
			contactID, v.SendingUntil.UTC().Format(time.TimeOnly))
	}
	if _, err := r.sendInvitation(ctx, contactID); err != nil && vocab.KindOf(err) != vocab.KindTransient {
		return Invitation{}, err
	}
	return r.invitation(contactID)
}

// DepositsOf lists an inmate's deposits and the refunds made from them, oldest first: the
// money lines of the inmate's ledger that Usage (charges and credits) leaves out, and the
// deposits a refund may come out of.
func (r *Relay) DepositsOf(inmateID string) (deposits []vocab.Deposit, refunds []Refund, err error) {
	const op = "list deposits"
	if err := checkID(op, "inmate_id", inmateID); err != nil {
		return nil, nil, err
	}
	err = r.view(op, func(tx kv.Tx) error {
		deposits, refunds = nil, nil
		for _, ref := range indexed(tx, inmateID, "d") {
			var d vocab.Deposit
			if ok, err := getJSON(tx, bDeposits, ref, &d); err != nil {
				return err
			} else if ok {
				deposits = append(deposits, d)
			}
		}
		for _, ref := range indexed(tx, inmateID, "r") {
			var rf Refund
			if ok, err := getJSON(tx, bRefunds, ref, &rf); err != nil {
				return err
			} else if ok {
				refunds = append(refunds, rf)
			}
		}
		return nil
	})
	sort.SliceStable(deposits, func(i, j int) bool { return deposits[i].At.Before(deposits[j].At) })
	sort.SliceStable(refunds, func(i, j int) bool { return refunds[i].At.Before(refunds[j].At) })
	return deposits, refunds, err
}
