package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// StoredItem is one uplink item as the relay keeps it.
type StoredItem struct {
	wire.Item
	TerminalID string    `json:"terminal_id"`
	Epoch      string    `json:"epoch"`
	ReceivedAt time.Time `json:"received_at"`
	Refused    string    `json:"refused,omitempty"` // the refusal reason, if refused for good
}

// Refusal reason beyond wire's list: the inmate already has max_contacts contacts.
const RefuseContactLimit = "contact_limit"

func dedupeKey(termID, epoch string) string { return termID + "/" + epoch }

// storeBatch stores a batch in one transaction and returns the ack: the highest seq of this
// batch that the relay holds contiguously and has compared (never one it has not seen from this
// batch), and every refusal among the batch's seqs (remembered, so a resent refused item is
// listed again). A seq at or below H whose item differs from the one held there, or a seq past
// H+1, stops the batch: what precedes it is stored and acknowledged, and a *sequenceError says
// the connection must end.
func (r *Relay) storeBatch(t TerminalInfo, b wire.Batch) (wire.Ack, error) {
	return r.storeBatchSeen(t, b, nil)
}

// storeBatchSeen is storeBatch that also writes the connection's hello record (if not nil)
// first, in the same transaction.
func (r *Relay) storeBatchSeen(t TerminalInfo, b wire.Batch, seen *seenRec) (wire.Ack, error) {
	acks, err := r.storeBatches(t, []upBatch{{Batch: b}}, seen)
	if len(acks) == 0 {
		return wire.Ack{}, err
	}
	return acks[0], err
}

// storeBatches stores batches of one connection, in order, in one transaction (one commit for
// what a terminal pipelined while the previous commit was under way), and returns one ack per
// batch stored. The hello record (if not nil) is written first. A batch that stops on a
// *sequenceError is the last one answered: its ack is the last in the list, the batches after
// it are not looked at, and the error is returned with the acks. Any other error answers none.
// It is one transaction; storeBatches (split.go) splits what is too large for one.
func (r *Relay) storeBatchesOnce(t TerminalInfo, batches []upBatch, seen *seenRec) ([]wire.Ack, error) {
	now := r.clock.Now().UTC()
	// What each item's body is, outside the transaction (and not again if it runs twice): the
	// stored form, its hash, whether it is JSON at all and, from a decoded frame, its check.
	// A batch from a connection comes prepared by its reader (takeFrame), in parallel with the
	// commit before it.
	preps := make([][]prepared, len(batches))
	logSize, items := 0, 0 // about what the items take in the item log; how many
	for i, b := range batches {
		items += len(b.Items)
		preps[i] = b.preps
		if len(preps[i]) != len(b.Items) {
			preps[i] = prepareAll(b.Items, b.bodies)
		}
		for j, it := range b.Items {
			logSize += 4 + 256 + len(it.ID) + len(it.Kind) + len(t.ID) + len(b.Epoch) + len(preps[i][j].canon)
		}
	}
	var acks []wire.Ack
	var stop error
	var queue int64 // f.waiting as the last run left it
	defer r.metrics.batchStored(time.Now())
	var own *owner
	if len(batches) > 0 {
		own = batches[0].own
	}
	err := r.updateAsKeys(own, t.ID, t.FacilityID, "store batch", func() []kv.Key { return batchKeys(t, own, batches, preps, &r.ids) }, items, func(tx kv.Tx, f *fanout) error {
		acks, stop = acks[:0], nil // a re-run starts over
		// The items are written as log records once the batches are stored (itemlog.go).
		bolt := onBolt(tx)
		tx = &logTx{Tx: tx, log: &itemLog{hint: logSize, max: logRecordCut(bolt)}, bounded: bolt && items >= minBoundedItems}
		if len(batches) > 0 && batches[0].check != nil {
			if err := batches[0].check(tx); err != nil {
				return err
			}
		}
		f.waiting = 0
		if own != nil {
			f.waiting = own.queue.Load()
		}
		if err := seenTx(tx, t.ID, seen); err != nil {
			return err
		}
		if seen != nil {
			f.waiting = int64(seen.waiting) + 1
		}
		fac, pol, err := r.facilities.facilityFor(tx, t.FacilityID)
		if err != nil {
			return err
		}
		for i, b := range batches {
			ack, seqErr, err := r.storeBatchTx(tx, f, t, fac, pol, b, preps[i], now)
			if err != nil {
				return err
			}
			acks = append(acks, ack)
			if seqErr != nil {
				stop = seqErr
				break
			}
		}
		queue = f.waiting
		return tx.(*logTx).log.flush(tx, f.lastItems)
	})
	if own != nil {
		if err != nil {
			queue = 0 // unknown: what failed may have landed after all
		}
		own.queue.Store(queue)
	}
	if err != nil {
		return nil, err
	}
	return acks, stop
}

// storeBatchTx is one batch of storeBatches inside its transaction: the ack, and a
// *sequenceError if the batch stopped (what precedes the stop is stored).
func (r *Relay) storeBatchTx(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol vocab.Policy, b upBatch, prep []prepared, now time.Time) (wire.Ack, *sequenceError, error) {
	ack := wire.Ack{Epoch: b.Epoch}
	var stop *sequenceError
	var lt *wire.Letters // the letters' states, for a terminal that takes them in the ack
	if b.ackLetters {
		lt = new(wire.Letters)
	}
	dk := []byte(dedupeKey(t.ID, b.Epoch))
	dd := tx.Bucket([]byte(bDedupe))
	high := readU64(dd.Get(dk))
	ref := tx.Bucket([]byte(bRefusals))
	var compared uint64
	for i, it := range b.Items {
		h := prep[i].hash
		sk := seqKey(t.ID, b.Epoch, it.Seq)
		if it.Seq <= high {
			held, found, err := r.heldAt(tx, f, t, b.Epoch, it.Seq, sk, it.ID)
			if err != nil {
				return ack, nil, err
			}
			if !found || held.ItemID != it.ID || held.Hash != h {
				if !found {
					held.ItemID = heldItemID(tx, t.ID, b.Epoch, it.Seq, sk)
				}
				stop = &sequenceError{got: it.Seq, held: held.ItemID, id: it.ID}
				if err := recordConflict(tx, Refusal{TerminalID: t.ID, Epoch: b.Epoch, Seq: it.Seq, ItemID: it.ID,
					Kind: it.Kind, Reason: ConflictSequence, At: now, HeldItemID: held.ItemID}); err != nil {
					return ack, nil, err
				}
				break
			}
			if reason := ref.Get([]byte(sk)); reason != nil {
				ack.Rejected = append(ack.Rejected, wire.Rejection{Seq: it.Seq, Reason: string(reason)})
			} else if err := letterState(tx, t, lt, it, prep[i]); err != nil {
				return ack, nil, err
			}
			compared = it.Seq
			continue
		}
		if it.Seq != high+1 {
			stop = &sequenceError{gap: true, want: high + 1, got: it.Seq}
			if err := recordConflict(tx, Refusal{TerminalID: t.ID, Epoch: b.Epoch, Seq: it.Seq, ItemID: it.ID,
				Kind: it.Kind, Reason: ConflictGap, At: now}); err != nil {
				return ack, nil, err
			}
			break
		}
		reason, err := r.storeItem(tx, f, t, fac, pol, b.Epoch, it, prep[i], lt, now)
		if err != nil {
			return ack, nil, fmt.Errorf("item %d (%s): %w", it.Seq, it.Kind, err)
		}
		if reason != "" {
			ack.Rejected = append(ack.Rejected, wire.Rejection{Seq: it.Seq, Reason: reason})
		}
		high, compared = it.Seq, it.Seq
	}
	ack.Seq = compared
	if lt.Len() > 0 {
		ack.Letters = lt
	}
	return ack, stop, dd.Put(dk, u64(high))
}

// storeItem takes the item at seq H+1. An item id already held with the same content is a
// resend (under a new epoch, or a new terminal id after re-enrollment): it counts in H, is not
// stored or applied again, and its earlier refusal stands. An item id held with other content
// is refused id_conflict. Anything else is applied by kind and stored. lt, if not nil, gets the
// state of a letter taken or recognised.
//
// The item id is looked up where the store keeps ids (facids.go): on a shared store in the
// records of the second it was made, which the group read together with its other keys
// (batchKeys). Until stop 34 a shared store guessed a new seq's id absent (kv.GuessAbsent) and
// a queue resent under a new epoch cost a group commit run again.
func (r *Relay) storeItem(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol vocab.Policy, epoch string, it wire.Item, p prepared, lt *wire.Letters, now time.Time) (string, error) {
	h := p.hash
	sk := seqKey(t.ID, epoch, it.Seq)
	remember := func(reason string) error {
		if reason == "" {
			return nil
		}
		return tx.Bucket([]byte(bRefusals)).Put([]byte(sk), []byte(reason))
	}
	prev, found, err := r.findItemID(tx, f, t, it.ID)
	if err != nil {
		return "", err
	}
	if found {
		// The item id's record names another seq, so this one gets its own (seqs.go).
		if err := tx.Bucket([]byte(bSeqs)).Put([]byte(sk), encodeSeqRec(seqRec{ItemID: it.ID, Hash: h})); err != nil {
			return "", fmt.Errorf("write %s record %q: %w", bSeqs, sk, err)
		}
	}
	if found && prev.Hash == h {
		if prev.Refused == "" {
			if err := letterState(tx, t, lt, it, p); err != nil {
				return "", err
			}
		}
		return prev.Refused, remember(prev.Refused)
	}
	ltx, ok := tx.(*logTx)
	if !ok {
		return "", fmt.Errorf("store item %d: not in an item log transaction", it.Seq)
	}
	// The item's arrival number, taken first: a letter it carries refers to its record for the
	// body text (letterRec).
	if f.nums == nil {
		return "", fmt.Errorf("store item %d: no arrival numbers: not in a group commit", it.Seq)
	}
	n, err := f.nums.take(ltx.Tx)
	if err != nil {
		return "", err
	}
	var reason string
	switch {
	case found:
		reason = wire.RefuseIDConflict
		f.logf("relay: terminal %s item %d (%s): item id %s already held with other content (from terminal %s): refused %s",
			t.ID, it.Seq, it.Kind, it.ID, prev.TerminalID, reason)
	case p.valid:
		// A letter that waits for its stamp is decided by this item (stamps.go).
		due, err := stampDueOf(tx, t)
		if err != nil {
			return "", err
		}
		if reason, err = r.applyItem(tx, f, t, fac, pol, epoch, it, p, n, lt, now); err != nil {
			return "", err
		}
		if err := r.settleStampDue(tx, f, t, fac, due, epoch, it, p, reason, lt, now); err != nil {
			return "", err
		}
		if reason == wire.RefuseIDConflict {
			f.logf("relay: terminal %s item %d (%s): a record id in it is already held with other content: refused %s",
				t.ID, it.Seq, it.Kind, reason)
		}
	default:
		// wire.DecodeFrame never yields this; a direct caller might. The record stays storable
		// (prepare gave it a null body).
		reason = wire.RefuseInvalid
	}
	if !found {
		if err := r.addItemID(tx, f, t, it.ID, itemRef{Hash: h, TerminalID: t.ID, Epoch: epoch, Seq: it.Seq, Refused: reason}); err != nil {
			return "", err
		}
	}
	if err := remember(reason); err != nil {
		return "", err
	}
	if reason != "" {
		if err := recordRefusal(tx, Refusal{TerminalID: t.ID, Epoch: epoch, Seq: it.Seq, ItemID: it.ID, Kind: it.Kind, Reason: reason, At: now}); err != nil {
			return "", err
		}
	}
	if err := ltx.log.addItem(n, storedHead{Seq: it.Seq, ID: it.ID, Kind: it.Kind, CreatedAt: it.CreatedAt,
		TerminalID: t.ID, Epoch: epoch, ReceivedAt: now, Refused: reason}, p.canon); err != nil {
		return "", err
	}
	f.count(it.Kind, reason)
	return reason, nil
}

// upBatch is a batch to store and, when it came out of wire.DecodeUplinkFrame, what the
// decoder learned of each body (nil otherwise: each body is checked here).
type upBatch struct {
	wire.Batch
	bodies []wire.UpBody
	// ackLetters: the connection's hello asked for letters' states in the acks.
	ackLetters bool
	// own is the connection's owner claim (owner.go); the batches stored together share one.
	own *owner
	// check, if set, runs first in the transaction that stores the batches (the connection's
	// terminal still enrolled, recmemo.go); its error fails the store.
	check func(tx kv.Tx) error
	// preps, if it has one per item, is prepareAll's answer for the items, made by the
	// connection's reader: the batches of one connection are stored one group after another,
	// so what is prepared before the store waits for the commit before it is off that path.
	preps []prepared
}

// prepareAll prepares each item of a batch (bodies: the frame decoder's, or nil).
func prepareAll(items []wire.Item, bodies []wire.UpBody) []prepared {
	out := make([]prepared, len(items))
	for j, it := range items {
		var up *wire.UpBody
		if bodies != nil {
			up = &bodies[j]
		}
		out[j] = prepare(it, up)
	}
	return out
}

// prepared is an uplink item's body as the relay stores it (compact JSON, HTML-escaped as
// json.Marshal writes it, so hashes match those of items stored before), its hash, and whether
// it parsed; a body that did not is stored as null. checked says up holds the body's schema
// check (wire.DecodeUpBody's answer), so applyItem does not decode it again.
type prepared struct {
	canon   json.RawMessage
	hash    string
	valid   bool
	checked bool
	up      wire.UpBody
	// text is a letter's body and subject checked as vocab.ValidateLetter checks them, but
	// for the policy's length limit (the policy is read in the transaction): done here, on
	// the connection's goroutine, so the relay's one committer does not scan each body again.
	text textCheck
}

// textCheck is what prepare learned of a letter's text: not looked at, or valid or not but for
// its length.
type textCheck int8

const (
	textUnchecked textCheck = iota
	textValid
	textInvalid
)

// letterText checks a letter's text but for the length limit (vocab.ValidateLetter with no
// limit: the limit gates nothing else in it).
func letterText(m *vocab.Message) textCheck {
	if vocab.ValidateLetter(m.Body, m.Subject, math.MaxInt) != nil {
		return textInvalid
	}
	return textValid
}

// validLetter is vocab.ValidateLetter(m.Body, m.Subject, maxChars) == nil for a letter whose
// body is known to be within maxChars (vocab.LetterTooLong is false), with text from prepare.
func validLetter(m *vocab.Message, maxChars int, text textCheck) bool {
	switch text {
	case textValid:
		return true
	case textInvalid:
		return false
	}
	return vocab.ValidateLetter(m.Body, m.Subject, maxChars) == nil
}

// prepare makes an item's prepared body. up, if not nil, is what the frame decoder learned of
// it (the body is valid JSON): a body already compact is taken as it is, without a second scan
// and copy, and its check is kept.
func prepare(it wire.Item, up *wire.UpBody) prepared {
	if up != nil && up.Compact {
		return prepared{canon: it.Body, hash: canonHash(it.Kind, it.Body), valid: true, checked: true, up: *up,
			text: upText(it, up)}
	}
	canon, err := json.Marshal(it.Body)
	if err != nil {
		return prepared{canon: json.RawMessage("null"), hash: itemHash(it.Kind, it.Body)}
	}
	p := prepared{canon: canon, hash: canonHash(it.Kind, canon), valid: true}
	if up != nil {
		p.checked, p.up, p.text = true, *up, upText(it, up)
	}
	return p
}

// upText checks the text of a letter the frame decoder read (a message item whose body passed
// its check); anything else is left unchecked.
func upText(it wire.Item, up *wire.UpBody) textCheck {
	if it.Kind != wire.UpMessage || up.Err != nil {
		return textUnchecked
	}
	m, ok := up.Value.(*vocab.Message)
	if !ok || m == nil {
		return textUnchecked
	}
	if up.ASCIIBody {
		return asciiLetterText(m)
	}
	return letterText(m)
}

// asciiLetterText is letterText for a letter whose body the frame decoder saw is printable
// ASCII only (wire.UpBody.ASCIIBody): such a body is valid unless it is blank, so only its
// leading spaces are looked at, not each of its bytes again.
func asciiLetterText(m *vocab.Message) textCheck {
	if strings.TrimLeft(m.Body, " ") == "" || vocab.ValidateSubject(m.Subject) != nil {
		return textInvalid
	}
	return textValid
}

// upBody is the item's body checked by wire.DecodeUpBody, from the frame decoder if it did so.
func (p prepared) upBody(it wire.Item) (any, error) {
	if p.checked {
		return p.up.Value, p.up.Err
	}
	return wire.DecodeUpBody(it.Kind, it.Body)
}

// storedHead is a StoredItem without its body, which storedItemJSON adds as it is.
type storedHead struct {
	Seq        uint64    `json:"seq"`
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"created_at"`
	TerminalID string    `json:"terminal_id"`
	Epoch      string    `json:"epoch"`
	ReceivedAt time.Time `json:"received_at"`
	Refused    string    `json:"refused,omitempty"`
}

// storedItemJSON encodes a StoredItem with canon (already valid, compact JSON) as its body,
// without encoding and checking the body again.
func storedItemJSON(it wire.Item, canon json.RawMessage, termID, epoch string, now time.Time, reason string) ([]byte, error) {
	out, err := encodeStoredHead(storedHead{Seq: it.Seq, ID: it.ID, Kind: it.Kind, CreatedAt: it.CreatedAt,
		TerminalID: termID, Epoch: epoch, ReceivedAt: now, Refused: reason}, canon)
	if err != nil {
		return nil, fmt.Errorf("encode item %d: %w", it.Seq, err)
	}
	return out, nil
}

// applyItem stores one new item (p: its prepared body, n: its arrival number) by kind and
// queues what other terminals must learn. It returns a refusal reason for an item refused for
// good; an error aborts the whole batch. lt, if not nil, gets a letter's state instead of the
// sender's downlink.
func (r *Relay) applyItem(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol vocab.Policy, epoch string, it wire.Item, p prepared, n uint64, lt *wire.Letters, now time.Time) (string, error) {
	decode := func(v any) bool { return json.Unmarshal(it.Body, v) == nil }
	switch it.Kind {
	case wire.UpMessage, wire.UpPREA:
		v, err := p.upBody(it) // checked and read once, mostly by the frame decoder; a prea may be anonymous
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		m := *v.(*vocab.Message) // a copy: a re-run of the transaction starts from the same value
		if it.Kind == wire.UpPREA || m.Peer == vocab.PREAChannel {
			return r.applyPREA(tx, f, t, m, n, now)
		}
		return r.applyMessage(tx, f, t, fac, pol, m, p.text, n, epoch, it.Seq, lt, now)
	case wire.UpContactRequest:
		v, err := p.upBody(it) // the kiosk's own rules for the name and address (vocab)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		c := *v.(*vocab.Contact)
		if checkID("", "", c.ID) != nil {
			return wire.RefuseInvalid, nil
		}
		return r.applyContactRequest(tx, f, t, pol, c, now)
	case wire.UpContactRemove:
		var c vocab.Contact
		if !decode(&c) || c.ID == "" || c.InmateID == "" {
			return wire.RefuseInvalid, nil
		}
		return r.applyContactRemove(tx, f, t, c, now)
	case wire.UpCharge, wire.UpCredit:
		return r.applyUsage(tx, f, t, fac, pol, it, now)
	case wire.UpSessionEnd:
		v, err := p.upBody(it)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		s := *v.(*vocab.Session)
		s.Terminal = t.ID // what the relay saw, not what the body claims
		if _, ok, err := f.inmateFor(t, s.InmateID); err != nil || !ok {
			return wire.RefuseNotYours, err
		}
		key := s.InmateID + "/" + s.ID
		var prev vocab.Session
		if found, err := getJSON(tx, bSessions, key, &prev); err != nil || found {
			if err != nil || sameSessionEnd(prev, s) {
				return "", err
			}
			return wire.RefuseIDConflict, nil
		}
		if err := putJSON(tx, bSessions, key, s); err != nil {
			return "", err
		}
		return "", f.toInmate(t.FacilityID, s.InmateID, t.ID, wire.DownRemoteSessionEnd, s)
	case wire.UpAudit:
		v, err := p.upBody(it)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		ev := *v.(*vocab.AuditEvent)
		var prev vocab.AuditEvent
		if found, err := getJSON(tx, bAudit, t.ID+"/"+ev.ID, &prev); err != nil || found {
			if err != nil || sameAudit(prev, ev) {
				return "", err
			}
			return wire.RefuseIDConflict, nil
		}
		if err := putJSON(tx, bAudit, t.ID+"/"+ev.ID, ev); err != nil {
			return "", err
		}
		return "", r.queueHistory(tx, f, t, ev, now)
	case wire.UpDeviceStatus:
		// The body's fields are kept as they came (devices); only items_waiting is read, so
		// the others are not decoded (a third of a status report's work on a gateway).
		var st map[string]json.RawMessage
		if !decode(&st) || st == nil {
			return wire.RefuseInvalid, nil
		}
		if err := tx.Bucket([]byte(bDevices)).Put([]byte(t.ID), it.Body); err != nil {
			return "", err
		}
		var n float64
		if raw, ok := st["items_waiting"]; ok && json.Unmarshal(raw, &n) == nil && n >= 0 && n < 1e9 {
			if f.waiting == int64(int(n))+1 {
				return "", nil // as the connection's last report said, which its record holds
			}
			f.waiting = int64(int(n)) + 1
			seen, _, err := seenOf(tx, t.ID)
			if err != nil {
				return "", err
			}
			if seen.ItemsWaiting == int(n) && (n != 0 || seen.OldestWaiting.IsZero()) {
				// Unchanged: a terminal reports with every few batches, and rewriting its
				// record costs a committed message (JetStream) or a page (bbolt) for nothing.
				return "", nil
			}
			seen.ItemsWaiting = int(n)
			if n == 0 {
				seen.OldestWaiting = time.Time{} // nothing waits: the hello's oldest item went
			}
			return "", putJSON(tx, bTermSeen, t.ID, seen)
		}
		return "", nil
	case wire.UpMessageRead:
		v, err := p.upBody(it)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		return r.applyMessageRead(tx, f, t, *v.(*vocab.MessageRead), now)
	case wire.UpQuizAttempt:
		v, err := p.upBody(it)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		return applyQuizAttempt(tx, f, t, pol, *v.(*vocab.QuizAttempt), now)
	case wire.UpLibraryUse:
		v, err := p.upBody(it)
		if err != nil {
			return wire.RefuseInvalid, nil
		}
		return applyLibraryUse(tx, f, t, *v.(*vocab.LibraryUse))
	default:
		return wire.RefuseUnknownKind, nil
	}
}

// inmateFor is the package inmateFor, remembering each inmate record it read for the rest of
// the write call: a batch of a thousand letters of one inmate reads and decodes it once. No
// uplink item changes an inmate record, and the memory goes with the call (reset at a re-run).
func (f *fanout) inmateFor(t TerminalInfo, id string) (inmateRec, bool, error) {
	look, ok := f.inmates[id]
	if !ok {
		var err error
		look.rec, look.found, err = f.r.inmates.read(f.tx, bInmates, id)
		if err != nil {
			return inmateRec{}, false, err
		}
		if f.inmates == nil {
			f.inmates = map[string]inmateLookup{}
		}
		f.inmates[id] = look
	}
	if !look.found {
		return inmateRec{}, false, nil
	}
	if look.rec.MovingFrom != "" && serves(t, look.rec) {
		// Their records are not this facility's writer's yet (handover.go): the batch is
		// sent again, and taken once the old facility's holder has handed them over.
		return inmateRec{}, false, movingErr("store batch", id, look.rec.MovingFrom)
	}
	return look.rec, serves(t, look.rec), nil
}

// inmateLookup is a remembered read of one inmate record.
type inmateLookup struct {
	rec   inmateRec
	found bool
}

// inmateFor finds the inmate a terminal speaks for: in its facility and, for a tablet, its own.
func inmateFor(tx kv.Tx, t TerminalInfo, id string) (inmateRec, bool, error) {
	var in inmateRec
	ok, err := getJSON(tx, bInmates, id, &in)
	if err != nil || !ok {
		return in, false, err
	}
	if in.FacilityID != t.FacilityID || (t.Mode == wire.ModeTablet && in.ID != t.InmateID) {
		return in, false, nil
	}
	if in.MovingFrom != "" {
		return in, false, movingErr("store batch", id, in.MovingFrom) // as fanout.inmateFor
	}
	return in, true, nil
}

// errIDTaken: a message id the index gives to another facility's letter, which this
// transaction cannot read (that facility's holder has not projected it yet).
var errIDTaken = errors.New("the id is another facility's letter's")

// heldMessage finds a message id among outbound messages and PREA reports (one id space), as
// facility sees them: its own letters and PREA reports not yet drained into the kv state too
// (statedue.go). An id the index places in another facility whose letter is not readable
// here is errIDTaken.
func heldMessage(tx kv.Tx, facility, id string) (vocab.Message, bool, error) {
	if at := letterAt(tx, facility, id); at != "" { // "": the usual answer for a new letter
		o, found, err := getLetter(tx, bLetters, at+"/"+id)
		if err != nil || found {
			return o.Message, found, err
		}
		if at != facility {
			return vocab.Message{}, true, errIDTaken
		}
	}
	if raw := onceGet(tx, facility, bPREA, id); raw != nil {
		o, err := decodeLetter(tx, bPREA, id, raw)
		return o.Message, err == nil, err
	}
	return vocab.Message{}, false, nil
}

// messageIDReuse says what an uplink message from a terminal of facility whose id is already
// held is: a duplicate (""), or an id reused for another message (id_conflict). found is false
// for a new id.
func messageIDReuse(tx kv.Tx, facility string, m vocab.Message) (reason string, found bool, err error) {
	prev, found, err := heldMessage(tx, facility, m.ID)
	if errors.Is(err, errIDTaken) {
		return wire.RefuseIDConflict, true, nil
	}
	if err != nil || !found {
		return "", false, err
	}
	if prev.InmateID == m.InmateID && prev.Peer == m.Peer && prev.Subject == m.Subject && prev.Body == m.Body {
		return "", true, nil
	}
	return wire.RefuseIDConflict, true, nil
}

// applyPREA stores a PREA report: never held, never refused for the inmate's status, contact
// or money; but only for an inmate the terminal serves.
func (r *Relay) applyPREA(tx kv.Tx, f *fanout, t TerminalInfo, m vocab.Message, n uint64, now time.Time) (string, error) {
	if reason, found, err := messageIDReuse(tx, t.FacilityID, m); err != nil || found {
		return reason, err
	}
	// An anonymous report names nobody; a named one must be of an inmate the terminal serves,
	// so no terminal files reports in another facility's name.
	if m.InmateID != "" {
		if _, ok, err := f.inmateFor(t, m.InmateID); err != nil || !ok {
			return wire.RefuseNotYours, err
		}
	}
	o := Outbound{Message: m, FacilityID: t.FacilityID, TerminalID: t.ID, Status: vocab.MsgDelivered, ReceivedAt: now}
	f.logf("relay: PREA report %s received from terminal %s", m.ID, t.ID) // its id only: never its text
	// Written once, the state's record: on a held facility, due (statedue.go), and with its
	// text in it. The item that carried it is the facility's record, in the kv state only
	// once projected, which may be after the drain; and a held state cannot seek the items
	// log for it (the log is the state's, the facility holds only its own blocks).
	if f.heldBy != "" {
		n = 0
	}
	raw, err := letterRaw(tx, bPREA, o, n)
	if err != nil {
		return "", err
	}
	if err := f.putOnce(tx, t.FacilityID, bPREA, o.ID, raw); err != nil {
		return "", err
	}
	return "", listPREA(tx, o)
}

// applyMessage takes a letter (n: its item's arrival number, seq: its uplink seq). Its state
// goes to the sender in the ack (lt not nil) or as a message_status on its downlink, and to the
// inmate's tablets as a message_status.
func (r *Relay) applyMessage(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol vocab.Policy, m vocab.Message, text textCheck, n uint64, epoch string, seq uint64, lt *wire.Letters, now time.Time) (string, error) {
	if reason, found, err := messageIDReuse(tx, t.FacilityID, m); err != nil || found {
		if err == nil && reason == "" {
			// The same letter under another item id: the sender learns where it stands.
			err = addLetterState(tx, t, lt, seq, m.ID)
		}
		return reason, err
	}
	in, ok, err := f.inmateFor(t, m.InmateID)
	if err != nil {
		return "", err
	}
	if !ok {
		return wire.RefuseInvalid, nil
	}
	if in.Status != vocab.StatusActive || !in.Messaging {
		return wire.RefuseSuspended, nil
	}
	// The terminal's own rules for a letter (vocab.ValidateLetter): what Send refuses, the
	// relay refuses too; a body too long for the policy first, by its own reason.
	if vocab.LetterTooLong(m.Body, pol.MaxMessageChars) {
		return wire.RefuseTooLarge, nil
	}
	if !validLetter(&m, pol.MaxMessageChars, text) {
		return wire.RefuseInvalid, nil
	}
	known, dept := false, false
	for _, d := range pol.Departments {
		known = known || d.ID == m.Peer
	}
	dept = known
	if !known {
		var c ContactRecord
		found, err := getJSON(tx, bContacts, m.Peer, &c)
		if err != nil {
			return "", err
		}
		known = found && c.InmateID == m.InmateID && c.State == vocab.ContactApproved
		if known && c.Invite != vocab.InviteAccepted {
			// Approved by staff, but the contact has not accepted the invitation (or declined,
			// or blocked the inmate): nothing flows until they do.
			return wire.RefuseContactNotAccepted, nil
		}
	}
	if !known {
		return wire.RefuseUnknownContact, nil
	}
	status := vocab.MsgDelivered
	if r.holdsLetter(fac, dept) {
		status = vocab.MsgHeld
	}
	m.Box, m.State, m.UpdatedAt = vocab.BoxOutbox, status, now
	o := Outbound{Message: m, FacilityID: t.FacilityID, TerminalID: t.ID, Status: status, ReceivedAt: now}
	if !dept {
		// A letter the policy prices waits, held, for the stamp that follows it (stamps.go).
		if owesStamp(fac, pol, &o); o.AwaitingStamp {
			status, m = o.Status, o.Message
			if err := noteStampDue(tx, t, epoch, seq, m.ID); err != nil {
				return "", err
			}
		}
	}
	// The facility's record, and the index of the state's, written once: on a held facility,
	// due (statedue.go), and the letter's text kept in its record (letters.go).
	if f.heldBy != "" {
		n = 0
	}
	if err := putOutbound(tx, f, o, n, false); err != nil {
		return "", err
	}
	if err := f.putOnce(tx, t.FacilityID, bLetterAt, m.ID, []byte(t.FacilityID)); err != nil {
		return "", err
	}
	if dept {
		if err := listRequest(tx, o); err != nil {
			return "", err
		}
	}
	if err := indexLetterTx(tx, m.InmateID, m.ID); err != nil {
		return "", err
	}
	// The terminal that wrote it hears its state, in the ack (lt not nil) or as a
	// message_status on its downlink; the inmate's tablets get the letter itself, so what was
	// written on a kiosk is in Sent on the tablet (their status follows by message_status,
	// which goes to the tablets too).
	if lt != nil {
		lt.Add(seq, status)
	} else if err := f.toTerminal(t.ID, wire.DownMessageStatus,
		wire.MessageStatus{MessageID: m.ID, InmateID: m.InmateID, State: status, At: now}); err != nil {
		return "", err
	}
	return "", f.queue(t.FacilityID, scopeTablets, m.InmateID, t.ID, wire.DownSentMessage, sentCopy(o))
}

// letterState adds to lt (if not nil) the state of the letter an item the relay already holds
// carries (a resend, or a seq compared again), so a terminal that crashed before applying an
// ack learns it again. Other kinds, and a body that is not a letter, add nothing.
func letterState(tx kv.Tx, t TerminalInfo, lt *wire.Letters, it wire.Item, p prepared) error {
	if lt == nil || it.Kind != wire.UpMessage {
		return nil
	}
	v, err := p.upBody(it)
	if err != nil {
		return nil // refused as invalid when it came: no letter
	}
	return addLetterState(tx, t, lt, it.Seq, v.(*vocab.Message).ID)
}

// addLetterState adds the state of the stored letter id (if any) under seq, if it is a letter
// of an inmate terminal t serves: a terminal that sends a copy of another facility's letter
// (its text and all) is told it is a duplicate, not how staff treated it.
func addLetterState(tx kv.Tx, t TerminalInfo, lt *wire.Letters, seq uint64, id string) error {
	if lt == nil {
		return nil
	}
	var rec letterRec // the record only: the text is not needed
	found, err := getJSON(tx, bLetters, t.FacilityID+"/"+id, &rec)
	if err != nil || !found {
		return err
	}
	if rec.FacilityID != t.FacilityID || (t.Mode == wire.ModeTablet && rec.InmateID != t.InmateID) {
		return nil
	}
	lt.Add(seq, rec.Status)
	return nil
}

// applyContactRequest takes a terminal's request for a contact. A contact is the state's
// record, which the console changes after a terminal asks for it: on a held facility the
// terminal's write of it (here and in applyContactRemove) is due to the state on the condition
// that the kv state still holds what this transaction read (fanout.putIf, statedue.go).
func (r *Relay) applyContactRequest(tx kv.Tx, f *fanout, t TerminalInfo, pol vocab.Policy, c vocab.Contact, now time.Time) (string, error) {
	in, ok, err := inmateFor(tx, t, c.InmateID)
	if err != nil {
		return "", err
	}
	if !ok {
		return wire.RefuseInvalid, nil
	}
	read := getRaw(tx, bContacts, c.ID) // the condition of a write due
	prev, found, err := contactAt(tx, t.FacilityID, c.ID)
	if err != nil {
		return "", err
	}
	// A terminal asks again under the same id for the same address (kiosk AddContact); the same
	// id for another inmate or another address is another contact.
	if found && (prev.InmateID != c.InmateID || !strings.EqualFold(prev.Email, c.Email)) {
		return wire.RefuseIDConflict, nil
	}
	if found && vocab.ContactLive(prev.Contact, now) {
		return "", nil // asked again for a contact already pending, invited or accepted: nothing new
	}
	if in.Status != vocab.StatusActive {
		return wire.RefuseSuspended, nil
	}
	n := 0
	all, err := inmateContacts(tx, t.FacilityID, c.InmateID)
	if err != nil {
		return "", err
	}
	for _, x := range all {
		// Pending, invited and accepted contacts count; declined, blocked, expired and
		// removed ones do not.
		if vocab.ContactLive(x.Contact, now) {
			n++
		}
	}
	if n >= pol.MaxContacts {
		return RefuseContactLimit, nil
	}
	c.State, c.Reason, c.UpdatedAt = vocab.ContactPending, "", now
	c.Invite, c.InviteExpires = "", time.Time{} // the relay's to set, after approval
	rec := ContactRecord{Contact: c, FacilityID: t.FacilityID, TerminalID: t.ID, CreatedAt: now}
	if err := putRaw(tx, bByInmate, indexKey(c.InmateID, "c", c.ID), nil); err != nil {
		return "", err
	}
	if found && prev.FacilityID != rec.FacilityID { // asked again after a move: the new facility's
		if err := unlistContact(tx, prev); err != nil {
			return "", err
		}
	}
	if err := listContact(tx, rec); err != nil {
		return "", err
	}
	// Other terminals learn of the contact once it is decided (approved or declined), not while pending.
	raw, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode contact %s: %w", c.ID, err)
	}
	return "", f.putIf(tx, t.FacilityID, bContacts, c.ID, read, raw, false)
}

func (r *Relay) applyContactRemove(tx kv.Tx, f *fanout, t TerminalInfo, c vocab.Contact, now time.Time) (string, error) {
	read := getRaw(tx, bContacts, c.ID) // the condition of a write due
	prev, found, err := contactAt(tx, t.FacilityID, c.ID)
	if err != nil {
		return "", err
	}
	if !found || prev.State == vocab.ContactRemoved {
		return "", nil
	}
	if _, ok, err := f.inmateFor(t, prev.InmateID); err != nil {
		return "", err
	} else if !ok {
		return wire.RefuseInvalid, nil
	} else if prev.InmateID != c.InmateID {
		return wire.RefuseIDConflict, nil
	}
	prev.State, prev.Reason, prev.UpdatedAt = vocab.ContactRemoved, "", now
	// An open invitation goes with the contact: its code no longer opens anything. The
	// invitations are the state's: on a held facility the drain drops the code.
	if f.heldBy == "" {
		if err := dropCodeTx(tx, c.ID); err != nil {
			return "", err
		}
	}
	raw, err := json.Marshal(prev)
	if err != nil {
		return "", fmt.Errorf("encode contact %s: %w", c.ID, err)
	}
	if err := f.putIf(tx, t.FacilityID, bContacts, c.ID, read, raw, true); err != nil {
		return "", err
	}
	return "", f.toInmate(t.FacilityID, prev.InmateID, t.ID, wire.DownContact, prev.Contact)
}

// removedAgain is a contact's removal made on cur, the contact's record as the kv state holds
// it now, where the console changed it after the terminal's transaction read it: removed as
// of the removal's time (removal, the record that transaction wrote). A contact removed
// already stays as it is.
func removedAgain(cur, removal []byte) ([]byte, error) {
	var now, gone ContactRecord
	if err := json.Unmarshal(removal, &gone); err != nil {
		return nil, fmt.Errorf("the removal: %w", err)
	}
	if cur == nil {
		return removal, nil
	}
	if err := json.Unmarshal(cur, &now); err != nil {
		return nil, fmt.Errorf("the contact: %w", err)
	}
	if now.State == vocab.ContactRemoved {
		return cur, nil
	}
	now.State, now.Reason, now.UpdatedAt = vocab.ContactRemoved, "", gone.UpdatedAt
	return json.Marshal(now)
}

// applyUsage records a billed or credited minute once per record id: money the terminal already
// took is never refused for the inmate's status, only for a body that breaks the rules or an
// inmate the terminal does not serve.
func (r *Relay) applyUsage(tx kv.Tx, f *fanout, t TerminalInfo, fac facilityRec, pol vocab.Policy, it wire.Item, now time.Time) (string, error) {
	var u UsageRecord
	var down any
	var stamp *vocab.Charge    // a stamp on a letter (stamps.go)
	var printJob *vocab.Charge // a print job (print.go)
	var purchase *vocab.Charge // a library purchase (purchase.go)
	switch it.Kind {
	case wire.UpCharge:
		var c vocab.Charge
		if json.Unmarshal(it.Body, &c) != nil {
			return wire.RefuseInvalid, nil
		}
		u = UsageRecord{Kind: "charge", RecordID: c.RecordID, SessionID: c.SessionID, InmateID: c.InmateID, Minute: c.Minute, Cents: c.Cents, At: c.At, MessageID: c.MessageID, Pages: c.Pages}
		down = c
		switch {
		case vocab.IsPrintRecord(c.RecordID) || c.Pages != 0:
			printJob = &c
		case c.MessageID != "" || vocab.IsStampRecord(c.RecordID):
			stamp = &c
		}
		if c.ItemID != "" || vocab.IsPurchaseRecord(c.RecordID) {
			purchase = &c
		}
		u.ItemID = c.ItemID
	default:
		var c vocab.Credit
		if json.Unmarshal(it.Body, &c) != nil {
			return wire.RefuseInvalid, nil
		}
		u = UsageRecord{Kind: "credit", RecordID: c.RecordID, SessionID: c.SessionID, InmateID: c.InmateID, Minute: c.Minute, Cents: c.Cents, Reason: c.Reason, At: c.At}
		down = c
		if vocab.IsStampRecord(c.RecordID) || c.MessageID != "" {
			return wire.RefuseStampRefund, nil // only the relay refunds a stamp (refundStampTx)
		}
		if vocab.IsPrintRecord(c.RecordID) {
			return wire.RefusePrintRefund, nil // a failed job is given back on the terminal, never here
		}
		if vocab.IsPurchaseRecord(c.RecordID) || c.ItemID != "" {
			return wire.RefusePurchaseRefund, nil // a refused purchase is given back by the terminal alone
		}
	}
	u.TerminalID = t.ID
	if u.RecordID == "" || len(u.RecordID) > wire.MaxIDLen || checkID("", "", u.InmateID) != nil ||
		u.Cents < 0 || u.Cents > vocab.ChargeLimit(u.RecordID) || u.Minute < 0 {
		return wire.RefuseInvalid, nil
	}
	// A terminal bills only inmates of its own facility (a tablet only its own inmate): an
	// authenticated but hostile terminal must not move another facility's balances.
	if _, ok, err := f.inmateFor(t, u.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	bucket, kind := bCharges, wire.DownRemoteCharge
	if u.Kind == "credit" {
		bucket, kind = bCredits, wire.DownRemoteCredit
	}
	key := u.InmateID + "/" + u.RecordID
	if u.Kind == "credit" {
		if reason, err := checkCredit(tx, t, u); err != nil || reason != "" {
			return reason, err
		}
	}
	// A record id already held: the same minute again is a duplicate; other money under the
	// same id is refused (a second credit of one charge, a charge id reused).
	var prev UsageRecord
	if found, err := getJSON(tx, bucket, key, &prev); err != nil || found {
		switch {
		case err != nil || sameMinute(prev, u):
			return "", err
		case u.Kind == "credit":
			return wire.RefuseAlreadyCredited, nil
		default:
			return wire.RefuseIDConflict, nil
		}
	}
	// A new print charge, checked like a new stamp.
	if printJob != nil {
		if reason := checkPrint(pol, *printJob); reason != "" {
			return reason, nil
		}
	}
	// A new stamp (a resent one was let through above, whatever the policy says now).
	if stamp != nil {
		if reason, err := checkStamp(tx, t, fac, pol, *stamp); err != nil || reason != "" {
			return reason, err
		}
	}
	if purchase != nil {
		if reason, err := checkPurchase(tx, t, *purchase); err != nil || reason != "" {
			return reason, err
		}
	}
	if err := putJSON(tx, bucket, key, u); err != nil {
		return "", err
	}
	if err := addTotals(tx, u.InmateID, func(tt *totals) {
		if u.Kind == "credit" {
			tt.Credits += u.Cents
		} else {
			tt.Charges += u.Cents
		}
	}); err != nil {
		return "", err
	}
	if stamp != nil {
		if err := stampRecorded(tx, f, t.FacilityID, *stamp, now); err != nil {
			return "", err
		}
	}
	if purchase != nil {
		if err := purchaseRecorded(tx, f, t, *purchase, now); err != nil {
			return "", err
		}
	}
	return "", f.toInmate(t.FacilityID, u.InmateID, t.ID, kind, down)
}

// sameMinute: two usage records of one record id describe the same money (a duplicate).
func sameMinute(a, b UsageRecord) bool {
	return a.InmateID == b.InmateID && a.SessionID == b.SessionID && a.Minute == b.Minute && a.Cents == b.Cents
}

// checkCredit decides whether a credit may give money back. A terminal credits a minute it
// billed itself (kiosk creditTx: the credit's record id is the charge's), so a credit must name
// a charge the relay holds for the same inmate and session, billed by the same terminal; it
// gives back at most that charge's cents, and a charge is credited once (the caller checks the
// credits already held). Anything else would let a terminal mint money. "" lets it through.
func checkCredit(tx kv.Tx, t TerminalInfo, u UsageRecord) (string, error) {
	key := u.InmateID + "/" + u.RecordID
	var ch UsageRecord
	found, err := getJSON(tx, bCharges, key, &ch)
	if err != nil {
		return "", err
	}
	if !found || ch.SessionID != u.SessionID || ch.Minute != u.Minute {
		return wire.RefuseNoSuchCharge, nil
	}
	same, err := sameTerminalLineage(tx, t.ID, ch.TerminalID)
	if err != nil {
		return "", err
	}
	if !same {
		return wire.RefuseOtherTerminalsCharge, nil
	}
	if u.Cents > ch.Cents {
		return wire.RefuseCreditExceedsCharge, nil
	}
	return "", nil
}

// sameTerminalLineage reports whether the terminal sending a credit is the one that billed the
// charge, or replaced it by enrolling again with the same key and store (a session cut by a
// crash is credited at the next start, which may come after the re-enrollment).
func sameTerminalLineage(tx kv.Tx, creditTerminal, chargeTerminal string) (bool, error) {
	if creditTerminal == "" {
		return false, nil
	}
	family, err := lineage(tx, creditTerminal)
	if err != nil {
		return false, err
	}
	return family[chargeTerminal], nil
}

// sameSessionEnd: two session ends of one session id describe the same session.
func sameSessionEnd(a, b vocab.Session) bool {
	return a.InmateID == b.InmateID && a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Minutes == b.Minutes &&
		a.Charged == b.Charged && a.Credited == b.Credited && a.EndReason == b.EndReason
}

// sameAudit: two audit events of one id (from one terminal) are the same event.
func sameAudit(a, b vocab.AuditEvent) bool {
	if a.Kind != b.Kind || a.Actor != b.Actor || !a.At.Equal(b.At) || len(a.Detail) != len(b.Detail) {
		return false
	}
	for k, v := range a.Detail {
		if w, ok := b.Detail[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ItemFilter narrows Items; empty fields match everything.
type ItemFilter struct {
	TerminalID string
	Kind       string
}

// Items lists every stored uplink item in arrival order (refused ones with their reason). On a
// shared store each gateway numbers items from blocks of its own (itemnums.go), so numbers
// follow blocks, not time, across gateways: there the list is ordered by arrival time, and by
// number within one moment (one gateway's order).
func (r *Relay) Items(flt ItemFilter) ([]StoredItem, error) {
	// The item log is read from the kv state, which a facility held here has not caught up
	// with until its projector's next step: without this, the holder's own listing would
	// lack what it acknowledged in the last two seconds.
	if !r.held.empty() {
		r.projectHeld("list items")
	}
	out := []StoredItem{}
	err := r.view("list items", func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		return forEachStoredItem(tx, func(_ uint64, it StoredItem) bool {
			if (flt.TerminalID == "" || it.TerminalID == flt.TerminalID) && (flt.Kind == "" || it.Kind == flt.Kind) {
				out = append(out, it)
			}
			return true
		})
	})
	if err == nil && r.itemNums.block > 1 {
		slices.SortStableFunc(out, func(a, b StoredItem) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	}
	return out, err
}
