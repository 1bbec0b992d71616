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
	DownRefund           = "refund"             // kiosk.Refund of (part of) a deposit; applied once per ref
)

// DownKinds lists every downlink kind of this protocol version.
var DownKinds = []string{DownInboundMessage, DownMessageStatus, DownInmate, DownTechnician,
	DownTechnicianRemove, DownDeposit, DownContact, DownPolicy, DownRemoteCharge, DownRemoteCredit,
	DownRemoteSessionEnd, DownNotice, DownRefund}

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
)

// UpKinds lists every uplink kind of this protocol version.
var UpKinds = []string{UpMessage, UpPREA, UpContactRequest, UpContactRemove, UpCharge, UpCredit,
	UpSessionEnd, UpAudit, UpDeviceStatus}

// Downlink bodies are the kiosk's own records, defined once there: MessageStatus changes the
// state of a message the terminal sent, TechnicianRemoved takes a technician off the roster,
// Notice is text to show on screen (to everyone when InmateID is empty).
type (
	MessageStatus     = kiosk.MessageStatus
	TechnicianRemoved = kiosk.TechnicianRemoved
	Notice            = kiosk.Notice
)
