package wire

import "time"

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
)

// DownKinds lists every downlink kind of this protocol version.
var DownKinds = []string{DownInboundMessage, DownMessageStatus, DownInmate, DownTechnician,
	DownTechnicianRemove, DownDeposit, DownContact, DownPolicy, DownRemoteCharge, DownRemoteCredit,
	DownRemoteSessionEnd, DownNotice}

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

// MessageStatus changes the state of a message the terminal sent (held, delivered, rejected).
type MessageStatus struct {
	MessageID string    `json:"message_id"`
	InmateID  string    `json:"inmate_id"`
	State     string    `json:"state"` // "held", "delivered" or "rejected"
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// TechnicianRemoved takes a technician off the terminal's roster.
type TechnicianRemoved struct {
	ID string `json:"id"`
}

// Notice is text to show on screen: to everyone (InmateID empty) or to one inmate, until Until.
type Notice struct {
	ID       string    `json:"id"`
	InmateID string    `json:"inmate_id,omitempty"`
	Text     string    `json:"text"`
	Language string    `json:"language,omitempty"` // "" for every language
	At       time.Time `json:"at"`
	Until    time.Time `json:"until,omitempty"`
}
