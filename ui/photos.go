package ui

import (
	"image"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/ui/theme"
)

// The photos of an open letter: a thumbnail each, full screen on tap. The bytes come from the
// content store (Deps.Content) once sync has them whole; until then the photo says it is still
// arriving. Every photo is checked again here (kiosk/photo: type, size, the pixels its header
// declares, before any decoding), so a photo the relay should have refused never reaches
// the decoder.

// thumbSide is a thumbnail's longest side on screen, in pixels.
const thumbSide = 180

// photoState is what the screen can show of one photo.
type photoState int

const (
	photoArriving   photoState = iota // not whole in the content store yet
	photoShown                        // decoded
	photoUnreadable                   // whole, but refused by the check or unreadable
	photoDeleted                      // the person deleted it (a tablet)
	photoExpired                      // older than the policy keeps photos (a tablet)
)

// goneState is how a photo the terminal recorded gone (kiosk.PhotosGone) shows.
func goneState(reason string) photoState {
	if reason == kiosk.PhotoExpired {
		return photoExpired
	}
	return photoDeleted
}

// loadPhoto reads and decodes one photo of a letter from the content store.
func (k *Kiosk) loadPhoto(p kiosk.Photo) (image.Image, photoState) {
	if k.media == nil {
		return nil, photoArriving
	}
	ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
	if err != nil {
		return nil, photoUnreadable
	}
	st, err := k.media.State(ref.Object)
	if err != nil {
		k.logf("ui: photo state: %v", err)
		return nil, photoArriving
	}
	if st != content.Whole {
		return nil, photoArriving
	}
	r, err := k.media.Open(ref.Object)
	if err != nil {
		k.logf("ui: open photo: %v", err)
		return nil, photoArriving // evicted between the two calls: it is wanted again
	}
	defer r.Close()
	img, _, err := photo.DefaultPolicy().Read(p.Type, r)
	if err != nil {
		k.logf("ui: photo %s refused: %s", p.SHA256, photo.Reason(err))
		return nil, photoUnreadable
	}
	return img, photoShown
}

// photoStrip is the thumbnails of letter m's photos for the reader, or nil when it has none.
// The photos are read and decoded on the worker, one at a time, and only their thumbnails
// kept (a photo may decode to 64 MB); until then each cell is an empty panel. Once loaded,
// loaded is told the photos still in transit, on the UI goroutine. open shows photo i.
func (k *Kiosk) photoStrip(w words, m kiosk.Message, open func(i int), loaded func(arriving []kiosk.Photo)) fyne.CanvasObject {
	if len(m.Photos) == 0 {
		return nil
	}
	cells := make([]fyne.CanvasObject, len(m.Photos))
	for i := range cells {
		cells[i] = card(theme.Panel)
	}
	grid := container.NewGridWrap(fyne.NewSize(thumbSide, thumbSide), cells...)
	photos := m.Photos
	holds := k.holdForViewing(m)
	keep := k.d.Policy().PhotoKeepDays
	k.run(func() func() {
		k.retainForViewing(holds)
		// A photo deleted or expired shows as such, never as one still arriving: its bytes
		// are gone for good.
		gone, err := k.d.PhotosGone(m.ID)
		if err != nil {
			k.logf("ui: photos gone: %v", err)
		}
		thumbs := make([]image.Image, len(photos))
		states := make([]photoState, len(photos))
		for i, p := range photos {
			if why := gone[p.SHA256]; why != "" {
				states[i] = goneState(why)
				continue
			}
			img, st := k.loadPhoto(p)
			states[i] = st
			if st == photoShown {
				thumbs[i] = photo.Thumbnail(img, photo.ThumbSide)
			}
		}
		return func() {
			var arriving []kiosk.Photo
			for i, st := range states {
				switch st {
				case photoShown:
					th := canvas.NewImageFromImage(thumbs[i])
					th.FillMode = canvas.ImageFillContain
					th.SetMinSize(fyne.NewSize(thumbSide, thumbSide))
					grid.Objects[i] = newTappable(th, func() { k.touch(); open(i) })
				case photoArriving:
					arriving = append(arriving, photos[i])
					grid.Objects[i] = photoPlaceholder(w.T("inbox.photo_arriving"))
				case photoDeleted:
					grid.Objects[i] = photoPlaceholder(w.T("inbox.photo_deleted"))
				case photoExpired:
					grid.Objects[i] = photoPlaceholder(w.T("inbox.photo_expired", "n", strconv.Itoa(keep)))
				default:
					grid.Objects[i] = photoPlaceholder(w.T("inbox.photo_unreadable"))
				}
			}
			grid.Refresh()
			loaded(arriving)
		}
	})
	title := theme.Text(w.T("inbox.photos", "n", strconv.Itoa(len(m.Photos))), theme.TextSize, theme.Grey, true)
	return container.NewVBox(title, grid)
}

// viewHold is a photo a kiosk's open letter retained: released when the session ends.
type viewHold struct {
	ref    content.Ref
	holder string
}

// holdForViewing lists, on a shared kiosk, the photos of letter m to retain while it is read
// (on the UI goroutine, so the session's list is the UI's alone). A tablet holds its letters'
// photos already (pinned by sync), and keeps them.
func (k *Kiosk) holdForViewing(m kiosk.Message) []viewHold {
	if k.tablet || k.media == nil {
		return nil
	}
	var out []viewHold
	for _, p := range m.Photos {
		ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
		if err != nil {
			continue
		}
		h := viewHold{ref: ref, holder: content.ViewingHolder + m.ID}
		out = append(out, h)
		k.viewing = append(k.viewing, h)
	}
	return out
}

// retainForViewing retains holds (on the worker) and wakes sync for those not whole.
func (k *Kiosk) retainForViewing(holds []viewHold) {
	want := false
	for _, h := range holds {
		if err := k.media.Retain(h.ref, h.holder, false); err != nil {
			k.logf("ui: retain photo: %v", err)
			continue
		}
		if st, err := k.media.State(h.ref.Object); err == nil && st != content.Whole {
			want = true
		}
	}
	if want && k.fetch != nil {
		k.fetch()
	}
}

// releaseViewed lets go of what this session's open letters retained on a kiosk: a photo no
// one else holds is deleted then, so nothing of a person's photos stays after logout.
func (k *Kiosk) releaseViewed() {
	held := k.viewing
	k.viewing = nil
	if len(held) == 0 {
		return
	}
	k.work.submit(func() {
		for _, h := range held {
			if err := k.media.Release(h.ref.Object, h.holder); err != nil {
				k.logf("ui: release photo: %v", err)
			}
		}
	})
}

// openPhoto decodes photo i of letter m on the worker and shows it full screen.
func (k *Kiosk) openPhoto(m kiosk.Message, i int, back func()) {
	p := m.Photos[i]
	k.run(func() func() {
		img, st := k.loadPhoto(p)
		if st != photoShown {
			return nil // evicted since the thumbnail was made: the letter says so on its next load
		}
		return func() { k.showPhoto(m, i, img, back) }
	})
}

// anyArrived reports whether one of the photos that were in transit is whole now: the reader
// checks on each tick (the content store tells the screens nothing) and shows it then.
func (k *Kiosk) anyArrived(photos []kiosk.Photo) bool {
	if k.media == nil {
		return false
	}
	for _, p := range photos {
		ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
		if err != nil {
			continue
		}
		if st, err := k.media.State(ref.Object); err == nil && st == content.Whole {
			return true
		}
	}
	return false
}

// photoPlaceholder stands where a photo cannot be shown yet (or at all), saying why.
func photoPlaceholder(why string) fyne.CanvasObject {
	t := canvas.NewText(why, theme.Grey)
	t.Alignment = fyne.TextAlignCenter
	t.TextSize = theme.CaptionSize
	return card(theme.Panel, container.NewCenter(t))
}

// showPhoto shows photo i of letter m full screen; back returns to the letter. On the person's
// own tablet a Delete button deletes it, after a second tap confirms.
func (k *Kiosk) showPhoto(m kiosk.Message, i int, img image.Image, back func()) {
	v, w, status := k.sessionView("photo")
	full := canvas.NewImageFromImage(img)
	full.FillMode = canvas.ImageFillContain
	full.ScaleMode = canvas.ImageScaleSmooth
	title := w.T("photo.title", "i", strconv.Itoa(i+1), "n", strconv.Itoa(len(m.Photos)))
	var body fyne.CanvasObject = newTappable(full, func() { k.touch(); back() })
	if k.tablet {
		var del *widget.Button
		del = k.button(w.T("photo.delete"), fynetheme.DeleteIcon(), func() {
			if del.Importance != widget.DangerImportance {
				del.Importance = widget.DangerImportance
				del.SetText(w.T("photo.delete_confirm"))
				return
			}
			k.deletePhoto(m, m.Photos[i], back)
		})
		body = container.NewBorder(nil, container.NewCenter(big(del, 360, 64)), nil, nil, body)
	}
	k.setScreen(v, k.frame(w, title, back, status, body))
}

// deletePhoto deletes photo p of letter m on the person's tablet and frees its bytes, then
// goes back to the letter, which says the photo was deleted (a refusal, which only a session
// ended meanwhile can cause, is logged and the letter shows the photo still).
func (k *Kiosk) deletePhoto(m kiosk.Message, p kiosk.Photo, back func()) {
	s := k.sess
	id := s.inmateID
	k.run(func() func() {
		err := k.d.DeletePhoto(id, m.ID, p.SHA256)
		if err == nil {
			k.releaseGone()
		}
		return func() {
			if k.sess != s {
				return
			}
			if err != nil {
				k.logf("ui: delete photo: %v", err)
			}
			back()
		}
	})
}

// releaseGone lets the content store drop the photos recorded gone (on the worker). A failure
// is logged: the photo already shows deleted, and kioskd's daily check releases it again.
func (k *Kiosk) releaseGone() {
	if k.media == nil {
		return
	}
	if _, err := k.d.ReleaseGonePhotos(k.media); err != nil {
		k.logf("ui: release deleted photos: %v", err)
	}
}
