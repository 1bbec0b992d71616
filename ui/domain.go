package ui

import (
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Domain is what the screens need from the kiosk domain; *kiosk.Terminal satisfies it.
// Every method may touch the disk, so the screens call them off the UI goroutine,
// except Policy and Touch, which only read or write memory.
type Domain interface {
	Policy() kiosk.Policy
	Touch()

	Badge(badgeID string) (kiosk.BadgeResult, error)
	PrecheckBound() (kiosk.BadgeResult, error)
	EnterPIN(badgeID, pin string) (kiosk.Pending, error)
	EnterBoundPIN(pin string) (kiosk.Pending, error)
	AcceptNotice(p kiosk.Pending) (kiosk.SessionInfo, error)
	Active() (kiosk.SessionInfo, bool)
	Logout() error
	SetLanguage(inmateID, lang string) error

	Statement(inmateID string) ([]kiosk.StatementLine, error)

	Contacts(inmateID string) ([]kiosk.Contact, error)
	AddContact(inmateID, name, email string) (kiosk.Contact, error)
	RemoveContact(inmateID, contactID string) error

	Recipients(inmateID string) ([]kiosk.Recipient, error)
	Send(inmateID, peer, subject, body string) (kiosk.Message, error)
	// LetterPrice only reads the policy in memory; StampOf reads the store.
	LetterPrice(peer string) kiosk.Cents
	StampOf(inmateID, messageID string) (kiosk.Stamp, bool, error)
	SaveDraft(d kiosk.Draft) error
	Drafts(inmateID string) ([]kiosk.Draft, error)
	DraftTo(inmateID, peer string) (kiosk.Draft, bool, error)
	Inbox(inmateID string) ([]kiosk.Message, error)
	Sent(inmateID string) ([]kiosk.Message, error)
	// HistoryFetched: the letters the inmate wrote on other terminals came for this session
	// (a kiosk; a tablet holds them all).
	HistoryFetched(inmateID string) bool
	MarkRead(inmateID, messageID string) error
	Unread(inmateID string) int
	// On the person's own tablet: delete a photo of a letter, or a letter with its photos;
	// PhotosGone says which photos of a letter went and why (deleted, expired);
	// ReleaseGonePhotos lets the content store drop their bytes.
	DeletePhoto(inmateID, messageID, sha256 string) error
	DeleteLetter(inmateID, messageID string) error
	PhotosGone(messageID string) (map[string]string, error)
	ReleaseGonePhotos(media *content.Store) (int, error)

	Notices(inmateID string) ([]kiosk.Notice, error)

	// The library (library.go): the facility's catalog, what the inmate owns, buying, the
	// daily browsing minutes, and quiz attempts.
	Catalog() ([]kiosk.CatalogItem, error)
	Owned(inmateID string) ([]kiosk.OwnedItem, error)
	Buy(inmateID, itemID string) (kiosk.OwnedItem, error)
	UseLibraryMinute(inmateID string) (left int, err error)
	LibraryMinutesLeft(inmateID string) (int, error)
	SubmitQuiz(inmateID, courseID, quizID string, answers []int) (vocab.QuizAttempt, error)
	LastQuizAttempt(inmateID, courseID, quizID string) (kiosk.QuizStatus, bool, error)

	PREABadge(badgeID string) (kiosk.BadgeResult, error)
	VerifyPREA(badgeID, pin string) (kiosk.PREAReporter, error)
	VerifyBoundPREA(pin string) (kiosk.PREAReporter, error)
	FilePREA(r kiosk.PREAReporter, body string) (kiosk.Message, error)
	SendPREA(inmateID, body string) (kiosk.Message, error)
}
