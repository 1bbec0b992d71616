package kiosk

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// History follows the person (docs/PROTOCOL.md, "History"). A tablet keeps every letter its
// inmate wrote, on any terminal: the relay sends it those written elsewhere (sent_message). A
// shared kiosk keeps only what was written on it; when an inmate's session starts there, the
// relay sends that session's history (history), the inmate's most recent letters, and the
// kiosk wipes that copy when the session ends, so nothing of one person fetched for their
// session stays for the next. Reading a letter is forwarded (message_read) and comes back to
// the inmate's other terminals, so a letter read on a kiosk is read on the tablet.

// idxOutboxCopy indexes a kiosk's copy of a letter fetched for one session; the session's end
// wipes it. Its box part ("outbox") is the letter's box.
const idxOutboxCopy = idxOutbox + ":history"

// historyKey (meta) holds the session whose history arrived for an inmate.
func historyKey(inmateID string) string { return "history/" + inmateID }

// putSentCopyTx stores a letter the inmate wrote on another terminal in their outbox, with
// the state the relay gives it; fetched marks a kiosk's copy for one session. A letter already
// held (this terminal's own, or a copy already here) is left as it is: its state moves only by
// message_status.
func putSentCopyTx(tx *bolt.Tx, now time.Time, m Message, fetched bool) error {
	const op = "store sent letter"
	switch {
	case m.ID == "" || len(m.ID) > 128 || strings.Contains(m.ID, "/") || !utf8.ValidString(m.ID):
		return errInvalid(op, "message id %q is missing or malformed", clip(m.ID, 64))
	case m.InmateID == "" || strings.Contains(m.InmateID, "/"):
		return errInvalid(op, "letter %s names no inmate", m.ID)
	case m.Peer == PREAChannel:
		return errInvalid(op, "letter %s is a PREA report, which no terminal gets back", m.ID)
	case len(m.Body)+len(m.Subject)+len(m.PeerName) > maxInboundBytes:
		return errInvalid(op, "letter %s is %d bytes, over %d", m.ID, len(m.Body), maxInboundBytes)
	}
	switch m.State {
	case MsgSent, MsgHeld, MsgDelivered, MsgRejected:
	default:
		return errInvalid(op, "letter %s has state %q, not sent, held, delivered or rejected", m.ID, clip(m.State, 32))
	}
	if _, found, err := getMessageTx(tx, m.ID); err != nil || found {
		return err
	}
	m.Box, m.Read, m.ReplyTo = BoxOutbox, false, ""
	m.Body = strings.ToValidUTF8(m.Body, "\uFFFD")
	m.Subject = strings.ToValidUTF8(m.Subject, "\uFFFD")
	m.PeerName = strings.ToValidUTF8(m.PeerName, "\uFFFD")
	m.Reason = strings.ToValidUTF8(m.Reason, "\uFFFD")
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now.UTC()
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = now.UTC()
	}
	return putStoredMessageTx(tx, storedMessage{Message: m, Fetched: fetched})
}

// applyHistoryTx stores a session's history as copies to wipe at its end, if that session is
// the one open on this terminal now; a history for a session already over (or another's) is
// dropped: it arrived late, and nobody it belongs to is here to read it.
func applyHistoryTx(tx *bolt.Tx, now time.Time, h History) error {
	const op = "apply history"
	if h.InmateID == "" || h.SessionID == "" {
		return errInvalid(op, "history names no inmate or session")
	}
	if len(h.Letters) > MaxHistoryLetters {
		return errInvalid(op, "history holds %d letters, over %d", len(h.Letters), MaxHistoryLetters)
	}
	open := string(tx.Bucket([]byte(bMeta)).Get([]byte(kOpenSession)))
	if open == "" || open != h.SessionID {
		return nil
	}
	var s Session
	if found, err := getJSON(tx, bSessions, open, &s); err != nil || !found || s.InmateID != h.InmateID {
		return err
	}
	for _, m := range h.Letters {
		if m.InmateID != h.InmateID {
			return errInvalid(op, "history of %s holds a letter of another inmate", h.InmateID)
		}
		if m.Peer == PREAChannel {
			continue
		}
		if err := putSentCopyTx(tx, now, m, true); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte(bMeta)).Put([]byte(historyKey(h.InmateID)), []byte(h.SessionID))
}

// wipeHistoryTx deletes the copies fetched for an inmate's session; closeSessionTx calls it
// whenever a session ends (a logout, a timeout, a crash found at the next start).
func wipeHistoryTx(tx *bolt.Tx, inmateID string) error {
	idx := tx.Bucket([]byte(bMsgIndex))
	prefix := msgIndexKey(inmateID, "")
	var copies [][]byte
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
		if string(v) == idxOutboxCopy {
			copies = append(copies, k)
		}
	}
	for _, k := range copies {
		if err := idx.Delete(k); err != nil {
			return fmt.Errorf("wipe history of %s: %w", inmateID, err)
		}
		if err := tx.Bucket([]byte(bMessages)).Delete(k[len(prefix):]); err != nil {
			return fmt.Errorf("wipe history of %s: %w", inmateID, err)
		}
	}
	if err := tx.Bucket([]byte(bMeta)).Delete([]byte(historyKey(inmateID))); err != nil {
		return fmt.Errorf("wipe history of %s: %w", inmateID, err)
	}
	if len(copies) == 0 {
		return nil
	}
	return markScrubPending(tx) // the letters' text is still in the freed pages
}

// applyReadTx marks an inbox letter read that was read on another terminal; a letter this
// terminal does not hold is nothing to do. It is not forwarded again.
func applyReadTx(tx *bolt.Tx, now time.Time, r MessageRead) error {
	if r.MessageID == "" || r.InmateID == "" {
		return errInvalid("apply message read", "message_read names no message or inmate")
	}
	m, found, err := getMessageTx(tx, r.MessageID)
	if err != nil || !found || m.InmateID != r.InmateID || m.Box != BoxInbox || m.Read {
		return err
	}
	m.Read, m.UpdatedAt = true, now.UTC()
	return putMessageTx(tx, m)
}

// HistoryFetched says whether the history of the inmate's session in progress here has come
// from the relay. Until it has (offline, or not yet), Sent shows only the letters this
// terminal holds, and the screens say so. A tablet holds its inmate's letters for good and
// needs no fetch: the screens do not ask.
func (t *Terminal) HistoryFetched(inmateID string) bool {
	info, ok := t.Active()
	if !ok || info.InmateID != inmateID || info.SessionID == "" {
		return false
	}
	got := false
	err := t.store.view(func(tx *bolt.Tx) error {
		got = string(tx.Bucket([]byte(bMeta)).Get([]byte(historyKey(inmateID)))) == info.SessionID
		return nil
	})
	if err != nil {
		t.logf("mailbox: read history state: %v", err)
	}
	return got
}
