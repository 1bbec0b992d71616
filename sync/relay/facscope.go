package relay

import (
	"bytes"
	"encoding/binary"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
)

// Which of the relay's records a facility holds (docs/SCALE.md, "Which keys a held facility
// holds"): a held facility's state (faclog.Held) writes its own terminals', inmates' and own
// records, and reads the rest as the kv state has it. The relay does not hold facilities yet;
// this is the map it will hold them by, kept true by TestEveryRecordHasOneFacility.

// ownerKind is whose records a root bucket holds.
type ownerKind int

const (
	// sharedRecords: the state's (enrollments, terminal and facility records, contacts,
	// deposits, letters by id, item ids before schema 21): written in kv transactions of their own.
	sharedRecords ownerKind = iota
	terminalRecords
	inmateRecords
	facilityRecords
)

// rootOwner is whose records root holds; known is false for a root this map does not know,
// which TestEveryRootHasAnOwnerKind refuses: each new root must be placed.
func rootOwner(root string) (kind ownerKind, known bool) {
	switch root {
	case bDedupe, bRefusals, bRefused, bConflicts, bDevices, bAudit, bSeqs, bStampDue, bDown, bDownAcked, bDownFrom, bTermSeen,
		bDownCut, bHistoryRate:
		return terminalRecords, true
	case bCharges, bCredits, bSessions, bBalances, bByInmate, bOwned:
		return inmateRecords, true
	case bFacDown, bFacTerms, bFacRevoked, bHeldOut, bFacContacts, bPhotoQueue, bFacRequests, bFacPREA,
		bCatalog, bFacIDs, bStateDue, bLetters:
		return facilityRecords, true
	case bMeta, bFacilities, bInmates, bEnrollments, bTerminals, bKeys, bItems, bDeposits, bOutbound, bPREA, bContacts,
		bInbound, bItemIDs, bInvites, bInviteCodes, bBlocks, bReplyKeys, bRefunds, bInvitesUnsent, bRequestReplies,
		bOwners, bDepositsDue, bRefundsDue, bDepositRefunds, bFanoutsDue, bStaff, bInboundHeld, bMigration, bLetterAt,
		bHolds, bHandovers:
		return sharedRecords, true
	case bFacInmates, bReleased, bTechnicians, bTechsGone:
		// A facility's roster (its inmates, those who left it, its technicians) is the state's:
		// only a roster put writes it, in a kv transaction, and it decides from it which
		// inmate records, the state's, to write (SCALE.md, "Built, stop 36"). Its holder reads
		// it as the kv state has it, current.
		return sharedRecords, true
	}
	return sharedRecords, false
}

// ownerIn is the owner a key, or a nested bucket's name, directly in root names: the name of
// an owner's nested bucket (ownerKeyed, and down and fac_down), the part of a flat key before
// its first slash, the whole key where the key is the owner, and for owned the part after its
// kind ("i/" + inmate + "/" + ...). ok is false for a name that names no owner.
func ownerIn(root string, name []byte) (owner string, ok bool) {
	switch root {
	case bDevices, bBalances, bStampDue, bDownAcked, bDownFrom, bDown, bFacDown, bTermSeen, bDownCut, bHistoryRate:
		return string(name), len(name) > 0
	case bOwned:
		if len(name) < 2 || name[1] != '/' {
			return "", false
		}
		name = name[2:]
	}
	if ownerKeyed(root) {
		return string(name), len(name) > 0
	}
	o, _, found := bytes.Cut(name, []byte("/"))
	return string(o), found && len(o) > 0
}

// facilityScope is what facility's held state holds: its own records, its terminals' and
// inmates' as ours says (the holder's sets, from fac_terms and fac_inmates, changed by the
// moves its log records), and the items log's records that numbered says are numbered from
// the holder's blocks of arrival numbers (nil: none).
//
// The items log is the state's, one root keyed by arrival number, but its numbers are taken
// a block at a time by one gateway (itemnums.go), so a block's records are written by the
// one that took it: the holder takes its blocks in kv transactions of its own (the root's
// sequence is not the facility's) and numbers only its facility's items from them.
func facilityScope(facility string, ours func(kind ownerKind, id string) bool, numbered func(n uint64) bool) faclog.Scope {
	return func(path [][]byte) faclog.Reach {
		if string(path[0]) == bItems {
			switch {
			case len(path) == 1:
				return faclog.Partly
			case len(path) == 2 && len(path[1]) == 8 && numbered != nil && numbered(binary.BigEndian.Uint64(path[1])):
				return faclog.Inside
			}
			return faclog.Outside
		}
		kind, _ := rootOwner(string(path[0]))
		switch {
		case kind == sharedRecords:
			return faclog.Outside
		case len(path) == 1:
			return faclog.Partly
		}
		owner, ok := ownerIn(string(path[0]), path[1])
		switch {
		case !ok:
			return faclog.Outside
		case kind == facilityRecords && owner == facility, kind != facilityRecords && ours(kind, owner):
			return faclog.Inside
		}
		return faclog.Outside
	}
}
