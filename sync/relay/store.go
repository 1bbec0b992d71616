package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tether-kiosk/tether/kiosk/boltfile"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// DBFile is the relay's one bbolt file inside its data directory.
const DBFile = "relay.db"

// Buckets; all exist from schema version 1 on, except those marked "v2".
const (
	bMeta        = "meta"
	bFacilities  = "facilities"  // facility id -> facilityRec
	bInmates     = "inmates"     // inmate id -> inmateRec
	bTechnicians = "technicians" // facility id + "/" + technician id -> vocab.Technician
	bEnrollments = "enrollments" // sha256(code) hex -> enrollmentRec
	bTerminals   = "terminals"   // terminal id -> terminalRec
	bKeys        = "keys"        // terminal public key -> terminal id (a key enrolls once)
	bFacTerms    = "fac_terms"   // facility id + "/" + terminal id -> nil (fan-out index)
	bDedupe      = "dedupe"      // terminal id + "/" + epoch -> highest contiguous stored seq (8 bytes)
	bRefusals    = "refusals"    // terminal id + "/" + epoch + "/" + seq (%020d) -> reason, re-listed when resent
	bItems       = "items"       // arrival number (8 bytes) -> (v9) item log record: the items stored from that number on (itemlog.go)
	bDown        = "down"        // terminal id -> nested bucket: seq (8 bytes) -> DownItem
	bDownAcked   = "down_acked"  // terminal id -> highest downlink seq the terminal acknowledged
	bDeposits    = "deposits"    // ref -> vocab.Deposit
	bCharges     = "charges"     // inmate id + "/" + record id -> usageRec
	bCredits     = "credits"     // inmate id + "/" + record id -> usageRec
	bSessions    = "sessions"    // inmate id + "/" + session id -> vocab.Session
	bBalances    = "balances"    // inmate id -> totals
	bOutbound    = "outbound"    // message id -> letterRec (v3: the body text is in the item that carried it); until v24, now bLetters
	bPREA        = "prea"        // message id -> letterRec (never held, never shown in the review queue)
	bContacts    = "contacts"    // contact id -> ContactRecord
	bByInmate    = "by_inmate"   // inmate id + "/d/" + deposit ref, "/c/" + contact id, (v5) "/m/" + letter id, (v6) "/r/" + refund ref or (v9) "/i/" + inbound letter id -> nil; "/l/" + terminal id -> library minutes begun there (8 bytes), when (8 bytes, Unix ns) + day
	bInbound     = "inbound"     // message id -> vocab.Message delivered to an inmate
	bAudit       = "audit"       // terminal id + "/" + audit id -> vocab.AuditEvent
	bDevices     = "devices"     // terminal id -> last device_status body
	// v2: what each seq and each item id held, so a reused seq or id is told from a resend.
	// (v12: a seq has a record in seqs only where its item's item_ids record does not name it.)
	bSeqs      = "seqs"          // terminal id + "/" + epoch + "/" + seq (%020d) -> seqRec (item id, hash)
	bItemIDs   = "item_ids"      // item id -> itemRef: the first item stored under that id
	bRefused   = "refused_items" // arrival number (8 bytes) -> Refusal: every uplink item refused for good
	bConflicts = "seq_conflicts" // terminal id + "/" + epoch + "/" + seq (%020d) -> Refusal: a seq reused or skipped (owner-keyed from v26)
	// v4: who left a facility's roster, so a snapshot can tell a restored store they are gone.
	bReleased = "released" // facility id + "/" + inmate id -> vocab.Inmate as last sent (suspended)
	// v6: contact invitations, blocks, reply idempotency keys and refunds.
	bInvites     = "invites"      // contact id -> inviteRec (the contact's current invitation)
	bInviteCodes = "invite_codes" // sha256(code) hex -> contact id
	bBlocks      = "blocks"       // blockKey -> blockRec: an address that blocked an inmate or a facility
	bReplyKeys   = "reply_keys"   // request id + "/" + idempotency key -> replyKeyRec
	bRefunds     = "refunds"      // refund ref -> Refund
	// v7: the letter each terminal sent last that still waits for its stamp (stamps.go).
	bStampDue = "stamp_due" // terminal id -> stampDueRec
	// v8: the library (catalog.go, purchase.go).
	bCatalog = "catalog" // facility id + "/" + item id -> catalogRec
	bOwned   = "owned"   // "i/" + inmate id + "/" + item id -> ownedRec; "m/" + inmate id + "/" + sha256 -> nil; "q/" + inmate/course/quiz -> attempts graded (8 bytes); "r/" + inmate/attempt id -> vocab.QuizResult; "l/" + inmate/terminal -> library minutes (8 bytes) + day (written before the by_inmate "l/" record; read when there is none)
	// v9: who is on each facility's roster, so a snapshot reads its facility's inmates only.
	// From v9 on the owner-keyed buckets (ownerKeyed) hold a nested bucket per owner.
	bFacInmates = "fac_inmates" // facility id + "/" + inmate id -> nil
	// v11: one downlink log and counter per facility (down.go).
	bFacDown  = "fac_down"  // facility id -> nested bucket: seq (8 bytes) -> tag + DownItem; its sequence numbers all the facility's downlink
	bDownFrom = "down_from" // terminal id -> facility seq at or below which the facility's log holds nothing for it
	// v13: technicians taken off a facility's roster, so a snapshot removes them from a kiosk
	// whose store missed the removal (restored from a backup, or past the downlink log's cap).
	bTechsGone = "techs_removed" // facility id + "/" + technician id -> wire.TechnicianRemoved
	// v14: the terminals revoked in each facility. With fac_terms (the live ones) it lists a
	// facility's terminals, so the console reads its facility's and not the state's.
	bFacRevoked = "fac_revoked" // facility id + "/" + terminal id -> nil
	// v15: each facility's letters held for review (heldout.go), so the review queue reads the
	// letters waiting and not every letter ever stored.
	bHeldOut = "held_outbound" // facility id + "/" + letter id -> nil
	// v16: each facility's contacts (contactlist.go), so its contacts screen reads them and not
	// the state's.
	bFacContacts = "fac_contacts" // facility id + "/" + contact id -> nil
	// v17: each facility's family letters held for photo review (photoreview.go), so the
	// queue reads those waiting and not every letter ever held.
	bPhotoQueue = "photo_queue" // facility id + "/" + letter id -> nil
	// v18: invitations neither sent nor answered (invite.go), which the hourly retry reads
	// instead of every invitation ever made.
	bInvitesUnsent = "invites_unsent" // contact id -> nil
	// v19: letters to each facility's departments, and the answers to each (requests.go), so
	// the departments page reads its requests and not every letter either way.
	bFacRequests    = "fac_requests"    // facility id + "/" + letter id -> nil
	bRequestReplies = "request_replies" // request (letter) id + "/" + reply (inbound letter) id -> nil
	// v20: each facility's PREA reports (prealist.go), so its coordinator's page reads them
	// and not every report of the state.
	bFacPREA = "fac_prea" // facility id + "/" + report id -> nil
	// v24: each facility's letters, its own records, and the index by id of the state's
	// (letters.go): before, every letter was the state's record (bOutbound), which the
	// holder of a facility may not write.
	bLetters  = "letters"   // facility id + "/" + letter id -> letterRec
	bLetterAt = "letter_at" // letter id -> the id of the facility whose letter it is
)

const kSchema = "schema_version"

func allBuckets() []string {
	return []string{bMeta, bFacilities, bInmates, bTechnicians, bEnrollments, bTerminals, bKeys, bFacTerms, bDedupe, bRefusals, bItems,
		bDown, bDownAcked, bDeposits, bCharges, bCredits, bSessions, bBalances, bOutbound, bPREA, bContacts, bByInmate,
		bInbound, bAudit, bDevices, bSeqs, bItemIDs, bRefused, bConflicts, bReleased,
		bInvites, bInviteCodes, bBlocks, bReplyKeys, bRefunds, bStampDue, bCatalog, bOwned, bFacInmates, bFacDown, bDownFrom, bTechsGone, bFacRevoked, bHeldOut, bFacContacts, bPhotoQueue, bInvitesUnsent, bFacRequests, bRequestReplies, bFacPREA, bFacIDs, bTermSeen, bStateDue, bLetters, bLetterAt, bHistoryRate}
}

// schemaVersion is what this program writes; migrations[i] moves version i to i+1.
const schemaVersion = 28

// migrate10to11 gives each facility its downlink counter, above the largest downlink seq any
// of its terminals was given or acknowledged, so that no terminal's numbers go back. Items
// queued before stay in the terminals' own buckets, read by the same merge (pendingDownRaw).
func migrate10to11(tx kv.Tx) error {
	for _, name := range []string{bFacDown, bDownFrom} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	top := map[string]uint64{}
	if err := forEachJSON(tx, bTerminals, "", func(id string, t terminalRec) bool {
		if checkID("", "", t.FacilityID) != nil {
			return true // damage verify reports; such a terminal cannot connect
		}
		last, acked := downState(tx, id, t.FacilityID)
		top[t.FacilityID] = max(top[t.FacilityID], last, acked)
		return true
	}); err != nil {
		return err
	}
	for facility, n := range top {
		fb, err := facCounter(tx, facility)
		if err != nil {
			return err
		}
		if n > fb.Sequence() {
			if err := fb.SetSequence(n); err != nil {
				return fmt.Errorf("downlink counter of facility %s: %w", facility, err)
			}
		}
	}
	return nil
}

// A migration moves one schema version to the next, in one transaction.
type migration struct {
	fn func(kv.Tx) error
	// small: it reads and writes a few keys, so that a store that bounds its transactions
	// (JetStream) runs it in one, as a bbolt file does, rather than in steps, which copy the
	// store whole into -data twice (a state's store, for a migration that changes nothing).
	// A migration that may touch every record of a kind is not small.
	small bool
}

// migrations move each schema version to the next.
func migrations() [schemaVersion]migration {
	return [schemaVersion]migration{
		{fn: migrate0to1},
		{fn: migrate1to2},
		{fn: migrate2to3},
		{fn: migrate3to4},
		{fn: migrate4to5},
		{fn: migrate5to6},
		{fn: migrate6to7},
		{fn: migrate7to8},
		{fn: migrate8to9},
		{fn: migrate9to10},
		{fn: migrate10to11},
		{fn: migrate11to12},
		{fn: migrate12to13},
		{fn: migrate13to14},
		{fn: migrate14to15},
		{fn: migrate15to16},
		{fn: migrate16to17},
		{fn: migrate17to18},
		{fn: migrate18to19},
		{fn: migrate19to20},
		{fn: migrate20to21},
		{fn: migrate21to22},
		{fn: migrate22to23},
		{fn: migrate23to24},
		{fn: migrate24to25},
		{fn: migrate25to26},
		{fn: migrate26to27, small: true}, // the history_rate root made; nothing written
		{fn: migrate27to28, small: true}, // id entries of version 2 from now on; nothing written
	}
}

// smallFrom reports whether every migration from schema version on is small.
func smallFrom(version uint64) bool {
	ms := migrations()
	for v := version; v < schemaVersion; v++ {
		if !ms[v].small {
			return false
		}
	}
	return true
}

// migrateTimeout bounds a migration in steps (a JetStream store): the copy, the plan and
// every step.
const migrateTimeout = 30 * time.Minute

// nestByOwner moves each flat key of bucket b (named name) into its owner's nested bucket,
// as place names it (owner "" leaves the key where it is): the move of a bucket that became
// owner-keyed (ownerKeyed).
func nestByOwner(b kv.Bucket, name string, place func(k, v []byte) (owner string, rest []byte, err error)) error {
	type rec struct{ k, v []byte }
	var flat []rec
	if err := b.ForEach(func(k, v []byte) error {
		flat = append(flat, rec{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	for _, r := range flat {
		owner, rest, err := place(r.k, r.v)
		if err != nil {
			return err
		}
		if owner == "" {
			continue
		}
		nb, err := b.CreateBucketIfNotExists([]byte(owner))
		if err != nil {
			return fmt.Errorf("%s of %s: %w", name, owner, err)
		}
		if err := nb.Put(rest, r.v); err != nil {
			return fmt.Errorf("move %s record %q: %w", name, r.k, err)
		}
		if err := b.Delete(r.k); err != nil {
			return fmt.Errorf("move %s record %q: %w", name, r.k, err)
		}
	}
	return nil
}

// migrate8to9 moves the owner-keyed buckets (ownerKeyed) from one flat bucket keyed
// owner + "/" + rest to a nested bucket per owner, and numbers refused_items per terminal
// instead of by one global arrival number (kept in order: a terminal's refusals are moved in
// arrival order). A key that names no owner (or a refusal that does not decode) is left where
// it is, flat, for verify to report: nothing is dropped. It then lists each facility's
// inmates (fac_inmates) and each inmate's inbound letters (by_inmate "i"), so that a snapshot
// reads its own facility's and inmates' records instead of every one in the state.
func migrate8to9(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bFacInmates)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bFacInmates, err)
	}
	for _, name := range allBuckets() {
		if !ownerKeyed(name) {
			continue
		}
		b := tx.Bucket([]byte(name))
		if err := nestByOwner(b, name, func(k, v []byte) (string, []byte, error) {
			if name != bRefused {
				owner, rest, err := splitOwner(name, string(k))
				if err != nil {
					return "", nil, nil
				}
				return owner, []byte(rest), nil
			}
			var rf Refusal
			if json.Unmarshal(v, &rf) != nil || checkID("", "", rf.TerminalID) != nil {
				return "", nil, nil
			}
			nb, err := b.CreateBucketIfNotExists([]byte(rf.TerminalID))
			if err != nil {
				return "", nil, fmt.Errorf("%s of %s: %w", name, rf.TerminalID, err)
			}
			n, err := nb.NextSequence()
			if err != nil {
				return "", nil, fmt.Errorf("number %s of %s: %w", name, rf.TerminalID, err)
			}
			return rf.TerminalID, u64(n), nil
		}); err != nil {
			return err
		}
	}
	var werr error
	if err := forEachJSON(tx, bInmates, "", func(id string, in inmateRec) bool {
		werr = listInmate(tx, in.FacilityID, id)
		return werr == nil
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if err := forEachJSON(tx, bInbound, "", func(_ string, m vocab.Message) bool {
		werr = indexInbound(tx, m)
		return werr == nil
	}); err != nil {
		return err
	}
	return werr
}

// listInmate puts an inmate on a facility's list (fac_inmates); a record with no valid
// facility or id (an older relay's damage) is left off it rather than failing the write.
func listInmate(tx kv.Tx, facility, inmateID string) error {
	if checkID("", "", facility) != nil || checkID("", "", inmateID) != nil {
		return nil
	}
	return putRaw(tx, bFacInmates, facility+"/"+inmateID, nil)
}

// facilityInmates lists the ids of a facility's inmates, in key order.
func facilityInmates(tx kv.Tx, facility string) []string {
	var ids []string
	_ = forEachRaw(tx, bFacInmates, facility+"/", func(k string, _ []byte) bool {
		ids = append(ids, k[len(facility)+1:])
		return true
	})
	return ids
}

// indexInbound lists an inbound letter under its inmate (by_inmate "i"), for snapshots.
func indexInbound(tx kv.Tx, m vocab.Message) error {
	if checkID("", "", m.InmateID) != nil {
		return nil
	}
	if err := putRaw(tx, bByInmate, indexKey(m.InmateID, "i", m.ID), nil); err != nil {
		return fmt.Errorf("index inbound letter %s: %w", m.ID, err)
	}
	return nil
}

// indexInboundIn is indexInbound through f, for an inmate of facility (fanout.putIn).
func indexInboundIn(tx kv.Tx, f *fanout, facility string, m vocab.Message) error {
	if checkID("", "", m.InmateID) != nil {
		return nil
	}
	if err := f.putIn(tx, facility, bByInmate, indexKey(m.InmateID, "i", m.ID), nil); err != nil {
		return fmt.Errorf("index inbound letter %s: %w", m.ID, err)
	}
	return nil
}

// migrate7to8 adds the library's buckets: the catalog and what inmates own. Nothing before
// schema 8 was published or bought.
func migrate7to8(tx kv.Tx) error {
	for _, name := range []string{bCatalog, bOwned} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// migrate6to7 adds the bucket of letters waiting for their stamp. Letters stored before owe
// nothing (they carry no StampDue): their stamps are checked as before, against the policy.
func migrate6to7(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bStampDue)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bStampDue, err)
	}
	return nil
}

// migrate5to6 adds the buckets of invitations, blocks, reply keys and refunds. A contact
// approved before invitations existed has been writing and receiving letters: it is marked
// accepted (grandfathered) rather than cut off until someone answers an invitation it never got.
func migrate5to6(tx kv.Tx) error {
	for _, name := range []string{bInvites, bInviteCodes, bBlocks, bReplyKeys, bRefunds} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	var approved []ContactRecord
	if err := forEachJSON(tx, bContacts, "", func(_ string, c ContactRecord) bool {
		if c.State == vocab.ContactApproved && c.Invite == "" {
			approved = append(approved, c)
		}
		return true
	}); err != nil {
		return err
	}
	for _, c := range approved {
		c.Invite = vocab.InviteAccepted
		if err := putJSON(tx, bContacts, c.ID, c); err != nil {
			return err
		}
	}
	return nil
}

// migrate3to4 adds the record of who left each facility's roster (none is known from before).
func migrate3to4(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bReleased)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bReleased, err)
	}
	return nil
}

func migrate0to1(tx kv.Tx) error {
	for _, name := range allBuckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// RecoverAdvice is what an operator can do about a damaged relay store.
const RecoverAdvice = "it was left untouched: stop relayd, move it aside and restore relay.db from a backup"

// openDB opens or creates DIR/relay.db. A file held by another process is KindConflict; a
// newer schema and a damaged file (errors.Is(err, boltfile.ErrDamaged)) are KindCorrupt and
// left untouched; a file the system will not open (permission, a directory in its place) is
// KindIO wrapping the system's error.
func openDB(dir string, noSync bool) (kv.Store, error) {
	if dir == "" {
		return nil, invalid("open relay", "data_dir", "a data directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: fmt.Errorf("make data directory %s: %w", dir, err)}
	}
	path := filepath.Join(dir, DBFile)
	db, err := boltkv.Own(boltfile.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync}))
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, &vocab.Error{Kind: vocab.KindConflict, Op: "open relay", Err: fmt.Errorf("%s is in use by another process", path)}
	case errors.Is(err, boltfile.ErrDamaged):
		return nil, damagedDB(path, err)
	case err != nil:
		return nil, &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: fmt.Errorf("%s cannot be opened: %w", path, err)}
	}
	// A cheap look at the tree bbolt will walk first: the buckets' root pages. A full page
	// check would read the whole file on every start.
	if err := boltfile.Guard(path, func() error {
		return db.View(context.Background(), func(tx kv.Tx) error {
			return tx.ForEachBucket(func(name []byte) error {
				b := tx.Bucket(name)
				b.Cursor().First()
				return nil
			})
		})
	}); err != nil {
		db.Close()
		return nil, damagedDB(path, err)
	}
	if err := migrateStore(db, dir, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrateStore brings a store to this program's schema (where names it in errors): it refuses
// a newer schema (KindCorrupt) and runs the migrations from the stored version in one
// transaction. Gateways opening one shared store at once are safe: the store serializes the
// transactions, and the later one finds the schema current.
//
// A store that bounds its transactions (JetStream) is migrated in steps instead
// (migrate_steps.go), with copies of it in dir while that runs; its deadline is
// migrateTimeout, since a step is one transaction and a real deployment has many. Migrations
// that read and write a few keys (smallFrom) run in one transaction there too.
func migrateStore(db kv.Store, dir, where string) error {
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	var version uint64
	if err := retryOpening(ctx, func() error {
		return db.View(ctx, func(tx kv.Tx) error {
			version = 0
			if m := tx.Bucket([]byte(bMeta)); m != nil {
				if v := m.Get([]byte(kSchema)); len(v) == 8 {
					version = binary.BigEndian.Uint64(v)
				}
			}
			return nil
		})
	}); err != nil {
		return &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: fmt.Errorf("read the schema version of %s: %w", where, err)}
	}
	if version > schemaVersion {
		return &vocab.Error{Kind: vocab.KindCorrupt, Op: "open relay", Err: fmt.Errorf(
			"%s has schema version %d, newer than this program's %d: install a newer relayd", where, version, schemaVersion)}
	}
	if version == schemaVersion {
		return nil
	}
	if !isBolt(ctx, db) && !smallFrom(version) {
		sctx, scancel := context.WithTimeout(context.Background(), migrateTimeout)
		defer scancel()
		return migrateInSteps(sctx, db, dir, where, nil)
	}
	err := retryOpening(ctx, func() error {
		return db.Update(ctx, func(tx kv.Tx) error {
			from := uint64(0) // read again: another gateway may have migrated meanwhile
			if m := tx.Bucket([]byte(bMeta)); m != nil {
				from = readU64(m.Get([]byte(kSchema)))
			}
			if from > schemaVersion {
				return fmt.Errorf("schema version %d is newer than this program's %d", from, schemaVersion)
			}
			for v := from; v < schemaVersion; v++ {
				if err := migrations()[v].fn(tx); err != nil {
					return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
				}
			}
			return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(schemaVersion))
		})
	})
	if err != nil {
		return fmt.Errorf("open relay %s: %w", where, err)
	}
	return nil
}

// sameSchema opens a shared store for a command run beside its gateways (Config.Beside): the
// store must be at this program's schema, neither older (the command would have to migrate it
// under gateways still serving) nor newer. dir is unused: nothing is copied.
func sameSchema(db kv.Store, _, where string) error {
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	var version uint64
	if err := retryOpening(ctx, func() error {
		return db.View(ctx, func(tx kv.Tx) error {
			version = 0
			if m := tx.Bucket([]byte(bMeta)); m != nil {
				version = readU64(m.Get([]byte(kSchema)))
			}
			return nil
		})
	}); err != nil {
		return &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: fmt.Errorf("read the schema version of %s: %w", where, err)}
	}
	switch {
	case version == 0:
		return &vocab.Error{Kind: vocab.KindInvalid, Op: "open relay", Err: fmt.Errorf(
			"%s holds no relay yet: start a relayd gateway on it first, which makes it", where)}
	case version > schemaVersion:
		return &vocab.Error{Kind: vocab.KindCorrupt, Op: "open relay", Err: fmt.Errorf(
			"%s has schema version %d, newer than this program's %d: run the relayd the gateways run", where, version, schemaVersion)}
	case version < schemaVersion:
		return &vocab.Error{Kind: vocab.KindInvalid, Op: "open relay", Err: fmt.Errorf(
			"%s has schema version %d, older than this program's %d: start an upgraded gateway first (it migrates the store), or run the relayd the gateways run", where, version, schemaVersion)}
	}
	return nil
}

// retryOpening runs fn again while it fails for a reason the store calls passing (no quorum,
// a timeout), until ctx ends: for opening, and for whole-store reads (inspect), which a
// passing fault should delay, not fail. A gateway often starts beside a cluster that is still electing
// the stream's leader, or has just made the stream: the first request then finds no
// responder. Failing there would leave the restart to the supervisor's backoff; a few seconds'
// wait here is what the operator means. Each transaction it runs re-reads what it depends on.
func retryOpening(ctx context.Context, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !kv.Retryable(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// damagedDB is the refusal of a damaged relay.db: KindCorrupt, naming the file and the way out.
func damagedDB(path string, err error) error {
	problem := err.Error()
	var de *boltfile.DamageError
	if errors.As(err, &de) {
		problem = de.Problem
	}
	return &vocab.Error{Kind: vocab.KindCorrupt, Op: "open relay", Err: &boltfile.DamageError{Path: path,
		Problem: "the relay store is damaged (" + problem + "); " + RecoverAdvice}}
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// ownerKeyed reports whether bucket is kept (from schema 9 on; fanouts_due from 25 and
// seq_conflicts from 26, which migrate24to25 and migrate25to26 nest) as one nested bucket
// per owner: its logical keys are owner + "/" + rest (ids hold no "/", checkID), stored as
// rest in the nested bucket owner. On JetStream a cursor reads a bucket's whole listing and
// makes its transaction conflict with any write to that bucket; these buckets are scanned by
// owner on hot paths (every fan-out, batch, login), so a scan must touch only its owner's
// keys. A held facility's state walks only the buckets it holds whole, its owners'.
func ownerKeyed(bucket string) bool {
	switch bucket {
	case bFacTerms, bByInmate, bCharges, bCredits, bSessions, bReleased, bTechnicians, bTechsGone, bCatalog, bRefused, bFacInmates, bFacRevoked, bHeldOut, bFacContacts, bPhotoQueue, bFacRequests, bRequestReplies, bFacPREA, bFacIDs,
		bStateDue, bLetters, bFanoutsDue, bConflicts:
		return true
	}
	return false
}

// splitOwner cuts a logical key of an owner-keyed bucket into its owner and the rest.
func splitOwner(bucket, key string) (owner, rest string, err error) {
	owner, rest, ok := strings.Cut(key, "/")
	if !ok || owner == "" || rest == "" {
		return "", "", fmt.Errorf("%s key %q has no owner: want owner/key", bucket, key)
	}
	return owner, rest, nil
}

// slot is the bucket that holds key, and key within it: bucket itself, or for an owner-keyed
// bucket its owner's nested bucket (nil if it has none and create is false; made if create).
func slot(tx kv.Tx, bucket, key string, create bool) (kv.Bucket, []byte, error) {
	b := tx.Bucket([]byte(bucket))
	if !ownerKeyed(bucket) {
		return b, []byte(key), nil
	}
	owner, rest, err := splitOwner(bucket, key)
	if err != nil {
		return nil, nil, err
	}
	if !create {
		return b.Bucket([]byte(owner)), []byte(rest), nil
	}
	nb, err := b.CreateBucketIfNotExists([]byte(owner))
	if err != nil {
		return nil, nil, fmt.Errorf("%s of %s: %w", bucket, owner, err)
	}
	return nb, []byte(rest), nil
}

// getRaw is bucket[key] (nil if absent), through the owner's nested bucket where there is one.
func getRaw(tx kv.Tx, bucket, key string) []byte {
	b, k, err := slot(tx, bucket, key, false)
	if err != nil || b == nil {
		return nil
	}
	return b.Get(k)
}

// putRaw sets bucket[key] to val.
func putRaw(tx kv.Tx, bucket, key string, val []byte) error {
	b, k, err := slot(tx, bucket, key, true)
	if err != nil {
		return err
	}
	if err := b.Put(k, val); err != nil {
		return fmt.Errorf("write %s record %q: %w", bucket, key, err)
	}
	return nil
}

// putAppended is putRaw of a key that comes after those already in its bucket (or owner's
// bucket) most of the time, with the store told so (kv.HintAppended): a letter's index entry
// under its inmate (letter ids are UUIDv7s, in time order).
func putAppended(tx kv.Tx, bucket, key string, val []byte) error {
	b, k, err := slot(tx, bucket, key, true)
	if err != nil {
		return err
	}
	kv.HintAppended(b)
	if err := b.Put(k, val); err != nil {
		return fmt.Errorf("write %s record %q: %w", bucket, key, err)
	}
	return nil
}

// deleteKey removes bucket[key]; a missing key (or owner) is not an error. An owner's nested
// bucket stays when it empties: deleting it would conflict with its owner's next write.
func deleteKey(tx kv.Tx, bucket, key string) error {
	b, k, err := slot(tx, bucket, key, false)
	if err != nil || b == nil {
		return err
	}
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("delete %s record %q: %w", bucket, key, err)
	}
	return nil
}

// getJSON decodes bucket[key] into v; found is false when the key is absent.
func getJSON(tx kv.Tx, bucket, key string, v any) (bool, error) {
	raw := getRaw(tx, bucket, key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: %w", key, err)}
	}
	return true, nil
}

func putJSON(tx kv.Tx, bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %q: %w", bucket, key, err)
	}
	return putRaw(tx, bucket, key, raw)
}

// forEachRaw calls fn with every key under prefix (all if prefix is "") and its value, in key
// order, until fn returns false. Keys are logical (owner + "/" + rest in an owner-keyed
// bucket). A prefix of an owner-keyed bucket names its owner ("owner/..."): the scan reads
// that owner's bucket only. Listing all of one ("") reads every owner's: for the console and
// checks, never a hot path.
func forEachRaw(tx kv.Tx, bucket, prefix string, fn func(key string, raw []byte) bool) error {
	if !ownerKeyed(bucket) {
		scanPrefix(tx.Bucket([]byte(bucket)), "", prefix, fn)
		return nil
	}
	if prefix != "" {
		owner, rest, ok := strings.Cut(prefix, "/")
		if !ok || owner == "" {
			return fmt.Errorf("scan %s under %q: a prefix must name an owner (owner/...)", bucket, prefix)
		}
		if b := tx.Bucket([]byte(bucket)).Bucket([]byte(owner)); b != nil {
			scanPrefix(b, owner+"/", rest, fn)
		}
		return nil
	}
	root := tx.Bucket([]byte(bucket))
	var owners []string
	if err := root.ForEachBucket(func(name []byte) error { owners = append(owners, string(name)); return nil }); err != nil {
		return fmt.Errorf("list %s: %w", bucket, err)
	}
	for _, owner := range owners {
		more := true
		scanPrefix(root.Bucket([]byte(owner)), owner+"/", "", func(k string, raw []byte) bool {
			more = fn(k, raw)
			return more
		})
		if !more {
			break
		}
	}
	return nil
}

// scanPrefix walks b's keys that start with prefix, calling fn with outer+key.
func scanPrefix(b kv.Bucket, outer, prefix string, fn func(key string, raw []byte) bool) {
	if b == nil {
		return
	}
	c := b.Cursor()
	var k, raw []byte
	if prefix == "" {
		k, raw = c.First()
	} else {
		k, raw = c.Seek([]byte(prefix))
	}
	for ; k != nil && bytes.HasPrefix(k, []byte(prefix)); k, raw = c.Next() {
		if !fn(outer+string(k), raw) {
			return
		}
	}
}

// forEachJSON decodes every value under prefix (all if prefix is "") and calls fn until it
// returns false (forEachRaw says which keys a prefix reaches).
func forEachJSON[T any](tx kv.Tx, bucket, prefix string, fn func(key string, v T) bool) error {
	var derr error
	err := forEachRaw(tx, bucket, prefix, func(k string, raw []byte) bool {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			derr = &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: %w", k, err)}
			return false
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	return derr
}

// checkFacilityIDs checks each of facilities as an id (checkID, field facility_id).
func checkFacilityIDs(op string, facilities []string) error {
	for _, f := range facilities {
		if err := checkID(op, "facility_id", f); err != nil {
			return err
		}
	}
	return nil
}

// listedUnder gives the ids that the owner-keyed lists name under the given facilities
// (under every facility if facilities is nil), sorted, each once: the facility lists the
// console reads instead of every record of the state (fac_terms, fac_revoked, held_outbound,
// fac_contacts, photo_queue, fac_requests, fac_prea).
func listedUnder(tx kv.Tx, facilities []string, lists ...string) ([]string, error) {
	var ids []string
	for _, list := range lists {
		keys, err := listedKeys(tx, facilities, list)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if _, id, err := splitOwner(list, k); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// listedKeys is the entries of one of listedUnder's lists as the list keys them, facility +
// "/" + id, sorted by id (UUIDv7s: in time order) and then facility.
func listedKeys(tx kv.Tx, facilities []string, list string) ([]string, error) {
	var keys []string
	collect := func(k string, _ []byte) bool {
		keys = append(keys, k)
		return true
	}
	if facilities == nil {
		if err := forEachRaw(tx, list, "", collect); err != nil {
			return nil, err
		}
	}
	for _, fac := range facilities {
		if err := forEachRaw(tx, list, fac+"/", collect); err != nil {
			return nil, err
		}
	}
	idOf := func(k string) string { _, id, _ := strings.Cut(k, "/"); return id }
	slices.SortFunc(keys, func(a, b string) int {
		if c := strings.Compare(idOf(a), idOf(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(keys), nil
}

// indexKey is a by_inmate key: what (d = deposit, c = contact, m = outbound letter, r = refund,
// i = inbound letter)
// of an inmate.
func indexKey(inmateID, what, id string) string { return inmateID + "/" + what + "/" + id }

// indexed lists the ids of one kind an inmate has, in key order.
func indexed(tx kv.Tx, inmateID, what string) []string {
	prefix := inmateID + "/" + what + "/"
	var ids []string
	_ = forEachRaw(tx, bByInmate, prefix, func(k string, _ []byte) bool {
		ids = append(ids, k[len(prefix):])
		return true
	})
	return ids
}

// inmateContacts reads an inmate's contacts through the index, as a transaction of facility
// sees them ("": the kv state's; statedue.go).
func inmateContacts(tx kv.Tx, facility, inmateID string) ([]ContactRecord, error) {
	var out []ContactRecord
	for _, id := range indexed(tx, inmateID, "c") {
		c, ok, err := contactAt(tx, facility, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// contactAt reads contact id as a transaction of facility sees it ("": the kv state's): a
// write of its own not yet drained first (statedue.go).
func contactAt(tx kv.Tx, facility, id string) (ContactRecord, bool, error) {
	raw := onceGet(tx, facility, bContacts, id)
	if raw == nil {
		return ContactRecord{}, false, nil
	}
	c, err := decodeContact(id, raw)
	return c, true, err
}

// decodeContact decodes raw, the record of contact id.
func decodeContact(id string, raw []byte) (ContactRecord, error) {
	var c ContactRecord
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bContacts, Err: fmt.Errorf("record %q: %w", id, err)}
	}
	return c, nil
}
