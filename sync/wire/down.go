package wire

import "github.com/tether-kiosk/tether/kiosk"

// Downlink kinds. Bodies whose shape is a kiosk record use that record's JSON (kiosk/model.go
// field names are the wire names); the others are defined here. kiosk/downlink.go applies them.
const (
	DownInboundMessage   = "inbound_message"    // kiosk.Message, box "inbox"
	DownMessageStatus    = "message_status"     // MessageStatus
	DownInmate           = "inmate"             // kiosk.Inmate: added or updated (status, badges, pin_hash...)
	DownTechnician       = "technician"         // kiosk.Technician: added or updated
	DownTechnicianRemove = "technician_removed" // TechnicianRemoved
	DownDeposit          = "deposit"            // kiosk.Deposit; applied once per ref
	DownContact          = "contact"            // kiosk.Contact: approved, declined or removed, with reason
	DownPolicy           = "policy"             // kiosk.Policy: the whole facility policy
	DownRemoteCharge     = "remote_charge"      // kiosk.Charge from another terminal; applied once per record_id
	DownRemoteCredit     = "remote_credit"      // kiosk.Credit from another terminal; applied once per record_id
	DownRemoteSessionEnd = "remote_session_end" // kiosk.Session ended on another terminal: sets cool-down
	DownNotice           = "notice"             // Notice
	DownSentMessage      = "sent_message"       // kiosk.Message (outbox): a letter written on another terminal (tablets)
	DownHistory          = "history"            // History: an inmate's letters for one kiosk session
	DownMessageRead      = "message_read"       // MessageRead: an inbox letter read on another terminal
)

// DownKinds lists every downlink kind of this protocol version.
var DownKinds = []string{DownInboundMessage, DownMessageStatus, DownInmate, DownTechnician,
	DownTechnicianRemove, DownDeposit, DownContact, DownPolicy, DownRemoteCharge, DownRemoteCredit,
	DownRemoteSessionEnd, DownNotice, DownSentMessage, DownHistory, DownMessageRead}

// Uplink item kinds (kiosk.ItemKind values).
const (
	UpMessage        = "message"         // kiosk.Message (outbox)
	UpPREA           = "prea"            // kiosk.Message to the PREA channel
	UpContactRequest = "contact_request" // kiosk.Contact
	UpContactRemove  = "contact_remove"  // kiosk.Contact
	UpCharge         = "charge"          // kiosk.Charge
	UpCredit         = "credit"          // kiosk.Credit
	UpSessionEnd     = "session_end"     // kiosk.Session
	UpAudit          = "audit"           // kiosk.AuditEvent
	UpDeviceStatus   = "device_status"   // free-form object from the device layer
	UpMessageRead    = "message_read"    // MessageRead: an inbox letter read on this terminal
)

// UpKinds lists every uplink kind of this protocol version.
var UpKinds = []string{UpMessage, UpPREA, UpContactRequest, UpContactRemove, UpCharge, UpCredit,
	UpSessionEnd, UpAudit, UpDeviceStatus, UpMessageRead}

// Downlink bodies are the kiosk's own records, defined once there: MessageStatus changes the
// state of a message the terminal sent, TechnicianRemoved takes a technician off the roster,
// Notice is text to show on screen (to everyone when InmateID is empty).
type (
	MessageStatus     = kiosk.MessageStatus
	TechnicianRemoved = kiosk.TechnicianRemoved
	Notice            = kiosk.Notice
	// History carries an inmate's newest letters to a kiosk for one session (at most
	// MaxHistoryLetters and MaxHistoryBytes); MessageRead says an inbox letter was read.
	History     = kiosk.History
	MessageRead = kiosk.MessageRead
)

// The bound of one session's history (docs/PROTOCOL.md, "History").
const (
	MaxHistoryLetters = kiosk.MaxHistoryLetters
	MaxHistoryBytes   = kiosk.MaxHistoryBytes
)
