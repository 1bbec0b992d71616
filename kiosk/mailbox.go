package kiosk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// maxInboundBytes refuses an inbound message so large it can only be a relay fault.
const maxInboundBytes = 1 << 20

// Values in the message index bucket: which box, and for the inbox whether it was read,
// so the unread count never decodes a message.
const (
	idxOutbox     = "outbox"
	idxInboxNew   = "inbox"
	idxInboxRead  = "inbox:read"
	peerKindPREA  = "prea"
	peerKindDept  = "department"
	peerKindHuman = "contact"
)

// stateRank orders outbox states: a report may arrive late or twice, and a message never
// moves back to an earlier state.
func stateRank(state string) int {
	switch state {
	case MsgQueued:
		return 0
	case MsgSent:
		return 1
	case MsgHeld:
		return 2
	case MsgDelivered, MsgRejected:
		return 3
	}
	return -1
}

func msgIndexKey(inmateID, msgID string) []byte { return []byte(inmateID + "/" + msgID) }

// storedMessage is a Message as the messages bucket holds it. An outbox message queued for the
// relay also records where its item stood: queue generation and seq (see ackCursorTx). Its
// record keeps the state "queued" after the acknowledgement; it reads "sent" once the cursor
// has passed it (messageState), so acknowledging a batch rewrites no message.
type storedMessage struct {
	Message
	QueueGen uint64 `json:"queue_gen,omitempty"`
	QueueSeq uint64 `json:"queue_seq,omitempty"` // 0: not waiting for an acknowledgement
	// Fetched marks a kiosk's copy of a letter written elsewhere, fetched for one session and
	// wiped at its end (history.go).
	Fetched bool `json:"fetched,omitempty"`
}

// putMessageTx stores m and, when it belongs to an inmate, its index entry. A message that
// waits for its acknowledgement is written with putQueuedMessageTx instead. A fetched copy
// stays one (its state may change while the session lasts).
func putMessageTx(tx *bolt.Tx, m Message) error {
	fetched := m.InmateID != "" && string(tx.Bucket([]byte(bMsgIndex)).Get(msgIndexKey(m.InmateID, m.ID))) == idxOutboxCopy
	return putStoredMessageTx(tx, storedMessage{Message: m, Fetched: fetched})
}

// putQueuedMessageTx stores an outbox message whose forwarding item is seq.
func putQueuedMessageTx(tx *bolt.Tx, m Message, seq uint64) error {
	gen, _ := ackCursorTx(tx)
	if err := tx.Bucket([]byte(bMeta)).Put([]byte(kLastMsgSeq), u64(seq)); err != nil {
		return fmt.Errorf("note queued message: %w", err)
	}
	return putStoredMessageTx(tx, storedMessage{Message: m, QueueGen: gen, QueueSeq: seq})
}

func putStoredMessageTx(tx *bolt.Tx, sm storedMessage) error {
	m := sm.Message
	if err := putJSON(tx, bMessages, m.ID, sm); err != nil {
		return err
	}
	if m.InmateID == "" {
		return nil
	}
	v := idxOutbox
	if sm.Fetched {
		v = idxOutboxCopy
	}
	if m.Box == BoxInbox {
		v = idxInboxNew
		if m.Read {
			v = idxInboxRead
		}
	}
	if err := tx.Bucket([]byte(bMsgIndex)).Put(msgIndexKey(m.InmateID, m.ID), []byte(v)); err != nil {
		return fmt.Errorf("index message %s: %w", m.ID, err)
	}
	return nil
}

// getMessageTx loads a message with the state it has now: a queued outbox message whose item
// was acknowledged reads "sent", updated when that acknowledgement was applied.
func getMessageTx(tx *bolt.Tx, id string) (Message, bool, error) {
	sm, found, err := getStoredMessageTx(tx, id)
	return sm.Message, found, err
}

// getStoredMessageTx is getMessageTx with the message's queue position. A message read as
// sent takes the state its acknowledgement reported, if it reported one (bMsgState).
func getStoredMessageTx(tx *bolt.Tx, id string) (storedMessage, bool, error) {
	var sm storedMessage
	found, err := getJSON(tx, bMessages, id, &sm)
	if err != nil || !found {
		return storedMessage{}, found, err
	}
	gen, cursor := ackCursorTx(tx)
	if state := messageState(sm, gen, cursor); state != sm.State {
		sm.State = state
		if v := tx.Bucket([]byte(bMsgState)).Get(ackLogKey(sm.QueueGen, sm.QueueSeq)); v != nil {
			sm.State = string(v)
		}
		if at, ok := ackedAtTx(tx, sm.QueueGen, sm.QueueSeq); ok {
			sm.UpdatedAt = at
		}
	}
	return sm, true, nil
}

// messageState is the state of a stored message given the acknowledged cursor: a queued one
// whose item was acknowledged (in an earlier queue generation, or at or below the cursor in
// this one) is sent. NewEpoch moves every message still waiting into the new generation.
func messageState(sm storedMessage, gen, cursor uint64) string {
	if sm.Box == BoxOutbox && sm.State == MsgQueued && sm.QueueSeq != 0 && (sm.QueueGen < gen || sm.QueueSeq <= cursor) {
		return MsgSent
	}
	return sm.State
}

// Recipient is someone an inmate may write to right now.
type Recipient struct {
	ID   string `json:"id"` // contact id, department id or PREAChannel
	Name string `json:"name"`
	Kind string `json:"kind"` // "contact", "department" or "prea"
}

// Recipients lists whom the inmate may write to: approved contacts (with the messaging
// privilege), the facility departments, and the PREA channel, which is always there.
func (t *Terminal) Recipients(inmateID string) ([]Recipient, error) {
	p := t.Policy()
	var out []Recipient
	err := t.store.view(func(tx *bolt.Tx) error {
		in, err := getInmateTx(tx, "list recipients", inmateID)
		if err != nil {
			return err
		}
		if in.Messaging {
			cs, err := listContactsTx(tx, inmateID)
			if err != nil {
				return err
			}
			for _, c := range cs {
				if ContactMayWrite(c) {
					out = append(out, Recipient{ID: c.ID, Name: c.Name + " <" + c.Email + ">", Kind: peerKindHuman})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, d := range p.Departments {
		out = append(out, Recipient{ID: d.ID, Name: d.Name, Kind: peerKindDept})
	}
	return append(out, Recipient{ID: PREAChannel, Name: "PREA report", Kind: peerKindPREA}), nil
}

// Send puts a message in the outbox as queued, queues it for the relay and clears the
// inmate's draft to that recipient, all in one transaction. It needs the inmate's own active
// session (ReasonNoSession); only an approved contact (with the messaging privilege), a department or
// the PREA channel can be written to. If the write fails the error is KindIO (KindTransient
// for a full disk), nothing was sent, and the text is kept as the draft.
func (t *Terminal) Send(inmateID, peer, subject, body string) (Message, error) {
	if peer == PREAChannel {
		return t.sendPREA(inmateID, subject, body)
	}
	const op = "send message"
	p := t.Policy()
	if err := vocab.ValidateSubject(subject); err != nil {
		return Message{}, err
	}
	if err := ValidateMessageBody(body, p.MaxMessageChars); err != nil {
		return Message{}, err
	}
	if err := t.requireSession(op, inmateID); err != nil {
		return Message{}, err
	}
	if t.freeSession() && !(p.Free(FreeDepartments) && isDepartment(p, peer)) {
		return Message{}, errRefused(op, ReasonNeedsFunds, time.Time{})
	}
	now := t.clock.Now().UTC()
	var m Message
	err := t.store.update(op, func(tx *bolt.Tx) error {
		in, err := getInmateTx(tx, op, inmateID)
		if err != nil {
			return err
		}
		name, err := resolvePeerTx(tx, op, p, in, peer)
		if err != nil {
			return err
		}
		m, err = newOutboxMessage(now, inmateID, peer, name, subject, body)
		if err != nil {
			return err
		}
		if err := queueOutboxTx(tx, now, ItemMessage, m); err != nil {
			return err
		}
		return stampTx(tx, now, p, m) // after the letter: the relay must hold it first
	})
	if err != nil {
		t.keepAsDraft(err, Draft{InmateID: inmateID, Peer: peer, Subject: subject, Body: body})
		return Message{}, err
	}
	t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	return m, nil
}

// SendPREA files a PREA report. It needs no session, no privilege and no contact slot, is
// never billed, and works during lockdown and curfew, so an inmate who is refused at login
// can still report. inmateID "" files it anonymously. Once the relay acknowledges it, its
// text is erased from the terminal. The inmate's draft of a PREA report, if any, is cleared.
func (t *Terminal) SendPREA(inmateID, body string) (Message, error) {
	return t.sendPREA(inmateID, "", body)
}

func (t *Terminal) sendPREA(inmateID, subject, body string) (Message, error) {
	const op = "send PREA report"
	if err := vocab.ValidateSubject(subject); err != nil {
		return Message{}, err
	}
	if err := ValidateMessageBody(body, t.Policy().MaxMessageChars); err != nil {
		return Message{}, err
	}
	now := t.clock.Now().UTC()
	var m Message
	err := t.store.update(op, func(tx *bolt.Tx) error {
		if inmateID != "" {
			if _, err := getInmateTx(tx, op, inmateID); err != nil {
				return err
			}
		}
		if err := preaRoomTx(tx, op, inmateID); err != nil {
			return err
		}
		var err error
		m, err = newOutboxMessage(now, inmateID, PREAChannel, "PREA report", subject, body)
		if err != nil {
			return err
		}
		return queueOutboxTx(tx, now, ItemPREA, m)
	})
	if err != nil {
		if inmateID != "" {
			t.keepAsDraft(err, Draft{InmateID: inmateID, Peer: PREAChannel, Subject: subject, Body: body})
		}
		return Message{}, err
	}
	if inmateID != "" {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return m, nil
}

// PREA reports waiting for the relay are bounded, so that a terminal offline for days still
// takes every real report but one person (or, anonymously, anyone) cannot fill its disk.
const (
	MaxPREAWaiting     = 20 // per inmate
	MaxAnonPREAWaiting = 50 // anonymous ones, together
)

// preaWaitingKey counts in meta the PREA reports of an inmate ("" anonymous) not yet
// acknowledged or refused by the relay.
func preaWaitingKey(inmateID string) string { return "prea_waiting/" + inmateID }

// preaRoomTx refuses a report beyond the bound and counts the one about to be queued.
func preaRoomTx(tx *bolt.Tx, op, inmateID string) error {
	key, max := preaWaitingKey(inmateID), int64(MaxPREAWaiting)
	if inmateID == "" {
		max = MaxAnonPREAWaiting
	}
	if n := readCount(tx, key); n >= max {
		return &Error{Kind: KindRefused, Op: op, Reason: ReasonPREABacklog, Err: fmt.Errorf(
			"%d PREA reports are still waiting to reach the relay; more can be filed once they have", n)}
	}
	_, err := addCount(tx, key, 1)
	return err
}

// preaSettledTx: the relay took (or refused for good) a PREA report; it no longer waits.
func preaSettledTx(tx *bolt.Tx, it Item) error {
	var ref struct {
		InmateID string `json:"inmate_id"`
	}
	if err := json.Unmarshal(it.Body, &ref); err != nil {
		return &Error{Kind: KindCorrupt, Op: "read prea item", Err: err}
	}
	key := preaWaitingKey(ref.InmateID)
	if readCount(tx, key) <= 1 {
		return tx.Bucket([]byte(bMeta)).Delete([]byte(key))
	}
	_, err := addCount(tx, key, -1)
	return err
}

// resolvePeerTx says whether inmate in may write to peer now, and under what name.
func resolvePeerTx(tx *bolt.Tx, op string, p Policy, in Inmate, peer string) (string, error) {
	for _, d := range p.Departments {
		if d.ID == peer {
			return d.Name, nil
		}
	}
	if peer == "" {
		return "", errInvalid(op, "no recipient chosen")
	}
	var c Contact
	found, err := getJSON(tx, bContacts, contactKey(in.ID, peer), &c)
	if err != nil {
		return "", err
	}
	if !found || c.InmateID != in.ID || c.State == ContactRemoved {
		return "", errNotFound(op, "no contact or department %q", peer)
	}
	if !in.Messaging {
		return "", errRefused(op, ReasonNoMessaging, time.Time{})
	}
	if c.State != ContactApproved {
		return "", &Error{Kind: KindRefused, Op: op, Reason: ReasonContactNotApproved,
			Err: fmt.Errorf("%s is %s, not approved", c.Name, c.State)}
	}
	if !ContactMayWrite(c) {
		return "", &Error{Kind: KindRefused, Op: op, Reason: ReasonContactNotAccepted,
			Err: fmt.Errorf("%s has not accepted the invitation (%s)", c.Name, c.Invite)}
	}
	return c.Name, nil
}

func newOutboxMessage(now time.Time, inmateID, peer, peerName, subject, body string) (Message, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Message{}, fmt.Errorf("make message id: %w", err)
	}
	return Message{ID: id.String(), InmateID: inmateID, Box: BoxOutbox, Peer: peer, PeerName: peerName,
		Subject: subject, Body: body, State: MsgQueued, CreatedAt: now, UpdatedAt: now}, nil
}

// queueOutboxTx writes the message, its forwarding item and the draft's removal together.
func queueOutboxTx(tx *bolt.Tx, now time.Time, kind ItemKind, m Message) error {
	it, err := enqueue(tx, now, kind, m)
	if err != nil {
		return err
	}
	if err := putQueuedMessageTx(tx, m, it.Seq); err != nil {
		return err
	}
	if m.InmateID == "" {
		return nil
	}
	return deleteDraftTx(tx, m.InmateID, m.Peer) // the draft to this recipient, only
}

// keepAsDraft saves the text of a send that could not be stored, so it is not lost; when
// the disk is full this may fail too, and the screen still holds the text.
func (t *Terminal) keepAsDraft(sendErr error, d Draft) {
	if k := KindOf(sendErr); k != KindIO && k != KindTransient {
		return
	}
	if err := t.SaveDraft(d); err != nil {
		t.logf("mailbox: send failed (%v) and the draft could not be saved either: %v", sendErr, err)
	}
}

// Inbox lists an inmate's received messages, newest first.
func (t *Terminal) Inbox(inmateID string) ([]Message, error) { return t.box(inmateID, BoxInbox) }

// Sent lists an inmate's sent messages and PREA reports with their states, newest first.
func (t *Terminal) Sent(inmateID string) ([]Message, error) { return t.box(inmateID, BoxOutbox) }

func (t *Terminal) box(inmateID, box string) ([]Message, error) {
	var out []Message
	err := t.store.view(func(tx *bolt.Tx) error {
		prefix := msgIndexKey(inmateID, "")
		c := tx.Bucket([]byte(bMsgIndex)).Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			if (box == BoxOutbox) != (string(v) == idxOutbox || string(v) == idxOutboxCopy) {
				continue
			}
			m, found, err := getMessageTx(tx, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			if found && m.InmateID == inmateID {
				out = append(out, m)
			}
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// Unread counts an inmate's unread inbox messages (0 if the store cannot be read; that is logged).
func (t *Terminal) Unread(inmateID string) int {
	n := 0
	err := t.store.view(func(tx *bolt.Tx) error {
		prefix := msgIndexKey(inmateID, "")
		c := tx.Bucket([]byte(bMsgIndex)).Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			if string(v) == idxInboxNew && !strings.Contains(string(k[len(prefix):]), "/") {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.logf("mailbox: count unread: %v", err)
	}
	return n
}

// MarkRead marks an inbox message of this inmate read; marking it again changes nothing.
func (t *Terminal) MarkRead(inmateID, messageID string) error {
	const op = "mark message read"
	var m Message
	var found bool
	err := t.store.view(func(tx *bolt.Tx) (err error) {
		m, found, err = getMessageTx(tx, messageID)
		return err
	})
	if err != nil {
		return err
	}
	if !found || m.InmateID != inmateID || m.Box != BoxInbox {
		return errNotFound(op, "no message %q in this inbox", messageID)
	}
	if m.Read {
		return nil // no write, no fsync
	}
	now := t.clock.Now().UTC()
	err = t.store.update(op, func(tx *bolt.Tx) error {
		m, _, err := getMessageTx(tx, messageID)
		if err != nil || m.Read {
			return err
		}
		m.Read, m.UpdatedAt = true, now
		if err := putMessageTx(tx, m); err != nil {
			return err
		}
		// Read state follows the person: the relay tells the inmate's other terminals.
		_, err = enqueue(tx, now, ItemMessageRead, MessageRead{MessageID: m.ID, InmateID: inmateID, At: now.UTC()})
		return err
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return err
}

// deliverInboundTx stores a message from outside in the inmate's inbox, unread. The relay may
// send it more than once: a message id already stored changes nothing (delivered=false).
func deliverInboundTx(tx *bolt.Tx, now time.Time, m Message) (delivered bool, err error) {
	const op = "deliver message"
	switch {
	case m.ID == "" || len(m.ID) > 128 || strings.Contains(m.ID, "/"):
		return false, errInvalid(op, "message id %q is missing or malformed", m.ID)
	case m.InmateID == "":
		return false, errInvalid(op, "message %s names no inmate", m.ID)
	case m.Peer == "":
		return false, errInvalid(op, "message %s names no sender", m.ID)
	case len(m.Body)+len(m.Subject)+len(m.PeerName) > maxInboundBytes:
		return false, errInvalid(op, "message %s is %d bytes, over %d", m.ID, len(m.Body), maxInboundBytes)
	}
	// The relay checked the photos against the facility's policy; the terminal holds them to
	// the shared rules again, so a malformed reference never reaches the content store.
	if err := ValidatePhotos(m.Photos, 0); err != nil {
		return false, errInvalid(op, "message %s: %v", m.ID, err)
	}
	if _, found, err := getMessageTx(tx, m.ID); err != nil || found {
		return false, err
	}
	if letterGoneTx(tx, m.ID) {
		return false, nil // the person deleted it here (photos.go): sent again, it stays deleted
	}
	now = now.UTC()
	m.Box, m.State, m.Reason, m.Read = BoxInbox, "", "", false
	m.Body = strings.ToValidUTF8(m.Body, "\uFFFD")
	m.Subject = strings.ToValidUTF8(m.Subject, "\uFFFD")
	m.PeerName = strings.ToValidUTF8(m.PeerName, "\uFFFD")
	if m.ReplyTo, err = replyLinkTx(tx, m); err != nil {
		return false, err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.UpdatedAt = now
	return true, putMessageTx(tx, m)
}

// replyLinkTx is the reply_to an inbound message keeps. A malformed link, or one naming a
// stored letter that is not this inmate's own sent one, is dropped rather than the message:
// the answer still reaches the inbox, only unthreaded. A link to a request this terminal never
// held (sent from another kiosk) is kept; the screens thread it when they can.
func replyLinkTx(tx *bolt.Tx, m Message) (string, error) {
	if m.ReplyTo == "" || len(m.ReplyTo) > 128 || strings.Contains(m.ReplyTo, "/") || !utf8.ValidString(m.ReplyTo) {
		return "", nil
	}
	req, found, err := getMessageTx(tx, m.ReplyTo)
	if err != nil {
		return "", err
	}
	if found && (req.InmateID != m.InmateID || req.Box != BoxOutbox) {
		return "", nil
	}
	return m.ReplyTo, nil
}

// DeliverInbound stores an inbound message in its own transaction and tells the screens.
func (t *Terminal) DeliverInbound(m Message) (delivered bool, err error) {
	now := t.clock.Now()
	err = t.store.update("deliver message", func(tx *bolt.Tx) (err error) {
		delivered, err = deliverInboundTx(tx, now, m)
		return err
	})
	if err == nil && delivered {
		t.emit(Event{Kind: EventChanged, InmateID: m.InmateID, At: now})
	}
	return delivered, err
}

// setMessageStateTx applies the relay's report on a sent message: held, delivered or
// rejected (with reason). A report that would move it back to an earlier state is ignored.
// An unknown id is KindNotFound, which a sync engine may skip.
func setMessageStateTx(tx *bolt.Tx, now time.Time, id, state, reason string) error {
	const op = "set message state"
	switch state {
	case MsgSent, MsgHeld, MsgDelivered, MsgRejected:
	default:
		return errInvalid(op, "state %q is not sent, held, delivered or rejected", state)
	}
	sm, found, err := getStoredMessageTx(tx, id)
	if err != nil {
		return err
	}
	if !found {
		return errNotFound(op, "message %q", id)
	}
	m := sm.Message
	if m.Box != BoxOutbox {
		return errInvalid(op, "message %q was received, not sent", id)
	}
	if stateRank(state) <= stateRank(m.State) {
		return nil
	}
	if sm.QueueSeq != 0 {
		// The message is written with its new state and no queue position: the state its
		// acknowledgement reported, if any, is no longer read.
		if err := tx.Bucket([]byte(bMsgState)).Delete(ackLogKey(sm.QueueGen, sm.QueueSeq)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return advanceMessageTx(tx, now, m, state, reason)
}

func advanceMessageTx(tx *bolt.Tx, now time.Time, m Message, state, reason string) error {
	if stateRank(state) <= stateRank(m.State) {
		return nil
	}
	m.State, m.Reason, m.UpdatedAt = state, reason, now.UTC()
	return putMessageTx(tx, m)
}

// SetMessageState applies a relay report in its own transaction and tells the screens.
func (t *Terminal) SetMessageState(id, state, reason string) error {
	now := t.clock.Now()
	var inmate string
	err := t.store.update("set message state", func(tx *bolt.Tx) error {
		if m, found, _ := getMessageTx(tx, id); found {
			inmate = m.InmateID
		}
		return setMessageStateTx(tx, now, id, state, reason)
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmate, At: now})
	}
	return err
}

// itemMessageTx loads the stored message an outbox item carries (found=false if it is gone).
func itemMessageTx(tx *bolt.Tx, it Item) (Message, bool, error) {
	var ref struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(it.Body, &ref); err != nil {
		return Message{}, false, &Error{Kind: KindCorrupt, Op: "read " + string(it.Kind) + " item", Err: err}
	}
	return getMessageTx(tx, ref.ID)
}

// messageForwarded: the relay has the message (queued -> sent); a PREA report's text then
// leaves the terminal for good.
func messageForwarded(tx *bolt.Tx, now time.Time, it Item) error {
	m, found, err := itemMessageTx(tx, it)
	if err != nil || !found {
		return err
	}
	if it.Kind == ItemPREA {
		m.Body, m.Subject = "", ""
		if stateRank(m.State) < stateRank(MsgSent) {
			m.State = MsgSent
		}
		m.UpdatedAt = now.UTC()
		return putMessageTx(tx, m)
	}
	return advanceMessageTx(tx, now, m, MsgSent, "")
}

// messageRefused: the relay will never take it; the inmate sees rejected and why. An
// anonymous PREA report has nobody to show its text to, so the text is erased.
func messageRefused(tx *bolt.Tx, now time.Time, it Item, reason string) error {
	m, found, err := itemMessageTx(tx, it)
	if err != nil || !found {
		return err
	}
	if it.Kind == ItemPREA && m.InmateID == "" {
		m.Body, m.Subject = "", ""
		if err := markScrubPending(tx); err != nil { // the text is still in the freed pages
			return err
		}
	}
	if stateRank(m.State) < stateRank(MsgRejected) {
		m.State, m.Reason = MsgRejected, reason
	}
	m.UpdatedAt = now.UTC()
	return putMessageTx(tx, m)
}

// freeSession reports whether the session in progress is an unbilled one (Policy.FreeServices).
func (t *Terminal) freeSession() bool {
	s := t.meter.snapshot()
	return s != nil && s.free
}

func isDepartment(p Policy, peer string) bool {
	for _, d := range p.Departments {
		if d.ID == peer {
			return true
		}
	}
	return false
}

// requireSession refuses a normal message or contact change unless it is made in the inmate's
// own session on this terminal: the screens offer them only then, and the domain makes sure
// nothing else writes in an inmate's name. PREA reports and drafts need no session.
func (t *Terminal) requireSession(op, inmateID string) error {
	if info, ok := t.Active(); ok && !info.Technician && inmateID != "" && info.InmateID == inmateID {
		return nil
	}
	return errRefused(op, ReasonNoSession, time.Time{})
}
