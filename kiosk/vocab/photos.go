package vocab

import (
	"fmt"
	"strings"
)

// Photo names one photo a family sent with a letter (Message.Photos): the content reference
// (docs/PROTOCOL.md "Content (photos and media)": the object's sha256, its manifest's sha256
// and its size, the same JSON names as kiosk/content.Ref) plus what the relay found it to be
// when it checked it (kiosk/photo). The bytes travel apart, as chunks; the letter only names
// them, so a letter with photos stays a small downlink item.
type Photo struct {
	SHA256   string `json:"sha256"`
	Manifest string `json:"manifest"`
	Size     int64  `json:"size"`
	Type     string `json:"type"` // PhotoJPEG or PhotoPNG
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// Photo types (the same words as kiosk/photo's).
const (
	PhotoJPEG = "image/jpeg"
	PhotoPNG  = "image/png"
)

// MaxLetterPhotos is the most photos one letter may carry (JPay's 5), whatever a policy says:
// Policy.PhotosPerLetter may only lower it.
const MaxLetterPhotos = 5

// MaxPhotoBytes is the largest photo file (JPay's 1 MB).
const MaxPhotoBytes = 1 << 20

// MaxPhotoKeepDays bounds Policy.PhotoKeepDays (ten years): a larger number is a typo, and
// 0 already keeps photos until the person deletes them.
const MaxPhotoKeepDays = 3650

// PhotosPerLetter is the most photos the policy lets one letter carry.
func (p Policy) PhotosPerLetter() int {
	if p.MaxPhotosPerLetter <= 0 || p.MaxPhotosPerLetter > MaxLetterPhotos {
		return MaxLetterPhotos
	}
	return p.MaxPhotosPerLetter
}

// ValidatePhotos checks a letter's photo references, the same on the relay and the terminal:
// at most max of them (MaxLetterPhotos if max <= 0), each reference well formed (two lowercase
// sha256 digests, a size within 1..MaxPhotoBytes, a photo type), none twice. It checks the
// names only; the bytes are checked by kiosk/photo when they are stored and when they are shown.
func ValidatePhotos(photos []Photo, max int) error {
	if max <= 0 || max > MaxLetterPhotos {
		max = MaxLetterPhotos
	}
	if len(photos) > max {
		return fmt.Errorf("photos: %d in one letter, limit %d", len(photos), max)
	}
	seen := make(map[string]bool, len(photos))
	for i, p := range photos {
		switch {
		case !isDigest(p.SHA256):
			return fmt.Errorf("photos[%d].sha256: not a lowercase hex sha256 digest", i)
		case !isDigest(p.Manifest):
			return fmt.Errorf("photos[%d].manifest: not a lowercase hex sha256 digest", i)
		case p.Size < 1 || p.Size > MaxPhotoBytes:
			return fmt.Errorf("photos[%d].size: %d is outside 1..%d", i, p.Size, MaxPhotoBytes)
		case p.Type != PhotoJPEG && p.Type != PhotoPNG:
			return fmt.Errorf("photos[%d].type: %q is not %s or %s", i, cutText(p.Type, 40), PhotoJPEG, PhotoPNG)
		case p.Width < 0 || p.Height < 0:
			return fmt.Errorf("photos[%d]: negative dimensions", i)
		case seen[p.SHA256]:
			return fmt.Errorf("photos[%d]: the same photo twice", i)
		}
		seen[p.SHA256] = true
	}
	return nil
}

// PhotoHolder is the content-store holder a letter's photos are retained under on a terminal.
func PhotoHolder(messageID string) string { return "msg:" + messageID }

func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) < 0
}

func cutText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
