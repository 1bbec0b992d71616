package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// EnrollmentRequest asks for a one-time code for a new terminal.
type EnrollmentRequest struct {
	FacilityID string `json:"facility_id"`
	Mode       string `json:"mode"`                // wire.ModeKiosk or wire.ModeTablet
	InmateID   string `json:"inmate_id,omitempty"` // tablets only: the inmate it is bound to
}

// Enrollment is a one-time code and when it stops working.
type Enrollment struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// codeAlphabet leaves out letters people confuse (0/O, 1/I/L, U/V).
const codeAlphabet = "ABCDEFGHJKMNPQRSTWXYZ23456789"

func newCode() (string, error) {
	var raw [12]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		// 256 % 29 bias is negligible next to 29^12 codes valid for a day.
		b.WriteByte(codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return b.String(), nil
}

// codeKey is how a code is stored: hashed, so the file holds no usable codes.
func codeKey(code string) string {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	sum := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(sum[:])
}

// CreateEnrollment makes a one-time code for a kiosk of a facility or a tablet bound to an inmate.
func (r *Relay) CreateEnrollment(req EnrollmentRequest) (Enrollment, error) {
	const op = "create enrollment"
	if err := checkID(op, "facility_id", req.FacilityID); err != nil {
		return Enrollment{}, err
	}
	switch req.Mode {
	case wire.ModeKiosk:
		if req.InmateID != "" {
			return Enrollment{}, invalid(op, "inmate_id", "a kiosk is bound to no inmate")
		}
	case wire.ModeTablet:
		if err := checkID(op, "inmate_id", req.InmateID); err != nil {
			return Enrollment{}, err
		}
	default:
		return Enrollment{}, invalid(op, "mode", "must be %q or %q", wire.ModeKiosk, wire.ModeTablet)
	}
	code, err := newCode()
	if err != nil {
		return Enrollment{}, ioErr(op, err)
	}
	now := r.clock.Now().UTC()
	e := Enrollment{Code: code, ExpiresAt: now.Add(r.cfg.EnrollTTL)}
	err = r.update(op, func(tx kv.Tx, _ *fanout) error {
		if ok, err := getJSON(tx, bFacilities, req.FacilityID, &facilityRec{}); err != nil {
			return err
		} else if !ok {
			return notFound(op, "facility_id", "unknown facility %q (PUT its roster or policy first)", req.FacilityID)
		}
		if req.Mode == wire.ModeTablet {
			var in inmateRec
			ok, err := getJSON(tx, bInmates, req.InmateID, &in)
			if err != nil {
				return err
			}
			if !ok || in.FacilityID != req.FacilityID {
				return notFound(op, "inmate_id", "no inmate %q in facility %q", req.InmateID, req.FacilityID)
			}
		}
		return putJSON(tx, bEnrollments, codeKey(code), enrollmentRec{FacilityID: req.FacilityID, Mode: req.Mode,
			InmateID: req.InmateID, CreatedAt: now, ExpiresAt: e.ExpiresAt})
	})
	if err != nil {
		return Enrollment{}, err
	}
	r.logf("relay: enrollment code made for a %s of facility %s, expires %s", req.Mode, req.FacilityID, e.ExpiresAt.Format(time.RFC3339))
	return e, nil
}

// EnrollError is an enrollment refusal with its wire code (wire.Enroll*).
type EnrollError struct {
	Code string
	Msg  string
}

func (e *EnrollError) Error() string { return "enroll: " + e.Code + ": " + e.Msg }

// Enroll spends a one-time code on a terminal's public key (already verified by the caller with
// wire.DecodeEnrollRequest) and queues the facility's current state as its first downlink.
//
// A key that already belongs to a live terminal X of the code's facility is that terminal's
// store enrolling again (kioskctl reissue, a damaged enrollment file): a new terminal record
// replaces X, which is revoked in the same transaction. The terminal starts a new uplink epoch
// under its new id; what X already delivered is recognised by item id and not stored twice. A key of another facility's terminal,
// or of a revoked one, is refused: see enrollKeyRule.
func (r *Relay) Enroll(req wire.EnrollRequest) (wire.EnrollResponse, error) {
	const op = "enroll"
	now := r.clock.Now().UTC()
	var resp wire.EnrollResponse
	var replaced string
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		replaced, resp = "", wire.EnrollResponse{}
		key := codeKey(req.Code)
		var e enrollmentRec
		ok, err := getJSON(tx, bEnrollments, key, &e)
		if err != nil {
			return err
		}
		if !ok {
			return &EnrollError{Code: wire.EnrollUnknownCode, Msg: "no such enrollment code"}
		}
		if e.UsedBy != "" {
			return &EnrollError{Code: wire.EnrollCodeUsed, Msg: "this enrollment code was already used"}
		}
		if !now.Before(e.ExpiresAt) {
			return &EnrollError{Code: wire.EnrollCodeExpired, Msg: "the enrollment code has expired; ask for a new one"}
		}
		keys := tx.Bucket([]byte(bKeys))
		var old terminalRec
		if holder := keys.Get(req.PublicKey); holder != nil {
			found, err := getJSON(tx, bTerminals, string(holder), &old)
			if err != nil {
				return err
			}
			if err := enrollKeyRule(found, old, e); err != nil {
				return err
			}
		} else if req.Replaces != "" {
			found, err := getJSON(tx, bTerminals, req.Replaces, &old)
			if err != nil {
				return err
			}
			if err := enrollClaimRule(found, &old, e); err != nil {
				return err
			}
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		t := terminalRec{TerminalInfo: TerminalInfo{ID: "t-" + id.String(), FacilityID: e.FacilityID, Mode: e.Mode,
			InmateID: e.InmateID, EnrolledAt: now, Software: req.Software, Replaces: old.ID}, PublicKey: append([]byte(nil), req.PublicKey...)}
		e.UsedBy, e.UsedAt = t.ID, now
		if err := putJSON(tx, bEnrollments, key, e); err != nil {
			return err
		}
		if err := keys.Put(req.PublicKey, []byte(t.ID)); err != nil {
			return err
		}
		if err := putJSON(tx, bTerminals, t.ID, t); err != nil {
			return err
		}
		// Bound first: a tablet enrolling again never leaves its inmate without one between.
		if t.Mode == wire.ModeTablet {
			if err := r.bindTablet(tx, f, t.FacilityID, t.InmateID, t.ID, true); err != nil {
				return err
			}
		}
		if old.ID != "" {
			if err := r.revokeTx(tx, f, old.ID, now); err != nil {
				return err
			}
			var rec terminalRec
			if _, err := getJSON(tx, bTerminals, old.ID, &rec); err != nil {
				return err
			}
			rec.ReplacedBy = t.ID
			if err := putJSON(tx, bTerminals, old.ID, rec); err != nil {
				return err
			}
			replaced = old.ID
		}
		resp = wire.EnrollResponse{TerminalID: t.ID, Facility: t.FacilityID, Mode: t.Mode, InmateID: t.InmateID, ServerTime: now}
		// The rest is the facility's: at once, or by its holder after this commits.
		return f.enrolledIn(tx, t.TerminalInfo, now)
	})
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	if replaced != "" {
		r.hub.kick(replaced, wire.ReasonRevoked)
		r.logf("relay: terminal %s enrolled as a %s of facility %s with the key of terminal %s, which it replaces (revoked)",
			resp.TerminalID, resp.Mode, resp.Facility, replaced)
		return resp, nil
	}
	r.logf("relay: terminal %s enrolled as a %s of facility %s", resp.TerminalID, resp.Mode, resp.Facility)
	return resp, nil
}

// enrollFacilityTx is an enrollment's facility half (the state's half is Enroll's): the new
// terminal t on its facility's route list, its downlink started at the facility's current
// number, and the facility's state queued as its first downlink. Done once: a terminal on the
// route list has had it.
func (r *Relay) enrollFacilityTx(tx kv.Tx, f *fanout, t TerminalInfo, now time.Time) error {
	if getRaw(tx, bFacTerms, t.FacilityID+"/"+t.ID) != nil {
		return nil
	}
	if err := putJSON(tx, bFacTerms, t.FacilityID+"/"+t.ID, termRoute{Mode: t.Mode, InmateID: t.InmateID}); err != nil {
		return err
	}
	// Its downlink starts at its facility's current number: what the facility's log holds
	// up to there its snapshot (below) covers.
	fb, err := facCounter(tx, t.FacilityID)
	if err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bDownFrom)).Put([]byte(t.ID), u64(fb.Sequence())); err != nil {
		return err
	}
	f.knowFacility(t.ID, t.FacilityID)
	return r.snapshot(tx, f, t, now)
}

// enrollKeyRule decides whether a key that already belongs to terminal old may enroll with
// code e. A key proves possession of a terminal's store, nothing more:
//   - old is live and of the same facility: the same store enrolling again; it replaces old.
//   - old is of another facility: refused. Its store holds that facility's inmates, money not
//     yet forwarded and letters; under another facility the relay would refuse them for good
//     (not_this_terminals_inmate) and they would be lost. Moving a terminal between facilities
//     takes a wiped store and a new key.
//   - old was revoked: refused. A technician revokes a terminal that was lost or stolen, and
//     its key may have been copied; enrolling it again would hand the copy a live terminal.
//     The terminal makes a new key (remove identity.key) and enrolls as a new terminal.
func enrollKeyRule(found bool, old terminalRec, e enrollmentRec) error {
	switch {
	case !found:
		return &EnrollError{Code: wire.EnrollKeyInUse, Msg: "this public key already belongs to another terminal"}
	case old.Revoked:
		return &EnrollError{Code: wire.EnrollKeyInUse, Msg: "this public key belongs to a revoked terminal and may have been copied; " +
			"remove the terminal's identity.key so it makes a new one, and enroll again"}
	case old.FacilityID != e.FacilityID:
		return &EnrollError{Code: wire.EnrollKeyInUse, Msg: "this public key belongs to a terminal of another facility; " +
			"a terminal moves to another facility only with a wiped store and a new key"}
	}
	return nil
}

// enrollClaimRule decides a new key's claim to have been terminal old (req.Replaces: the id the
// store was enrolled as; the key that could prove it is lost). The code is the proof: a
// technician made it for this facility. A live terminal of the facility is replaced as with
// the same key. A claimed terminal the relay does not know (a relay restored from a backup)
// or that was revoked (a lost or stolen terminal's store may have been copied) is not
// inherited from: the store enrolls as a new terminal (old is cleared). A terminal of another
// facility is refused: its store holds that facility's people and money.
func enrollClaimRule(found bool, old *terminalRec, e enrollmentRec) error {
	switch {
	case !found || old.Revoked:
		*old = terminalRec{}
	case old.FacilityID != e.FacilityID:
		return &EnrollError{Code: wire.EnrollKeyInUse, Msg: "this terminal's store was enrolled in another facility; " +
			"a terminal moves to another facility only with a wiped store and a new key"}
	}
	return nil
}

// record turns a stored usage record back into the kiosk record a terminal applies.
func (u UsageRecord) record() any {
	if u.Kind == "credit" {
		return vocab.Credit{RecordID: u.RecordID, SessionID: u.SessionID, InmateID: u.InmateID, Minute: u.Minute, Cents: u.Cents, Reason: u.Reason, At: u.At, MessageID: u.MessageID,
			CourseID: u.CourseID, QuizID: u.QuizID}
	}
	return vocab.Charge{RecordID: u.RecordID, SessionID: u.SessionID, InmateID: u.InmateID, Minute: u.Minute, Cents: u.Cents, At: u.At, MessageID: u.MessageID, ItemID: u.ItemID}
}

// terminal reads one terminal's record.
func (r *Relay) terminal(id string) (terminalRec, bool, error) {
	var t terminalRec
	var ok bool
	err := r.view("read terminal", func(tx kv.Tx) error {
		var err error
		ok, err = getJSON(tx, bTerminals, id, &t)
		return err
	})
	return t, ok, err
}
