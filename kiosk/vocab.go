package kiosk

import (
	"github.com/tether-kiosk/tether/kiosk/ledger"
	"github.com/tether-kiosk/tether/kiosk/pinhash"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// The vocabulary the terminal shares with the relay lives in kiosk/vocab, PIN hashing in
// kiosk/pinhash and the ledger comparison in kiosk/ledger, so that sync/wire and sync/relay
// need not link this package. These re-exports keep every name the screens, the commands and
// the sync engine already use: kiosk.Message is vocab.Message, the same type.

type (
	AuditEvent        = vocab.AuditEvent
	Cents             = vocab.Cents
	Charge            = vocab.Charge
	Contact           = vocab.Contact
	Credit            = vocab.Credit
	CurfewWindow      = vocab.CurfewWindow
	Department        = vocab.Department
	Deposit           = vocab.Deposit
	Duration          = vocab.Duration
	Error             = vocab.Error
	Inmate            = vocab.Inmate
	Item              = vocab.Item
	ItemKind          = vocab.ItemKind
	Kind              = vocab.Kind
	Logf              = vocab.Logf
	Message           = vocab.Message
	Photo             = vocab.Photo
	MessageStatus     = vocab.MessageStatus
	Notice            = vocab.Notice
	Policy            = vocab.Policy
	Problem           = vocab.Problem
	Reason            = vocab.Reason
	Session           = vocab.Session
	Technician        = vocab.Technician
	TechnicianRemoved = vocab.TechnicianRemoved
	VerifyReport      = vocab.VerifyReport
)

const (
	BoxInbox                  = vocab.BoxInbox
	BoxOutbox                 = vocab.BoxOutbox
	ContactApproved           = vocab.ContactApproved
	ContactDeclined           = vocab.ContactDeclined
	ContactPending            = vocab.ContactPending
	ContactRemoved            = vocab.ContactRemoved
	CreditStall               = vocab.CreditStall
	CreditStampRefused        = vocab.CreditStampRefused
	CreditStampRejected       = vocab.CreditStampRejected
	CreditTerminalFault       = vocab.CreditTerminalFault
	EndBalance                = vocab.EndBalance
	EndCurfew                 = vocab.EndCurfew
	EndIdle                   = vocab.EndIdle
	EndLockdown               = vocab.EndLockdown
	EndLogout                 = vocab.EndLogout
	EndMaxLength              = vocab.EndMaxLength
	EndOfflineLimit           = vocab.EndOfflineLimit
	EndTerminalFault          = vocab.EndTerminalFault
	FreeDepartments           = vocab.FreeDepartments
	FreeReadMail              = vocab.FreeReadMail
	ItemAudit                 = vocab.ItemAudit
	ItemCharge                = vocab.ItemCharge
	ItemContactRemove         = vocab.ItemContactRemove
	ItemContactRequest        = vocab.ItemContactRequest
	ItemCredit                = vocab.ItemCredit
	ItemDeviceStatus          = vocab.ItemDeviceStatus
	ItemMessageRead           = vocab.ItemMessageRead
	ItemQuizAttempt           = vocab.ItemQuizAttempt
	ItemLibraryUse            = vocab.ItemLibraryUse
	ItemMessage               = vocab.ItemMessage
	ItemPREA                  = vocab.ItemPREA
	ItemSessionEnd            = vocab.ItemSessionEnd
	KindConflict              = vocab.KindConflict
	KindCorrupt               = vocab.KindCorrupt
	KindIO                    = vocab.KindIO
	KindInternal              = vocab.KindInternal
	KindInvalid               = vocab.KindInvalid
	KindNotFound              = vocab.KindNotFound
	KindRefused               = vocab.KindRefused
	KindTransient             = vocab.KindTransient
	MaxAuditActorLen          = vocab.MaxAuditActorLen
	MaxAuditDetail            = vocab.MaxAuditDetail
	MaxAuditDetailKey         = vocab.MaxAuditDetailKey
	MaxAuditDetailValue       = vocab.MaxAuditDetailValue
	MaxAuditKindLen           = vocab.MaxAuditKindLen
	MaxDepositLimit           = vocab.MaxDepositLimit
	MaxRatePerMinute          = vocab.MaxRatePerMinute
	MaxStampPrice             = vocab.MaxStampPrice
	PricingBoth               = vocab.PricingBoth
	PricingPerMessage         = vocab.PricingPerMessage
	PricingPerMinute          = vocab.PricingPerMinute
	MsgDelivered              = vocab.MsgDelivered
	MsgHeld                   = vocab.MsgHeld
	MsgQueued                 = vocab.MsgQueued
	MsgRejected               = vocab.MsgRejected
	MsgSent                   = vocab.MsgSent
	PREAChannel               = vocab.PREAChannel
	ReasonContactLimit        = vocab.ReasonContactLimit
	ReasonContactNotApproved  = vocab.ReasonContactNotApproved
	ReasonContactNotAccepted  = vocab.ReasonContactNotAccepted
	ReasonCooldown            = vocab.ReasonCooldown
	ReasonCurfew              = vocab.ReasonCurfew
	ReasonInsufficientBalance = vocab.ReasonInsufficientBalance
	ReasonLockdown            = vocab.ReasonLockdown
	ReasonLocked              = vocab.ReasonLocked
	ReasonLoginExpired        = vocab.ReasonLoginExpired
	ReasonNeedsFunds          = vocab.ReasonNeedsFunds
	ReasonNoMessaging         = vocab.ReasonNoMessaging
	ReasonNoSession           = vocab.ReasonNoSession
	ReasonNotBound            = vocab.ReasonNotBound
	ReasonNoticeNotAccepted   = vocab.ReasonNoticeNotAccepted
	ReasonOfflineLimit        = vocab.ReasonOfflineLimit
	ReasonPREABacklog         = vocab.ReasonPREABacklog
	ReasonSuspended           = vocab.ReasonSuspended
	ReasonUnknownBadge        = vocab.ReasonUnknownBadge
	ReasonWrongPIN            = vocab.ReasonWrongPIN
	StatusActive              = vocab.StatusActive
	StatusSuspended           = vocab.StatusSuspended
)

// KindOf reports the Kind of err, KindInternal when it carries none.
func KindOf(err error) Kind { return vocab.KindOf(err) }

// Retryable reports whether err is worth retrying as it is (KindTransient).
func Retryable(err error) bool { return vocab.Retryable(err) }

// ReasonOf reports the refusal reason carried by err, if any.
func ReasonOf(err error) Reason { return vocab.ReasonOf(err) }

// DefaultPolicy is what a terminal uses before the facility says otherwise.
func DefaultPolicy() Policy { return vocab.DefaultPolicy() }

// ParsePolicy reads a policy from JSON over the defaults and validates it.
func ParsePolicy(data []byte) (Policy, error) { return vocab.ParsePolicy(data) }

// Languages are the languages the screens are translated into.
func Languages() []string { return vocab.Languages() }

// KnownLanguage reports whether lang is one of Languages.
func KnownLanguage(lang string) bool { return vocab.KnownLanguage(lang) }

// ControlRune reports the characters the sync protocol calls control characters.
func ControlRune(r rune) bool { return vocab.ControlRune(r) }

// ValidateMessageBody checks a message body before it is sent.
func ValidateMessageBody(body string, max int) error { return vocab.ValidateMessageBody(body, max) }

// ValidateLetter checks an outgoing letter's body and subject, as the relay does.
func ValidateLetter(body, subject string, maxChars int) error {
	return vocab.ValidateLetter(body, subject, maxChars)
}

// RosterFieldError names the roster field a person breaks and how, as the relay checks it.
func RosterFieldError(path string, person any) (field, problem string, bad bool) {
	return vocab.RosterFieldError(path, person)
}

// PINParams are argon2id costs (kiosk/pinhash).
type PINParams = pinhash.Params

// DefaultPINParams are the costs of a PIN hashed for a facility.
func DefaultPINParams() PINParams { return pinhash.DefaultParams() }

// TestPINParams are cheap costs for tests and benchmarks of things other than hashing.
func TestPINParams() PINParams { return pinhash.TestParams() }

// HashPIN returns an argon2id PHC string with a fresh salt.
func HashPIN(pin string) (string, error) { return pinhash.Hash(pin) }

// HashPINWith is HashPIN with explicit costs.
func HashPINWith(pin string, p PINParams) (string, error) { return pinhash.HashWith(pin, p) }

// ValidatePIN accepts 4 to 12 digits; the error never repeats the PIN.
func ValidatePIN(pin string) error { return pinhash.ValidatePIN(pin) }

// HashSecretWith is pinhash.HashSecretWith: a staff password, hashed like a PIN.
func HashSecretWith(secret string, p PINParams) (string, error) {
	return pinhash.HashSecretWith(secret, p)
}

// ValidatePINHash checks that h is an argon2id string a terminal can verify.
func ValidatePINHash(h string) error { return pinhash.Validate(h) }

// VerifyPIN reports whether pin matches hash, in constant time.
func VerifyPIN(hash, pin string) bool { return pinhash.Verify(hash, pin) }

// Ledger is one side's view of balances and letters (kiosk/ledger).
type Ledger = ledger.Ledger

// LetterState is where one sent message stands.
type LetterState = ledger.LetterState

// Reconcile compares a terminal's ledger with the relay's view for that terminal.
func Reconcile(terminal, relay Ledger) []Problem { return ledger.Reconcile(terminal, relay) }

// History follows the person (kiosk/history.go); its records are shared with the relay.
type (
	MessageRead = vocab.MessageRead
	History     = vocab.History
)

// The bound of one session's history (vocab).
const (
	MaxHistoryLetters = vocab.MaxHistoryLetters
	MaxHistoryBytes   = vocab.MaxHistoryBytes
)

// Refund takes back (part of) a deposit (vocab).
type Refund = vocab.Refund

// ValidatePhotos checks a letter's photo references, as the relay does (vocab.ValidatePhotos).
func ValidatePhotos(photos []Photo, max int) error { return vocab.ValidatePhotos(photos, max) }
