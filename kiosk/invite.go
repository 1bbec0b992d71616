package kiosk

import (
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Contact invitations are shared with the relay (kiosk/vocab/invite.go): the same rules say
// who may write and who holds a place on both sides.

// Invitation states of an approved contact.
const (
	InviteInvited  = vocab.InviteInvited
	InviteAccepted = vocab.InviteAccepted
	InviteDeclined = vocab.InviteDeclined
	InviteBlocked  = vocab.InviteBlocked
	InviteExpired  = vocab.InviteExpired
)

// InviteState is vocab.InviteState.
func InviteState(c Contact, now time.Time) string { return vocab.InviteState(c, now) }

// ContactLive is vocab.ContactLive.
func ContactLive(c Contact, now time.Time) bool { return vocab.ContactLive(c, now) }

// ContactMayWrite is vocab.ContactMayWrite.
func ContactMayWrite(c Contact) bool { return vocab.ContactMayWrite(c) }
