package relay

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Letters to a facility's departments (requests) are listed under the facility
// (fac_requests), and the answers to each under it (request_replies), so that the departments
// page reads its facilities' requests and their answers rather than every letter stored,
// outbound and inbound.

// Request is a letter to a department with the answers sent to it, oldest first.
type Request struct {
	Outbound
	Replies []vocab.Message
}

// listRequest puts o, a letter to one of its facility's departments, on the facility's list.
func listRequest(tx kv.Tx, o Outbound) error {
	if checkID("", "", o.FacilityID) != nil || checkID("", "", o.ID) != nil {
		return nil // an older relay's damage: verify reports it
	}
	return putAppended(tx, bFacRequests, o.FacilityID+"/"+o.ID, nil) // ids are UUIDv7s, in time order
}

// linkReply files m, a letter just delivered to an inmate, under the request it answers.
func linkReply(tx kv.Tx, m vocab.Message) error {
	if m.ReplyTo == "" || checkID("", "", m.ReplyTo) != nil || checkID("", "", m.ID) != nil {
		return nil
	}
	return putRaw(tx, bRequestReplies, m.ReplyTo+"/"+m.ID, nil)
}

// RequestsOf lists the letters to departments written in the given facilities, with their
// answers, by id. It reads those facilities' requests and their answers only.
func (r *Relay) RequestsOf(facilities ...string) ([]Request, error) {
	const op = "list requests"
	if err := checkFacilityIDs(op, facilities); err != nil {
		return nil, err
	}
	out := []Request{}
	if len(facilities) == 0 {
		return out, nil // none asked for (listedUnder reads every facility for nil)
	}
	err := r.view(op, func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		keys, err := listedKeys(tx, facilities, bFacRequests)
		if err != nil {
			return err
		}
		letters, err := readLetters(tx, keys, func(Outbound) bool { return true })
		if err != nil {
			return err
		}
		for _, o := range letters {
			rq := Request{Outbound: o}
			var replies []string
			if err := forEachRaw(tx, bRequestReplies, o.ID+"/", func(k string, _ []byte) bool {
				replies = append(replies, k[len(o.ID)+1:])
				return true
			}); err != nil {
				return err
			}
			for _, id := range replies {
				var m vocab.Message
				if ok, err := getJSON(tx, bInbound, id, &m); err != nil {
					return err
				} else if ok {
					rq.Replies = append(rq.Replies, m)
				}
			}
			sort.SliceStable(rq.Replies, func(i, j int) bool { return rq.Replies[i].CreatedAt.Before(rq.Replies[j].CreatedAt) })
			out = append(out, rq)
		}
		return nil
	})
	return out, err
}

// migrate18to19 lists every letter to a department of its facility (as the facility's policy
// names them now) and files every answer under its request. A record that does not decode is
// passed over (verify reports it) rather than failing the upgrade.
func migrate18to19(tx kv.Tx) error {
	for _, name := range []string{bFacRequests, bRequestReplies} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	depts := map[string]map[string]bool{} // facility -> department ids
	var requests []Outbound
	if err := forEachRaw(tx, bOutbound, "", func(_ string, raw []byte) bool {
		var rec letterRec
		if json.Unmarshal(raw, &rec) != nil {
			return true
		}
		d, ok := depts[rec.FacilityID]
		if !ok {
			d = map[string]bool{}
			var fac facilityRec
			if found, err := getJSON(tx, bFacilities, rec.FacilityID, &fac); err == nil && found {
				for _, dp := range fac.policy().Departments {
					d[dp.ID] = true
				}
			}
			depts[rec.FacilityID] = d
		}
		if d[rec.Peer] {
			requests = append(requests, rec.Outbound)
		}
		return true
	}); err != nil {
		return err
	}
	for _, o := range requests {
		if err := listRequest(tx, o); err != nil {
			return err
		}
	}
	var replies []vocab.Message
	if err := forEachRaw(tx, bInbound, "", func(_ string, raw []byte) bool {
		var m vocab.Message
		if json.Unmarshal(raw, &m) == nil && m.ReplyTo != "" {
			replies = append(replies, m)
		}
		return true
	}); err != nil {
		return err
	}
	for _, m := range replies {
		if err := linkReply(tx, m); err != nil {
			return err
		}
	}
	return nil
}
