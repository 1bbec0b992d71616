package kiosk

import "time"

// The records the store keeps, one JSON value per bbolt key. Field names are the wire names
// too, so the sync engine and the roster import read the same shapes.

// Inmate is a person who may log in and be billed.
type Inmate struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Badges      []string `json:"badges"`
	PINHash     string   `json:"pin_hash"`
	Language    string   `json:"language"` // "en" or "es"
	Status      string   `json:"status"`   // StatusActive or StatusSuspended
	Messaging   bool     `json:"messaging"`
	Media       bool     `json:"media"`
	TabletBound bool     `json:"tablet_bound"`
}

const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Technician installs and looks after terminals.
type Technician struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Badges  []string `json:"badges"`
	PINHash string   `json:"pin_hash"`
	Role    string   `json:"role"` // e.g. "installer", "supervisor"
}

// BadgeOwner is the badges bucket's value: who a badge belongs to.
type BadgeOwner struct {
	Kind string `json:"kind"` // "inmate" or "technician"
	ID   string `json:"id"`
}

// LoginState survives restarts so a lockout cannot be cleared by pulling the plug.
type LoginState struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until,omitempty"`
}

// Account is an inmate's money and waiting time as this terminal knows them.
type Account struct {
	InmateID string `json:"inmate_id"`
	Balance  Cents  `json:"balance_cents"`
	// Unsynced is what this terminal charged that the relay has not yet acknowledged.
	Unsynced      Cents     `json:"unsynced_cents"`
	CooldownUntil time.Time `json:"cooldown_until,omitempty"`
	// CooldownFrom and CooldownReason are the end and end reason of the session that started
	// the cool-down, so a check recomputes its length from the policy in force then: lowering
	// the cool-down releases inmates already waiting.
	CooldownFrom   time.Time `json:"cooldown_from,omitempty"`
	CooldownReason Reason    `json:"cooldown_reason,omitempty"`
}

// Session is one login to logout; Minutes is the count of minutes begun and billed.
type Session struct {
	ID        string    `json:"id"`
	InmateID  string    `json:"inmate_id"`
	Terminal  string    `json:"terminal,omitempty"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitempty"`
	Minutes   int       `json:"minutes"`
	Rate      Cents     `json:"rate_cents"`
	Charged   Cents     `json:"charged_cents"`
	Credited  Cents     `json:"credited_cents"`
	EndReason Reason    `json:"end_reason,omitempty"`
}

// Charge bills one begun minute; its key and RecordID are the session id and minute number,
// so writing it twice is impossible.
type Charge struct {
	RecordID  string    `json:"record_id"`
	SessionID string    `json:"session_id"`
	InmateID  string    `json:"inmate_id"`
	Minute    int       `json:"minute"`
	Cents     Cents     `json:"cents"`
	At        time.Time `json:"at"`
}

// Credit gives back a billed minute the terminal, not the inmate, lost.
type Credit struct {
	RecordID  string    `json:"record_id"`
	SessionID string    `json:"session_id"`
	InmateID  string    `json:"inmate_id"`
	Minute    int       `json:"minute"`
	Cents     Cents     `json:"cents"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// Deposit adds money; Ref makes the same deposit applied twice count once.
type Deposit struct {
	Ref      string    `json:"ref"`
	InmateID string    `json:"inmate_id"`
	Cents    Cents     `json:"cents"`
	At       time.Time `json:"at"`
}

// Contact states.
const (
	ContactPending  = "pending"
	ContactApproved = "approved"
	ContactDeclined = "declined"
	ContactRemoved  = "removed"
)

// Contact is someone outside an inmate may write to once approved.
type Contact struct {
	ID        string    `json:"id"`
	InmateID  string    `json:"inmate_id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Invite is the contact's own answer to the invitation the relay sends once staff approve
	// (Invite* below); "" from a relay without invitations. Letters flow only when it is
	// accepted (or "").
	Invite string `json:"invite,omitempty"`
	// InviteExpires is when an invitation not yet answered stops being valid.
	InviteExpires time.Time `json:"invite_expires,omitzero"`
}

// Message boxes and states.
const (
	BoxInbox  = "inbox"
	BoxOutbox = "outbox"

	MsgQueued    = "queued"
	MsgSent      = "sent"
	MsgHeld      = "held"
	MsgDelivered = "delivered"
	MsgRejected  = "rejected"
)

// Message is one plain-text message, in or out; To/From name a contact, department or "prea".
type Message struct {
	ID       string `json:"id"` // UUIDv7
	InmateID string `json:"inmate_id"`
	Box      string `json:"box"`
	Peer     string `json:"peer"`      // contact id, department id, or PREAChannel
	PeerName string `json:"peer_name"` // shown on screen
	Subject  string `json:"subject,omitempty"`
	Body     string `json:"body"`
	State    string `json:"state,omitempty"` // outbox only
	Reason   string `json:"reason,omitempty"`
	Read     bool   `json:"read,omitempty"` // inbox only
	// ReplyTo is, on a department's answer (inbox), the id of the inmate's request it answers,
	// so the screens show it under that request.
	ReplyTo   string    `json:"reply_to,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PREAChannel is the free, always-open channel for PREA reports.
const PREAChannel = "prea"

// Draft is what an inmate was typing; one per inmate.
type Draft struct {
	InmateID  string    `json:"inmate_id"`
	Peer      string    `json:"peer"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body"`
	ReplyTo   string    `json:"reply_to,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AuditEvent records who did what, never a PIN.
type AuditEvent struct {
	ID     string            `json:"id"` // UUIDv7
	At     time.Time         `json:"at"`
	Kind   string            `json:"kind"`  // e.g. "login_ok", "login_failed", "notice_accepted"
	Actor  string            `json:"actor"` // inmate or technician id, or "" for the terminal
	Detail map[string]string `json:"detail,omitempty"`
}
