package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// History follows the person (docs/PROTOCOL.md, "History"): the letters an inmate wrote reach
// their tablet wherever they were written (sent_message), a kiosk gets the newest of them when
// the inmate's session starts there (history), and a letter read on one terminal is read on
// the others (message_read).

// auditSessionStart is the audit event a terminal queues when an inmate's session starts
// (kiosk.AcceptNotice): actor the inmate, detail kind "inmate" and the session id.
const auditSessionStart = "notice_accepted"

// indexLetterTx lists a letter under its inmate (by_inmate, "m"), for the history.
func indexLetterTx(tx kv.Tx, inmateID, id string) error {
	if err := putAppended(tx, bByInmate, indexKey(inmateID, "m", id), nil); err != nil {
		return fmt.Errorf("index letter %s: %w", id, err)
	}
	return nil
}

// migrate4to5 lists every outbound letter under its inmate.
func migrate4to5(tx kv.Tx) error {
	var ierr error
	err := forEachJSON(tx, bOutbound, "", func(k string, o Outbound) bool {
		ierr = indexLetterTx(tx, o.InmateID, k)
		return ierr == nil
	})
	if err != nil {
		return err
	}
	return ierr
}

// sentCopy is a stored letter as its writer's other terminals show it: in the outbox, with the
// state the review gave it.
func sentCopy(o Outbound) vocab.Message {
	m := o.Message
	m.Box, m.State, m.Reason, m.Read, m.ReplyTo = vocab.BoxOutbox, o.Status, o.Reason, false, ""
	return m
}

// sessionStart reads, from an audit event a kiosk sent, the session that started on it.
func sessionStart(ev vocab.AuditEvent) (inmateID, sessionID string, ok bool) {
	if ev.Kind != auditSessionStart || ev.Detail["kind"] != vocab.PersonInmate || ev.Actor == "" || ev.Detail["session"] == "" {
		return "", "", false
	}
	return ev.Actor, ev.Detail["session"], true
}

// queueHistory answers a session that started on kiosk t with that inmate's newest letters,
// queued on t's downlink only. What the relay can check, it does: t is a kiosk (a tablet
// holds its inmate's letters already), the inmate is active on t's facility's roster, and the
// session is one t itself reported starting (this audit event) that has not ended (no
// session_end of it stored). It cannot check that the inmate is at the kiosk: a kiosk whose
// key was stolen can start a session in any name of its facility, as it can read any inmate's
// inbox it holds. Each history sent is logged (ids only) for staff.
func (r *Relay) queueHistory(tx kv.Tx, f *fanout, t TerminalInfo, ev vocab.AuditEvent, now time.Time) error {
	inmateID, sessionID, ok := sessionStart(ev)
	if !ok || t.Mode != wire.ModeKiosk {
		return nil
	}
	in, serves, err := f.inmateFor(t, inmateID)
	if err != nil || !serves || in.Status != vocab.StatusActive {
		return err
	}
	if getRaw(tx, bSessions, inmateID+"/"+sessionID) != nil {
		return nil // the session is over already: it was reported late, after its end
	}
	h, err := historyOf(tx, inmateID, sessionID)
	if err != nil || len(h.Letters) == 0 {
		return err // someone who never wrote costs the kiosk no downlink item
	}
	if ok, err := historyAllowed(tx, t.ID, now); err != nil || !ok {
		if err == nil {
			f.logf("relay: kiosk %s started more than %d sessions within an hour: no history for session %s", t.ID, maxHistoriesPerHour, sessionID)
		}
		return err
	}
	f.logf("relay: history of %d letters for inmate %s, session %s, to kiosk %s", len(h.Letters), inmateID, sessionID, t.ID)
	return f.toTerminal(t.ID, wire.DownHistory, h)
}

// maxHistoriesPerHour bounds the histories one kiosk gets in an hour of the relay's clock. A
// session start is a small audit event and its history up to wire.MaxHistoryBytes; without a
// bound a hostile kiosk could make the relay write that much per event it sends. Sixty is a
// session a minute, more than a kiosk's badge line allows; beyond it the kiosk shows the
// letters it holds.
const maxHistoriesPerHour = 60

// bHistoryRate holds each kiosk's count of histories in the current hour (historyAllowed):
// terminal id -> window start, count (16 bytes). The kiosk's own record, so that its
// facility's holder writes it (from schema 27; the state's meta root held it before, which a
// held facility's batch may not write, and its kiosk's batches failed for good).
const bHistoryRate = "history_rate"

// historyAllowed counts one history for kiosk id in the current hour window (history_rate:
// window start, count) and says whether it is within the bound.
func historyAllowed(tx kv.Tx, id string, now time.Time) (bool, error) {
	key := []byte(id)
	meta := tx.Bucket([]byte(bHistoryRate))
	start, n := now, uint64(0)
	if v := meta.Get(key); len(v) == 16 {
		if s := time.Unix(0, int64(readU64(v[:8]))); !now.Before(s) && now.Sub(s) < time.Hour {
			start, n = s, readU64(v[8:])
		}
	}
	if n >= maxHistoriesPerHour {
		return false, nil
	}
	v := append(u64(uint64(start.UnixNano())), u64(n+1)...)
	if err := meta.Put(key, v); err != nil {
		return false, fmt.Errorf("count histories of %s: %w", id, err)
	}
	return true, nil
}

// historyOf is an inmate's newest letters (by id: UUIDv7s, in time order), newest first, within
// wire.MaxHistoryLetters and wire.MaxHistoryBytes of JSON.
func historyOf(tx kv.Tx, inmateID, sessionID string) (wire.History, error) {
	h := wire.History{InmateID: inmateID, SessionID: sessionID, Letters: []vocab.Message{}}
	prefix := []byte("m/")
	size := 0
	idx := tx.Bucket([]byte(bByInmate)).Bucket([]byte(inmateID))
	if idx == nil {
		return h, nil
	}
	c := idx.Cursor()
	k, _ := c.Seek(append(bytes.Clone(prefix), 0xff))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		rec, found, err := letterByID(tx, "", string(k[len(prefix):]))
		if err != nil {
			return h, err
		}
		if !found || rec.InmateID != inmateID {
			continue
		}
		m := sentCopy(rec.Outbound)
		raw, err := json.Marshal(m)
		if err != nil {
			return h, fmt.Errorf("encode letter %s: %w", m.ID, err)
		}
		if len(h.Letters) == wire.MaxHistoryLetters || size+len(raw) > wire.MaxHistoryBytes {
			h.Truncated = true
			break
		}
		size += len(raw) + 1
		h.Letters = append(h.Letters, m)
	}
	sort.SliceStable(h.Letters, func(i, j int) bool { return h.Letters[i].CreatedAt.After(h.Letters[j].CreatedAt) })
	return h, nil
}

// applyMessageRead records that an inmate read an inbound letter on terminal t and tells their
// other terminals. A letter of another inmate, or an inmate t does not serve, is refused
// not_this_terminals_inmate; an unknown letter is accepted and changes nothing.
func (r *Relay) applyMessageRead(tx kv.Tx, f *fanout, t TerminalInfo, rd vocab.MessageRead, now time.Time) (string, error) {
	if _, ok, err := f.inmateFor(t, rd.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	var m vocab.Message
	found, err := getJSON(tx, bInbound, rd.MessageID, &m)
	if err != nil {
		return "", err
	}
	if found && m.InmateID != rd.InmateID {
		return wire.RefuseNotYours, nil
	}
	if !found || m.Read {
		return "", nil // no such letter, or read already here or elsewhere: nothing new to tell
	}
	m.Read = true
	if err := putJSON(tx, bInbound, m.ID, m); err != nil {
		return "", err
	}
	return "", f.toInmate(facilityOf(tx, m.InmateID, t.FacilityID), m.InmateID, t.ID, wire.DownMessageRead,
		wire.MessageRead{MessageID: m.ID, InmateID: m.InmateID, At: now})
}

// migrate26to27 makes the history_rate root (bHistoryRate). The counts meta kept under
// "history_rate/<kiosk>" are left there, read by nothing: an hour's count starts again once.
func migrate26to27(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bHistoryRate)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bHistoryRate, err)
	}
	return nil
}
