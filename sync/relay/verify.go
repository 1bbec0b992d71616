package relay

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/ledger"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// maxVerifyProblems keeps a badly broken relay's report readable.
const maxVerifyProblems = 200

// Verify checks the relay file's pages and the relay's own rules of money and letters in one
// read transaction, as kioskctl verify does for a terminal:
//   - each inmate's running totals equal the deposits, charges and credits stored for them;
//   - every credit gives back a charge the relay holds, of the same inmate and session, at most
//     its amount (the credit is keyed by the charge's record id, so there is at most one);
//   - every uplink item id was stored once, and never above the high-water mark of its epoch;
//   - every outbound message and PREA report is stored under its own id with a known status,
//     and the item it names for its text is a letter item of that id.
func (r *Relay) Verify() (vocab.VerifyReport, error) {
	// A held facility's kv state is behind its holder by the projection, and its records
	// there may not yet agree with the state's a kv transaction wrote (a contact the state
	// holds, not yet in the facility's list): what a holder here appended is projected first,
	// and a problem is reported only if a second look, after projecting again, finds it too.
	// A facility another gateway holds is projected by it every two seconds: the second look
	// comes a whole read later, and may still find what was written meanwhile (run again to
	// tell; nothing here waits on a clock that tests stop).
	r.projectHeld("verify")
	rep, elsewhere, err := r.verifyOnce()
	if err != nil {
		return rep, err
	}
	if len(rep.Problems) > 0 && (elsewhere || !r.held.empty()) {
		r.projectHeld("verify")
		again, _, err := r.verifyOnce()
		if err != nil {
			return rep, err
		}
		seen := map[vocab.Problem]bool{}
		for _, p := range again.Problems {
			seen[p] = true
		}
		rep.Problems = slices.DeleteFunc(rep.Problems, func(p vocab.Problem) bool { return !seen[p] })
	}
	rep.OK = len(rep.Problems) == 0
	if rep.Problems == nil {
		rep.Problems = []vocab.Problem{}
	}
	return rep, nil
}

// verifyOnce is one pass of Verify; elsewhere says whether the store names a holder of a
// facility this relay does not hold.
func (r *Relay) verifyOnce() (rep vocab.VerifyReport, elsewhere bool, err error) {
	err = r.inspect("verify", func(tx kv.Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				rep.Problems = append(rep.Problems, vocab.Problem{Check: "pages", Detail: fmt.Sprintf("page check panicked: %v", p)})
			}
		}()
		rep = verifyRelayTx(tx)
		elsewhere = false
		if tx.Bucket([]byte(bHolds)) != nil {
			return forEachRaw(tx, bHolds, "", func(facility string, _ []byte) bool {
				elsewhere = r.held.of(facility) == nil
				return !elsewhere
			})
		}
		return nil
	})
	if err != nil {
		return rep, false, fmt.Errorf("verify relay: %w", err)
	}
	return rep, elsewhere, nil
}

// projectHeld has each facility this relay holds, or only those named, project what it
// appended, now, before op reads the kv state (Verify, LedgerFor, Items).
func (r *Relay) projectHeld(op string, only ...string) {
	facilities := only
	if only == nil {
		facilities = r.held.facilities()
	}
	for _, facility := range facilities {
		hf := r.ready(facility)
		if hf == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, txTimeout)
		if _, err := hf.holding.Project(ctx); err != nil {
			r.logf("relay: %s: project facility %s first: %v (read as the kv state has it)", op, facility, err)
		}
		cancel()
	}
}

// errRolledBack ends a writable transaction that must change nothing.
var errRolledBack = errors.New("rolled back")

// inspectTimeout bounds a whole-store read (verify, ledger) on a store other than bbolt.
const inspectTimeout = 5 * time.Minute

// DefaultVerifyMaxBytes is Config.VerifyMaxBytes when not set: a store of a few facilities'
// years; the copy in memory takes two to three times the stream's bytes.
const DefaultVerifyMaxBytes = 512 << 20

// inspect runs fn on one consistent state of the store. On a bbolt file that is a writable
// transaction that is always rolled back: a page check in a read-only transaction races the
// commits made meanwhile (pages they free, the reader's snapshot still reaches, and bbolt
// reports them "reachable freed"); holding the writer lock keeps the freelist and the snapshot
// the same. Any other store has no pages to check; fn runs on one consistent state of it, read
// whole (kv.WholeView: on JetStream the stream read in order, not a leader request a key, which
// at state scale was hours of the leader's time), which may take longer than a write may
// (inspectTimeout) and writes nothing, so it holds no one up meanwhile.
func (r *Relay) inspect(op string, fn func(tx kv.Tx) error) error {
	if _, ok := r.db.(*boltkv.Store); !ok {
		ctx, cancel := context.WithTimeout(r.ctx, inspectTimeout)
		defer cancel()
		if ws, ok := r.db.(kv.WholeSizer); ok {
			limit := cmp.Or(r.cfg.VerifyMaxBytes, DefaultVerifyMaxBytes)
			// A size that cannot be read (no quorum) leaves the read to fail as it would.
			if n, err := ws.WholeSize(ctx); err == nil && n > limit {
				return conflict(op, "store", "the store holds %d MiB, and %s keeps a whole copy of it in memory; this relay allows %d MiB "+
					"(relayd -verify-max-mib): not run", n>>20, op, limit>>20)
			}
		}
		// A read that found no leader or timed out is read again, whole, within the bound.
		return ioErr(op, retryOpening(ctx, func() error { return kv.WholeView(ctx, r.db, fn) }))
	}
	ctx, cancel := r.txContext()
	defer cancel()
	err := r.db.Update(ctx, func(tx kv.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRolledBack
	})
	if errors.Is(err, errRolledBack) {
		return nil
	}
	return ioErr(op, err)
}

// entries counts what bbolt's Stats().KeyN counted, so a report reads as it did before the
// store moved onto kv: the bucket's keys, and each nested bucket as one entry plus its own.
func entries(b kv.Bucket) int {
	n := b.KeyN()
	_ = b.ForEachBucket(func(name []byte) error {
		n += 1 + entries(b.Bucket(name))
		return nil
	})
	return n
}

func verifyRelayTx(tx kv.Tx) vocab.VerifyReport {
	rep := vocab.VerifyReport{Records: map[string]int{}}
	add := func(check, format string, args ...any) {
		if len(rep.Problems) < maxVerifyProblems {
			rep.Problems = append(rep.Problems, vocab.Problem{Check: check, Detail: fmt.Sprintf(format, args...)})
		}
	}
	// The page check is bbolt's own (a kv store has no pages); JetStream checks its stream.
	if btx := boltkv.BoltTx(tx); btx != nil {
		for cerr := range btx.Check() {
			add("pages", "%v", cerr)
		}
	}
	_ = tx.ForEachBucket(func(name []byte) error {
		b := tx.Bucket(name)
		rep.Records[string(name)] = entries(b)
		return nil
	})
	// An owner-keyed bucket holds only its owners' buckets: a key left at its top is one the
	// schema 9 migration could not place (no owner), unseen by every reader.
	for _, name := range allBuckets() {
		if b := tx.Bucket([]byte(name)); ownerKeyed(name) && b != nil {
			_ = b.ForEach(func(k, _ []byte) error {
				add("layout", "%s record %q is not under an owner", name, k)
				return nil
			})
		}
	}
	decodeErr := func(bucket string) func(string, error) {
		return func(k string, err error) { add("decode", "%s record %q: %v", bucket, k, err) }
	}
	// Each inmate is on its facility's list, which snapshots read instead of every inmate.
	eachRaw(tx, bInmates, decodeErr(bInmates), func(k string, in inmateRec) {
		if getRaw(tx, bFacInmates, in.FacilityID+"/"+k) == nil {
			add("facility_list", "inmate %s is missing from the list of facility %s", k, in.FacilityID)
		}
	})
	// Each terminal is on its facility's list, live (fac_terms: fan-out) or revoked
	// (fac_revoked), which the console reads instead of every terminal.
	eachRaw(tx, bTerminals, decodeErr(bTerminals), func(k string, t terminalRec) {
		list := bFacTerms
		if t.Revoked {
			list = bFacRevoked
		}
		if checkID("", "", t.FacilityID) == nil && getRaw(tx, list, t.FacilityID+"/"+k) == nil {
			add("terminal_list", "terminal %s is missing from the %s list of facility %s", k, list, t.FacilityID)
		}
	})
	// Each terminal's own record of what it said (termseen.go) is a known terminal's.
	eachRaw(tx, bTermSeen, decodeErr(bTermSeen), func(k string, _ seenState) {
		if getRaw(tx, bTerminals, k) == nil {
			add("term_seen", "terminal %s has a term_seen record but is not enrolled", k)
		}
	})
	// Each contact is on the list of the facility it was asked from (contactlist.go), and on
	// no other (a contact asked for again after a move changes lists).
	eachRaw(tx, bContacts, decodeErr(bContacts), func(k string, c ContactRecord) {
		if checkID("", "", c.FacilityID) == nil && checkID("", "", k) == nil && getRaw(tx, bFacContacts, c.FacilityID+"/"+k) == nil {
			add("contact_list", "contact %s is missing from the list of facility %s", k, c.FacilityID)
		}
	})
	_ = forEachRaw(tx, bFacContacts, "", func(k string, _ []byte) bool {
		fac, id, _ := splitOwner(bFacContacts, k)
		var c ContactRecord
		if ok, err := getJSON(tx, bContacts, id, &c); err == nil && (!ok || c.FacilityID != fac) {
			add("contact_list", "facility %s lists contact %s, which is not one of its", fac, id)
		}
		return true
	})
	// Each family letter held for photo review is on its facility's queue, and no other.
	if tx.Bucket([]byte(bInboundHeld)) != nil {
		eachRaw(tx, bInboundHeld, decodeErr(bInboundHeld), func(k string, h HeldInbound) {
			if checkID("", "", h.FacilityID) != nil || checkID("", "", k) != nil {
				return
			}
			listed := getRaw(tx, bPhotoQueue, h.FacilityID+"/"+k) != nil
			if held := h.Status == vocab.MsgHeld; held != listed {
				add("photo_queue", "letter %s held for photo review is %s and %s the queue of facility %s", k, h.Status,
					map[bool]string{true: "on", false: "not on"}[listed], h.FacilityID)
			}
		})
	}
	// Each invitation neither sent nor answered, and not lapsed, is on the list the hourly
	// retry reads, and nothing else is (invite.go).
	eachRaw(tx, bInvites, decodeErr(bInvites), func(k string, inv inviteRec) {
		listed := getRaw(tx, bInvitesUnsent, k) != nil
		if unsent := inv.awaitsSending(); unsent != listed {
			add("unsent_list", "invitation of contact %s (sent %v, answer %q, lapsed %v) is %s the list of unsent invitations", k, inv.Sent, inv.Answer, inv.Lapsed,
				map[bool]string{true: "on", false: "not on"}[listed])
		}
	})
	_ = forEachRaw(tx, bInvitesUnsent, "", func(k string, _ []byte) bool {
		if getRaw(tx, bInvites, k) == nil {
			add("unsent_list", "the list of unsent invitations names contact %s, which has no invitation", k)
		}
		return true
	})
	// Each answer to a request is filed under it, and each listed request is a letter of the
	// facility that lists it (requests.go).
	eachRaw(tx, bInbound, decodeErr(bInbound), func(k string, m vocab.Message) {
		if m.ReplyTo != "" && checkID("", "", m.ReplyTo) == nil && checkID("", "", k) == nil &&
			getRaw(tx, bRequestReplies, m.ReplyTo+"/"+k) == nil {
			add("reply_list", "letter %s answers request %s and is not filed under it", k, m.ReplyTo)
		}
	})
	_ = forEachRaw(tx, bFacRequests, "", func(k string, _ []byte) bool {
		fac, id, _ := splitOwner(bFacRequests, k)
		var rec letterRec
		if ok, err := getJSON(tx, bLetters, fac+"/"+id, &rec); err == nil && (!ok || rec.FacilityID != fac) {
			add("request_list", "facility %s lists request %s, which is not one of its letters", fac, id)
		}
		return true
	})

	// Money: totals per inmate against the records they sum.
	sums := map[string]*totals{}
	sum := func(id string) *totals {
		if sums[id] == nil {
			sums[id] = &totals{}
		}
		return sums[id]
	}
	eachRaw(tx, bDeposits, decodeErr(bDeposits), func(k string, d vocab.Deposit) {
		if d.Ref != k {
			add("deposit_key", "deposit %q is stored under key %q", d.Ref, k)
		}
		// A deposit is credited in a transaction after its record's (depositdue.go): one
		// not credited yet is counted once it is, and it must be marked due until then.
		switch {
		case getRaw(tx, bByInmate, indexKey(d.InmateID, "d", d.Ref)) != nil:
			sum(d.InmateID).Deposits += d.Cents
		case getRaw(tx, bDepositsDue, d.Ref) == nil:
			add("deposit_credit", "deposit %q of inmate %s is not credited and not marked due: nothing will credit it", d.Ref, d.InmateID)
		}
	})
	eachRaw(tx, bRefunds, decodeErr(bRefunds), func(k string, rf vocab.Refund) {
		if rf.Ref != k {
			add("refund_key", "refund %q is stored under key %q", rf.Ref, k)
		}
		// Taken from the balance in a transaction after its record's (refunddue.go).
		switch {
		case getRaw(tx, bByInmate, indexKey(rf.InmateID, "r", rf.Ref)) != nil:
			sum(rf.InmateID).Refunds += rf.Cents
		case getRaw(tx, bRefundsDue, rf.Ref) == nil:
			add("refund_debit", "refund %q of inmate %s is not taken from the balance and not marked due: nothing will take it", rf.Ref, rf.InmateID)
		}
	})
	charges := map[string]UsageRecord{}
	eachRaw(tx, bCharges, decodeErr(bCharges), func(k string, u UsageRecord) {
		if k != u.InmateID+"/"+u.RecordID {
			add("charge_key", "charge %q of inmate %s is stored under key %q", u.RecordID, u.InmateID, k)
		}
		charges[k] = u
		sum(u.InmateID).Charges += u.Cents
	})
	eachRaw(tx, bCredits, decodeErr(bCredits), func(k string, u UsageRecord) {
		ch, ok := charges[k]
		switch {
		case !ok && strings.HasPrefix(u.RecordID, vocab.QuizRecordPrefix) && u.TerminalID == "":
			// A passed quiz's credit (quiz.go): the relay's own, for work, not for a charge.
		case !ok:
			add("credit_charge", "credit %s of inmate %s gives back no charge the relay holds", u.RecordID, u.InmateID)
		case ch.SessionID != u.SessionID:
			add("credit_charge", "credit %s is for session %s but its charge is of session %s", u.RecordID, u.SessionID, ch.SessionID)
		case u.Cents > ch.Cents:
			add("credit_charge", "credit %s gives back %s, more than its charge of %s", u.RecordID, u.Cents, ch.Cents)
		}
		sum(u.InmateID).Credits += u.Cents
	})
	held := map[string]bool{}
	eachRaw(tx, bBalances, decodeErr(bBalances), func(k string, t totals) {
		held[k] = true
		want := sums[k]
		if want == nil {
			want = &totals{}
		}
		if t != *want {
			add("balance", "inmate %s has running totals %+v but the records add up to %+v", k, t, *want)
		}
	})
	for _, id := range sortedKeys(sums) {
		if !held[id] && *sums[id] != (totals{}) {
			add("balance", "inmate %s has records worth %+v but no running totals", id, *sums[id])
		}
	}

	// Uplink items: each item id once, each within its epoch's high-water mark. An item
	// refused id_conflict is kept under the id it reused, which another item holds: that is
	// the refusal, not a second copy (verify said it was until stop 33).
	// Where item ids are kept by facility (facids.go) each facility's are its own: another
	// facility's terminal reusing an id is stored as a new item there.
	byFac := idsByFacility(tx)
	var facOf map[string]string // terminal -> facility
	if byFac {
		verifyIDRecords(tx, add)
		facOf = map[string]string{}
		eachRaw(tx, bTerminals, func(string, error) {}, func(k string, t terminalRec) { facOf[k] = t.FacilityID })
	}
	seen := map[string]uint64{}
	_ = forEachItemRaw(tx, decodeErr(bItems), func(n uint64, raw []byte) bool {
		var it StoredItem
		if err := json.Unmarshal(raw, &it); err != nil {
			decodeErr(bItems)(fmt.Sprintf("item %d", n), err)
			return true
		}
		key := it.ID
		if byFac {
			key = facOf[it.TerminalID] + "/" + it.ID
		}
		if prev, dup := seen[key]; dup && it.Refused != wire.RefuseIDConflict {
			add("item_once", "uplink item %s is stored twice (arrivals %d and %d)", it.ID, prev, n)
		}
		if it.Refused != wire.RefuseIDConflict {
			seen[key] = n
		}
		high := readU64(tx.Bucket([]byte(bDedupe)).Get([]byte(dedupeKey(it.TerminalID, it.Epoch))))
		if it.Seq > high {
			add("item_seq", "uplink item %s (seq %d of terminal %s) is above its epoch's acknowledged %d", it.ID, it.Seq, it.TerminalID, high)
		}
		return true
	})

	// Letters: under their facility and their own ids, with a status the sender can be shown,
	// and their text in the item they name. None is left where letters were before v24, and
	// the index places each id with a letter.
	_ = forEachRaw(tx, bOutbound, "", func(k string, _ []byte) bool {
		add("letter_unplaced", "letter %q is in %s, where no reader looks: its record names no valid facility", k, bOutbound)
		return true
	})
	_ = forEachRaw(tx, bLetterAt, "", func(id string, fac []byte) bool {
		if getRaw(tx, bLetters, string(fac)+"/"+id) == nil {
			add("letter_index", "the index places letter %s in facility %q, which has no such letter", id, fac)
		}
		return true
	})
	for _, bucket := range []string{bLetters, bPREA} {
		eachRaw(tx, bucket, decodeErr(bucket), func(k string, o letterRec) {
			want := o.ID
			if bucket == bLetters {
				want = o.FacilityID + "/" + o.ID
			}
			if k != want {
				add("letter_key", "%s message %q of facility %q is stored under key %q", bucket, o.ID, o.FacilityID, k)
			} else if bucket == bLetters && letterAt(tx, o.FacilityID, o.ID) != o.FacilityID {
				// The console finds a letter by its id through the index (one a held facility
				// has not drained into the kv state yet counts, statedue.go).
				add("letter_index", "letter %s of facility %s is not indexed under it", o.ID, o.FacilityID)
			}
			if o.BodyItem != 0 {
				if err := fillBody(tx, bucket, k, &o); err != nil {
					add("letter_body", "%s message %s: %v", bucket, k, err)
				}
			}
			switch o.Status {
			case vocab.MsgHeld, vocab.MsgDelivered, vocab.MsgRejected:
			default:
				add("letter_status", "%s message %s has status %q", bucket, k, o.Status)
			}
			// The review queue reads a facility's list of held letters (heldout.go).
			if bucket == bLetters && checkID("", "", o.FacilityID) == nil && checkID("", "", o.ID) == nil {
				listed := getRaw(tx, bHeldOut, o.FacilityID+"/"+o.ID) != nil
				if held := o.Status == vocab.MsgHeld; held != listed {
					add("held_list", "outbound message %s is %s and %s the held list of facility %s", k, o.Status,
						map[bool]string{true: "on", false: "not on"}[listed], o.FacilityID)
				}
			}
			// A facility's PREA coordinator reads its list of reports (prealist.go).
			if bucket == bPREA && checkID("", "", o.FacilityID) == nil && checkID("", "", k) == nil &&
				getRaw(tx, bFacPREA, o.FacilityID+"/"+k) == nil {
				add("prea_list", "PREA report %s is missing from the list of facility %s", k, o.FacilityID)
			}
		})
	}
	// Each listed PREA report is one of the listing facility's: a report listed elsewhere too
	// would be shown to that facility's coordinator, were PREAReportsOf not to check.
	_ = forEachRaw(tx, bFacPREA, "", func(k string, _ []byte) bool {
		fac, id, _ := splitOwner(bFacPREA, k)
		// The record alone: a report's text has no place in a problem's detail. One the
		// facility's holder has not drained yet counts (statedue.go).
		var rec letterRec
		raw := onceGet(tx, fac, bPREA, id)
		if raw == nil || json.Unmarshal(raw, &rec) != nil || rec.FacilityID != fac {
			add("prea_list", "facility %s lists PREA report %s, which is not one of its reports", fac, id)
		}
		return true
	})
	// The state's records a held facility wrote, not yet drained (statedue.go): each of a root
	// written once, and none colliding with another record under its key, or of a root
	// written on a condition (which its drain decides).
	if tx.Bucket([]byte(bStateDue)) != nil {
		_ = forEachRaw(tx, bStateDue, "", func(k string, raw []byte) bool {
			fac, rest, _ := strings.Cut(k, "/")
			root, key, ok := strings.Cut(rest, "/")
			switch cur := getRaw(tx, root, key); {
			case ok && condRoot(root):
			case !ok || !onceRoot(root):
				add("state_due", "facility %s has %q due to the state, which is not a record written once", fac, rest)
			case cur != nil && !bytes.Equal(cur, raw):
				add("state_due", "facility %s has %s %s due to the state, and another record holds its key", fac, root, key)
			}
			return true
		})
	}
	return rep
}

// eachRaw decodes every record of a bucket, reporting the ones that do not decode.
func eachRaw[T any](tx kv.Tx, bucket string, bad func(string, error), fn func(k string, v T)) {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		bad(bucket, fmt.Errorf("bucket is missing"))
		return
	}
	// Through forEachRaw: an owner-keyed bucket's records are in its owners' buckets.
	if err := forEachRaw(tx, bucket, "", func(k string, raw []byte) bool {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			bad(k, err)
			return true
		}
		fn(k, v)
		return true
	}); err != nil {
		bad(bucket, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LedgerFor is the relay's side of ledger.Reconcile for one terminal: the balance of every
// inmate the terminal serves now (a kiosk: its facility's; a tablet: its own inmate), and the
// state of each named letter as the relay holds it: its review status, "delivered" for a PREA
// report, or "rejected" with the reason when the relay refused the item that carried it.
func (r *Relay) LedgerFor(terminalID string, letters []string) (ledger.Ledger, error) {
	const op = "ledger"
	l := ledger.Ledger{Balances: map[string]vocab.Cents{}, Letters: map[string]ledger.LetterState{}}
	// The terminal's facility, if held here, is projected first: its balances and letters are
	// read from the kv state (the items log, which a held state cannot walk, too), which is
	// otherwise behind by what its holder appended.
	if !r.held.empty() {
		var facility string
		if err := r.view(op, func(tx kv.Tx) error {
			var t terminalRec
			_, err := getJSON(tx, bTerminals, terminalID, &t)
			facility = t.FacilityID
			return err
		}); err != nil {
			return l, err
		}
		r.projectHeld(op, facility)
	}
	err := r.view(op, func(tx kv.Tx) error {
		var t terminalRec
		ok, err := getJSON(tx, bTerminals, terminalID, &t)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "terminal_id", "unknown terminal %q", terminalID)
		}
		if err := forEachJSON(tx, bInmates, "", func(id string, in inmateRec) bool {
			if serves(t.TerminalInfo, in) {
				var tt totals
				if _, err = getJSON(tx, bBalances, id, &tt); err != nil {
					return false
				}
				l.Balances[id] = tt.balance()
			}
			return true
		}); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, id := range letters {
			want[id] = true
			var o Outbound
			if at := letterAt(tx, "", id); at != "" { // "": a PREA report, or nothing
				if ok, err := getJSON(tx, bLetters, at+"/"+id, &o); err != nil {
					return err
				} else if ok {
					l.Letters[id] = ledger.LetterState{InmateID: o.InmateID, Peer: o.Peer, State: o.Status, Reason: o.Reason}
					continue
				}
			}
			if ok, err := getJSON(tx, bPREA, id, &o); err != nil {
				return err
			} else if ok {
				l.Letters[id] = ledger.LetterState{InmateID: o.InmateID, Peer: vocab.PREAChannel, State: vocab.MsgDelivered}
			}
		}
		// A letter the relay refused lives only as a refused uplink item.
		return forEachStoredItem(tx, func(_ uint64, it StoredItem) bool {
			if it.Refused == "" || (it.Kind != wire.UpMessage && it.Kind != wire.UpPREA) {
				return true
			}
			var m vocab.Message
			if json.Unmarshal(it.Body, &m) != nil || !want[m.ID] {
				return true
			}
			if _, stored := l.Letters[m.ID]; !stored {
				l.Letters[m.ID] = ledger.LetterState{InmateID: m.InmateID, Peer: m.Peer, State: vocab.MsgRejected, Reason: it.Refused}
			}
			return true
		})
	})
	if err != nil {
		return ledger.Ledger{}, err
	}
	return l, nil
}

// serves is the rule of which inmates a terminal speaks for: those of its facility and, for a
// tablet, only its own.
func serves(t TerminalInfo, in inmateRec) bool {
	return in.FacilityID == t.FacilityID && (t.Mode != wire.ModeTablet || in.ID == t.InmateID)
}
