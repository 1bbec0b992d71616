package kiosk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Technicians' maintenance of a terminal's store: backup, verify, compact and reissue. Each
// runs on a *Terminal (so the same code serves kioskd's control API and kioskctl on a stopped
// terminal) and leaves an audit event that is forwarded to the relay.

// StoreInfo is what a technician sees of the store itself.
type StoreInfo struct {
	Path      string `json:"path"`
	Epoch     string `json:"epoch"`
	Schema    int    `json:"schema_version"`
	NextSeq   uint64 `json:"next_seq"`   // the next forwarding sequence number; restarts only with a new epoch
	SizeBytes int64  `json:"size_bytes"` // the file on disk
}

// Info reports the store's identity and size.
func (s *Store) Info() (StoreInfo, error) {
	info := StoreInfo{Path: s.path}
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bMeta))
		info.Epoch = string(meta.Get([]byte(kEpoch)))
		info.Schema = readSchema(tx)
		if v := meta.Get([]byte(kNextSeq)); len(v) == 8 {
			info.NextSeq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return info, fmt.Errorf("store info: %w", err)
	}
	info.SizeBytes = fi.Size()
	return info, nil
}

// RecordAction audits a technician's action (kind e.g. "config_set") under actor; detail must
// hold no secret.
func (t *Terminal) RecordAction(kind, actor string, detail map[string]string) error {
	return t.store.update("record "+kind, func(tx *bolt.Tx) error {
		return appendAudit(tx, t.clock.Now(), kind, actor, detail)
	})
}

// Backup audits the backup, then writes a consistent copy of the whole store to w from one
// read transaction, so writers (billing, sync) go on meanwhile. size is called first with
// the number of bytes that follow (an HTTP handler sets Content-Length from it).
func (t *Terminal) Backup(w io.Writer, actor string, size func(int64)) (int64, error) {
	if err := t.RecordAction("backup", actor, nil); err != nil {
		return 0, err
	}
	var n int64
	err := t.store.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// WriteFileAtomic makes path hold exactly what write wrote, or leaves it as it was: a temp
// file beside it (mode 0600), fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	fail := func(err error) error {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if err := write(f); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync: %w", err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// maxProblems keeps a badly broken store's report readable.
const maxProblems = vocab.MaxProblems

// Verify checks the file's page structure and the schema's own rules, in one read
// transaction, and audits that it ran with the count of problems found.
func (t *Terminal) Verify(actor string) (VerifyReport, error) {
	var rep VerifyReport
	err := t.store.inspect(func(tx *bolt.Tx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				rep.Problems = append(rep.Problems, Problem{Check: "pages", Detail: fmt.Sprintf("page check panicked: %v", r)})
			}
		}()
		rep = verifyTx(tx)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	rep.OK = len(rep.Problems) == 0
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	if err := t.RecordAction("verify", actor, map[string]string{"problems": fmt.Sprint(len(rep.Problems))}); err != nil {
		return rep, err
	}
	return rep, nil
}

func verifyTx(tx *bolt.Tx) VerifyReport {
	rep := VerifyReport{Records: map[string]int{}}
	add := func(check, format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, Problem{Check: check, Detail: fmt.Sprintf(format, args...)})
		}
	}
	for cerr := range tx.Check() {
		add("pages", "%v", cerr)
	}
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		rep.Records[string(name)] = b.Stats().KeyN
		return nil
	})
	each := func(bucket string, v any, fn func(k []byte)) {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			add("bucket", "bucket %s is missing", bucket)
			return
		}
		_ = b.ForEach(func(k, raw []byte) error {
			if err := json.Unmarshal(raw, v); err != nil {
				add("decode", "%s record %q: %v", bucket, k, err)
				return nil
			}
			fn(k)
			return nil
		})
	}

	// Sessions and the minutes they billed.
	sessions := map[string]Session{}
	var s Session
	each(bSessions, &s, func(k []byte) {
		if s.ID != string(k) {
			add("session_key", "session %q is stored under key %q", s.ID, k)
		}
		sessions[s.ID] = s
		s = Session{}
	})
	charged := map[string]int{}
	chargedCents := map[string]Cents{}
	balance := map[string]Cents{}
	charges := map[string]Charge{}
	var c Charge
	each(bCharges, &c, func(k []byte) {
		charges[string(k)] = c
		if vocab.IsPrintRecord(string(k)) {
			// A print job's charge counts in no session either (print.go).
			if c.RecordID != string(k) || c.SessionID != "" || c.Pages < 1 {
				add("charge_key", "print charge %q (%d pages) is stored under key %q", c.RecordID, c.Pages, k)
			}
			balance[c.InmateID] -= c.Cents
			c = Charge{}
			return
		}
		if vocab.IsStampRecord(string(k)) {
			// A stamp pays for a letter, not a minute: no session counts it (stamps.go).
			if c.RecordID != string(k) || vocab.StampRecordID(c.MessageID) != string(k) || c.SessionID != "" {
				add("charge_key", "stamp %q (letter %q) is stored under key %q", c.RecordID, c.MessageID, k)
			}
			balance[c.InmateID] -= c.Cents
			c = Charge{}
			return
		}
		if vocab.IsPurchaseRecord(string(k)) {
			// A purchase pays for a library item, not a minute (library.go).
			if c.RecordID != string(k) || c.ItemID == "" || c.SessionID != "" {
				add("charge_key", "purchase %q (item %q) is stored under key %q", c.RecordID, c.ItemID, k)
			}
			balance[c.InmateID] -= c.Cents
			c = Charge{}
			return
		}
		if c.RecordID != string(k) || chargeKey(c.SessionID, c.Minute) != string(k) {
			add("charge_key", "charge %q is stored under key %q", c.RecordID, k)
		}
		sess, ok := sessions[c.SessionID]
		switch {
		case !ok:
			add("charge_session", "charge %s belongs to no session", k)
		case sess.InmateID != c.InmateID:
			add("charge_session", "charge %s is for inmate %s but its session is %s's", k, c.InmateID, sess.InmateID)
		case c.Minute < 0 || c.Minute >= sess.Minutes:
			// With one charge per key and as many charges as minutes, this makes the charges
			// exactly minutes 0..Minutes-1: no minute begun went unbilled.
			add("session_minutes", "charge %s bills minute %d of a session that counts %d", k, c.Minute, sess.Minutes)
		}
		charged[c.SessionID]++
		chargedCents[c.SessionID] += c.Cents
		balance[c.InmateID] -= c.Cents
		c = Charge{}
	})
	credited := map[string]Cents{}
	var cr Credit
	each(bCredits, &cr, func(k []byte) {
		if cr.RecordID != string(k) {
			add("credit_key", "credit %q is stored under key %q", cr.RecordID, k)
		}
		ch, ok := charges[string(k)]
		switch {
		case !ok:
			add("credit_charge", "credit %s gives back a minute never billed", k)
		case ch.Cents != cr.Cents || ch.InmateID != cr.InmateID || ch.SessionID != cr.SessionID:
			add("credit_charge", "credit %s (%s for %s in session %s) differs from its charge (%s for %s in session %s)",
				k, cr.Cents, cr.InmateID, cr.SessionID, ch.Cents, ch.InmateID, ch.SessionID)
		}
		if !vocab.IsStampRecord(string(k)) && !vocab.IsPrintRecord(string(k)) && !vocab.IsPurchaseRecord(string(k)) {
			credited[cr.SessionID] += cr.Cents
		}
		balance[cr.InmateID] += cr.Cents
		cr = Credit{}
	})
	ids := make([]string, 0, len(sessions))
	for id := range sessions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// The open mark is how a start after a crash finds the session to close (Recover): a
	// session without an end that is not marked would stay open, billable, for ever.
	open := string(tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession)))
	if _, ok := sessions[open]; open != "" && !ok {
		add("session_open", "the open session mark names session %s, which is not stored", open)
	}
	for _, id := range ids {
		sess := sessions[id]
		switch {
		case sess.End.IsZero() && id != open:
			add("session_open", "session %s has not ended but is not marked open", id)
		case !sess.End.IsZero() && id == open:
			add("session_open", "session %s is marked open but ended at %s", id, sess.End.Format(time.RFC3339))
		}
		if sess.Minutes != charged[id] {
			add("session_minutes", "session %s counts %d minutes but has %d charges", id, sess.Minutes, charged[id])
		}
		if sess.Charged != chargedCents[id] {
			add("session_charged", "session %s says %s charged but its charges add up to %s", id, sess.Charged, chargedCents[id])
		}
		if sess.Credited != credited[id] {
			add("session_credited", "session %s says %s credited but its credits add up to %s", id, sess.Credited, credited[id])
		}
		if tx.Bucket([]byte(bSessIndex)).Get([]byte(sess.InmateID+"/"+id)) == nil {
			add("session_index", "session %s is missing from inmate %s's usage index", id, sess.InmateID)
		}
	}
	_ = tx.Bucket([]byte(bSessIndex)).ForEach(func(k, _ []byte) error {
		inmate, id, _ := strings.Cut(string(k), "/")
		if sess, ok := sessions[id]; !ok || sess.InmateID != inmate {
			add("session_index", "usage index entry %q names no session of that inmate", k)
		}
		return nil
	})

	// Charges and credits from the facility's other terminals move balances too.
	var rec struct {
		InmateID string `json:"inmate_id"`
		Cents    Cents  `json:"cents"`
	}
	each(bRemote, &rec, func(k []byte) {
		switch {
		case strings.HasPrefix(string(k), remoteChargePrefix):
			balance[rec.InmateID] -= rec.Cents
		case strings.HasPrefix(string(k), remoteCreditPrefix):
			balance[rec.InmateID] += rec.Cents
		case strings.HasPrefix(string(k), remoteRefundPrefix):
			balance[rec.InmateID] -= rec.Cents
		default:
			add("remote", "remote record under unknown key %q", k)
		}
		rec.InmateID, rec.Cents = "", 0
	})

	// Balances: deposits - charges + credits, per inmate.
	var d Deposit
	each(bDeposits, &d, func(k []byte) {
		if d.Ref != string(k) {
			add("deposit_key", "deposit %q is stored under key %q", d.Ref, k)
		}
		balance[d.InmateID] += d.Cents
		d = Deposit{}
	})
	unsynced := verifyQueuedLedgerTx(tx, charges, add)
	heldPrintsTx(tx, balance, unsynced, add)
	accounts := map[string]bool{}
	var acc Account
	each(bAccounts, &acc, func(k []byte) {
		accounts[string(k)] = true
		if want := balance[string(k)]; acc.Balance != want {
			add("balance", "inmate %s has balance %s but deposits - charges + credits = %s", k, acc.Balance, want)
		}
		// The offline spending cap reads Unsynced: too high locks an inmate out, too low lets
		// a terminal cut off from the relay spend past the cap.
		if want := unsynced[string(k)]; acc.Unsynced != want {
			add("unsynced", "inmate %s has %s unsynced but the charges waiting for the relay add up to %s", k, acc.Unsynced, want)
		}
		acc = Account{}
	})
	for id, want := range balance {
		if !accounts[id] && want != 0 {
			add("balance", "inmate %s has records worth %s but no account", id, want)
		}
	}
	for id, want := range unsynced {
		if !accounts[id] && want != 0 {
			add("unsynced", "inmate %s has charges worth %s waiting for the relay but no account", id, want)
		}
	}

	// The forwarding queue and its counters.
	meta := tx.Bucket([]byte(bMeta))
	if n, want := tx.Bucket([]byte(bOutq)).Stats().KeyN, readCount(tx, kOutqCount); int64(n) != want {
		add("outq_count", "the queue holds %d items but its counter says %d", n, want)
	}
	if n, want := tx.Bucket([]byte(bAudit)).Stats().KeyN, readCount(tx, kAuditCount); int64(n) != want {
		add("audit_count", "the audit log holds %d events but its counter says %d", n, want)
	}
	var next uint64
	if v := meta.Get([]byte(kNextSeq)); len(v) == 8 {
		next = binary.BigEndian.Uint64(v)
	} else {
		add("next_seq", "the forwarding sequence counter is missing")
	}
	if k, _ := tx.Bucket([]byte(bOutq)).Cursor().Last(); k != nil && binary.BigEndian.Uint64(k) >= next {
		add("next_seq", "queued item %d is not below the next sequence number %d", binary.BigEndian.Uint64(k), next)
	}

	// The acknowledged cursor and what hangs on it.
	verifyAckTx(tx, next, add)

	// Messages: each in exactly one box, indexed once, under its own inmate.
	msgs := map[string]Message{}
	var m Message
	each(bMessages, &m, func(k []byte) {
		if m.ID != string(k) {
			add("message_key", "message %q is stored under key %q", m.ID, k)
		}
		if m.Box != BoxInbox && m.Box != BoxOutbox {
			add("message_box", "message %s is in no box (%q)", k, m.Box)
		}
		msgs[string(k)] = m
		m = Message{}
	})
	indexed := map[string]string{}
	_ = tx.Bucket([]byte(bMsgIndex)).ForEach(func(k, v []byte) error {
		inmate, id, _ := strings.Cut(string(k), "/")
		box, _, _ := strings.Cut(string(v), ":")
		if prev, dup := indexed[id]; dup {
			add("message_box", "message %s is indexed in two boxes (%s and %s)", id, prev, box)
		}
		indexed[id] = box
		msg, ok := msgs[id]
		switch {
		case !ok:
			add("message_index", "index entry %q names no message", k)
		case msg.InmateID != inmate || msg.Box != box:
			add("message_index", "index entry %q (%s) disagrees with the message (%s of %s)", k, box, msg.Box, msg.InmateID)
		}
		return nil
	})
	for id, msg := range msgs {
		if _, ok := indexed[id]; !ok && msg.InmateID != "" { // an anonymous PREA report is nobody's
			add("message_index", "message %s is in no inmate's index", id)
		}
	}

	// Badges point to their owners and back.
	var bo BadgeOwner
	each(bBadges, &bo, func(k []byte) {
		var badges []string
		switch bo.Kind {
		case PersonInmate:
			var in Inmate
			if found, _ := getJSON(tx, bInmates, bo.ID, &in); !found {
				add("badge_owner", "badge %s belongs to missing inmate %s", k, bo.ID)
				return
			}
			badges = in.Badges
		case PersonTechnician:
			var tc Technician
			if found, _ := getJSON(tx, bTechnicians, bo.ID, &tc); !found {
				add("badge_owner", "badge %s belongs to missing technician %s", k, bo.ID)
				return
			}
			badges = tc.Badges
		default:
			add("badge_owner", "badge %s has owner kind %q", k, bo.Kind)
			return
		}
		found := false
		for _, b := range badges {
			found = found || b == string(k)
		}
		if !found {
			add("badge_owner", "badge %s points to %s %s, who does not list it", k, bo.Kind, bo.ID)
		}
		bo = BadgeOwner{}
	})
	return rep
}

// verifyQueuedLedgerTx checks the money items waiting for the relay: each charge, credit and
// session end waits at most once (the relay is told of each once, and a second copy would
// settle a charge twice), and each waiting charge or credit is a stored one. It returns, per
// inmate, the cents of the charges still waiting: what Account.Unsynced must say, as charges
// settle only when acknowledged or refused (Store.Ack, Store.Reject). charges are the stored
// charges by key.
func verifyQueuedLedgerTx(tx *bolt.Tx, charges map[string]Charge, add func(check, format string, args ...any)) map[string]Cents {
	unsynced := map[string]Cents{}
	seen := map[string]uint64{} // kind:record -> the seq that first held it
	credits := tx.Bucket([]byte(bCredits))
	_ = tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return nil // verifyAckTx and the counters report a malformed queue
		}
		seq := binary.BigEndian.Uint64(k)
		var it struct {
			Kind ItemKind `json:"kind"`
			Body struct {
				RecordID string `json:"record_id"`
				ID       string `json:"id"`
				InmateID string `json:"inmate_id"`
				Cents    Cents  `json:"cents"`
			} `json:"body"`
		}
		if json.Unmarshal(v, &it) != nil {
			return nil // verifyAckTx reports what does not decode
		}
		var rec string
		switch it.Kind {
		case ItemCharge:
			rec = it.Body.RecordID
			c, ok := charges[rec]
			switch {
			case !ok:
				add("queue_record", "queued charge item %d names charge %s, which is not stored", seq, rec)
			case c.Cents != it.Body.Cents || c.InmateID != it.Body.InmateID:
				add("queue_record", "queued charge item %d (%s for %s) differs from charge %s (%s for %s)",
					seq, it.Body.Cents, it.Body.InmateID, rec, c.Cents, c.InmateID)
			}
			unsynced[it.Body.InmateID] += it.Body.Cents
		case ItemCredit:
			rec = it.Body.RecordID
			if credits.Get([]byte(rec)) == nil {
				add("queue_record", "queued credit item %d names credit %s, which is not stored", seq, rec)
			}
		case ItemSessionEnd:
			rec = it.Body.ID
		default:
			return nil
		}
		key := string(it.Kind) + ":" + rec
		if first, dup := seen[key]; dup {
			add("queue_duplicate", "%s %s waits twice, as items %d and %d", it.Kind, rec, first, seq)
		} else {
			seen[key] = seq
		}
		return nil
	})
	return unsynced
}

// verifyAckTx checks the acknowledgement bookkeeping (Store.Ack): the cursor is below the next
// seq and nothing at or below it still waits; the follow-up list names exactly the waiting
// items that need one; and each outbox message still waiting for its acknowledgement and its
// queue item point at each other, so the message reads "sent" exactly when its item is gone.
func verifyAckTx(tx *bolt.Tx, next uint64, add func(check, format string, args ...any)) {
	gen, cursor := ackCursorTx(tx)
	if cursor >= next {
		add("ack_cursor", "the acknowledged cursor %d is not below the next sequence number %d", cursor, next)
	}
	follow := tx.Bucket([]byte(bOutFollow))
	if follow == nil || tx.Bucket([]byte(bAckLog)) == nil || tx.Bucket([]byte(bMsgState)) == nil {
		add("bucket", "bucket %s, %s or %s is missing", bOutFollow, bAckLog, bMsgState)
		return
	}
	type queued struct {
		seq  uint64
		kind ItemKind
	}
	waitingMsg := map[string]queued{} // message id -> its waiting item
	_ = tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		seq := binary.BigEndian.Uint64(k)
		if seq <= cursor {
			add("ack_cursor", "item %d still waits though the acknowledged cursor is at %d", seq, cursor)
		}
		var it struct {
			Seq  uint64   `json:"seq"`
			Kind ItemKind `json:"kind"`
			Body struct {
				ID string `json:"id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(v, &it); err != nil {
			add("decode", "queued item %d: %v", seq, err)
			return nil
		}
		if it.Seq != seq {
			add("queue_seq", "queued item under key %d says it is item %d", seq, it.Seq)
		}
		f := follow.Get(k)
		switch {
		case needsFollowUp(it.Kind) && string(f) != string(it.Kind):
			add("ack_follow_up", "queued %s item %d has no follow-up entry (found %q)", it.Kind, seq, f)
		case !needsFollowUp(it.Kind) && f != nil:
			add("ack_follow_up", "queued %s item %d has a follow-up entry %q it needs none", it.Kind, seq, f)
		}
		if it.Kind == ItemMessage || it.Kind == ItemPREA {
			waitingMsg[it.Body.ID] = queued{seq, it.Kind}
		}
		return nil
	})
	_ = tx.Bucket([]byte(bAckLog)).ForEach(func(k, _ []byte) error {
		if len(k) != 16 {
			add("ack_log", "ack log key %x is not 16 bytes", k)
			return nil
		}
		if g, c := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:]); g > gen || g == gen && c > cursor {
			add("ack_log", "ack log entry at generation %d cursor %d is ahead of the store (%d, %d)", g, c, gen, cursor)
		}
		return nil
	})
	_ = follow.ForEach(func(k, v []byte) error {
		if tx.Bucket([]byte(bOutq)).Get(k) == nil {
			add("ack_follow_up", "follow-up entry %d (%s) names no queued item", binary.BigEndian.Uint64(k), v)
		}
		return nil
	})
	_ = tx.Bucket([]byte(bMessages)).ForEach(func(k, v []byte) error {
		var sm storedMessage
		if json.Unmarshal(v, &sm) != nil || sm.Box != BoxOutbox {
			return nil // the message checks report what does not decode
		}
		w, waiting := waitingMsg[string(k)]
		switch {
		case sm.State == MsgQueued && sm.QueueSeq == 0:
			add("message_queue", "message %s is queued but names no forwarding item", k)
		case sm.State != MsgQueued && sm.QueueSeq != 0:
			add("message_queue", "message %s is %s but still names forwarding item %d", k, sm.State, sm.QueueSeq)
		case sm.QueueGen > gen:
			add("message_queue", "message %s names queue generation %d, the store is at %d", k, sm.QueueGen, gen)
		case sm.State != MsgQueued:
		case messageState(sm, gen, cursor) == MsgQueued && (!waiting || w.seq != sm.QueueSeq):
			add("message_queue", "message %s reads queued at item %d but that item is not its (waiting: %v at %d)", k, sm.QueueSeq, waiting, w.seq)
		case messageState(sm, gen, cursor) == MsgSent && waiting:
			add("message_queue", "message %s reads sent but its item %d still waits", k, w.seq)
		}
		return nil
	})
}

// ReissueReport says what Reissue removed.
type ReissueReport struct {
	Inmates []string       `json:"-"` // never printed or audited: the point is to forget them
	Removed map[string]int `json:"removed"`
	Epoch   string         `json:"epoch"`
	NextSeq uint64         `json:"next_seq"`
}

// Reissue prepares a tablet for another inmate: it refuses while anything waits to be
// forwarded (nothing is lost) or a session is open, then removes, in one transaction, every
// record of every inmate on the terminal (on a tablet, the last one's): messages, drafts,
// contacts, sessions, charges, credits, accounts, deposits, login states, notices and audit
// copies naming them, the inmate records and badges, and the tablet binding. The enrollment,
// the store's epoch and its sequence counter stay. The file is then rewritten without its free
// pages (Scrub), so none of it stays in the file's bytes either.
func (t *Terminal) Reissue(actor string) (ReissueReport, error) {
	const op = "reissue"
	if info, ok := t.Active(); ok {
		return ReissueReport{}, &Error{Kind: KindRefused, Op: op, Err: fmt.Errorf("inmate %s is logged in; end the session first", info.InmateID)}
	}
	now := t.clock.Now()
	rep := ReissueReport{Removed: map[string]int{}}
	err := t.store.update(op, func(tx *bolt.Tx) error {
		if n := readCount(tx, kOutqCount); n > 0 {
			return &Error{Kind: KindRefused, Op: op, Err: fmt.Errorf(
				"%d items are still waiting to be forwarded to the relay; let the terminal sync first", n)}
		}
		if tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession)) != nil {
			return &Error{Kind: KindRefused, Op: op, Err: errors.New("a session is still open; end it first")}
		}
		// Who: every inmate record, and every inmate id any record names.
		needles := map[string]bool{}
		ids := map[string]bool{}
		_ = tx.Bucket([]byte(bInmates)).ForEach(func(k, v []byte) error {
			var in Inmate
			if json.Unmarshal(v, &in) == nil {
				if in.Name != "" {
					needles[in.Name] = true
				}
				for _, b := range in.Badges {
					needles[b] = true
				}
			}
			ids[string(k)] = true
			return nil
		})
		if b := boundInmateTx(tx); b != "" {
			ids[b] = true
		}
		for _, name := range []string{bAccounts, bLogins} {
			_ = tx.Bucket([]byte(name)).ForEach(func(k, _ []byte) error {
				if name != bLogins || tx.Bucket([]byte(bTechnicians)).Get(k) == nil {
					ids[string(k)] = true
				}
				return nil
			})
		}
		for _, name := range []string{bContacts, bMsgIndex, bSessIndex, bDrafts} {
			_ = tx.Bucket([]byte(name)).ForEach(func(k, _ []byte) error {
				id, _, _ := strings.Cut(string(k), "/")
				ids[id] = true
				return nil
			})
		}
		for id := range ids {
			needles[id] = true
			rep.Inmates = append(rep.Inmates, id)
		}
		sort.Strings(rep.Inmates)

		// Whole buckets that hold only inmates' records.
		for _, name := range []string{bInmates, bAccounts, bDeposits, bSessions, bCharges, bCredits, bRemote,
			bContacts, bMessages, bDrafts, bMsgIndex, bSessIndex, bAckLog, bMsgState, bPrints} {
			n, err := clearBucket(tx, name, nil)
			if err != nil {
				return err
			}
			rep.Removed[name] = n
		}
		// Mixed buckets: only what is an inmate's or names one.
		n, err := clearBucket(tx, bLogins, func(k, _ []byte) bool { return ids[string(k)] })
		if err != nil {
			return err
		}
		rep.Removed[bLogins] = n
		if n, err = clearBucket(tx, bBadges, func(_, v []byte) bool {
			var bo BadgeOwner
			return json.Unmarshal(v, &bo) != nil || bo.Kind != PersonTechnician
		}); err != nil {
			return err
		}
		rep.Removed[bBadges] = n
		names := func(_, v []byte) bool {
			for s := range needles {
				if bytes.Contains(v, []byte(s)) {
					return true
				}
			}
			return false
		}
		if n, err = clearBucket(tx, bAudit, names); err != nil {
			return err
		}
		rep.Removed[bAudit] = n
		if _, err := addCount(tx, kAuditCount, -int64(n)); err != nil {
			return err
		}
		if n, err = clearBucket(tx, bDownlink, func(k, v []byte) bool {
			return strings.HasPrefix(string(k), noticePrefix) && names(k, v)
		}); err != nil {
			return err
		}
		rep.Removed["notices"] = n

		// Keep the enrollment, without the inmate it was bound to.
		var e Enrollment
		if found, err := getJSON(tx, bDownlink, kEnrollment, &e); err != nil {
			return err
		} else if found && e.InmateID != "" {
			e.InmateID = ""
			if err := putJSON(tx, bDownlink, kEnrollment, e); err != nil {
				return err
			}
		}
		meta := tx.Bucket([]byte(bMeta))
		if err := meta.Delete([]byte(kBoundInmate)); err != nil {
			return fmt.Errorf("unbind tablet: %w", err)
		}
		rep.Epoch = string(meta.Get([]byte(kEpoch)))
		detail := map[string]string{"inmates": fmt.Sprint(len(rep.Inmates))}
		for k, v := range rep.Removed {
			detail[k] = fmt.Sprint(v)
		}
		if err := appendAudit(tx, now, "reissued", actor, detail); err != nil {
			return err
		}
		rep.NextSeq = binary.BigEndian.Uint64(meta.Get([]byte(kNextSeq)))
		// bbolt does not zero freed pages: the last inmate's letters would stay readable in
		// the file for the next one's tablet. Rewritten without them, as after a PREA erase.
		return markScrubPending(tx)
	})
	if err != nil {
		return ReissueReport{}, err
	}
	t.scrub()
	t.emit(Event{Kind: EventChanged, At: now})
	return rep, nil
}

// clearBucket deletes the keys of bucket that match (all when match is nil).
func clearBucket(tx *bolt.Tx, bucket string, match func(k, v []byte) bool) (int, error) {
	b := tx.Bucket([]byte(bucket))
	var keys [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if match == nil || match(k, v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, fmt.Errorf("clear %s: %w", bucket, err)
		}
	}
	return len(keys), nil
}

// CompactInfo reports a compaction.
type CompactInfo struct {
	Path        string `json:"path"`
	BeforeBytes int64  `json:"before_bytes"`
	AfterBytes  int64  `json:"after_bytes"`
}

// CompactStore rewrites the store in dir without its free pages (as Store.Scrub does). It needs
// the store to itself: a store another process holds is refused (KindConflict). The audit event
// is written first, so the compacted file holds it; the new file replaces the old by rename
// only once complete.
func CompactStore(dir string, now time.Time, actor string, opts StoreOptions) (CompactInfo, error) {
	s, err := OpenStore(dir, opts)
	if err != nil {
		return CompactInfo{}, err
	}
	defer s.Close() // the lock is held until the new file is in place
	info := CompactInfo{Path: s.path}
	if fi, err := os.Stat(s.path); err == nil {
		info.BeforeBytes = fi.Size()
	}
	if err := s.update("compact", func(tx *bolt.Tx) error {
		return appendAudit(tx, now, "compact", actor, map[string]string{"before_bytes": fmt.Sprint(info.BeforeBytes)})
	}); err != nil {
		return info, err
	}
	if err := s.compact(); err != nil {
		return info, fmt.Errorf("compact: %w", err)
	}
	if fi, err := os.Stat(s.path); err == nil {
		info.AfterBytes = fi.Size()
	}
	return info, nil
}
