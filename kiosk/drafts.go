package kiosk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
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

// Drafts are kept one per inmate and recipient, under "<inmate id>/<peer>", so a letter begun
// to one person is never written over by a letter to another. Drafts stored before that, one
// per inmate under the inmate id alone, are still read (as the draft to their peer) and are
// replaced the first time a draft to that peer is saved or cleared.

func draftKey(inmateID, peer string) []byte { return []byte(inmateID + "/" + peer) }

// SaveDraft keeps what the inmate is typing to d.Peer. It needs no session (the screens call
// it when a session has just been ended), validates nothing but size (it is the inmate's
// text; Send checks it), and writes only when the text changed, so calling it often costs a
// read. A draft with no subject and no body is removed.
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
		if err := deleteDraftTx(tx, d.InmateID, d.Peer); err != nil {
			return err
		}
		if d.Body == "" && d.Subject == "" {
			return nil
		}
		d.UpdatedAt = now
		return putJSON(tx, bDrafts, string(draftKey(d.InmateID, d.Peer)), d)
	})
}

// getDraftTx finds the inmate's draft to peer, under its key or stored the old way.
func getDraftTx(tx *bolt.Tx, inmateID, peer string) (Draft, bool, error) {
	var d Draft
	found, err := getJSON(tx, bDrafts, string(draftKey(inmateID, peer)), &d)
	if err != nil || found {
		return d, found, err
	}
	found, err = getJSON(tx, bDrafts, inmateID, &d)
	if err != nil || !found || d.Peer != peer {
		return Draft{}, false, err
	}
	return d, true, nil
}

// deleteDraftTx removes the inmate's draft to peer, under its key and stored the old way.
func deleteDraftTx(tx *bolt.Tx, inmateID, peer string) error {
	b := tx.Bucket([]byte(bDrafts))
	if err := b.Delete(draftKey(inmateID, peer)); err != nil {
		return fmt.Errorf("delete draft: %w", err)
	}
	var old Draft
	found, err := getJSON(tx, bDrafts, inmateID, &old)
	if err != nil || !found || old.Peer != peer {
		return err
	}
	if err := b.Delete([]byte(inmateID)); err != nil {
		return fmt.Errorf("delete draft: %w", err)
	}
	return nil
}

// Drafts lists the inmate's drafts, the most recently changed first.
func (t *Terminal) Drafts(inmateID string) ([]Draft, error) {
	var out []Draft
	err := t.store.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bDrafts))
		prefix := draftKey(inmateID, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var d Draft
			if err := json.Unmarshal(v, &d); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read drafts", Err: fmt.Errorf("record %q: %w", k, err)}
			}
			out = append(out, d)
		}
		var old Draft
		found, err := getJSON(tx, bDrafts, inmateID, &old)
		if err != nil {
			return err
		}
		if found {
			for _, d := range out {
				if d.Peer == old.Peer {
					return nil // replaced since; cannot happen, as a save deletes the old one
				}
			}
			out = append(out, old)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, err
}

// Draft returns the inmate's most recently changed draft; ok is false when there is none.
func (t *Terminal) Draft(inmateID string) (d Draft, ok bool, err error) {
	ds, err := t.Drafts(inmateID)
	if err != nil || len(ds) == 0 {
		return Draft{}, false, err
	}
	return ds[0], true, nil
}

// DraftTo returns the inmate's draft to peer; ok is false when there is none.
func (t *Terminal) DraftTo(inmateID, peer string) (d Draft, ok bool, err error) {
	err = t.store.view(func(tx *bolt.Tx) (err error) {
		d, ok, err = getDraftTx(tx, inmateID, peer)
		return err
	})
	return d, ok, err
}

// DiscardDraft removes the inmate's draft to peer (the inmate chose to throw it away).
func (t *Terminal) DiscardDraft(inmateID, peer string) error {
	return t.SaveDraft(Draft{InmateID: inmateID, Peer: peer})
}

func draftUnchangedTx(tx *bolt.Tx, d Draft) (bool, error) {
	old, found, err := getDraftTx(tx, d.InmateID, d.Peer)
	if err != nil {
		return false, err
	}
	if !found {
		return d.Body == "" && d.Subject == "", nil
	}
	// A draft stored the old way is written again under its key, even unchanged.
	var legacy Draft
	if f, err := getJSON(tx, bDrafts, d.InmateID, &legacy); err != nil || (f && legacy.Peer == d.Peer) {
		return false, err
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
