package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Photo review (docs/PROTOCOL.md "Photos on inbound letters"): a facility whose
// Monitoring.PhotoReview is PhotoReviewHold, or was never set, holds each letter from a family that carries
// photos, after the automatic photo checks, until staff approve or reject it with its photos
// in the console. A held letter is in no terminal's downlink, history or snapshot (it is not
// in bInbound), and its photos are held for the letter alone (heldHolder), which entitles no
// terminal: none can fetch them before approval, even by hash. Approving retains them for the
// facility's terminals, then sends the letter; rejecting deletes them, unless another letter
// holds the same photo.

// Photo review settings (Monitoring.PhotoReview).
const (
	PhotoReviewNone = "none"
	PhotoReviewHold = "hold"
)

// bInboundHeld holds letters from families held for photo review, and what became of them:
// message id -> HeldInbound. Created on first use, so an older store opens unchanged.
const bInboundHeld = "inbound_held"

// HeldInbound is a letter from a family held for photo review, and its decision.
type HeldInbound struct {
	vocab.Message
	FacilityID string    `json:"facility_id"`
	ReceivedAt time.Time `json:"received_at"`
	// Status is vocab.MsgHeld until staff decide: vocab.MsgDelivered or vocab.MsgRejected.
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	ReviewedAt time.Time `json:"reviewed_at,omitzero"`
}

// holdInboundTx stores m held for photo review, on facility's queue (through f: fanout.putIn).
func holdInboundTx(tx kv.Tx, f *fanout, m vocab.Message, facility string, now time.Time) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bInboundHeld)); err != nil {
		return err
	}
	if err := putJSON(tx, bInboundHeld, m.ID, HeldInbound{Message: m, FacilityID: facility, ReceivedAt: now, Status: vocab.MsgHeld}); err != nil {
		return err
	}
	if checkID("", "", facility) != nil || checkID("", "", m.ID) != nil {
		return nil // an older relay's damage: verify reports it
	}
	return f.putIn(tx, facility, bPhotoQueue, facility+"/"+m.ID, nil)
}

// decideHeldTx stores h, decided (delivered or rejected), and takes it off its facility's
// photo review queue (through f: fanout.deleteIn).
func decideHeldTx(tx kv.Tx, f *fanout, h HeldInbound) error {
	if err := putJSON(tx, bInboundHeld, h.ID, h); err != nil {
		return err
	}
	if checkID("", "", h.FacilityID) != nil || checkID("", "", h.ID) != nil {
		return nil
	}
	return f.deleteIn(tx, h.FacilityID, bPhotoQueue, h.FacilityID+"/"+h.ID)
}

func getHeldTx(tx kv.Tx, id string) (HeldInbound, bool, error) {
	var h HeldInbound
	if tx.Bucket([]byte(bInboundHeld)) == nil {
		return h, false, nil
	}
	ok, err := getJSON(tx, bInboundHeld, id, &h)
	return h, ok, err
}

// HeldInbound lists the letters from families waiting for photo review, oldest first.
func (r *Relay) HeldInbound() ([]HeldInbound, error) { return r.heldInbound(nil) }

// HeldInboundIn is HeldInbound of the given facilities: it reads their queues (photo_queue)
// only, so one prison's queue costs the same in a state, and after years of letters.
func (r *Relay) HeldInboundIn(facilities ...string) ([]HeldInbound, error) {
	if err := checkFacilityIDs("list held inbound", facilities); err != nil {
		return nil, err
	}
	if len(facilities) == 0 {
		return []HeldInbound{}, nil
	}
	return r.heldInbound(facilities)
}

// heldInbound reads the photo review queues of facilities (every facility's if nil, from the
// kv state). A facility this relay holds has its queue read from its held state (viewsFor).
func (r *Relay) heldInbound(facilities []string) ([]HeldInbound, error) {
	out, part := []HeldInbound{}, []HeldInbound(nil)
	err := r.viewsFor(facilities, "list held inbound", func(tx kv.Tx, facilities []string) error {
		part = part[:0]
		ids, err := listedUnder(tx, facilities, bPhotoQueue)
		if err != nil {
			return err
		}
		var keys keyList
		for _, id := range ids {
			keys.add(bInboundHeld, id)
		}
		kv.Prefetch(tx, keys)
		for _, id := range ids {
			h, ok, err := getHeldTx(tx, id)
			if err != nil {
				return err
			}
			if ok && h.Status == vocab.MsgHeld {
				part = append(part, h)
			}
		}
		return nil
	}, func() { out = append(out, part...) })
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt.Before(out[j].ReceivedAt) })
	return out, err
}

// migrate16to17 puts every letter held for photo review before the upgrade on its
// facility's queue. A record that does not decode is passed over (verify reports it).
func migrate16to17(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bPhotoQueue)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bPhotoQueue, err)
	}
	if tx.Bucket([]byte(bInboundHeld)) == nil {
		return nil // no letter was ever held
	}
	var held []HeldInbound
	if err := forEachRaw(tx, bInboundHeld, "", func(id string, raw []byte) bool {
		var h HeldInbound
		if json.Unmarshal(raw, &h) == nil && h.Status == vocab.MsgHeld && h.ID == id {
			held = append(held, h)
		}
		return true
	}); err != nil {
		return err
	}
	for _, h := range held {
		if checkID("", "", h.FacilityID) != nil || checkID("", "", h.ID) != nil {
			continue
		}
		if err := putRaw(tx, bPhotoQueue, h.FacilityID+"/"+h.ID, nil); err != nil {
			return err
		}
	}
	return nil
}

// HeldInboundOf returns one letter held (or once held) for photo review.
func (r *Relay) HeldInboundOf(id string) (HeldInbound, error) {
	const op = "get held inbound"
	if err := checkID(op, "id", id); err != nil {
		return HeldInbound{}, err
	}
	var h HeldInbound
	err := r.view(op, func(tx kv.Tx) error {
		var ok bool
		var err error
		if h, ok, err = getHeldTx(tx, id); err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no letter %q held for photo review", id)
		}
		return nil
	})
	return h, err
}

// ApproveInbound releases a letter held for photo review to the inmate's terminals with its
// photos. The photos are made fetchable by the facility's terminals before the letter is
// sent, so no terminal is ever named a photo it may not fetch.
func (r *Relay) ApproveInbound(id string) (HeldInbound, error) {
	const op = "approve inbound"
	h, err := r.HeldInboundOf(id)
	if err != nil {
		return HeldInbound{}, err
	}
	if h.Status != vocab.MsgHeld {
		return HeldInbound{}, conflict(op, "id", "letter %q is already %s", id, h.Status)
	}
	// The photos go to the facility the inmate is in now (moved since the letter came, the
	// letter follows them, as every letter to them does).
	var fac string
	if err := r.view(op, func(tx kv.Tx) error { fac = facilityOf(tx, h.InmateID, h.FacilityID); return nil }); err != nil {
		return HeldInbound{}, err
	}
	if err := r.retainPhotos(h.Photos, facilityHolder(fac)); err != nil {
		return HeldInbound{}, ioErr(op, err)
	}
	now := r.clock.Now().UTC()
	err = r.update(op, func(tx kv.Tx, f *fanout) error {
		cur, ok, err := getHeldTx(tx, id) // a run again reads it afresh
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no letter %q held for photo review", id)
		}
		if cur.Status != vocab.MsgHeld {
			return conflict(op, "id", "letter %q is already %s", id, cur.Status)
		}
		h = cur
		h.Status, h.ReviewedAt = vocab.MsgDelivered, now
		if err := decideHeldTx(tx, f, h); err != nil {
			return err
		}
		if at := facilityOf(tx, h.InmateID, h.FacilityID); at != fac {
			return conflict(op, "id", "inmate %q moved to facility %q while the letter was approved; approve it again", h.InmateID, at)
		}
		m := h.Message
		m.UpdatedAt = now
		if err := putJSON(tx, bInbound, m.ID, m); err != nil {
			return err
		}
		if err := linkReply(tx, m); err != nil {
			return err
		}
		if err := indexInboundIn(tx, f, fac, m); err != nil {
			return err
		}
		return f.toInmate(fac, m.InmateID, "", wire.DownInboundMessage, m)
	})
	if err != nil {
		return HeldInbound{}, err
	}
	// The letter's own claim is no longer needed: the facility's keeps the photos.
	if err := r.releasePhotos(h.Photos, heldHolder(id)); err != nil {
		r.logf("relay: approve inbound %s: %v", id, err)
	}
	return h, nil
}

// RejectInbound refuses a letter held for photo review with a reason: it is never sent, and
// its photos are deleted unless another letter holds them.
func (r *Relay) RejectInbound(id, reason string) (HeldInbound, error) {
	const op = "reject inbound"
	if err := checkText(op, "reason", reason, true, 500); err != nil {
		return HeldInbound{}, err
	}
	if err := checkID(op, "id", id); err != nil {
		return HeldInbound{}, err
	}
	now := r.clock.Now().UTC()
	var h HeldInbound
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		cur, ok, err := getHeldTx(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no letter %q held for photo review", id)
		}
		if cur.Status != vocab.MsgHeld {
			return conflict(op, "id", "letter %q is already %s", id, cur.Status)
		}
		h = cur
		h.Status, h.Reason, h.ReviewedAt = vocab.MsgRejected, reason, now
		return decideHeldTx(tx, f, h)
	})
	if err != nil {
		return HeldInbound{}, err
	}
	if err := r.releasePhotos(h.Photos, heldHolder(id)); err != nil {
		r.logf("relay: reject inbound %s: %v", id, err)
	}
	return h, nil
}

// retainPhotos adds holder's claim on each photo (held whole already).
func (r *Relay) retainPhotos(photos []vocab.Photo, holder string) error {
	s, err := r.contentStore()
	if err != nil {
		return err
	}
	for _, p := range photos {
		ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
		if err != nil {
			return fmt.Errorf("photo %s: %w", p.SHA256, err)
		}
		if err := s.Retain(ref, holder, true); err != nil {
			return fmt.Errorf("photo %s: %w", p.SHA256, err)
		}
	}
	return nil
}

// releasePhotos drops holder's claim on each photo: one no one else holds is deleted.
func (r *Relay) releasePhotos(photos []vocab.Photo, holder string) error {
	s, err := r.contentStore()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range photos {
		h, err := content.ParseHash(p.SHA256)
		if err != nil {
			continue
		}
		if err := s.Release(h, holder); err != nil {
			errs = append(errs, fmt.Errorf("photo %s: %w", p.SHA256, err))
		}
	}
	return errors.Join(errs...)
}

// LetterPhoto is one photo of a letter from a family, for staff: what the relay found it to
// be, the letter's facility (whose staff may see it) and whether the letter is held.
type LetterPhoto struct {
	vocab.Photo
	MessageID  string
	InmateID   string
	FacilityID string
	Held       bool
}

// LetterPhotoOf opens photo i (from 0) of letter messageID from a family, delivered or held
// for photo review (or rejected, while its photo is still stored). The caller checks who may
// see it (LetterPhoto.FacilityID) and closes the reader.
func (r *Relay) LetterPhotoOf(messageID string, i int) (LetterPhoto, io.ReadCloser, error) {
	const op = "get inbound photo"
	if err := checkID(op, "message_id", messageID); err != nil {
		return LetterPhoto{}, nil, err
	}
	var lp LetterPhoto
	var m vocab.Message
	err := r.view(op, func(tx kv.Tx) error {
		h, held, err := getHeldTx(tx, messageID)
		if err != nil {
			return err
		}
		if held {
			m, lp.FacilityID, lp.Held = h.Message, h.FacilityID, h.Status == vocab.MsgHeld
			return nil
		}
		ok, err := getJSON(tx, bInbound, messageID, &m)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "message_id", "no inbound letter %q", messageID)
		}
		lp.FacilityID = facilityOf(tx, m.InmateID, "")
		return nil
	})
	if err != nil {
		return LetterPhoto{}, nil, err
	}
	if i < 0 || i >= len(m.Photos) {
		return LetterPhoto{}, nil, notFound(op, "index", "letter %q has %d photos", messageID, len(m.Photos))
	}
	lp.Photo, lp.MessageID, lp.InmateID = m.Photos[i], m.ID, m.InmateID
	ref, err := content.ParseRef(lp.SHA256, lp.Manifest, lp.Size)
	if err != nil {
		return LetterPhoto{}, nil, fmt.Errorf("%s: letter %s photo %d: %w", op, messageID, i, err)
	}
	st, err := r.contentStore()
	if err != nil {
		return LetterPhoto{}, nil, ioErr(op, err)
	}
	rd, err := st.Open(ref.Object)
	if errors.Is(err, content.ErrUnknownObject) {
		return LetterPhoto{}, nil, notFound(op, "index", "photo %d of letter %q is no longer stored", i, messageID)
	}
	if err != nil {
		return LetterPhoto{}, nil, ioErr(op, fmt.Errorf("photo %s: %w", lp.SHA256, err))
	}
	return lp, rd, nil
}
