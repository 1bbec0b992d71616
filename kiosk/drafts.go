package kiosk

import (
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Draft size caps: far above any message that can be sent (13,000 code points is at most
// 52 KB), small enough that a stuck key cannot fill the disk. Text past a cap is dropped.
const (
	maxDraftBodyBytes  = 256 << 10
	maxDraftFieldBytes = 4 << 10 // subject, peer, reply-to
)

// SaveDraft keeps what the inmate is typing, one draft per inmate. It needs no session (the
// screens call it when a session has just been ended), validates nothing but size (it is the
// inmate's text; Send checks it), and writes only when the text changed, so calling it
// often costs a read. A draft with no subject and no body is removed.
func (t *Terminal) SaveDraft(d Draft) error {
	const op = "save draft"
	d = normalizeDraft(d)
	if d.InmateID == "" {
		return errInvalid(op, "no inmate given")
	}
	var same bool
	err := t.store.view(func(tx *bolt.Tx) error {
		if _, err := getInmateTx(tx, op, d.InmateID); err != nil {
			return err
		}
		var err error
		same, err = draftUnchangedTx(tx, d)
		return err
	})
	if err != nil || same {
		return err
	}
	now := t.clock.Now().UTC()
	return t.store.update(op, func(tx *bolt.Tx) error {
		// Another save may have landed since the read; writing the same text again is harmless.
		if d.Body == "" && d.Subject == "" {
			return tx.Bucket([]byte(bDrafts)).Delete([]byte(d.InmateID))
		}
		d.UpdatedAt = now
		return putJSON(tx, bDrafts, d.InmateID, d)
	})
}

// Draft returns the inmate's saved draft; ok is false when there is none.
func (t *Terminal) Draft(inmateID string) (d Draft, ok bool, err error) {
	err = t.store.view(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx, bDrafts, inmateID, &d)
		return err
	})
	return d, ok, err
}

// DiscardDraft removes the inmate's draft (the inmate chose to throw it away).
func (t *Terminal) DiscardDraft(inmateID string) error {
	return t.SaveDraft(Draft{InmateID: inmateID})
}

func draftUnchangedTx(tx *bolt.Tx, d Draft) (bool, error) {
	var old Draft
	found, err := getJSON(tx, bDrafts, d.InmateID, &old)
	if err != nil {
		return false, err
	}
	if !found {
		return d.Body == "" && d.Subject == "", nil
	}
	return old.Peer == d.Peer && old.Subject == d.Subject && old.Body == d.Body && old.ReplyTo == d.ReplyTo, nil
}

// normalizeDraft makes the draft what the store will hold, so comparing it with the stored
// one is exact: valid UTF-8 (as JSON would make it) and within the caps.
func normalizeDraft(d Draft) Draft {
	d.Body = capText(strings.ToValidUTF8(d.Body, "\uFFFD"), maxDraftBodyBytes)
	d.Subject = capText(strings.ToValidUTF8(d.Subject, "\uFFFD"), maxDraftFieldBytes)
	d.Peer = capText(strings.ToValidUTF8(d.Peer, "\uFFFD"), maxDraftFieldBytes)
	d.ReplyTo = capText(strings.ToValidUTF8(d.ReplyTo, "\uFFFD"), maxDraftFieldBytes)
	return d
}

// capText cuts s to at most n bytes without splitting a character.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
