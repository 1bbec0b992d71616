package relay

import (
	"encoding/json"
	"strconv"
	"time"
)

// The records the relay writes for every uplink item (its seq and item-id records, the item
// itself and, for a letter, the letter's record) are written by the appenders below instead of
// encoding/json's reflection: a drain of a backlog writes four of them per letter, and
// json.Marshal was a fifth of the relay's CPU. Each appender writes the bytes json.Marshal
// writes for the same value (field order, escaping, omitempty, time format), so records read
// back, hash and compare as before; TestRecordEncodersSame and FuzzRecordEncodersSame hold them
// to it, and a value they do not cover (a letter with photos, a time json.Marshal refuses) goes
// to json.Marshal.

// jsonSafe marks the bytes json.Marshal writes as they are inside a string: printable ASCII
// other than '"', '\\' and the HTML characters it escapes ('<', '>', '&').
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as json.Marshal writes a string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonSafe[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendJSONTime appends t as json.Marshal writes a time.Time; ok is false for a time it
// refuses (a year outside 0-9999, an offset it cannot write), left to json.Marshal.
func appendJSONTime(dst []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// zeroTimeJSON is how json.Marshal writes time.Time{} (a letter's reviewed_at until staff
// look at it: omitempty does not omit a struct).
const zeroTimeJSON = `"0001-01-01T00:00:00Z"`

// timeMemo remembers the text of the last times it wrote. In a transaction that stores a batch
// every item and every letter record carries the same receive time (and a letter's updated_at
// is that time too), and formatting a time was a tenth of the committer's work per letter.
type timeMemo struct {
	t    [2]time.Time
	text [2][]byte
	next int
}

// appendTime is appendJSONTime, from memory where m (nil: no memory) wrote t before.
func (m *timeMemo) appendTime(dst []byte, t time.Time) ([]byte, bool) {
	if t == (time.Time{}) {
		return append(dst, zeroTimeJSON...), true
	}
	if m == nil {
		return appendJSONTime(dst, t)
	}
	// == (not Equal): the same instant in another location is written otherwise.
	for i := range m.t {
		if m.text[i] != nil && m.t[i] == t {
			return append(dst, m.text[i]...), true
		}
	}
	start := len(dst)
	dst, ok := appendJSONTime(dst, t)
	if ok {
		i := m.next
		m.t[i], m.text[i] = t, append(m.text[i][:0], dst[start:]...)
		m.next = (i + 1) % len(m.t)
	}
	return dst, ok
}

// recWriter appends one JSON object's members; ok turns false at a value it cannot write.
type recWriter struct {
	b     []byte
	first bool
	ok    bool
	tm    *timeMemo // times written before (nil: none kept)
}

func newRecWriter(size int) *recWriter {
	w := &recWriter{b: make([]byte, 0, size), first: true, ok: true}
	w.b = append(w.b, '{')
	return w
}

func (w *recWriter) name(n string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, n...)
	w.b = append(w.b, '"', ':')
}

func (w *recWriter) str(n, v string) { w.name(n); w.b = appendJSONString(w.b, v) }

// strOmit is str for a field tagged omitempty.
func (w *recWriter) strOmit(n, v string) {
	if v != "" {
		w.str(n, v)
	}
}

func (w *recWriter) uint(n string, v uint64) { w.name(n); w.b = strconv.AppendUint(w.b, v, 10) }

func (w *recWriter) int(n string, v int64) { w.name(n); w.b = strconv.AppendInt(w.b, v, 10) }

func (w *recWriter) time(n string, t time.Time) {
	w.name(n)
	var ok bool
	w.b, ok = w.tm.appendTime(w.b, t)
	w.ok = w.ok && ok
}

func (w *recWriter) bool(n string, v bool) {
	w.name(n)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *recWriter) done() ([]byte, bool) { return append(w.b, '}'), w.ok }

// encodeSeqRec is json.Marshal(r).
func encodeSeqRec(r seqRec) []byte {
	w := newRecWriter(32 + len(r.ItemID) + len(r.Hash))
	w.str("item_id", r.ItemID)
	w.str("hash", r.Hash)
	b, _ := w.done() // no time in it
	return b
}

// encodeItemRef is json.Marshal(r).
func encodeItemRef(r itemRef) []byte {
	w := newRecWriter(80 + len(r.Hash) + len(r.TerminalID) + len(r.Epoch) + len(r.Refused))
	w.str("hash", r.Hash)
	w.str("terminal_id", r.TerminalID)
	w.str("epoch", r.Epoch)
	w.uint("seq", r.Seq)
	w.strOmit("refused", r.Refused)
	b, _ := w.done()
	return b
}

// encodeStoredHead is json.Marshal(h) with body (valid compact JSON) added as its last member,
// "body", which is how json.Marshal writes a StoredItem with that body.
func encodeStoredHead(h storedHead, body []byte) ([]byte, error) {
	return appendStoredHead(make([]byte, 0, storedHeadSize(h, body)), h, body, nil)
}

// storedHeadSize is about what encodeStoredHead writes for h and body (some 256 bytes of names
// and times, and the strings), so a buffer sized by it is not grown.
func storedHeadSize(h storedHead, body []byte) int {
	return 256 + len(h.ID) + len(h.Kind) + len(h.TerminalID) + len(h.Epoch) + len(h.Refused) + len(body)
}

// appendStoredHead appends encodeStoredHead(h, body) to dst: the item log writes each item
// into its record directly, not through a buffer of its own. tm (may be nil) keeps the text
// of times written before.
func appendStoredHead(dst []byte, h storedHead, body []byte, tm *timeMemo) ([]byte, error) {
	start := len(dst)
	w := &recWriter{b: append(dst, '{'), first: true, ok: true, tm: tm}
	w.uint("seq", h.Seq)
	w.str("id", h.ID)
	w.str("kind", h.Kind)
	w.time("created_at", h.CreatedAt)
	w.str("terminal_id", h.TerminalID)
	w.str("epoch", h.Epoch)
	w.time("received_at", h.ReceivedAt)
	w.strOmit("refused", h.Refused)
	if b, ok := w.done(); ok {
		b = append(b[:len(b)-1], `,"body":`...)
		b = append(b, body...)
		return append(b, '}'), nil
	}
	head, err := json.Marshal(h)
	if err != nil {
		return dst[:start], err
	}
	out := append(w.b[:start], head[:len(head)-1]...)
	out = append(out, `,"body":`...)
	out = append(out, body...)
	return append(out, '}'), nil
}

// encodeLetterRec is json.Marshal(rec). tm (may be nil) keeps the text of times written before.
func encodeLetterRec(rec letterRec, tm *timeMemo) ([]byte, error) {
	m := rec.Message
	if m.Photos != nil {
		return json.Marshal(rec) // not a letter the relay takes from a terminal
	}
	// Names, punctuation and five times take some 450 bytes; sized once, not grown.
	w := newRecWriter(512 + len(m.ID) + len(m.InmateID) + len(m.Box) + len(m.Peer) + len(m.PeerName) + len(m.Subject) +
		len(m.Body) + len(m.State) + len(m.Reason) + len(m.ReplyTo) + len(rec.FacilityID) + len(rec.TerminalID) + len(rec.Status))
	w.tm = tm
	w.str("id", m.ID)
	w.str("inmate_id", m.InmateID)
	w.str("box", m.Box)
	w.str("peer", m.Peer)
	w.str("peer_name", m.PeerName)
	w.strOmit("subject", m.Subject)
	w.str("body", m.Body)
	w.strOmit("state", m.State)
	w.strOmit("reason", m.Reason)
	if m.Read {
		w.bool("read", true)
	}
	w.strOmit("reply_to", m.ReplyTo)
	w.time("created_at", m.CreatedAt)
	w.time("updated_at", m.UpdatedAt)
	o := rec.Outbound
	w.str("facility_id", o.FacilityID)
	w.str("terminal_id", o.TerminalID)
	w.str("status", o.Status)
	w.time("received_at", o.ReceivedAt)
	w.time("reviewed_at", o.ReviewedAt) // omitempty does not omit a struct
	if o.StampDue != 0 {
		w.int("stamp_due_cents", int64(o.StampDue))
	}
	if o.StampPrevDue != 0 {
		w.int("stamp_prev_due_cents", int64(o.StampPrevDue))
	}
	if o.AwaitingStamp {
		w.bool("awaiting_stamp", true)
	}
	if rec.BodyItem != 0 {
		w.uint("body_item", rec.BodyItem)
	}
	if b, ok := w.done(); ok {
		return b, nil
	}
	return json.Marshal(rec)
}
