package relay

import (
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// facilityRec is what the relay knows of a facility.
type facilityRec struct {
	ID           string        `json:"id"`
	Policy       *vocab.Policy `json:"policy,omitempty"`
	HoldOutbound *bool         `json:"hold_outbound,omitempty"` // HoldByFacility only; nil means hold
	// RequestReview is the review of requests to staff: "" or RequestReviewNone delivers them
	// at once, RequestReviewHold holds them (whatever the email hold).
	RequestReview string `json:"request_review,omitempty"`
	// PhotoReview is the review of letters from families that carry photos (photoreview.go):
	// "" (never set) or PhotoReviewHold holds them for staff, PhotoReviewNone delivers them
	// once the photos pass the automatic checks.
	PhotoReview string `json:"photo_review,omitempty"`
	// ReviewTarget is how long a held letter should wait at most (0: DefaultReviewTarget).
	ReviewTarget vocab.Duration `json:"review_target,omitempty"`
	UpdatedAt    time.Time      `json:"updated_at"`
	// Notices are the facility's notices still in force (the newest maxNotices), for snapshots.
	Notices []wire.Notice `json:"notices,omitempty"`
	// PrevStampPrice is the stamp price (0: none) of the policy before the last change of it,
	// still accepted for a stamp charged by a terminal that had not yet heard of the change.
	PrevStampPrice vocab.Cents `json:"prev_stamp_price_cents,omitempty"`
}

// maxNotices bounds the notices a facility keeps for snapshots, as a terminal keeps at most
// this many.
const maxNotices = 100

// keepNotice adds n and drops notices no longer in force, then the oldest beyond maxNotices.
func (f *facilityRec) keepNotice(n wire.Notice, now time.Time) {
	kept := f.Notices[:0]
	for _, x := range f.Notices {
		if inForce(x, now) {
			kept = append(kept, x)
		}
	}
	kept = append(kept, n)
	if len(kept) > maxNotices {
		kept = kept[len(kept)-maxNotices:]
	}
	f.Notices = kept
}

func (f facilityRec) policy() vocab.Policy {
	if f.Policy != nil {
		return *f.Policy
	}
	return vocab.DefaultPolicy()
}

// inmateRec is a roster entry with the facility it lives in.
type inmateRec struct {
	vocab.Inmate
	FacilityID string `json:"facility_id"`
	// Tablets are the live tablets bound to the inmate, the state's own account of them, from
	// which tablet_bound follows: enrollment's and revocation's first halves keep it, and they
	// cannot read a held facility's route list (SCALE.md, "The second writer"). TabletsKnown
	// is false on a record from before: its tablets are read from the route list the first
	// time they change, which no holder changed since (it would have kept this list).
	Tablets      []string `json:"tablets,omitempty"`
	TabletsKnown bool     `json:"tablets_known,omitempty"`
	// MovingFrom names the held facility the inmate left whose holder has not handed their
	// records over yet (handover.go): until it has, nothing else writes them.
	MovingFrom string `json:"moving_from,omitempty"`
}

type enrollmentRec struct {
	FacilityID string    `json:"facility_id"`
	Mode       string    `json:"mode"`
	InmateID   string    `json:"inmate_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// UsedBy and UsedAt are set when a terminal spends the code, so a second try says "used".
	UsedBy string    `json:"used_by,omitempty"`
	UsedAt time.Time `json:"used_at,omitempty"`
}

// TerminalInfo is what GET /admin/v1/terminals shows of one terminal.
type TerminalInfo struct {
	ID         string    `json:"id"`
	FacilityID string    `json:"facility_id"`
	Mode       string    `json:"mode"`
	InmateID   string    `json:"inmate_id,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at"`
	LastSeen   time.Time `json:"last_seen,omitempty"`
	// ItemsWaiting is the terminal's forwarding queue length as it last reported it (hello's
	// "waiting", or "items_waiting" in a device_status body).
	ItemsWaiting int `json:"items_waiting"`
	// OldestWaiting is when the oldest of those items was queued, as the terminal's hello said
	// (informational: a terminal's clock; zero when none wait or it did not say).
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
	Software      string    `json:"software,omitempty"`
	Revoked       bool      `json:"revoked"`
	RevokedAt     time.Time `json:"revoked_at,omitempty"`
	Connected     bool      `json:"connected"`
	// Gateway is, on a relay with facility homes, the URL of the gateway its connection is
	// on (docs/SCALE.md "Facility homes"); empty when it is not connected, or on one gateway.
	Gateway string `json:"gateway,omitempty"`
	// DownQueued and DownAcked are the last downlink seq queued for it and the last it applied.
	DownQueued uint64 `json:"down_queued"`
	DownAcked  uint64 `json:"down_acked"`
	// Replaces is the terminal this one superseded: enrolled again with the same key (its store
	// kept), the old record was revoked in the same transaction.
	Replaces string `json:"replaces,omitempty"`
	// ReplacedBy is the terminal that superseded this one (set as it was revoked for it): the
	// way forward to whoever holds what this terminal forwarded.
	ReplacedBy string `json:"replaced_by,omitempty"`
}

type terminalRec struct {
	TerminalInfo
	PublicKey []byte `json:"public_key"`
}

// Outbound is a message an inmate sent, as the reviewers see it.
type Outbound struct {
	vocab.Message
	FacilityID string    `json:"facility_id"`
	TerminalID string    `json:"terminal_id"`
	Status     string    `json:"status"` // vocab.MsgHeld, MsgDelivered, MsgRejected
	ReceivedAt time.Time `json:"received_at"`
	ReviewedAt time.Time `json:"reviewed_at,omitempty"`
	// StampDue is what the letter owes in stamps (0: nothing), fixed when it arrived: the
	// facility's price then; StampPrevDue is the price before the last change, also taken from
	// a terminal that had not heard of the change (stamps.go).
	StampDue     vocab.Cents `json:"stamp_due_cents,omitempty"`
	StampPrevDue vocab.Cents `json:"stamp_prev_due_cents,omitempty"`
	// AwaitingStamp: the letter owes a stamp that has not come yet; it is held, and staff
	// cannot approve it, until the stamp is recorded or it is rejected stamp_missing.
	AwaitingStamp bool `json:"awaiting_stamp,omitempty"`
}

// ContactRecord is a contact as the relay keeps it.
type ContactRecord struct {
	vocab.Contact
	FacilityID string    `json:"facility_id"`
	TerminalID string    `json:"terminal_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// UsageRecord is one billed or credited minute.
type UsageRecord struct {
	Kind       string      `json:"kind"` // "charge" or "credit"
	RecordID   string      `json:"record_id"`
	SessionID  string      `json:"session_id"`
	InmateID   string      `json:"inmate_id"`
	Minute     int         `json:"minute"`
	Cents      vocab.Cents `json:"cents"`
	Reason     string      `json:"reason,omitempty"`
	At         time.Time   `json:"at"`
	TerminalID string      `json:"terminal_id"`          // "" for a refund the relay issued itself
	MessageID  string      `json:"message_id,omitempty"` // stamps and their refunds
	Pages      int         `json:"pages,omitempty"`      // print charges (print.go)
	ItemID     string      `json:"item_id,omitempty"`    // library purchases
	CourseID   string      `json:"course_id,omitempty"`  // education credits: the quiz passed
	QuizID     string      `json:"quiz_id,omitempty"`
}

// Usage is an inmate's statement: every record, and charges minus credits.
type Usage struct {
	InmateID   string          `json:"inmate_id"`
	Records    []UsageRecord   `json:"records"`
	Sessions   []vocab.Session `json:"sessions"`
	TotalCents vocab.Cents     `json:"total_cents"`
}

// totals are an inmate's running sums, updated in the transaction of each money record.
type totals struct {
	Deposits vocab.Cents `json:"deposits_cents"`
	Charges  vocab.Cents `json:"charges_cents"`
	Credits  vocab.Cents `json:"credits_cents"`
	Refunds  vocab.Cents `json:"refunds_cents,omitempty"`
}

// balance is what the inmate holds: deposits - refunds - charges + credits.
func (t totals) balance() vocab.Cents { return t.Deposits - t.Refunds - t.Charges + t.Credits }

// Balance is deposits - refunds - charges + credits across every terminal.
type Balance struct {
	InmateID     string      `json:"inmate_id"`
	BalanceCents vocab.Cents `json:"balance_cents"`
	Deposits     vocab.Cents `json:"deposits_cents"`
	Charges      vocab.Cents `json:"charges_cents"`
	Credits      vocab.Cents `json:"credits_cents"`
	Refunds      vocab.Cents `json:"refunds_cents"`
}
