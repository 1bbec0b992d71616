package kiosk

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Downlink kinds: what the relay sends a terminal (docs/PROTOCOL.md; the same strings as in
// sync/wire, which a test in sync/client keeps equal).
const (
	DownInboundMessage   = "inbound_message"    // Message (inbox)
	DownMessageStatus    = "message_status"     // MessageStatus
	DownInmate           = "inmate"             // Inmate
	DownTechnician       = "technician"         // Technician
	DownTechnicianRemove = "technician_removed" // TechnicianRemoved
	DownDeposit          = "deposit"            // Deposit
	DownContact          = "contact"            // Contact
	DownPolicy           = "policy"             // Policy
	DownRemoteCharge     = "remote_charge"      // Charge from another terminal
	DownRemoteCredit     = "remote_credit"      // Credit from another terminal
	DownRemoteSessionEnd = "remote_session_end" // Session ended on another terminal
	DownNotice           = "notice"             // Notice
	DownSentMessage      = "sent_message"       // Message (outbox) the inmate wrote on another terminal
	DownHistory          = "history"            // History: a kiosk's copy of one session's letters
	DownMessageRead      = "message_read"       // MessageRead: an inbox letter read on another terminal
	DownRefund           = "refund"             // Refund of (part of) a deposit
	DownQuizResult       = "quiz_result"        // vocab.QuizResult: the relay's verdict on a quiz attempt
	DownLibraryUse       = "library_use"        // vocab.LibraryUse: library minutes begun on another terminal
)

// Keys of the downlink bucket.
const (
	kDownApplied  = "applied"    // u64: highest downlink seq applied
	kEnrollment   = "enrollment" // Enrollment
	noticePrefix  = "notice/"    // notice/<id> -> Notice
	maxNotices    = 100          // oldest dropped beyond this
	maxNoticeText = vocab.MaxNoticeText
)

// Enrollment is what the relay told this terminal when it enrolled.
type Enrollment struct {
	TerminalID string `json:"terminal_id"`
	Facility   string `json:"facility"`
	Mode       string `json:"mode"` // "kiosk" or "tablet"
	InmateID   string `json:"inmate_id,omitempty"`
}

// DownlinkApplied is the highest downlink seq applied to this store (0 if none).
func (t *Terminal) DownlinkApplied() (uint64, error) {
	var seq uint64
	err := t.store.view(func(tx *bolt.Tx) error {
		seq = downAppliedTx(tx)
		return nil
	})
	return seq, err
}

func downAppliedTx(tx *bolt.Tx) uint64 {
	v := tx.Bucket([]byte(bDownlink)).Get([]byte(kDownApplied))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// ApplyDownlink applies one downlink item and records seq as applied, in one transaction, so
// a crash leaves the item either fully applied with its seq or not at all. A seq already
// applied is ignored. An item that can never apply (malformed body, unknown kind, a record
// that breaks a rule) is skipped: its seq is recorded, an audit event says why, and refused
// names the reason for the relay. err is only for failures worth retrying (storage).
func (t *Terminal) ApplyDownlink(seq uint64, kind string, body json.RawMessage) (refused string, err error) {
	_, refusals, err := t.ApplyDownlinkBatch([]DownlinkItem{{Seq: seq, Kind: kind, Body: body}})
	if err != nil || len(refusals) == 0 {
		return "", err
	}
	return refusals[0].Reason, nil
}

// DownlinkItem is one item of a downlink frame (sync/wire's DownItem).
type DownlinkItem struct {
	Seq  uint64
	Kind string
	Body json.RawMessage
}

// DownlinkRefusal is a downlink item skipped for good, and the reason for the relay.
type DownlinkRefusal struct {
	Seq    uint64
	Reason string
}

// maxFrameRetries bounds the transactions one frame may take to find its refused items (each
// refusal rolls the frame back and applies it again without that item); a frame with more
// refusals than that applies the rest of its items one transaction each.
const maxFrameRetries = 8

// ApplyDownlinkBatch applies the items of one downlink frame, in order, in one transaction,
// and moves the downlink position once, to the last item's seq: a crash leaves the whole frame
// applied or none of it, and the frame costs one fsync. Items already applied are ignored. An
// item refused for good is skipped as ApplyDownlink skips it (its seq recorded, an audit event,
// a refusal for the relay) and the others are applied: bbolt cannot roll back one item's
// writes, so the frame is applied again without it. A storage failure applies nothing and is
// err. applied is the downlink position afterwards. The screens hear of the frame once.
func (t *Terminal) ApplyDownlinkBatch(items []DownlinkItem) (applied uint64, refused []DownlinkRefusal, err error) {
	return t.applyDownlinkBatch(items, false)
}

// ApplyDownlinkSparse is ApplyDownlinkBatch for a relay that numbers the downlink sparsely
// (welcome down_sparse: a facility's items share one counter): a jump in seq is normal and
// leaves no downlink_gap audit event. A replaced store is told apart by the snapshot the relay
// sends, not by the jump.
func (t *Terminal) ApplyDownlinkSparse(items []DownlinkItem) (applied uint64, refused []DownlinkRefusal, err error) {
	return t.applyDownlinkBatch(items, true)
}

func (t *Terminal) applyDownlinkBatch(items []DownlinkItem, sparse bool) (applied uint64, refused []DownlinkRefusal, err error) {
	for _, it := range items {
		if it.Seq == 0 {
			return 0, nil, errInvalid("apply downlink", "sequence number 0")
		}
	}
	now := t.clock.Now()
	skip := map[int]string{} // index in items -> why it is refused for good
	limit := len(items)      // items[limit:] go one transaction each (too many refusals)
	var fx frameEffects
	for attempt := 0; ; attempt++ {
		failed, failErr := -1, error(nil)
		fx = frameEffects{}
		err = t.store.update("apply downlink", func(tx *bolt.Tx) error {
			pos := downAppliedTx(tx)
			start := pos
			for i, it := range items[:limit] {
				if it.Seq <= pos {
					continue
				}
				if it.Seq > pos+1 && !sparse {
					// The relay promises no gaps; if one appears anyway, keep going but leave a trace.
					if err := appendAudit(tx, now, "downlink_gap", "relay", map[string]string{
						"after": fmt.Sprint(pos), "seq": fmt.Sprint(it.Seq)}); err != nil {
						return err
					}
				}
				if reason, ok := skip[i]; ok {
					if err := appendAudit(tx, now, "downlink_refused", "relay", map[string]string{
						"seq": fmt.Sprint(it.Seq), "kind": clip(it.Kind, 64), "reason": reason}); err != nil {
						return err
					}
					fx.refused = append(fx.refused, DownlinkRefusal{Seq: it.Seq, Reason: reason})
					pos = it.Seq
					continue
				}
				inmate, policy, err := applyDownTx(tx, now, it.Kind, it.Body)
				if permanent(err) {
					failed, failErr = i, err
					return errRolledBack
				}
				if err != nil {
					return err
				}
				fx.add(it.Kind, inmate, policy)
				pos = it.Seq
			}
			if pos == start {
				return nil
			}
			return tx.Bucket([]byte(bDownlink)).Put([]byte(kDownApplied), u64(pos))
		})
		if failed < 0 {
			break
		}
		// Item failed can never apply: roll back and go again without it.
		skip[failed] = refusalReason(failErr)
		t.logf("downlink item %d (%s) skipped: %s", items[failed].Seq, clip(items[failed].Kind, 64), skip[failed])
		if attempt+1 >= maxFrameRetries {
			limit = failed + 1
		}
	}
	if err != nil {
		return 0, nil, err
	}
	t.frameApplied(now, fx)
	refused = fx.refused
	for _, it := range items[limit:] {
		reason, err := t.ApplyDownlink(it.Seq, it.Kind, it.Body)
		if err != nil {
			return 0, refused, err
		}
		if reason != "" {
			refused = append(refused, DownlinkRefusal{Seq: it.Seq, Reason: reason})
		}
	}
	applied, err = t.DownlinkApplied()
	return applied, refused, err
}

// frameEffects is what a committed frame changes outside the store.
type frameEffects struct {
	n        int    // items applied
	inmate   string // the one inmate every applied item concerned, "" if several or everyone
	policy   *Policy
	sessEnds []string // inmates whose session ended on another terminal
	refused  []DownlinkRefusal
}

func (fx *frameEffects) add(kind, inmate string, policy *Policy) {
	if fx.n == 0 {
		fx.inmate = inmate
	} else if fx.inmate != inmate {
		fx.inmate = ""
	}
	fx.n++
	if policy != nil {
		fx.policy = policy
	}
	if kind == DownRemoteSessionEnd {
		fx.sessEnds = append(fx.sessEnds, inmate)
	}
}

// frameApplied puts a committed frame's policy in force, forgets cool-downs a session ended
// elsewhere sets anew, and tells the screens once.
func (t *Terminal) frameApplied(now time.Time, fx frameEffects) {
	if fx.policy != nil {
		t.mu.Lock()
		t.policy = *fx.policy
		t.mu.Unlock()
	}
	for _, id := range fx.sessEnds {
		t.forgetCooldown(id)
	}
	if fx.n > 0 {
		t.emit(Event{Kind: EventChanged, InmateID: fx.inmate, At: now})
	}
}

// applyDownTx applies one item in tx and says which inmate it concerns ("" for everyone).
func applyDownTx(tx *bolt.Tx, now time.Time, kind string, body json.RawMessage) (inmate string, policy *Policy, err error) {
	decode := func(v any) error {
		if err := json.Unmarshal(body, v); err != nil {
			return errInvalid("apply "+kind, "body: %v", err)
		}
		return nil
	}
	switch kind {
	case DownInboundMessage:
		var m Message
		if err := decode(&m); err != nil {
			return "", nil, err
		}
		_, err := deliverInboundTx(tx, now, m)
		return m.InmateID, nil, err
	case DownMessageStatus:
		var s MessageStatus
		if err := decode(&s); err != nil {
			return "", nil, err
		}
		err := setMessageStateTx(tx, now, s.MessageID, s.State, s.Reason)
		if KindOf(err) == KindNotFound {
			// Sent from another kiosk: this terminal has no copy to update.
			return s.InmateID, nil, nil
		}
		return s.InmateID, nil, err
	case DownInmate:
		var in Inmate
		if err := decode(&in); err != nil {
			return "", nil, err
		}
		return in.ID, nil, upsertInmateTx(tx, now, in)
	case DownTechnician:
		var tc Technician
		if err := decode(&tc); err != nil {
			return "", nil, err
		}
		return "", nil, upsertTechnicianTx(tx, now, tc)
	case DownTechnicianRemove:
		var r TechnicianRemoved
		if err := decode(&r); err != nil {
			return "", nil, err
		}
		return "", nil, removeTechnicianTx(tx, now, r.ID, "relay")
	case DownDeposit:
		var d Deposit
		if err := decode(&d); err != nil {
			return "", nil, err
		}
		_, err := applyDepositTx(tx, now, d)
		return d.InmateID, nil, err
	case DownRefund:
		var rf Refund
		if err := decode(&rf); err != nil {
			return "", nil, err
		}
		return rf.InmateID, nil, applyRefundTx(tx, rf)
	case DownContact:
		var c Contact
		if err := decode(&c); err != nil {
			return "", nil, err
		}
		return c.InmateID, nil, applyContactTx(tx, now, c)
	case DownRemoteCharge:
		var c Charge
		if err := decode(&c); err != nil {
			return "", nil, err
		}
		if err := applyRemoteChargeTx(tx, c); err != nil || c.ItemID == "" || !vocab.IsPurchaseRecord(c.RecordID) {
			return c.InmateID, nil, err
		}
		return c.InmateID, nil, ownRemotePurchaseTx(tx, c) // bought on another terminal
	case DownRemoteCredit:
		var cr Credit
		if err := decode(&cr); err != nil {
			return "", nil, err
		}
		return cr.InmateID, nil, applyRemoteCreditTx(tx, cr)
	case DownRemoteSessionEnd:
		var s Session
		if err := decode(&s); err != nil {
			return "", nil, err
		}
		return s.InmateID, nil, applyRemoteSessionEndTx(tx, s)
	case DownPolicy:
		var p Policy
		if err := decode(&p); err != nil {
			return "", nil, err
		}
		if err := p.Validate(); err != nil {
			return "", nil, err
		}
		return "", &p, setPolicyTx(tx, now, p, "relay")
	case DownNotice:
		var n Notice
		if err := decode(&n); err != nil {
			return "", nil, err
		}
		return n.InmateID, nil, putNoticeTx(tx, now, n)
	case DownSentMessage:
		var m Message
		if err := decode(&m); err != nil {
			return "", nil, err
		}
		// A shared kiosk keeps no one's letters from elsewhere beyond a session (history).
		var e Enrollment
		if _, err := getJSON(tx, bDownlink, kEnrollment, &e); err != nil || e.Mode == "kiosk" {
			return m.InmateID, nil, err
		}
		return m.InmateID, nil, putSentCopyTx(tx, now, m, false)
	case DownHistory:
		var h History
		if err := decode(&h); err != nil {
			return "", nil, err
		}
		return h.InmateID, nil, applyHistoryTx(tx, now, h)
	case DownMessageRead:
		var r MessageRead
		if err := decode(&r); err != nil {
			return "", nil, err
		}
		return r.InmateID, nil, applyReadTx(tx, now, r)
	case DownCatalogItem:
		var it CatalogItem
		if err := decode(&it); err != nil {
			return "", nil, err
		}
		return "", nil, applyCatalogItemTx(tx, it)
	case DownCatalogWithdrawn:
		var w vocab.CatalogWithdrawn
		if err := decode(&w); err != nil {
			return "", nil, err
		}
		return "", nil, applyCatalogWithdrawnTx(tx, w)
	case DownQuizResult:
		var r vocab.QuizResult
		if err := decode(&r); err != nil {
			return "", nil, err
		}
		return r.InmateID, nil, applyQuizResultTx(tx, r)
	case DownLibraryUse:
		var u vocab.LibraryUse
		if err := decode(&u); err != nil {
			return "", nil, err
		}
		return u.InmateID, nil, applyLibraryUseTx(tx, u)
	default:
		return "", nil, errInvalid("apply downlink", "unknown kind %q", clip(kind, 64))
	}
}

// permanent reports whether retrying the same item could never succeed.
func permanent(err error) bool {
	switch KindOf(err) {
	case KindInvalid, KindNotFound, KindRefused, KindConflict:
		return true
	}
	return false
}

// refusalReason is a short, secret-free reason for the relay and the audit log.
func refusalReason(err error) string {
	var e *Error
	msg := err.Error()
	if errors.As(err, &e) {
		msg = e.Kind.String() + ": " + e.Error()
	}
	return clip(msg, 120)
}

// clip makes s valid text of at most n bytes, for errors and audit details.
func clip(s string, n int) string { return capText(strings.ToValidUTF8(s, "?"), n) }

func putNoticeTx(tx *bolt.Tx, now time.Time, n Notice) error {
	const op = "show notice"
	if err := checkID("id", n.ID); err != nil {
		return &Error{Kind: KindInvalid, Op: op, Err: err}
	}
	if n.InmateID != "" {
		if err := checkID("inmate_id", n.InmateID); err != nil {
			return &Error{Kind: KindInvalid, Op: op, Err: err}
		}
	}
	if vocab.ValidateNoticeText(n.Text) != nil {
		return errInvalid(op, "text must be 1 to %d bytes", maxNoticeText)
	}
	n.Text = strings.ToValidUTF8(n.Text, "\uFFFD")
	if n.At.IsZero() {
		n.At = now
	}
	b := tx.Bucket([]byte(bDownlink))
	if err := putJSON(tx, bDownlink, noticePrefix+n.ID, n); err != nil {
		return err
	}
	// Keep the newest maxNotices: notices are small but the relay could send many.
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte(noticePrefix)); k != nil && strings.HasPrefix(string(k), noticePrefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for len(keys) > maxNotices {
		var oldest []byte
		var oldestAt time.Time
		for _, k := range keys {
			var m Notice
			if err := json.Unmarshal(b.Get(k), &m); err != nil || oldest == nil || m.At.Before(oldestAt) {
				oldest, oldestAt = k, m.At
			}
		}
		if err := b.Delete(oldest); err != nil {
			return fmt.Errorf("drop old notice: %w", err)
		}
		for i, k := range keys {
			if string(k) == string(oldest) {
				keys = append(keys[:i], keys[i+1:]...)
				break
			}
		}
	}
	return nil
}

// Notices lists the notices in force now for inmateID ("" for the welcome screen: only
// notices to everyone), oldest first.
func (t *Terminal) Notices(inmateID string) ([]Notice, error) {
	now := t.clock.Now()
	var out []Notice
	err := t.store.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bDownlink)).Cursor()
		for k, v := c.Seek([]byte(noticePrefix)); k != nil && strings.HasPrefix(string(k), noticePrefix); k, v = c.Next() {
			var n Notice
			if err := json.Unmarshal(v, &n); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read notices", Err: fmt.Errorf("record %q: %w", k, err)}
			}
			if (n.InmateID == "" || n.InmateID == inmateID) && (n.Until.IsZero() || now.Before(n.Until)) {
				out = append(out, n)
			}
		}
		return nil
	})
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].At.Before(out[j-1].At); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, err
}

// terminalIDTx names this terminal in its records: the enrollment stored in tx, which may have
// been made while the terminal ran, else the id it was started with.
func terminalIDTx(tx *bolt.Tx, fallback string) string {
	var e Enrollment
	if found, err := getJSON(tx, bDownlink, kEnrollment, &e); err == nil && found && e.TerminalID != "" {
		return e.TerminalID
	}
	return fallback
}

// SetEnrollment records what the relay said at enrollment and, in the same transaction,
// binds the terminal to the tablet's inmate (or unbinds a kiosk) and, under a new terminal id,
// starts the downlink position again at 0 and the uplink on a new epoch. The inmate need not be on
// the roster yet: the roster arrives over the downlink after enrollment.
func (t *Terminal) SetEnrollment(e Enrollment) error {
	const op = "record enrollment"
	switch e.Mode {
	case "kiosk":
		if e.InmateID != "" {
			return errInvalid(op, "a kiosk is bound to no inmate")
		}
	case "tablet":
		if err := checkID("inmate_id", e.InmateID); err != nil {
			return &Error{Kind: KindInvalid, Op: op, Err: err}
		}
	default:
		return errInvalid(op, "mode %q is neither kiosk nor tablet", e.Mode)
	}
	if e.TerminalID == "" || e.Facility == "" {
		return errInvalid(op, "terminal id and facility are required")
	}
	now := t.clock.Now()
	epoch, err := newEpochID()
	if err != nil {
		return err
	}
	err = t.store.update(op, func(tx *bolt.Tx) error {
		var prev Enrollment
		if _, err := getJSON(tx, bDownlink, kEnrollment, &prev); err != nil {
			return err
		}
		if prev.TerminalID != e.TerminalID {
			// A new terminal id is a new downlink stream on the relay, numbered from 1: the
			// cursor of the old one would make this terminal ignore its first items (the
			// snapshot) as already applied. What the old stream brought stays; the relay's
			// snapshot resends it, applied once by id.
			if err := tx.Bucket([]byte(bDownlink)).Put([]byte(kDownApplied), u64(0)); err != nil {
				return fmt.Errorf("reset downlink position: %w", err)
			}
		}
		if prev.TerminalID != "" && prev.TerminalID != e.TerminalID {
			// It is a new uplink stream too: the relay knows no seq of this terminal id, so the
			// waiting items are renumbered from 1 under a new epoch; what the old id already
			// delivered the relay recognises by item id and does not store twice.
			if err := newEpochTx(tx, now, epoch, "enrolled again as "+e.TerminalID); err != nil {
				return err
			}
		}
		if err := putJSON(tx, bDownlink, kEnrollment, e); err != nil {
			return err
		}
		if bound := boundInmateTx(tx); bound != e.InmateID {
			if err := bindTabletTx(tx, now, e.InmateID, ""); err != nil {
				return err
			}
		}
		return appendAudit(tx, now, "enrolled", "", map[string]string{
			"terminal": e.TerminalID, "facility": e.Facility, "mode": e.Mode})
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, At: now})
	}
	return err
}

// Enrollment reports the stored enrollment; ok is false on a terminal never enrolled.
func (t *Terminal) Enrollment() (e Enrollment, ok bool, err error) {
	err = t.store.view(func(tx *bolt.Tx) error {
		ok, err = getJSON(tx, bDownlink, kEnrollment, &e)
		return err
	})
	return e, ok, err
}
