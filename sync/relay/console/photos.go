package console

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// Photo review in the console (docs/PROTOCOL.md "Photos on inbound letters"): a family's
// letter with photos that its facility holds for review (relay.Monitoring.PhotoReview) is in
// the review queue with each photo as a thumbnail, and the size, type and dimensions the
// relay found; approving or rejecting the letter applies to its photos. The photos are served
// here, from the relay's content store, only to a signed-in account of the letter's facility
// that reviews mail; anyone else gets 404 (not signed in, not their facility, no such photo)
// or 403 (their facility, another role), and the refusal is audited.

// photoCell is one photo of a held letter as the queue shows it.
type photoCell struct {
	Index         int
	Type          string // "JPEG", "PNG"
	Width, Height int
	Size          string // "981 KB"
}

// heldPhotoRow is one family's letter held for photo review.
type heldPhotoRow struct {
	relay.HeldInbound
	InmateName string
	Held       time.Duration
	Target     time.Duration
	Overdue    bool
	Cells      []photoCell
}

// photoType names a photo type for staff.
func photoType(t string) string {
	switch t {
	case vocab.PhotoJPEG:
		return "JPEG"
	case vocab.PhotoPNG:
		return "PNG"
	}
	return t
}

// byteSize says a size in bytes as staff read it.
func byteSize(n int64) string {
	switch {
	case n >= 1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%d KB", (n+500)/1000)
	}
	return fmt.Sprintf("%d bytes", n)
}

// heldPhotoRows lists the letters held for photo review in facs (those u serves), oldest
// first, timed against each facility's review target. It reads those facilities' queues only.
func (c *Console) heldPhotoRows(u who, facs []string, names map[string]relay.InmateInfo, targets map[string]time.Duration, now time.Time) ([]heldPhotoRow, error) {
	held, err := c.r.HeldInboundIn(facs...)
	if err != nil {
		return nil, err
	}
	var rows []heldPhotoRow
	for _, h := range held {
		if !u.Serves(h.FacilityID) {
			continue
		}
		d, target := now.Sub(h.ReceivedAt), targets[h.FacilityID]
		if target <= 0 {
			target = relay.DefaultReviewTarget
		}
		row := heldPhotoRow{HeldInbound: h, InmateName: names[h.InmateID].Name, Held: d, Target: target, Overdue: d > target}
		for i, p := range h.Photos {
			row.Cells = append(row.Cells, photoCell{Index: i, Type: photoType(p.Type), Width: p.Width, Height: p.Height, Size: byteSize(p.Size)})
		}
		rows = append(rows, row)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ReceivedAt.Before(rows[j].ReceivedAt) })
	return rows, nil
}

// letterPhoto serves photo {index} of a family's letter {id}. It does its own checks rather
// than need's: an image answers with a status, never a login form or an error page, and every
// refusal is audited (a reviewer's browser never asks for what the queue did not show it).
func (c *Console) letterPhoto(w http.ResponseWriter, req *http.Request) {
	id, idx := req.PathValue("id"), req.PathValue("index")
	target := id + "/" + idx
	u, ok := c.signedIn(req)
	if !ok {
		c.denyPhoto(w, who{Account: Account{Username: "(not signed in) " + clientAddr(req)}}, http.StatusNotFound, target, "", "no session")
		return
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || len(id) > 128 {
		http.Error(w, "no such photo", http.StatusNotFound)
		return
	}
	lp, rd, err := c.r.LetterPhotoOf(id, i)
	if err != nil {
		if vocab.KindOf(err) == vocab.KindNotFound || vocab.KindOf(err) == vocab.KindInvalid {
			c.denyPhoto(w, u, http.StatusNotFound, target, "", "no such photo")
			return
		}
		c.logf("console: photo %s: %v", target, err)
		http.Error(w, "the photo cannot be read now", http.StatusInternalServerError)
		return
	}
	defer rd.Close()
	switch {
	case !u.Serves(lp.FacilityID):
		// Another facility's letter is not named to this account at all: 404, as for one
		// that does not exist, so its existence is not told either.
		c.denyPhoto(w, u, http.StatusNotFound, target, lp.FacilityID, "not one of the account's facilities")
		return
	case !u.Has(RoleMailroom):
		c.denyPhoto(w, u, http.StatusForbidden, target, lp.FacilityID, "the account does not review mail")
		return
	}
	_ = c.store.touch(c.clock.Now(), u.token, u.sess)
	h := w.Header()
	h.Set("Content-Type", lp.Type)
	h.Set("Content-Length", strconv.FormatInt(lp.Size, 10))
	h.Set("Content-Disposition", "inline")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rd); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		c.logf("console: send photo %s: %v", target, err)
	}
}

func (c *Console) denyPhoto(w http.ResponseWriter, u who, status int, target, facility, why string) {
	c.audit(u, "photo.denied", target, facility, why)
	http.Error(w, strings.ToLower(http.StatusText(status)), status)
}

// heldPhoto finds a letter held for photo review of a facility the account serves.
func (c *Console) heldPhoto(u who, id string) (relay.HeldInbound, error) {
	h, err := c.r.HeldInboundOf(id)
	if err != nil {
		return relay.HeldInbound{}, err
	}
	if !u.Serves(h.FacilityID) {
		return relay.HeldInbound{}, errScope
	}
	if h.Status != vocab.MsgHeld {
		return relay.HeldInbound{}, fmt.Errorf("the letter to %s is no longer held (someone decided it already?)", h.InmateID)
	}
	return h, nil
}

func (c *Console) approvePhotos(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	h, err := c.heldPhoto(u, id)
	if err == nil {
		_, err = c.r.ApproveInbound(id)
	}
	if err == nil {
		c.audit(u, "photo_letter.approve", id, h.FacilityID, fmt.Sprintf("inmate %s; %d photos", h.InmateID, len(h.Photos)))
	}
	back(w, req, "review", nil, "Approved the letter to "+h.InmateID+" with its photos.", err)
}

func (c *Console) rejectPhotos(w http.ResponseWriter, req *http.Request, u who) {
	id := req.PathValue("id")
	code := req.PostForm.Get("reason")
	if !vocab.IsReviewReason(code) {
		back(w, req, "review", nil, "", fmt.Errorf("choose a reason from the list"))
		return
	}
	reason := code
	if note := strings.Join(strings.Fields(req.PostForm.Get("note")), " "); note != "" {
		reason += ": " + note
	}
	h, err := c.heldPhoto(u, id)
	if err == nil {
		_, err = c.r.RejectInbound(id, reason)
	}
	if err == nil {
		c.audit(u, "photo_letter.reject", id, h.FacilityID, fmt.Sprintf("inmate %s; %d photos; %s", h.InmateID, len(h.Photos), code))
	}
	back(w, req, "review", nil, "Rejected the letter to "+h.InmateID+"; its photos are deleted.", err)
}
