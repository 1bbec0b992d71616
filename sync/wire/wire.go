// Package wire is the Tether sync protocol, version 1: the frames a terminal and a relay
// exchange over one websocket, the enrollment request, their limits, and the signatures that
// authenticate a terminal. Both sides encode and decode only through this package, so a frame
// one side writes is a frame the other side accepts. docs/PROTOCOL.md is the prose contract.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Subprotocol is the websocket subprotocol of this version; a peer offering anything else is
// closed with StatusPolicyViolation and ReasonUnsupportedVersion.
const Subprotocol = "tether.v1"

// Paths served by a relay.
const (
	PathTerminal = "/v1/terminal" // websocket
	PathEnroll   = "/v1/enroll"   // HTTP POST
)

// Limits. A decoder refuses anything beyond them before acting on it.
const (
	// MaxBatchBytes bounds the stored bytes of the items in one uplink batch.
	MaxBatchBytes = 1 << 20
	// MaxItemBytes bounds one item's body; a terminal refuses a bigger item locally.
	MaxItemBytes = 256 << 10
	// MaxFrameBytes is the read limit both sides set: the largest batch plus envelope overhead.
	MaxFrameBytes = MaxBatchBytes + 64<<10
	// MaxBatchItems bounds the items (uplink or downlink) in one frame.
	MaxBatchItems = 4096
	// MaxRejected bounds the refusals reported in one ack.
	MaxRejected = MaxBatchItems
	// MaxIDLen bounds terminal ids, item ids, epochs, kinds and reasons.
	MaxIDLen = 128
	// MaxReasonLen bounds a refusal reason; websocket close reasons must fit in 123 bytes.
	MaxReasonLen = 120
	// NonceLen is the size of a challenge nonce.
	NonceLen = 32
	// MaxEnrollBytes bounds an enrollment request or response body.
	MaxEnrollBytes = 16 << 10
)

// Frame types.
const (
	TypeHello     = "hello"     // terminal -> relay
	TypeChallenge = "challenge" // relay -> terminal
	TypeAuth      = "auth"      // terminal -> relay
	TypeWelcome   = "welcome"   // relay -> terminal
	TypeBatch     = "batch"     // terminal -> relay: uplink items
	TypeAck       = "ack"       // relay -> terminal: uplink acknowledged
	TypeDown      = "down"      // relay -> terminal: downlink items
	TypeDownAck   = "down_ack"  // terminal -> relay: downlink applied
	TypeRedirect  = "redirect"  // relay -> terminal: instead of welcome, connect to another gateway
)

// Close reasons sent with StatusPolicyViolation (1008) unless noted. Each fits a close frame.
const (
	ReasonUnsupportedVersion = "unsupported protocol version: this relay speaks " + Subprotocol
	ReasonUnknownTerminal    = "unknown terminal"
	ReasonRevoked            = "terminal revoked"
	ReasonBadSignature       = "bad signature"
	ReasonAuthTimeout        = "authentication timed out"
	ReasonMalformed          = "malformed frame" // followed by ": " and the decoder's error, cut to fit
	ReasonUnexpected         = "unexpected frame"
	ReasonSequenceGap        = "sequence gap"
	// ReasonNewEpoch: an item reuses a seq the relay already holds for another item (the
	// terminal was restored from a backup); the terminal starts a new epoch and resends.
	ReasonNewEpoch   = "sequence conflict: start a new epoch"
	ReasonWrongEpoch = "batch epoch differs from hello"
	ReasonReplaced   = "replaced by a newer connection"
	ReasonShutdown   = "relay shutting down" // StatusGoingAway
	// ReasonRedirect (StatusNormalClosure) follows a redirect frame.
	ReasonRedirect = "served by another gateway"
	// ReasonMoved (StatusGoingAway): the terminal's facility is now served by another gateway
	// of the relay; the terminal reconnects and is redirected there.
	ReasonMoved = "facility moved to another gateway"
)

// ReasonBinary (1008) closes a connection on which the peer sent a binary websocket message;
// a text message that is not valid UTF-8 gets ReasonMalformed with DecodeFrame's ErrNotUTF8.
const ReasonBinary = ReasonMalformed + ": binary message (frames are UTF-8 JSON text messages)"

// Refusal reasons for uplink items refused for good (Ack.Rejected).
const (
	RefuseTooLarge       = "too_large"
	RefuseUnknownContact = "unknown_contact"
	// RefuseContactNotAccepted: the contact is approved by staff but has not accepted the
	// relay's invitation (invited, declined, blocked or expired).
	RefuseContactNotAccepted = "contact_not_accepted"
	RefuseSuspended          = "suspended"
	RefuseInvalid            = "invalid"
	RefuseUnknownKind        = "unknown_kind"
	RefuseNotYours           = "not_this_terminals_inmate" // not of the terminal's facility, or not the tablet's inmate
	// RefuseIDConflict: the item id, or a record id in its body, is already held with other content.
	RefuseIDConflict = "id_conflict"
	// Credits: a credit must give back a charge the relay holds, once, from the charging terminal.
	RefuseNoSuchCharge         = "no_such_charge"         // no charge with that record id for that inmate and session
	RefuseCreditExceedsCharge  = "credit_exceeds_charge"  // more cents than the charge
	RefuseAlreadyCredited      = "already_credited"       // the charge already has another credit
	RefuseOtherTerminalsCharge = "other_terminals_charge" // the charge was billed by another terminal
	// Stamps: a stamp charge (record id "stamp/<letter id>") pays for a letter the relay holds.
	RefuseStampNoLetter = "stamp_no_letter"       // no letter with that id from this terminal and inmate
	RefuseStampPrice    = "stamp_price"           // not what the facility's policy charges for that letter
	RefuseStampRefund   = "stamp_refund_by_relay" // a terminal credited a stamp: only the relay refunds one
	RefuseStampLate     = "stamp_late"            // its letter was already refused for want of this stamp
	// Prints: a print charge (record id "print/<job id>") pays for a job the printer completed.
	RefusePrintPages  = "print_pages"              // pages outside 1..the policy's max_print_pages (0: printing is off)
	RefusePrintPrice  = "print_price"              // cents are not pages x the policy's print_page_price_cents
	RefusePrintRefund = "print_refund_by_terminal" // a terminal credited a print job: failed jobs never reach the relay
	// Purchases of library items (docs/PROTOCOL.md, "Library"): the terminal gives the charge back.
	RefusePurchaseUnknown   = "purchase_unknown_item"    // no such item in the facility's catalog
	RefusePurchaseWithdrawn = "purchase_withdrawn"       // the item was withdrawn
	RefusePurchasePrice     = "purchase_price"           // not the item's price in the relay's catalog
	RefusePurchaseOwned     = "purchase_owned"           // the inmate already owns the item (another purchase)
	RefusePurchaseRefund    = "purchase_refund_by_relay" // a terminal credited a purchase
	// Quiz attempts.
	RefuseQuizUnknown = "quiz_unknown" // no such course or quiz in the facility's catalog
	// ReasonStampMissing is why the relay rejects a letter that owes a stamp when the next item
	// of its terminal is not that stamp (a message_status reason, not an item refusal).
	ReasonStampMissing = "stamp_missing"
)

// Modes a terminal is enrolled in.
const (
	ModeKiosk  = "kiosk"
	ModeTablet = "tablet"
)

// Hello opens a connection: who the terminal says it is and where its streams stand.
type Hello struct {
	TerminalID string `json:"terminal_id"`
	// Epoch is the terminal store's epoch; every batch on this connection carries it.
	Epoch string `json:"epoch"`
	// DownApplied is the highest downlink seq the terminal has applied; the relay resumes after it.
	DownApplied uint64 `json:"down_applied"`
	// Software names the terminal build, for the technicians (informational).
	Software string `json:"software,omitempty"`
	// Waiting is the terminal's forwarding queue length when it connected (informational).
	Waiting int `json:"waiting,omitempty"`
	// OldestWaiting is when the oldest item of that queue was queued (informational, for the
	// technicians' fleet view; absent when the queue is empty).
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
	// UplinkNext is the seq the terminal's store will give its next uplink item in this epoch
	// (0: not said). At or below what the relay already holds for the epoch, the store is older
	// than what it forwarded: a backup was restored, and the relay sends a complete snapshot.
	UplinkNext uint64 `json:"uplink_next,omitempty"`
	// AckLetters says the terminal applies the states of its letters carried in acks
	// (Ack.Letters): the relay then sends it no message_status downlink item for a letter's
	// state known when the ack is written. An older terminal leaves it out and gets those
	// states on the downlink as before.
	AckLetters bool `json:"ack_letters,omitempty"`
	// BinaryChunks says the terminal takes content chunks as binary websocket messages
	// (AppendBinaryChunk): a relay that knows it sends chunks so, one that does not ignores it
	// and sends JSON chunk frames, which such a terminal still reads.
	BinaryChunks bool `json:"binary_chunks,omitempty"`
	// Redirects says the terminal follows a redirect frame (docs/SCALE.md "Facility homes"): a
	// relay of several gateways may answer its auth with one naming the gateway that serves
	// its facility, instead of welcome. An older terminal leaves it out and is served wherever
	// it connects.
	Redirects bool `json:"redirects,omitempty"`
	// Redirected says the terminal followed a redirect since its last welcome: it is served
	// where it is, so a gateway whose view of the others differs, or one the terminal cannot
	// reach, costs at most one more connection, never a loop.
	Redirected bool `json:"redirected,omitempty"`
}

// Redirect answers a terminal's auth instead of welcome: its facility is served by the
// gateway at URL (one of the relay's gateways, as welcome.relay_urls lists them). The relay
// then closes the connection (StatusNormalClosure, ReasonRedirect); the terminal connects
// there at once, with hello.redirected set. A terminal whose transport settings refuse URL
// (a plain URL off loopback, say) connects again where it was, with hello.redirected set,
// and is served there.
type Redirect struct {
	URL string `json:"url"`
}

func (r *Redirect) validate() error {
	if err := CheckRelayURL(r.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}

// Challenge carries a fresh random nonce the terminal must sign.
type Challenge struct {
	Nonce []byte `json:"nonce"` // NonceLen bytes, base64 in JSON
}

// Auth is the terminal's ed25519 signature over AuthMessage(terminal id, nonce).
type Auth struct {
	Signature []byte `json:"signature"` // 64 bytes, base64 in JSON
}

// Welcome ends the handshake: what the relay knows of the terminal.
type Welcome struct {
	TerminalID string    `json:"terminal_id"`
	Facility   string    `json:"facility"`
	Mode       string    `json:"mode"`
	InmateID   string    `json:"inmate_id,omitempty"` // tablet: the inmate it is bound to
	ServerTime time.Time `json:"server_time"`
	// RelayURLs, optional, are the relay's gateways (docs/SCALE.md) that a terminal may
	// reconnect to, at most MaxRelayURLs, each checked by CheckRelayURL. A terminal keeps the
	// latest list with its enrollment; a relay of one gateway leaves it out.
	RelayURLs []string `json:"relay_urls,omitempty"`
	// DownSparse says the relay numbers this terminal's downlink sparsely (a facility's items
	// share one counter, docs/PROTOCOL.md "Snapshots"): a jump in seq is normal, not a sign of
	// a replaced store. A relay that leaves it out promises contiguous seqs, as before.
	DownSparse bool `json:"down_sparse,omitempty"`
}

// MaxRelayURLs bounds a list of relay gateway URLs (welcome.relay_urls, a terminal's list).
const MaxRelayURLs = 8

// MaxRelayURLLen bounds one relay URL in bytes.
const MaxRelayURLLen = 512

// CheckRelayURL checks the form of a relay gateway's base URL: scheme wss, https, ws or http,
// a host, no credentials, query or fragment, at most MaxRelayURLLen bytes. Whether a plain
// one may be used is the terminal's choice (its transport settings). The URL is not repeated
// in the error: one with a password in it must not reach a log.
func CheckRelayURL(raw string) error {
	if len(raw) > MaxRelayURLLen {
		return fmt.Errorf("relay URL of %d bytes, at most %d", len(raw), MaxRelayURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("relay URL does not parse")
	}
	switch u.Scheme {
	case "wss", "https", "ws", "http":
	default:
		return fmt.Errorf("relay URL scheme %q is not wss, https, ws or http", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("relay URL has no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errors.New("relay URL has credentials, a query or a fragment")
	}
	return nil
}

// Item is one uplink record, the shape of vocab.Item.
type Item struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"body"`
}

// Batch carries uplink items in increasing seq order, all of one epoch.
type Batch struct {
	Epoch string `json:"epoch"`
	Items []Item `json:"items"`
}

// Rejection is an uplink item refused for good; the terminal does not send it again.
type Rejection struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Ack says the relay durably holds every item of Epoch with seq <= Seq (refused ones included,
// listed in Rejected).
type Ack struct {
	Epoch    string      `json:"epoch"`
	Seq      uint64      `json:"seq"`
	Rejected []Rejection `json:"rejected,omitempty"`
	// Letters, only to a terminal whose hello set AckLetters: the state of each letter
	// (a message item taken by the relay) among the acknowledged seqs of this batch.
	Letters *Letters `json:"letters,omitempty"`
}

// Letters lists letters by their uplink seq under the state the relay holds them in: held
// (waiting for staff) or delivered. Every seq is at most the ack's seq, each list increases,
// and a seq is in one list at most and never among the ack's refusals. A letter staff already
// rejected is not listed (a letter sent again after its review): the review's message_status
// is on the terminal's downlink, with the staff's reason.
type Letters struct {
	Delivered []uint64 `json:"delivered,omitempty"`
	Held      []uint64 `json:"held,omitempty"`
}

// Add lists seq under state (vocab.MsgDelivered or MsgHeld); seqs must come in increasing
// order. Another state adds nothing.
func (l *Letters) Add(seq uint64, state string) {
	switch state {
	case vocab.MsgDelivered:
		l.Delivered = append(l.Delivered, seq)
	case vocab.MsgHeld:
		l.Held = append(l.Held, seq)
	}
}

// Len is the number of letters listed.
func (l *Letters) Len() int {
	if l == nil {
		return 0
	}
	return len(l.Delivered) + len(l.Held)
}

// DownItem is one downlink record; Seq increases by one per terminal, with no gaps.
type DownItem struct {
	Seq  uint64          `json:"seq"`
	Kind string          `json:"kind"`
	Body json.RawMessage `json:"body"`
}

// Down carries downlink items in increasing seq order.
type Down struct {
	Items []DownItem `json:"items"`
}

// DownAck says the terminal has applied every downlink item with seq <= Seq; Refused lists
// items it could not apply for good (skipped, recorded in its audit log).
type DownAck struct {
	Seq     uint64      `json:"seq"`
	Refused []Rejection `json:"refused,omitempty"`
}

// Frame is one decoded websocket message: Type and exactly the matching field set.
type Frame struct {
	Type      string
	Hello     *Hello
	Challenge *Challenge
	Auth      *Auth
	Welcome   *Welcome
	Batch     *Batch
	Ack       *Ack
	Down      *Down
	DownAck   *DownAck
	Redirect  *Redirect
	// Content transfer (content.go).
	ContentWant     *ContentWant
	ContentManifest *ContentManifest
	Chunk           *Chunk
	ContentMissing  *ContentMissing
}

// envelope is a frame on the wire: {"type": "...", "body": {...}}.
type envelope struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// Encode writes a frame for one of the message types above (value or pointer).
func Encode(msg any) ([]byte, error) {
	// An ack, the relay's answer to every batch, a batch, a terminal's every uplink frame, and
	// a down_ack, its answer to every down frame, are written by hand (ackenc.go, batchenc.go).
	var a *Ack
	var b *Batch
	var d *DownAck
	switch m := msg.(type) {
	case Ack:
		a = &m
	case *Ack:
		a = m
	case Batch:
		b = &m
	case *Batch:
		b = m
	case DownAck:
		d = &m
	case *DownAck:
		d = m
	}
	var out []byte
	typ := TypeAck
	switch {
	case d != nil:
		typ = TypeDownAck
		out = appendDownAckFrame(make([]byte, 0, 64), d)
	case a != nil:
		out = appendAckFrame(make([]byte, 0, 96), a)
	case b != nil:
		typ = TypeBatch
		n := 160
		for i := range b.Items {
			n += 120 + len(b.Items[i].ID) + len(b.Items[i].Body)
		}
		var ok bool
		if out, ok = appendBatchFrame(make([]byte, 0, n), b); !ok {
			return encodeReflect(msg)
		}
	default:
		return encodeReflect(msg)
	}
	if len(out) > MaxFrameBytes {
		return nil, fmt.Errorf("encode %s frame: %w (%d bytes, limit %d)", typ, ErrTooLarge, len(out), MaxFrameBytes)
	}
	return out, nil
}

// encodeReflect is Encode through encoding/json.
func encodeReflect(msg any) ([]byte, error) {
	var typ string
	switch m := msg.(type) {
	case Hello, *Hello:
		typ = TypeHello
	case Challenge, *Challenge:
		typ = TypeChallenge
	case Auth, *Auth:
		typ = TypeAuth
	case Welcome, *Welcome:
		typ = TypeWelcome
	case Batch, *Batch:
		typ = TypeBatch
	case Ack, *Ack:
		typ = TypeAck
	case Down, *Down:
		typ = TypeDown
	case DownAck, *DownAck:
		typ = TypeDownAck
	case Redirect, *Redirect:
		typ = TypeRedirect
	default:
		if typ = contentType(msg); typ == "" {
			return nil, fmt.Errorf("encode frame: unknown message type %T", m)
		}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", typ, err)
	}
	out, err := json.Marshal(envelope{Type: typ, Body: body})
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", typ, err)
	}
	if len(out) > MaxFrameBytes {
		return nil, fmt.Errorf("encode %s frame: %w (%d bytes, limit %d)", typ, ErrTooLarge, len(out), MaxFrameBytes)
	}
	return out, nil
}

// ErrTooLarge is wrapped by errors about input or output beyond a limit.
var ErrTooLarge = errors.New("frame too large")

// ErrNotUTF8 is wrapped by DecodeFrame's error for a message that is not valid UTF-8.
var ErrNotUTF8 = errors.New("not valid UTF-8")

// DecodeFrame parses and validates one frame. Unknown fields are ignored (a later minor
// revision may add some); an unknown type, a missing body or a value beyond a limit is an error.
func DecodeFrame(b []byte) (Frame, error) {
	f, _, err := decodeFrame(b, false)
	return f, err
}

// decodeFrameStd is DecodeFrame by encoding/json: two passes (the envelope, then its body),
// each scanning the whole text once to validate it and once more to decode it. It decodes
// every frame the batch decoder (batch.go) leaves to it, and is the reference that decoder is
// fuzzed against (FuzzBatchDecoderSame).
func decodeFrameStd(b []byte) (Frame, error) {
	if len(b) > MaxFrameBytes {
		return Frame{}, fmt.Errorf("decode frame: %w (%d bytes, limit %d)", ErrTooLarge, len(b), MaxFrameBytes)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD silently; a frame is UTF-8 text, so
	// a peer that sends anything else is broken or hostile and is told so.
	if !utf8.Valid(b) {
		return Frame{}, fmt.Errorf("decode frame: %w", ErrNotUTF8)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Frame{}, fmt.Errorf("decode frame: %w", err)
	}
	if len(bytes.TrimSpace(env.Body)) == 0 || bytes.Equal(bytes.TrimSpace(env.Body), []byte("null")) {
		return Frame{}, fmt.Errorf("decode %q frame: missing body", cut(env.Type))
	}
	f := Frame{Type: env.Type}
	var target interface{ validate() error }
	switch env.Type {
	case TypeHello:
		f.Hello = new(Hello)
		target = f.Hello
	case TypeChallenge:
		f.Challenge = new(Challenge)
		target = f.Challenge
	case TypeAuth:
		f.Auth = new(Auth)
		target = f.Auth
	case TypeWelcome:
		f.Welcome = new(Welcome)
		target = f.Welcome
	case TypeBatch:
		f.Batch = new(Batch)
		target = f.Batch
	case TypeAck:
		f.Ack = new(Ack)
		target = f.Ack
	case TypeDown:
		f.Down = new(Down)
		target = f.Down
	case TypeDownAck:
		f.DownAck = new(DownAck)
		target = f.DownAck
	case TypeRedirect:
		f.Redirect = new(Redirect)
		target = f.Redirect
	default:
		if target = contentTarget(&f, env.Type); target == nil {
			return Frame{}, fmt.Errorf("decode frame: unknown type %q", cut(env.Type))
		}
	}
	if err := json.Unmarshal(env.Body, target); err != nil {
		return Frame{}, fmt.Errorf("decode %s frame: %w", env.Type, err)
	}
	if err := target.validate(); err != nil {
		return Frame{}, fmt.Errorf("decode %s frame: %w", env.Type, err)
	}
	return f, nil
}

// CloseReason fits a reason into a websocket close frame: valid UTF-8, at most 123 bytes, cut
// at a rune boundary.
func CloseReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	for len(s) > 123 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// cut shortens a peer-supplied string before it goes into an error or a log line.
func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func checkID(field, s string, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%s is missing", field)
		}
		return nil
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%s is %d bytes, limit %d", field, len(s), MaxIDLen)
	}
	return CheckIDText(field, s)
}

// CheckIDText refuses text that must not appear in an id, a kind, an epoch or a label: invalid
// UTF-8, and any rune ForbiddenInID reports. Ids end up in logs, admin listings and screens,
// where a control or direction-changing character could hide or reorder what a reader sees.
func CheckIDText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if ForbiddenInID(r) {
			return fmt.Errorf("%s holds a control character (U+%04X)", field, r)
		}
	}
	return nil
}

// ForbiddenInID reports the "control characters" of this protocol (vocab.ControlRune: C0,
// DEL, C1 such as U+0085, U+2028, U+2029 and the bidi formatting characters).
func ForbiddenInID(r rune) bool { return vocab.ControlRune(r) }

func checkReason(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is missing", field)
	}
	if len(s) > MaxReasonLen {
		return fmt.Errorf("%s is %d bytes, limit %d", field, len(s), MaxReasonLen)
	}
	return nil
}

func (h *Hello) validate() error {
	if err := checkID("terminal_id", h.TerminalID, true); err != nil {
		return err
	}
	if err := checkID("epoch", h.Epoch, true); err != nil {
		return err
	}
	if h.Waiting < 0 {
		return fmt.Errorf("waiting is negative")
	}
	return checkID("software", h.Software, false)
}

func (c *Challenge) validate() error {
	if len(c.Nonce) != NonceLen {
		return fmt.Errorf("nonce is %d bytes, want %d", len(c.Nonce), NonceLen)
	}
	return nil
}

func (a *Auth) validate() error {
	if len(a.Signature) != SignatureSize {
		return fmt.Errorf("signature is %d bytes, want %d", len(a.Signature), SignatureSize)
	}
	return nil
}

func (w *Welcome) validate() error {
	if err := checkID("terminal_id", w.TerminalID, true); err != nil {
		return err
	}
	if err := checkID("facility", w.Facility, true); err != nil {
		return err
	}
	if err := checkMode(w.Mode, w.InmateID); err != nil {
		return err
	}
	if len(w.RelayURLs) > MaxRelayURLs {
		return fmt.Errorf("relay_urls: %d, at most %d", len(w.RelayURLs), MaxRelayURLs)
	}
	for i, u := range w.RelayURLs {
		if err := CheckRelayURL(u); err != nil {
			return fmt.Errorf("relay_urls[%d]: %w", i, err)
		}
	}
	return nil
}

func checkMode(mode, inmate string) error {
	switch mode {
	case ModeKiosk:
		if inmate != "" {
			return fmt.Errorf("a kiosk is bound to no inmate (got inmate_id)")
		}
	case ModeTablet:
		if err := checkID("inmate_id", inmate, true); err != nil {
			return fmt.Errorf("a tablet must be bound to an inmate: %w", err)
		}
	default:
		return fmt.Errorf("mode %q is neither %q nor %q", cut(mode), ModeKiosk, ModeTablet)
	}
	return nil
}

func checkBody(field string, body json.RawMessage) error {
	if len(body) == 0 {
		return fmt.Errorf("%s is missing", field)
	}
	if len(body) > MaxItemBytes {
		return fmt.Errorf("%s is %d bytes, limit %d: %w", field, len(body), MaxItemBytes, ErrTooLarge)
	}
	return nil
}

func (b *Batch) validate() error {
	if err := checkID("epoch", b.Epoch, true); err != nil {
		return err
	}
	if len(b.Items) == 0 {
		return errors.New("batch has no items")
	}
	if len(b.Items) > MaxBatchItems {
		return fmt.Errorf("batch has %d items, limit %d", len(b.Items), MaxBatchItems)
	}
	var last uint64
	for i, it := range b.Items {
		if it.Seq == 0 || it.Seq <= last {
			return fmt.Errorf("item %d: seq %d does not follow %d", i, it.Seq, last)
		}
		last = it.Seq
		if checkID("", it.ID, true) != nil { // the field's name is made only for an error
			return checkID(fmt.Sprintf("item %d id", i), it.ID, true)
		}
		if checkID("", it.Kind, true) != nil { // the field's name is made only for an error
			return checkID(fmt.Sprintf("item %d kind", i), it.Kind, true)
		}
		if checkBody("", it.Body) != nil { // the field's name is made only for an error
			return checkBody(fmt.Sprintf("item %d body", i), it.Body)
		}
	}
	return nil
}

func checkRejections(field string, rs []Rejection, upTo uint64) error {
	if len(rs) > MaxRejected {
		return fmt.Errorf("%s lists %d items, limit %d", field, len(rs), MaxRejected)
	}
	var last uint64
	for i, r := range rs {
		if r.Seq == 0 || r.Seq <= last || r.Seq > upTo {
			return fmt.Errorf("%s %d: seq %d out of order or beyond %d", field, i, r.Seq, upTo)
		}
		last = r.Seq
		if checkReason("", r.Reason) != nil { // the field's name is made only for an error
			return checkReason(fmt.Sprintf("%s %d reason", field, i), r.Reason)
		}
	}
	return nil
}

func (a *Ack) validate() error {
	if err := checkID("epoch", a.Epoch, true); err != nil {
		return err
	}
	if err := checkRejections("rejected", a.Rejected, a.Seq); err != nil {
		return err
	}
	return a.Letters.validate(a.Seq, a.Rejected)
}

func (l *Letters) validate(upTo uint64, refused []Rejection) error {
	if l == nil {
		return nil
	}
	if n := l.Len(); n > MaxBatchItems {
		return fmt.Errorf("letters lists %d items, limit %d", n, MaxBatchItems)
	}
	seqs := func(field string, s []uint64) error {
		var last uint64
		for i, seq := range s {
			if seq == 0 || seq <= last || seq > upTo {
				return fmt.Errorf("letters %s %d: seq %d out of order or beyond %d", field, i, seq, upTo)
			}
			last = seq
		}
		return nil
	}
	if err := seqs("delivered", l.Delivered); err != nil {
		return err
	}
	if err := seqs("held", l.Held); err != nil {
		return err
	}
	// One state per letter, and none for an item refused: the lists are short (one batch).
	seen := make(map[uint64]bool, l.Len()+len(refused))
	for _, r := range refused {
		seen[r.Seq] = true
	}
	for _, s := range [][]uint64{l.Delivered, l.Held} {
		for _, seq := range s {
			if seen[seq] {
				return fmt.Errorf("letters: seq %d listed twice or refused", seq)
			}
			seen[seq] = true
		}
	}
	return nil
}

func (d *Down) validate() error {
	if len(d.Items) == 0 {
		return errors.New("down has no items")
	}
	if len(d.Items) > MaxBatchItems {
		return fmt.Errorf("down has %d items, limit %d", len(d.Items), MaxBatchItems)
	}
	var last uint64
	for i, it := range d.Items {
		if it.Seq == 0 || it.Seq <= last {
			return fmt.Errorf("item %d: seq %d does not follow %d", i, it.Seq, last)
		}
		last = it.Seq
		if checkID("", it.Kind, true) != nil { // the field's name is made only for an error
			return checkID(fmt.Sprintf("item %d kind", i), it.Kind, true)
		}
		if checkBody("", it.Body) != nil { // the field's name is made only for an error
			return checkBody(fmt.Sprintf("item %d body", i), it.Body)
		}
	}
	return nil
}

func (d *DownAck) validate() error { return checkRejections("refused", d.Refused, d.Seq) }
