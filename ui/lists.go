package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/theme"
)

// fillList fetches records off the UI goroutine and, if v is still the screen shown, fills list
// with the error in plain words, the empty text, or one row a record; after (optional) sees the
// records on the UI goroutine too. A late answer for a screen left behind is dropped.
func fillList[T any](k *Kiosk, v *view, w words, list *fyne.Container, emptyID string,
	fetch func() ([]T, error), row func(T) fyne.CanvasObject, after func([]T)) {
	k.run(func() func() {
		recs, err := fetch()
		return func() {
			if k.v != v {
				return
			}
			list.RemoveAll()
			if err != nil {
				list.Add(text(w.refusal(err), theme.Orange))
			}
			if after != nil {
				after(recs)
			}
			if len(recs) == 0 && err == nil {
				list.Add(label(w.T(emptyID)))
			}
			for _, r := range recs {
				list.Add(row(r))
			}
		}
	})
}

// withNote puts a confirmation of what was just done (a message sent, a contact asked for)
// above body; an empty note leaves body alone.
func withNote(body fyne.CanvasObject, note string) fyne.CanvasObject {
	if note == "" {
		return body
	}
	n := label(note)
	n.Importance = widget.SuccessImportance
	return container.NewBorder(n, nil, nil, nil, body)
}
