package relay

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/kiosk/vocab"
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
// stores those that pass, returning the references the letter carries. Nothing is stored
// unless every photo passes. The inmate is read here only for the facility and its policy;
// deliverInbound checks the inmate (and the photo count) again in its write.
func (r *Relay) storePhotos(op, inmateID string, photos []InboundPhoto) ([]vocab.Photo, error) {
	if len(photos) == 0 {
		return nil, nil
	}
	var in inmateRec
	var fac facilityRec
	err := r.view(op, func(tx *bolt.Tx) error {
		ok, err := getJSON(tx, bInmates, inmateID, &in)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "inmate_id", "unknown inmate %q", inmateID)
		}
		_, err = getJSON(tx, bFacilities, in.FacilityID, &fac)
		return err
	})
	if err != nil {
		return nil, err
	}
	pol := photo.DefaultPolicy()
	pol.MaxBytes = vocab.MaxPhotoBytes
	pol.MaxPerMessage = fac.policy().PhotosPerLetter()
	if err := pol.CheckCount(len(photos)); err != nil {
		return nil, &vocab.Error{Kind: vocab.KindInvalid, Op: op, Reason: vocab.Reason(photo.Reason(err)),
			Err: &FieldError{Field: "photos", Msg: err.Error()}}
	}
	infos := make([]photo.Info, len(photos))
	for i, p := range photos {
		if infos[i], err = pol.Check(p.Type, p.Data); err != nil {
			return nil, photoRefused(op, i, err)
		}
	}
	out := make([]vocab.Photo, 0, len(photos))
	seen := map[string]bool{}
	for i, p := range photos {
		ref, err := r.PutContent(bytes.NewReader(p.Data), in.FacilityID)
		if err != nil {
			return nil, ioErr(op, err)
		}
		sum := ref.Object.String()
		if seen[sum] {
			return nil, invalid(op, fmt.Sprintf("photos[%d]", i), "is the same photo as an earlier one")
		}
		seen[sum] = true
		out = append(out, vocab.Photo{SHA256: sum, Manifest: ref.Manifest.String(), Size: ref.Size,
			Type: infos[i].Type, Width: infos[i].Width, Height: infos[i].Height})
	}
	return out, nil
}
