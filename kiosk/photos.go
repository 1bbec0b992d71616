package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// A tablet keeps its person's photos (docs/PROTOCOL.md "Photos on inbound letters") until the
// person deletes them, a photo or the whole letter, or the policy's PhotoKeepDays expires
// them. What went is recorded here, in the terminal's store, before the content store lets go
// of the bytes: the letter then says "photo deleted" (never a broken image), sync never
// retains that photo again when the relay sends the letter a second time, and a crash between
// the two is finished by the next ReleaseGonePhotos. A shared kiosk deletes nothing: its
// copies of a person's photos last one session (ui, content.ViewingHolder).

// Buckets, created on first write so an older store opens unchanged; a read finds none and
// sees nothing gone.
const (
	bPhotosGone  = "photos_gone"  // message id + "/" + photo sha256 -> goneRec
	bLettersGone = "letters_gone" // message id -> goneLetter: a letter the person deleted
)

// Why a photo is no longer on the tablet (PhotosGone).
const (
	PhotoDeleted = "deleted" // the person deleted it, or its letter
	PhotoExpired = "expired" // older than the policy's PhotoKeepDays
)

type goneRec struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

type goneLetter struct {
	InmateID string    `json:"inmate_id"`
	At       time.Time `json:"at"`
	Photos   []string  `json:"photos,omitempty"` // sha256 of each photo it carried
}

func photoGoneKey(messageID, sha string) []byte { return []byte(messageID + "/" + sha) }

// ownLetterTx finds inbox letter messageID of inmateID on the tablet bound to that inmate.
func ownLetterTx(tx *bolt.Tx, op, inmateID, messageID string) (Message, error) {
	if boundInmateTx(tx) != inmateID {
		return Message{}, errInvalid(op, "only the person's own tablet deletes letters and photos")
	}
	m, found, err := getMessageTx(tx, messageID)
	if err != nil {
		return Message{}, err
	}
	if !found || m.InmateID != inmateID || m.Box != BoxInbox {
		return Message{}, errNotFound(op, "no letter %q in this inbox", messageID)
	}
	return m, nil
}

func markPhotoGoneTx(tx *bolt.Tx, messageID, sha, reason string, now time.Time) error {
	b, err := tx.CreateBucketIfNotExists([]byte(bPhotosGone))
	if err != nil {
		return err
	}
	if b.Get(photoGoneKey(messageID, sha)) != nil {
		return nil // the first reason stands
	}
	v, err := json.Marshal(goneRec{Reason: reason, At: now.UTC()})
	if err != nil {
		return err
	}
	return b.Put(photoGoneKey(messageID, sha), v)
}

// DeletePhoto deletes, on the person's tablet and in their session, one photo (by its sha256)
// of one of their letters: the letter stays and says the photo was deleted. The bytes go
// with ReleaseGonePhotos. Deleting it again is no error.
func (t *Terminal) DeletePhoto(inmateID, messageID, sha string) error {
	const op = "delete photo"
	if err := t.requireSession(op, inmateID); err != nil {
		return err
	}
	now := t.clock.Now()
	err := t.store.update(op, func(tx *bolt.Tx) error {
		m, err := ownLetterTx(tx, op, inmateID, messageID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(m.Photos, func(p Photo) bool { return p.SHA256 == sha }) {
			return errNotFound(op, "letter %s has no photo %q", messageID, clip(sha, 64))
		}
		return markPhotoGoneTx(tx, messageID, sha, PhotoDeleted, now)
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return err
}

// DeleteLetter deletes, on the person's tablet and in their session, one of their received
// letters with its photos. The letter is remembered as deleted, so the relay sending it again
// (a lost acknowledgement) brings nothing back. The photos' bytes go with ReleaseGonePhotos.
func (t *Terminal) DeleteLetter(inmateID, messageID string) error {
	const op = "delete letter"
	if err := t.requireSession(op, inmateID); err != nil {
		return err
	}
	now := t.clock.Now()
	err := t.store.update(op, func(tx *bolt.Tx) error {
		m, err := ownLetterTx(tx, op, inmateID, messageID)
		if err != nil {
			return err
		}
		g := goneLetter{InmateID: inmateID, At: now.UTC()}
		for _, p := range m.Photos {
			g.Photos = append(g.Photos, p.SHA256)
		}
		b, err := tx.CreateBucketIfNotExists([]byte(bLettersGone))
		if err != nil {
			return err
		}
		v, err := json.Marshal(g)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(messageID), v); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bMessages)).Delete([]byte(messageID)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMsgIndex)).Delete(msgIndexKey(inmateID, messageID))
	})
	if err == nil {
		t.emit(Event{Kind: EventChanged, InmateID: inmateID, At: now})
	}
	return err
}

// letterGoneTx reports whether the person deleted letter id here.
func letterGoneTx(tx *bolt.Tx, id string) bool {
	b := tx.Bucket([]byte(bLettersGone))
	return b != nil && b.Get([]byte(id)) != nil
}

// PhotosGone says which photos of letter messageID are no longer on this terminal, by sha256,
// and why (PhotoDeleted, PhotoExpired); every photo of a deleted letter is PhotoDeleted.
func (t *Terminal) PhotosGone(messageID string) (map[string]string, error) {
	out := map[string]string{}
	err := t.store.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bLettersGone)); b != nil {
			if v := b.Get([]byte(messageID)); v != nil {
				var g goneLetter
				if err := json.Unmarshal(v, &g); err != nil {
					return fmt.Errorf("deleted letter %s: %w", messageID, err)
				}
				for _, sha := range g.Photos {
					out[sha] = PhotoDeleted
				}
			}
		}
		b := tx.Bucket([]byte(bPhotosGone))
		if b == nil {
			return nil
		}
		prefix := []byte(messageID + "/")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			var g goneRec
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("deleted photo %s: %w", k, err)
			}
			out[string(k[len(prefix):])] = g.Reason
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("photos gone of %s: %w", messageID, err)
	}
	return out, nil
}

// ExpirePhotos marks gone (PhotoExpired) every photo of the bound inmate's letters dated more
// than the policy's PhotoKeepDays before the time both the terminal's and the relay's clocks
// have reached (AgreedNow), and says how many it marked. It does nothing on
// a kiosk or when the policy keeps photos until deleted (0).
func (t *Terminal) ExpirePhotos() (int, error) {
	const op = "expire photos"
	days := t.Policy().PhotoKeepDays
	if days <= 0 {
		return 0, nil
	}
	if _, bound, err := t.BoundInmate(); err != nil || !bound {
		return 0, err // a shared kiosk: no write, no fsync
	}
	// Photos are gone for good once expired, so the date is one both clocks have reached: a
	// tablet clock jumped a year ahead must not take a family's photos (AgreedNow).
	agreed, err := t.AgreedNow()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	now := t.clock.Now()
	before := agreed.Add(-time.Duration(days) * 24 * time.Hour)
	n := 0
	err = t.store.update(op, func(tx *bolt.Tx) error {
		n = 0
		inmate := boundInmateTx(tx)
		if inmate == "" {
			return nil
		}
		gone := tx.Bucket([]byte(bPhotosGone))
		prefix := []byte(inmate + "/")
		c := tx.Bucket([]byte(bMsgIndex)).Cursor()
		var due []Message
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			if s := string(v); s != idxInboxNew && s != idxInboxRead {
				continue
			}
			m, found, err := getMessageTx(tx, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			if !found || len(m.Photos) == 0 || !m.CreatedAt.Before(before) {
				continue
			}
			due = append(due, m)
		}
		for _, m := range due {
			for _, p := range m.Photos {
				if gone != nil && gone.Get(photoGoneKey(m.ID, p.SHA256)) != nil {
					continue
				}
				if err := markPhotoGoneTx(tx, m.ID, p.SHA256, PhotoExpired, now); err != nil {
					return err
				}
				gone = tx.Bucket([]byte(bPhotosGone))
				n++
			}
		}
		return nil
	})
	if err == nil && n > 0 {
		id, _, _ := t.BoundInmate()
		t.emit(Event{Kind: EventChanged, InmateID: id, At: now})
	}
	return n, err
}

// ReleaseGonePhotos lets go, in the content store, of the letter's claim (vocab.PhotoHolder)
// on every photo recorded gone, so the store deletes what no one else holds. It is safe to
// run again and again: a claim already released costs a read. It finishes what a crash
// between a deletion and its release left, and what sync retained again meanwhile.
func (t *Terminal) ReleaseGonePhotos(media *content.Store) (int, error) {
	if media == nil {
		return 0, nil
	}
	type claim struct{ messageID, sha string }
	var claims []claim
	err := t.store.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bPhotosGone)); b != nil {
			if err := b.ForEach(func(k, _ []byte) error {
				id, sha, ok := strings.Cut(string(k), "/")
				if ok {
					claims = append(claims, claim{id, sha})
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket([]byte(bLettersGone)); b != nil {
			return b.ForEach(func(k, v []byte) error {
				var g goneLetter
				if err := json.Unmarshal(v, &g); err != nil {
					return fmt.Errorf("deleted letter %s: %w", k, err)
				}
				for _, sha := range g.Photos {
					claims = append(claims, claim{string(k), sha})
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release gone photos: %w", err)
	}
	n := 0
	for _, c := range claims {
		obj, err := content.ParseHash(c.sha)
		if err != nil {
			continue // never retained: the letter was refused for it
		}
		holder := vocab.PhotoHolder(c.messageID)
		holders, _, err := media.Holders(obj)
		if err != nil {
			return n, fmt.Errorf("release gone photos: %w", err)
		}
		if !slices.Contains(holders, holder) {
			continue
		}
		if err := media.Release(obj, holder); err != nil {
			return n, fmt.Errorf("release photo %s of letter %s: %w", c.sha, c.messageID, err)
		}
		n++
	}
	return n, nil
}

// PhotoCheckEvery is how often KeepPhotos looks for photos past the policy's PhotoKeepDays.
const PhotoCheckEvery = 24 * time.Hour

// KeepPhotos runs a tablet's photo keeping until ctx ends: at once, then every
// PhotoCheckEvery on the terminal's clock, it expires photos past the policy's PhotoKeepDays
// and releases what is gone. A failure is logged and tried again at the next check.
func (t *Terminal) KeepPhotos(ctx context.Context, media *content.Store, logf vocab.Logf) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	check := func() {
		if n, err := t.ExpirePhotos(); err != nil {
			logf("photos: expire: %v", err)
		} else if n > 0 {
			logf("photos: %d expired under the policy", n)
		}
		if n, err := t.ReleaseGonePhotos(media); err != nil {
			logf("photos: release: %v", err)
		} else if n > 0 {
			logf("photos: released %d", n)
		}
	}
	check()
	timer := t.clock.NewTimer(PhotoCheckEvery)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			check()
			timer.Reset(PhotoCheckEvery)
		}
	}
}
