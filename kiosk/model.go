package kiosk

import "time"

// The records only the terminal keeps, one JSON value per bbolt key; the records it shares
// with the relay are in kiosk/vocab (aliased in vocab.go).

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

// Draft is what an inmate was typing; one per inmate.
type Draft struct {
	InmateID  string    `json:"inmate_id"`
	Peer      string    `json:"peer"`
	Subject   string    `json:"subject,omitempty"`
	Body      string    `json:"body"`
	ReplyTo   string    `json:"reply_to,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}
