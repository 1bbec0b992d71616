package relay

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Photos sent with inbound letters (docs/PROTOCOL.md "Content (photos and media)", "Photos on
// inbound letters"): each is checked by kiosk/photo (type, size, the pixel count its header
// declares, then a full decode) before a byte of it is stored, so a decompression bomb or a
// GIF named image/jpeg is refused with its reason and nothing is delivered; then stored once
// by hash (PutContent) for the inmate's facility, and the letter names it.

// maxInboundBody bounds POST /admin/v1/inbound: five photos of 1 MB in base64 (4/3 of their
// bytes) and the letter's text, with room to spare.
const maxInboundBody = 8 << 20

// photoRefused is a photo kiosk/photo refused: 400, naming the photo (photos[i]) and carrying
// its reason code (photo_too_many_pixels, photo_type_mismatch...).
func photoRefused(op string, i int, err error) error {
	return &vocab.Error{Kind: vocab.KindInvalid, Op: op, Reason: vocab.Reason(photo.Reason(err)),
		Err: &FieldError{Field: fmt.Sprintf("photos[%d]", i), Msg: err.Error()}}
}

// storePhotos checks an inbound letter's photos against the inmate's facility policy and
// stores those that pass, returning the references the letter carries and whether the
// facility holds the letter for photo review (Monitoring.PhotoReview). Nothing is stored
// unless every photo passes and precheck (the letter's addressee and sender, read-only)
// passes first. deliverInbound checks all of it (the photo count too) again in its write. A
// letter delivered at once has its photos held for its facility's terminals; a held one for
// the letter alone (heldHolder(messageID)), so no terminal may fetch them before approval.
func (r *Relay) storePhotos(op, messageID string, photos []InboundPhoto, precheck func(kv.Tx) (inmateRec, error)) ([]vocab.Photo, bool, error) {
	if len(photos) == 0 {
		return nil, false, nil
	}
	var in inmateRec
	var fac facilityRec
	err := r.view(op, func(tx kv.Tx) error {
		var err error
		if in, err = precheck(tx); err != nil {
			return err
		}
		_, err = getJSON(tx, bFacilities, in.FacilityID, &fac)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	pol := photo.DefaultPolicy()
	pol.MaxBytes = vocab.MaxPhotoBytes
	pol.MaxPerMessage = fac.policy().PhotosPerLetter()
	if err := pol.CheckCount(len(photos)); err != nil {
		return nil, false, &vocab.Error{Kind: vocab.KindInvalid, Op: op, Reason: vocab.Reason(photo.Reason(err)),
			Err: &FieldError{Field: "photos", Msg: err.Error()}}
	}
	infos := make([]photo.Info, len(photos))
	for i, p := range photos {
		if infos[i], err = pol.Check(p.Type, p.Data); err != nil {
			return nil, false, photoRefused(op, i, err)
		}
	}
	held := fac.PhotoReview != PhotoReviewNone // "" (never set) holds: staff see every photo first
	holder := facilityHolder(in.FacilityID)
	if held {
		holder = heldHolder(messageID)
	}
	out := make([]vocab.Photo, 0, len(photos))
	seen := map[string]bool{}
	refuse := func(err error) ([]vocab.Photo, bool, error) {
		if held { // what this letter stored alone goes with it
			if rerr := r.releasePhotos(out, holder); rerr != nil {
				r.logf("relay: %s: %v", op, rerr)
			}
		}
		return nil, false, err
	}
	for i, p := range photos {
		ref, err := r.putContent(bytes.NewReader(p.Data), holder)
		if err != nil {
			return refuse(ioErr(op, err))
		}
		sum := ref.Object.String()
		if seen[sum] {
			return refuse(invalid(op, fmt.Sprintf("photos[%d]", i), "is the same photo as an earlier one"))
		}
		seen[sum] = true
		out = append(out, vocab.Photo{SHA256: sum, Manifest: ref.Manifest.String(), Size: ref.Size,
			Type: infos[i].Type, Width: infos[i].Width, Height: infos[i].Height})
	}
	return out, held, nil
}

// InboundPhoto opens photo i (from 0) of inbound letter messageID, delivered or held for
// photo review, for staff to see it with the letter (GET
// /admin/v1/inbound/{message_id}/photos/{i}). The caller closes the reader.
func (r *Relay) InboundPhoto(messageID string, i int) (vocab.Photo, io.ReadCloser, error) {
	lp, rd, err := r.LetterPhotoOf(messageID, i)
	return lp.Photo, rd, err
}

func (r *Relay) hInboundPhoto(w http.ResponseWriter, req *http.Request) {
	i, err := strconv.Atoi(req.PathValue("index"))
	if err != nil {
		r.writeErr(w, invalid("get inbound photo", "index", "must be a photo's index, from 0"))
		return
	}
	p, rd, err := r.InboundPhoto(req.PathValue("message_id"), i)
	if err != nil {
		r.writeErr(w, err)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", p.Type)
	w.Header().Set("Content-Length", strconv.FormatInt(p.Size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rd); err != nil {
		r.logf("relay: send inbound photo: %v", err)
	}
}
