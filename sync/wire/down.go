package wire

import (
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Downlink kinds. Bodies whose shape is a kiosk record use that record's JSON (kiosk/model.go
// field names are the wire names); the others are defined here. kiosk/downlink.go applies them.
const (
	DownInboundMessage   = "inbound_message"    // vocab.Message, box "inbox"
	DownMessageStatus    = "message_status"     // MessageStatus
	DownInmate           = "inmate"             // vocab.Inmate: added or updated (status, badges, pin_hash...)
	DownTechnician       = "technician"         // vocab.Technician: added or updated
	DownTechnicianRemove = "technician_removed" // TechnicianRemoved
	DownDeposit          = "deposit"            // vocab.Deposit; applied once per ref
	DownContact          = "contact"            // vocab.Contact: approved, declined or removed, with reason
	DownPolicy           = "policy"             // vocab.Policy: the whole facility policy
	DownRemoteCharge     = "remote_charge"      // vocab.Charge from another terminal; applied once per record_id
	DownRemoteCredit     = "remote_credit"      // vocab.Credit from another terminal; applied once per record_id
	DownRemoteSessionEnd = "remote_session_end" // vocab.Session ended on another terminal: sets cool-down
	DownNotice           = "notice"             // Notice
	DownSentMessage      = "sent_message"       // vocab.Message (outbox): a letter written on another terminal (tablets)
	DownHistory          = "history"            // History: an inmate's letters for one kiosk session
	DownMessageRead      = "message_read"       // MessageRead: an inbox letter read on another terminal
	DownRefund           = "refund"             // vocab.Refund of (part of) a deposit; applied once per ref
	DownCatalogItem      = "catalog_item"       // vocab.CatalogItem published (or published again) in the facility's library
	DownCatalogWithdrawn = "catalog_withdrawn"  // vocab.CatalogWithdrawn: an item taken out of the library
	DownQuizResult       = "quiz_result"        // vocab.QuizResult: the relay's verdict on one quiz attempt
	DownLibraryUse       = "library_use"        // vocab.LibraryUse: library minutes the inmate began on another terminal
)

// DownKinds lists every downlink kind of this protocol version.
var DownKinds = []string{DownInboundMessage, DownMessageStatus, DownInmate, DownTechnician,
	DownTechnicianRemove, DownDeposit, DownContact, DownPolicy, DownRemoteCharge, DownRemoteCredit,
	DownRemoteSessionEnd, DownNotice, DownSentMessage, DownHistory, DownMessageRead, DownRefund,
	DownCatalogItem, DownCatalogWithdrawn, DownQuizResult, DownLibraryUse}

// Uplink item kinds (vocab.ItemKind values).
const (
	UpMessage        = "message"         // vocab.Message (outbox)
	UpPREA           = "prea"            // vocab.Message to the PREA channel
	UpContactRequest = "contact_request" // vocab.Contact
	UpContactRemove  = "contact_remove"  // vocab.Contact
	UpCharge         = "charge"          // vocab.Charge
	UpCredit         = "credit"          // vocab.Credit
	UpSessionEnd     = "session_end"     // vocab.Session
	UpAudit          = "audit"           // vocab.AuditEvent
	UpDeviceStatus   = "device_status"   // free-form object from the device layer
	UpMessageRead    = "message_read"    // MessageRead: an inbox letter read on this terminal
	UpQuizAttempt    = "quiz_attempt"    // vocab.QuizAttempt: answers to a course's quiz, graded by the relay
	UpLibraryUse     = "library_use"     // vocab.LibraryUse: library minutes begun on this terminal today
)

// UpKinds lists every uplink kind of this protocol version.
var UpKinds = []string{UpMessage, UpPREA, UpContactRequest, UpContactRemove, UpCharge, UpCredit,
	UpSessionEnd, UpAudit, UpDeviceStatus, UpMessageRead, UpQuizAttempt, UpLibraryUse}

// Downlink bodies are the kiosk's own records, defined once there: MessageStatus changes the
// state of a message the terminal sent, TechnicianRemoved takes a technician off the roster,
// Notice is text to show on screen (to everyone when InmateID is empty).
type (
	MessageStatus     = vocab.MessageStatus
	TechnicianRemoved = vocab.TechnicianRemoved
	Notice            = vocab.Notice
	// History carries an inmate's newest letters to a kiosk for one session (at most
	// MaxHistoryLetters and MaxHistoryBytes); MessageRead says an inbox letter was read.
	History     = vocab.History
	MessageRead = vocab.MessageRead
)

// The bound of one session's history (docs/PROTOCOL.md, "History").
const (
	MaxHistoryLetters = vocab.MaxHistoryLetters
	MaxHistoryBytes   = vocab.MaxHistoryBytes
)
