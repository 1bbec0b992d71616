package vocab

import "time"

// Contact invitations (docs/PROTOCOL.md, "Contact invitations"): after staff approve a contact
// the relay invites them, and letters flow only once they accept. These are functions of a
// Contact rather than methods, so they stay here wherever the record type itself is defined.

// Invitation states of an approved contact: sent and waiting, or the contact's answer.
// Expired is what an unanswered invitation is once InviteExpires has passed.
const (
	InviteInvited  = "invited"
	InviteAccepted = "accepted"
	InviteDeclined = "declined"
	InviteBlocked  = "blocked"
	InviteExpired  = "expired"
)

// InviteState is c's invitation state to show now: "invited" past its expiry is "expired".
func InviteState(c Contact, now time.Time) string {
	if c.Invite == InviteInvited && !c.InviteExpires.IsZero() && !now.Before(c.InviteExpires) {
		return InviteExpired
	}
	return c.Invite
}

// ContactLive reports whether the contact uses one of the inmate's Policy.MaxContacts places:
// waiting for staff, or approved and not turned away by the contact (invited and not expired,
// or accepted). A contact who declined, blocked or let the invitation expire frees the place.
func ContactLive(c Contact, now time.Time) bool {
	switch c.State {
	case ContactPending:
		return true
	case ContactApproved:
		switch InviteState(c, now) {
		case "", InviteInvited, InviteAccepted:
			return true
		}
	}
	return false
}

// ContactMayWrite reports whether letters may flow with the contact: approved by staff and,
// where the relay sends invitations, accepted by the contact.
func ContactMayWrite(c Contact) bool {
	return c.State == ContactApproved && (c.Invite == "" || c.Invite == InviteAccepted)
}
