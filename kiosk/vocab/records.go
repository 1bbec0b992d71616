package vocab

import (
	"encoding/json"
	"strings"
	"time"
)

// The records a terminal keeps and the relay keeps, one JSON value each. Field names are the
// wire names too, so the store, the sync engine, the relay and the roster import read the
// same shapes.

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
// so writing it twice is impossible. A stamp (Policy.Pricing per message) is a Charge too: its
// MessageID names the letter it paid for and its RecordID is StampRecordID of that letter, so
// a letter is stamped at most once.
type Charge struct {
	RecordID  string    `json:"record_id"`
	SessionID string    `json:"session_id"`
	InmateID  string    `json:"inmate_id"`
	Minute    int       `json:"minute"`
	Cents     Cents     `json:"cents"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id,omitempty"` // stamps only
	Pages     int       `json:"pages,omitempty"`      // print charges only (print.go)
	ItemID    string    `json:"item_id,omitempty"`    // purchases only: the catalog item bought
}

// StampRecordPrefix starts the record id of every stamp charge and of its refund.
const StampRecordPrefix = "stamp/"

// StampRecordID is the record id of the stamp on letter messageID (and of its refund).
func StampRecordID(messageID string) string { return StampRecordPrefix + messageID }

// IsStampRecord reports whether a charge or credit record id is a stamp's.
func IsStampRecord(recordID string) bool { return strings.HasPrefix(recordID, StampRecordPrefix) }

// Credit gives back a billed minute the terminal, not the inmate, lost.
type Credit struct {
	RecordID  string    `json:"record_id"`
	SessionID string    `json:"session_id"`
	InmateID  string    `json:"inmate_id"`
	Minute    int       `json:"minute"`
	Cents     Cents     `json:"cents"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id,omitempty"` // stamp refunds only
	ItemID    string    `json:"item_id,omitempty"`    // purchase refunds only
	// CourseID and QuizID name the quiz a relay's education credit was earned by.
	CourseID string `json:"course_id,omitempty"`
	QuizID   string `json:"quiz_id,omitempty"`
}

// Credit reasons, stored on Credit records.
const (
	CreditStall         = "stall"
	CreditTerminalFault = "terminal fault"
	// CreditStampRejected: the relay refunds a stamp on a letter staff rejected.
	CreditStampRejected = "letter rejected"
	// CreditStampRefused: the terminal gives a stamp back when the relay refused the charge
	// (the relay never took the money: the letter was refused, or the price did not match).
	CreditStampRefused = "stamp refused"
)

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
	// (Invite* in kiosk/invite.go); "" from a relay without invitations. Letters flow only when
	// it is accepted (or "").
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
	ReplyTo string `json:"reply_to,omitempty"`
	// Photos are the photos a family sent with an inbound letter (ValidatePhotos); their
	// bytes arrive apart, as content chunks.
	Photos    []Photo   `json:"photos,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PREAChannel is the free, always-open channel for PREA reports.
const PREAChannel = "prea"

// AuditEvent records who did what, never a PIN.
type AuditEvent struct {
	ID     string            `json:"id"` // UUIDv7
	At     time.Time         `json:"at"`
	Kind   string            `json:"kind"`  // e.g. "login_ok", "login_failed", "notice_accepted"
	Actor  string            `json:"actor"` // inmate or technician id, or "" for the terminal
	Detail map[string]string `json:"detail,omitempty"`
}

// MessageStatus is the relay's report on a message this terminal sent.
type MessageStatus struct {
	MessageID string    `json:"message_id"`
	InmateID  string    `json:"inmate_id"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// TechnicianRemoved names a technician taken off the roster.
type TechnicianRemoved struct {
	ID string `json:"id"`
}

// Notice is text the facility wants on screen: for everyone (InmateID "") or one inmate.
type Notice struct {
	ID       string    `json:"id"`
	InmateID string    `json:"inmate_id,omitempty"`
	Text     string    `json:"text"`
	Language string    `json:"language,omitempty"`
	At       time.Time `json:"at"`
	Until    time.Time `json:"until,omitzero"` // zero: no expiry, and then absent on the wire
}

// ItemKind names what a forwarded item carries; the relay dispatches on it.
type ItemKind string

const (
	ItemMessage        ItemKind = "message"         // Body: Message (outbox)
	ItemPREA           ItemKind = "prea"            // Body: Message to PREAChannel; text erased on ack
	ItemContactRequest ItemKind = "contact_request" // Body: Contact
	ItemContactRemove  ItemKind = "contact_remove"  // Body: Contact
	ItemCharge         ItemKind = "charge"          // Body: Charge
	ItemCredit         ItemKind = "credit"          // Body: Credit
	ItemSessionEnd     ItemKind = "session_end"     // Body: Session
	ItemAudit          ItemKind = "audit"           // Body: AuditEvent
	ItemDeviceStatus   ItemKind = "device_status"   // Body: whatever the device layer reports
	ItemMessageRead    ItemKind = "message_read"    // Body: MessageRead (an inbox letter read here)
	ItemQuizAttempt    ItemKind = "quiz_attempt"    // Body: QuizAttempt (graded by the relay)
	ItemLibraryUse     ItemKind = "library_use"     // Body: LibraryUse (library minutes begun here today)
)

// Item is one record waiting in the forwarding queue. Seq is unique and increasing within the
// store's epoch; ID is a UUIDv7 the relay dedupes on together with (epoch, seq).
type Item struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Kind      ItemKind        `json:"kind"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"body"`
}

// Logf is how the terminal and the relay write to the log; it is passed in, never global.
type Logf func(format string, args ...any)

// MessageRead says an inmate read an inbox letter: uplink from the terminal where it was read,
// downlink to the inmate's other terminals.
type MessageRead struct {
	MessageID string    `json:"message_id"`
	InmateID  string    `json:"inmate_id"`
	At        time.Time `json:"at"`
}

// History is the letters an inmate wrote, newest first, sent to a kiosk for one session.
// Truncated says older letters were left out (MaxHistoryLetters, MaxHistoryBytes).
type History struct {
	InmateID  string    `json:"inmate_id"`
	SessionID string    `json:"session_id"`
	Letters   []Message `json:"letters"`
	Truncated bool      `json:"truncated,omitempty"`
}

// The bound of one session's history: the relay sends the newest letters only, at most this
// many and at most this many bytes of JSON (under the 256 KiB of one downlink item), so a
// login costs a kiosk a bounded write and leaves it a bounded copy to wipe.
const (
	MaxHistoryLetters = 50
	MaxHistoryBytes   = 192 << 10
)

// Who a login is for: the kind of person a session or an audit event's "kind" detail names.
const (
	PersonInmate     = "inmate"
	PersonTechnician = "technician"
)

// Limits of a health report: the relay turns it into metric labels, so a terminal must not
// be able to mint series without end.
const (
	MaxHealthDevices   = 8
	MaxHealthNameBytes = 40
)

// DeviceHealth is one device of the terminal as the relay sees it: no path, no last badge.
type DeviceHealth struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	State string `json:"state"` // "connected", "disconnected" or "unknown"
}

// Health is the body of a device_status item: the terminal's devices, its forwarding queue
// and its build. The relay keeps the newest per terminal, shows it to technicians and
// exports it as metrics.
type Health struct {
	Software     string         `json:"software,omitempty"`
	ItemsWaiting int            `json:"items_waiting"`
	Devices      []DeviceHealth `json:"devices"`
}

// Refund takes back (part of) a deposit, decided by the relay: never more than the deposit
// less its earlier refunds, nor more than the balance the relay holds. Ref is the refund's own
// reference (a refund applied twice counts once); DepositRef names the deposit.
type Refund struct {
	Ref        string    `json:"ref"`
	DepositRef string    `json:"deposit_ref"`
	InmateID   string    `json:"inmate_id"`
	Cents      Cents     `json:"cents"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}
