package ui

import (
	"errors"
	"image/color"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/keyboard"
	"github.com/tether-kiosk/tether/ui/theme"
)

// showContacts lists the inmate's contacts with their states; each can be removed.
func (k *Kiosk) showContacts() { k.showContactsWith("") }

func (k *Kiosk) showContactsWith(note string) {
	s := k.sess
	v, w, status := k.sessionView("contacts")
	max := k.d.Policy().MaxContacts
	count := text("", theme.White)
	list := container.NewVBox()
	load := func() {
		id := s.inmateID
		fillList(k, v, w, list, "contacts.empty", func() ([]kiosk.Contact, error) { return k.d.Contacts(id) },
			func(c kiosk.Contact) fyne.CanvasObject {
				name := theme.Text(c.Name, theme.TextSize, theme.White, true)
				state := theme.Text(w.contactState(c), theme.TextSize, contactColor(c, w.now), false)
				lines := []fyne.CanvasObject{name, text(c.Email, theme.Grey), state}
				// Removing frees a slot but needs a new approval to undo: a second tap confirms.
				var remove *widget.Button
				remove = k.button(w.T("contacts.remove"), fynetheme.DeleteIcon(), func() {
					if remove.Importance != widget.DangerImportance {
						remove.Importance = widget.DangerImportance
						remove.SetText(w.T("contacts.remove_confirm"))
						return
					}
					k.removeContact(c)
				})
				row := container.NewBorder(nil, nil, nil, container.NewCenter(big(remove, 260, 60)), container.NewVBox(lines...))
				return card(theme.Panel, row)
			}, func(cs []kiosk.Contact) {
				live := 0
				for _, c := range cs {
					if kiosk.ContactLive(c, w.now) { // pending, invited and accepted count toward the limit
						live++
					}
				}
				count.Text = w.T("contacts.count", "n", strconv.Itoa(live), "max", strconv.Itoa(max))
				count.Refresh()
			})
	}
	v.onChanged = load
	add := big(k.primary(w.T("contacts.add"), fynetheme.ContentAddIcon(), k.showAddContact), 300, 64)
	top := container.NewBorder(nil, nil, count, add)
	var body fyne.CanvasObject = container.NewBorder(top, nil, nil, nil, k.vscroll(list))
	body = withNote(body, note)
	k.setScreen(v, k.frame(w, w.T("contacts.title"), k.showHome, status, body))
	load()
}

// contactColor: green when letters flow, orange while waiting (for staff or for the contact),
// red when turned away (declined by staff or the contact, blocked), grey otherwise (expired).
func contactColor(c kiosk.Contact, now time.Time) color.Color {
	switch c.State {
	case kiosk.ContactApproved:
		switch kiosk.InviteState(c, now) {
		case "", kiosk.InviteAccepted:
			return theme.Green
		case kiosk.InviteInvited:
			return theme.Orange
		case kiosk.InviteDeclined, kiosk.InviteBlocked:
			return theme.Red
		}
	case kiosk.ContactPending:
		return theme.Orange
	case kiosk.ContactDeclined:
		return theme.Red
	}
	return theme.Grey
}

func (k *Kiosk) removeContact(c kiosk.Contact) {
	s := k.sess
	w := k.words(s.lang)
	id := s.inmateID
	k.run(func() func() {
		err := k.d.RemoveContact(id, c.ID)
		return func() {
			if k.sess != s {
				return
			}
			if err != nil {
				k.showContactsWith(w.refusal(err))
				return
			}
			k.showContactsWith(w.T("contacts.removed", "name", c.Name))
		}
	})
}

// showAddContact asks for a name and an email; the contact is pending until approved.
func (k *Kiosk) showAddContact() {
	s := k.sess
	v, w, status := k.sessionView("add_contact")
	name := k.newEntry(false, w.T("contacts.name"))
	email := k.newEntry(false, w.T("contacts.email"))
	name.OnChanged = func(string) { k.touch() }
	email.OnChanged = func(string) { k.touch() }
	errT := label("")
	errT.Importance = widget.WarningImportance

	kb := keyboard.New(keyboard.Labels{Space: w.T("kbd.space")})
	target := &name.Entry
	kb.OnRune = func(r rune) { k.touch(); target.TypedRune(r) }
	kb.OnKey = func(n fyne.KeyName) {
		k.touch()
		if n == fyne.KeyReturn {
			if target == &name.Entry {
				k.win.Canvas().Focus(email)
			}
			return
		}
		target.TypedKey(&fyne.KeyEvent{Name: n})
	}
	name.onFocus = func() { target = &name.Entry }
	email.onFocus = func() { target = &email.Entry }

	var add *widget.Button
	add = k.primary(w.T("contacts.add"), fynetheme.ContentAddIcon(), func() {
		n, e := strings.TrimSpace(name.Text), strings.TrimSpace(email.Text)
		if n == "" {
			errT.SetText(w.T("contacts.err.name"))
			return
		}
		if _, err := kiosk.ValidateEmail(e); err != nil {
			errT.SetText(w.T("contacts.err.email"))
			return
		}
		add.Disable()
		id := s.inmateID
		k.run(func() func() {
			c, err := k.d.AddContact(id, n, e)
			return func() {
				if k.v != v {
					return
				}
				add.Enable()
				if err != nil {
					errT.SetText(contactError(w, err))
					return
				}
				k.showContactsWith(w.T("contacts.added", "name", c.Name))
			}
		})
	})
	form := container.NewVBox(
		theme.Text(w.T("contacts.name"), theme.TextSize, theme.White, true), name,
		theme.Text(w.T("contacts.email"), theme.TextSize, theme.White, true), email,
		container.NewBorder(nil, nil, nil, big(add, 300, 64), errT),
	)
	body := container.NewBorder(form, kb.Object(), nil, nil)
	k.setScreen(v, k.frame(w, w.T("contacts.add"), k.showContacts, status, body))
	k.win.Canvas().Focus(name)
}

// contactError says why a contact could not be added.
func contactError(w words, err error) string {
	var e *kiosk.Error
	if errors.As(err, &e) {
		switch {
		case e.Kind == kiosk.KindConflict:
			return w.T("contacts.err.duplicate")
		case e.Kind == kiosk.KindInvalid && e.Op == "email address":
			return w.T("contacts.err.email")
		case e.Kind == kiosk.KindInvalid && e.Op == "contact name":
			return w.T("contacts.err.name")
		}
	}
	return w.refusal(err)
}
