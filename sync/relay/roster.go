package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk/pinhash"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Roster is a facility's whole list of inmates and technicians; PUT replaces it.
type Roster struct {
	Inmates     []RosterInmate     `json:"inmates"`
	Technicians []RosterTechnician `json:"technicians"`
}

// RosterInmate is one inmate as an admin sends it: a plain pin (hashed on receipt, never stored)
// or a pin_hash; neither keeps the stored hash of an inmate already known.
type RosterInmate struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Badges    []string `json:"badges"`
	PIN       string   `json:"pin,omitempty"`
	PINHash   string   `json:"pin_hash,omitempty"`
	Language  string   `json:"language"`
	Status    string   `json:"status"`
	Messaging *bool    `json:"messaging,omitempty"` // default true
	Media     bool     `json:"media,omitempty"`
}

// RosterTechnician is one technician as an admin sends it.
type RosterTechnician struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Badges  []string `json:"badges"`
	PIN     string   `json:"pin,omitempty"`
	PINHash string   `json:"pin_hash,omitempty"`
	Role    string   `json:"role"`
}

// String never shows the PIN.
func (ri RosterInmate) String() string { return fmt.Sprintf("inmate %s", ri.ID) }

// String never shows the PIN.
func (rt RosterTechnician) String() string { return fmt.Sprintf("technician %s", rt.ID) }

// MaxRosterPeople bounds one roster.
const MaxRosterPeople = 20000

// checkPIN validates a pin / pin_hash pair without ever repeating the PIN.
func checkPIN(op, field, pin, hash string) error {
	switch {
	case pin != "" && hash != "":
		return invalid(op, field+".pin", "give pin or pin_hash, not both")
	case pin != "":
		if err := pinhash.ValidatePIN(pin); err != nil {
			return invalid(op, field+".pin", "must be 4 to 12 digits")
		}
	case hash != "":
		if err := pinhash.Validate(hash); err != nil {
			return invalid(op, field+".pin_hash", "is not an argon2id hash this relay can verify")
		}
	}
	return nil
}

func checkBadges(op, field string, badges []string, owner string, seen map[string]string) error {
	// Their number (at least one) and form are the terminals' rules (vocab.RosterFieldError,
	// checked first); here only that a badge is nobody else's in the roster.
	for j, b := range badges {
		f := fmt.Sprintf("%s.badges[%d]", field, j)
		if prev, dup := seen[b]; dup {
			return invalid(op, f, "badge %q is also %s's", b, prev)
		}
		seen[b] = owner
	}
	return nil
}

// released records that gone (suspended, as last sent) left facility's roster: a snapshot
// repeats it, so a store restored from before the release does not let them in again.
func released(tx kv.Tx, facility string, gone vocab.Inmate) error {
	return putJSON(tx, bReleased, facility+"/"+gone.ID, gone)
}

// DefaultTechnicianRole is the role of a technician a roster lists without one.
const DefaultTechnicianRole = "technician"

// validateRoster checks every field before anything is hashed or written.
func validateRoster(facility string, ro Roster) error {
	const op = "put roster"
	if err := checkID(op, "facility", facility); err != nil {
		return err
	}
	if n := len(ro.Inmates) + len(ro.Technicians); n > MaxRosterPeople {
		return invalid(op, "inmates", "%d people, limit %d", n, MaxRosterPeople)
	}
	ids := map[string]bool{}
	badges := map[string]string{}
	for i, in := range ro.Inmates {
		f := fmt.Sprintf("inmates[%d]", i)
		if err := checkID(op, f+".id", in.ID); err != nil {
			return err
		}
		if ids[in.ID] {
			return invalid(op, f+".id", "inmate %q is listed twice", in.ID)
		}
		ids[in.ID] = true
		// The terminals' own rules for a person (vocab.RosterFieldError), so nothing the relay
		// takes is refused by a kiosk when it arrives.
		if field, problem, bad := vocab.RosterFieldError(f, vocab.Inmate{ID: in.ID, Name: in.Name, Badges: in.Badges,
			Language: in.Language, Status: in.Status}); bad {
			return invalid(op, field, "%s", problem)
		}
		if err := checkBadges(op, f, in.Badges, in.ID, badges); err != nil {
			return err
		}
		if err := checkPIN(op, f, in.PIN, in.PINHash); err != nil {
			return err
		}
	}
	techIDs := map[string]bool{}
	for i, tc := range ro.Technicians {
		f := fmt.Sprintf("technicians[%d]", i)
		if err := checkID(op, f+".id", tc.ID); err != nil {
			return err
		}
		if techIDs[tc.ID] {
			return invalid(op, f+".id", "technician %q is listed twice", tc.ID)
		}
		techIDs[tc.ID] = true
		if field, problem, bad := vocab.RosterFieldError(f, vocab.Technician{ID: tc.ID, Name: tc.Name, Badges: tc.Badges,
			Role: tc.Role}); bad {
			return invalid(op, field, "%s", problem)
		}
		if err := checkBadges(op, f, tc.Badges, tc.ID, badges); err != nil {
			return err
		}
		if err := checkPIN(op, f, tc.PIN, tc.PINHash); err != nil {
			return err
		}
	}
	return nil
}

// PutRoster replaces a facility's roster in one transaction. Plain PINs are hashed first (outside
// the transaction; never stored or logged). Changed entries go down to the facility's terminals;
// an inmate no longer listed is sent down as suspended, so no terminal lets them in.
func (r *Relay) PutRoster(facility string, ro Roster) error {
	const op = "put roster"
	// A technician listed without a role is a plain technician; a kiosk needs a role.
	ro.Technicians = slices.Clone(ro.Technicians)
	for i := range ro.Technicians {
		if ro.Technicians[i].Role == "" {
			ro.Technicians[i].Role = DefaultTechnicianRole
		}
	}
	if err := validateRoster(facility, ro); err != nil {
		return err
	}
	inmates := make([]vocab.Inmate, len(ro.Inmates))
	for i, in := range ro.Inmates {
		hash := in.PINHash
		if in.PIN != "" {
			h, err := pinhash.HashWith(in.PIN, r.cfg.PINParams)
			if err != nil {
				return invalid(op, fmt.Sprintf("inmates[%d].pin", i), "cannot be hashed")
			}
			hash = h
		}
		messaging := in.Messaging == nil || *in.Messaging
		inmates[i] = vocab.Inmate{ID: in.ID, Name: in.Name, Badges: in.Badges, PINHash: hash, Language: in.Language,
			Status: in.Status, Messaging: messaging, Media: in.Media}
	}
	techs := make([]vocab.Technician, len(ro.Technicians))
	for i, tc := range ro.Technicians {
		hash := tc.PINHash
		if tc.PIN != "" {
			h, err := pinhash.HashWith(tc.PIN, r.cfg.PINParams)
			if err != nil {
				return invalid(op, fmt.Sprintf("technicians[%d].pin", i), "cannot be hashed")
			}
			hash = h
		}
		techs[i] = vocab.Technician{ID: tc.ID, Name: tc.Name, Badges: tc.Badges, PINHash: hash, Role: tc.Role}
	}
	now := r.clock.Now().UTC()
	var removed []inmateRec
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		removed = removed[:0]
		if err := touchFacility(tx, facility, now, nil); err != nil {
			return err
		}
		listed := map[string]bool{}
		for _, in := range inmates {
			listed[in.ID] = true
		}
		// Inmates no longer listed go first: a badge they held may be another's in this roster,
		// and terminals give a badge to the person the relay named last.
		for _, id := range facilityInmates(tx, facility) {
			var in inmateRec
			found, err := getJSON(tx, bInmates, id, &in)
			if err != nil {
				return err
			}
			if found && in.FacilityID == facility && !listed[in.ID] {
				removed = append(removed, in)
			}
		}
		for _, in := range removed {
			if in.MovingFrom != "" {
				return movingErr(op, in.ID, in.MovingFrom) // taken off this roster once it is here
			}
			if err := tx.Bucket([]byte(bInmates)).Delete([]byte(in.ID)); err != nil {
				return err
			}
			if f.deferTo(facility) {
				// Held: the inmate's records are its holder's until it hands them over.
				if err := f.leaveHeld(tx, in.ID, facility, "", now); err != nil {
					return err
				}
			}
			if err := deleteKey(tx, bFacInmates, facility+"/"+in.ID); err != nil {
				return err
			}
			gone := in.Inmate
			gone.Status = vocab.StatusSuspended
			if err := released(tx, facility, gone); err != nil {
				return err
			}
			if err := f.toInmate(facility, in.ID, "", wire.DownInmate, gone); err != nil {
				return err
			}
		}
		var arrived []vocab.Inmate
		for i, in := range inmates {
			var old inmateRec
			found, err := getJSON(tx, bInmates, in.ID, &old)
			if err != nil {
				return err
			}
			if in.PINHash == "" {
				if !found {
					return invalid(op, fmt.Sprintf("inmates[%d].pin", i), "a new inmate needs pin or pin_hash")
				}
				in.PINHash = old.PINHash
			}
			if !found || old.FacilityID != facility {
				// New here, or moving here: an inmate taken off a held roster, or moving to
				// another facility, waits until that handover has ended. (One already here is
				// read no further: a roster lists them all, again and again.)
				h, moving, err := handoverOf(tx, in.ID)
				if err != nil {
					return err
				}
				if moving {
					return movingErr(op, in.ID, h.From)
				}
			}
			rec := inmateRec{Inmate: in, FacilityID: facility}
			if found && old.FacilityID == facility {
				rec.MovingFrom = old.MovingFrom // still being handed over: its end sends the record
			}
			switch {
			case found && old.FacilityID == facility && old.TabletsKnown:
				rec.Tablets, rec.TabletsKnown = old.Tablets, true
			case found && old.FacilityID == facility:
				rec.Tablets = tabletsOf(tx, facility, in.ID) // as before the list was kept
			default:
				rec.TabletsKnown = true // new here: a tablet is another facility's, never bound here
			}
			rec.TabletBound = len(rec.Tablets) > 0
			in.TabletBound = rec.TabletBound
			if found && sameJSON(old, rec) {
				continue
			}
			handover := false
			if found && old.FacilityID != facility {
				// From a held facility, the inmate's records are its holder's until it hands
				// them over (handover.go): their arrival here waits for it.
				if handover = f.deferTo(old.FacilityID); handover {
					rec.MovingFrom = old.FacilityID
					if err := f.leaveHeld(tx, in.ID, old.FacilityID, facility, now); err != nil {
						return err
					}
				}
				// Moved here from another facility: that facility's terminals stop letting them in.
				gone := old.Inmate
				gone.Status = vocab.StatusSuspended
				if err := released(tx, old.FacilityID, gone); err != nil {
					return err
				}
				if err := f.toInmate(old.FacilityID, old.ID, "", wire.DownInmate, gone); err != nil {
					return err
				}
				if err := deleteKey(tx, bFacInmates, old.FacilityID+"/"+in.ID); err != nil {
					return err
				}
			}
			if err := putJSON(tx, bInmates, in.ID, rec); err != nil {
				return err
			}
			if err := listInmate(tx, facility, in.ID); err != nil {
				return err
			}
			// Back on this facility's roster: no longer one who left it.
			if err := deleteKey(tx, bReleased, facility+"/"+in.ID); err != nil {
				return err
			}
			if found && old.FacilityID == facility {
				if rec.MovingFrom != "" {
					continue // its terminals hear of the inmate once the handover ends
				}
				if err := f.toInmate(facility, in.ID, "", wire.DownInmate, in); err != nil {
					return err
				}
				continue
			}
			if handover {
				continue
			}
			// New to this facility: its terminals need the inmate's money, sessions, contacts and
			// mail too (queued below, with the mail read once for all of them).
			arrived = append(arrived, in)
		}
		if f.deferTo(facility) {
			// Held: its holder sends them, to its terminals as it lists them.
			for _, in := range arrived {
				if err := f.arrivedIn(tx, facility, in); err != nil {
					return err
				}
			}
		} else if err := r.arrive(tx, f, facility, arrived); err != nil {
			return err
		}
		return r.putTechnicians(tx, f, facility, techs)
	})
	return err
}

func (r *Relay) putTechnicians(tx kv.Tx, f *fanout, facility string, techs []vocab.Technician) error {
	const op = "put roster"
	prefix := facility + "/"
	old := map[string]vocab.Technician{}
	if err := forEachJSON(tx, bTechnicians, prefix, func(k string, tc vocab.Technician) bool {
		old[tc.ID] = tc
		return true
	}); err != nil {
		return err
	}
	for i, tc := range techs {
		prev, found := old[tc.ID]
		delete(old, tc.ID)
		if tc.PINHash == "" {
			if !found {
				return invalid(op, fmt.Sprintf("technicians[%d].pin", i), "a new technician needs pin or pin_hash")
			}
			tc.PINHash = prev.PINHash
		}
		if found && sameJSON(prev, tc) {
			continue
		}
		if !found {
			// Back on the roster: a snapshot must not remove them again.
			var g wire.TechnicianRemoved
			if was, err := getJSON(tx, bTechsGone, prefix+tc.ID, &g); err != nil {
				return err
			} else if was {
				if err := deleteKey(tx, bTechsGone, prefix+tc.ID); err != nil {
					return err
				}
			}
		}
		if err := putJSON(tx, bTechnicians, prefix+tc.ID, tc); err != nil {
			return err
		}
		if err := f.toKiosks(facility, wire.DownTechnician, tc); err != nil {
			return err
		}
	}
	for id := range old {
		if err := deleteKey(tx, bTechnicians, prefix+id); err != nil {
			return err
		}
		if err := putJSON(tx, bTechsGone, prefix+id, wire.TechnicianRemoved{ID: id}); err != nil {
			return err
		}
		if err := f.toKiosks(facility, wire.DownTechnicianRemove, wire.TechnicianRemoved{ID: id}); err != nil {
			return err
		}
	}
	return nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// tabletsOf lists the live tablets of the facility bound to the inmate, from its route list:
// for a record that does not keep them yet (inmateRec.Tablets).
func tabletsOf(tx kv.Tx, facility, inmateID string) []string {
	var ids []string
	_ = forEachJSON(tx, bFacTerms, facility+"/", func(k string, rt termRoute) bool {
		if rt.Mode == wire.ModeTablet && rt.InmateID == inmateID {
			ids = append(ids, strings.TrimPrefix(k, facility+"/"))
		}
		return true
	})
	return ids
}

// forTerminals calls fn for each live terminal of the facility that receives the inmate's items.
func forTerminals(tx kv.Tx, facility, inmateID string, fn func(id string) error) error {
	var ids []string
	if err := forEachJSON(tx, bFacTerms, facility+"/", func(k string, rt termRoute) bool {
		if rt.Mode == wire.ModeKiosk || rt.InmateID == inmateID {
			ids = append(ids, strings.TrimPrefix(k, facility+"/"))
		}
		return true
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// touchFacility creates the facility record if needed and applies change to it.
func touchFacility(tx kv.Tx, facility string, now time.Time, change func(*facilityRec)) error {
	var fac facilityRec
	if _, err := getJSON(tx, bFacilities, facility, &fac); err != nil {
		return err
	}
	fac.ID = facility
	fac.UpdatedAt = now
	if change != nil {
		change(&fac)
	}
	return putJSON(tx, bFacilities, facility, fac)
}

// PutPolicy validates and stores a facility's policy and sends it to every terminal of the facility.
func (r *Relay) PutPolicy(facility string, p vocab.Policy) error {
	const op = "put policy"
	if err := checkID(op, "facility", facility); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return invalid(op, policyField(err), "%s", policyMsg(err))
	}
	now := r.clock.Now().UTC()
	return r.update(op, func(tx kv.Tx, f *fanout) error {
		if err := touchFacility(tx, facility, now, func(fac *facilityRec) {
			notePolicyChange(fac, p) // stamps.go
			fac.Policy = &p
		}); err != nil {
			return err
		}
		return f.toFacility(facility, "", wire.DownPolicy, p)
	})
}

// policyField pulls the field name out of vocab.Policy.Validate's "field: message".
func policyField(err error) string {
	var ke *vocab.Error
	if errors.As(err, &ke) && ke.Err != nil {
		if f, _, ok := strings.Cut(ke.Err.Error(), ": "); ok {
			return f
		}
	}
	return "policy"
}

func policyMsg(err error) string {
	var ke *vocab.Error
	if errors.As(err, &ke) && ke.Err != nil {
		if _, m, ok := strings.Cut(ke.Err.Error(), ": "); ok {
			return m
		}
		return ke.Err.Error()
	}
	return err.Error()
}

// Policy returns a facility's policy (the default if it never set one).
func (r *Relay) Policy(facility string) (vocab.Policy, error) {
	var fac facilityRec
	var ok bool
	err := r.view("read policy", func(tx kv.Tx) error {
		var err error
		ok, err = getJSON(tx, bFacilities, facility, &fac)
		return err
	})
	if err != nil {
		return vocab.Policy{}, err
	}
	if !ok {
		return vocab.Policy{}, notFound("read policy", "facility", "unknown facility %q", facility)
	}
	return fac.policy(), nil
}

// Monitoring is a facility's review settings. HoldOutbound is the email hold of letters to
// contacts (used when the relay's HoldPolicy is "facility"). RequestReview is the review of
// requests to staff (letters to a department), whatever the HoldPolicy: RequestReviewNone (the
// default, as TRULINCS sends requests straight to the department) or RequestReviewHold; empty
// keeps the facility's current setting. ReviewTarget is how long a held letter should wait at
// most (DefaultReviewTarget unless set; 0 keeps the current target): the staff console shows
// each held letter's time against it. The relay holds nothing longer or shorter for it.
//
// PhotoReview is the review of letters from families that carry photos (docs/PROTOCOL.md
// "Photos on inbound letters"): PhotoReviewHold (the default: held, with their photos, until
// staff approve or reject them in the console) or PhotoReviewNone (delivered once the photos
// pass the automatic checks); empty keeps the current setting.
type Monitoring struct {
	HoldOutbound  bool           `json:"hold_outbound"`
	RequestReview string         `json:"request_review,omitempty"`
	PhotoReview   string         `json:"photo_review,omitempty"`
	ReviewTarget  vocab.Duration `json:"review_target,omitempty"`
}

// DefaultReviewTarget is a facility's review target until it sets one: a held letter should
// be decided within the hour, as the facility's staff work the queue through the day.
const DefaultReviewTarget = time.Hour

// maxReviewTarget bounds a review target: a month is already no target at all.
const maxReviewTarget = 31 * 24 * time.Hour

// Request review settings (Monitoring.RequestReview).
const (
	RequestReviewNone = "none"
	RequestReviewHold = "hold"
)

// SetMonitoring sets whether a facility's outbound messages wait for review.
func (r *Relay) SetMonitoring(facility string, m Monitoring) error {
	const op = "set monitoring"
	if err := checkID(op, "facility", facility); err != nil {
		return err
	}
	switch m.RequestReview {
	case "", RequestReviewNone, RequestReviewHold:
	default:
		return invalid(op, "request_review", "%q is not none or hold", m.RequestReview)
	}
	switch m.PhotoReview {
	case "", PhotoReviewNone, PhotoReviewHold:
	default:
		return invalid(op, "photo_review", "%q is not none or hold", m.PhotoReview)
	}
	if m.ReviewTarget < 0 || m.ReviewTarget.D() > maxReviewTarget || (m.ReviewTarget != 0 && m.ReviewTarget.D() < time.Minute) {
		return invalid(op, "review_target", "%s is outside 1m..%s", m.ReviewTarget.D(), maxReviewTarget)
	}
	now := r.clock.Now().UTC()
	return r.update(op, func(tx kv.Tx, _ *fanout) error {
		hold := m.HoldOutbound
		return touchFacility(tx, facility, now, func(fac *facilityRec) {
			fac.HoldOutbound = &hold
			if m.RequestReview != "" {
				fac.RequestReview = m.RequestReview
			}
			if m.PhotoReview != "" {
				fac.PhotoReview = m.PhotoReview
			}
			if m.ReviewTarget != 0 {
				fac.ReviewTarget = m.ReviewTarget
			}
		})
	})
}

// MonitoringOf returns a facility's review settings as they apply now.
func (r *Relay) MonitoringOf(facility string) (Monitoring, error) {
	var fac facilityRec
	var ok bool
	err := r.view("read monitoring", func(tx kv.Tx) error {
		var err error
		ok, err = getJSON(tx, bFacilities, facility, &fac)
		return err
	})
	if err != nil {
		return Monitoring{}, err
	}
	if !ok {
		return Monitoring{}, notFound("read monitoring", "facility", "unknown facility %q", facility)
	}
	m := Monitoring{HoldOutbound: r.holds(fac), RequestReview: RequestReviewNone, PhotoReview: PhotoReviewHold,
		ReviewTarget: vocab.Duration(DefaultReviewTarget)}
	if fac.RequestReview != "" {
		m.RequestReview = fac.RequestReview
	}
	if fac.PhotoReview != "" {
		m.PhotoReview = fac.PhotoReview
	}
	if fac.ReviewTarget != 0 {
		m.ReviewTarget = fac.ReviewTarget
	}
	return m, nil
}

// holdsLetter reports whether a new outbound letter waits for review: a request to staff (dept)
// by the facility's request review, any other letter by the email hold.
func (r *Relay) holdsLetter(fac facilityRec, dept bool) bool {
	if dept {
		return fac.RequestReview == RequestReviewHold
	}
	return r.holds(fac)
}

// holds reports whether a new outbound message of the facility waits for review.
func (r *Relay) holds(fac facilityRec) bool {
	switch r.cfg.HoldPolicy {
	case HoldNone:
		return false
	case HoldByFacility:
		return fac.HoldOutbound == nil || *fac.HoldOutbound
	default:
		return true
	}
}

// NoticeRequest is an announcement for a facility's screens, or one inmate's.
type NoticeRequest struct {
	FacilityID string    `json:"facility_id"`
	InmateID   string    `json:"inmate_id,omitempty"`
	Text       string    `json:"text"`
	Language   string    `json:"language,omitempty"`
	Until      time.Time `json:"until,omitzero"`
}

// PostNotice queues a notice for the facility's terminals (or the inmate's).
func (r *Relay) PostNotice(req NoticeRequest) (wire.Notice, error) {
	const op = "post notice"
	if err := checkID(op, "facility_id", req.FacilityID); err != nil {
		return wire.Notice{}, err
	}
	if req.InmateID != "" {
		if err := checkID(op, "inmate_id", req.InmateID); err != nil {
			return wire.Notice{}, err
		}
	}
	if err := checkText(op, "text", req.Text, true, vocab.MaxNoticeText); err != nil {
		return wire.Notice{}, err
	}
	if err := vocab.ValidateNoticeText(req.Text); err != nil {
		return wire.Notice{}, invalid(op, "text", "%v: a terminal shows no longer notice", err)
	}
	if req.Language != "" && !vocab.KnownLanguage(req.Language) {
		return wire.Notice{}, invalid(op, "language", "must be %s or empty for every language", vocab.QuotedLanguages())
	}
	now := r.clock.Now().UTC()
	if !req.Until.IsZero() && !req.Until.After(now) {
		return wire.Notice{}, invalid(op, "until", "is in the past")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return wire.Notice{}, ioErr(op, err)
	}
	n := wire.Notice{ID: id.String(), InmateID: req.InmateID, Text: req.Text, Language: req.Language, At: now, Until: req.Until.UTC()}
	err = r.update(op, func(tx kv.Tx, f *fanout) error {
		if ok, err := getJSON(tx, bFacilities, req.FacilityID, &facilityRec{}); err != nil {
			return err
		} else if !ok {
			return notFound(op, "facility_id", "unknown facility %q", req.FacilityID)
		}
		if req.InmateID != "" {
			var in inmateRec
			ok, err := getJSON(tx, bInmates, req.InmateID, &in)
			if err != nil {
				return err
			}
			if !ok || in.FacilityID != req.FacilityID {
				return notFound(op, "inmate_id", "no inmate %q in facility %q", req.InmateID, req.FacilityID)
			}
		}
		// Kept (while in force) for the snapshot of a terminal enrolled or wiped later.
		if err := touchFacility(tx, req.FacilityID, now, func(fac *facilityRec) { fac.keepNotice(n, now) }); err != nil {
			return err
		}
		if req.InmateID != "" {
			return f.toInmate(req.FacilityID, req.InmateID, "", wire.DownNotice, n)
		}
		return f.toFacility(req.FacilityID, "", wire.DownNotice, n)
	})
	return n, err
}

// migrate12to13 adds techs_removed: technicians taken off a roster from now on are
// remembered, so that a snapshot removes them from a kiosk that missed the removal. Removals
// from before the upgrade were not recorded and cannot be recovered.
func migrate12to13(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bTechsGone)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bTechsGone, err)
	}
	return nil
}
