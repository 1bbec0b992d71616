package ui

import (
	"image/color"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// firstLine is a short preview of a body for lists.
func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// showInbox lists received messages, newest first; a tap opens one.
func (k *Kiosk) showInbox() {
	s := k.sess
	v, w, status := k.sessionView("inbox")
	list := container.NewVBox()
	load := func() {
		id := s.inmateID
		fillList(k, v, w, list, "inbox.empty", func() ([]kiosk.Message, error) { return k.d.Inbox(id) },
			func(m kiosk.Message) fyne.CanvasObject {
				from := theme.Text(w.T("inbox.from", "name", m.PeerName), theme.TextSize, theme.White, true)
				when := text(w.stamp(m.CreatedAt), theme.Grey)
				head := container.NewBorder(nil, nil, nil, when, from)
				lines := []fyne.CanvasObject{head}
				if !m.Read {
					lines = append(lines, theme.Text(w.T("inbox.new"), theme.CaptionSize, theme.Yellow, true))
				}
				if m.Subject != "" {
					lines = append(lines, text(m.Subject, theme.White))
				}
				lines = append(lines, text(firstLine(m.Body, 80), theme.Grey))
				return newTappable(card(theme.Panel, lines...), func() { k.touch(); k.showReader(m) })
			}, nil)
	}
	v.onChanged = load
	k.setScreen(v, k.frame(w, w.T("inbox.title"), k.showHome, status, k.vscroll(list)))
	load()
}

// showReader shows one received message and marks it read.
func (k *Kiosk) showReader(m kiosk.Message) {
	s := k.sess
	v, w, status := k.sessionView("reader")
	if !m.Read {
		id := s.inmateID
		k.run(func() func() {
			if err := k.d.MarkRead(id, m.ID); err != nil {
				k.logf("ui: mark read: %v", err)
			}
			return nil
		})
	}
	from := theme.Text(w.T("inbox.from", "name", m.PeerName), theme.SubHeadingSize, theme.White, true)
	when := text(w.T("inbox.received", "time", w.stamp(m.CreatedAt)), theme.Grey)
	head := []fyne.CanvasObject{from, when}
	if m.Subject != "" {
		head = append(head, theme.Text(m.Subject, theme.SubHeadingSize, theme.Yellow, true))
	}
	body := label(m.Body)
	reply := big(k.primary(w.T("inbox.reply"), fynetheme.MailReplyIcon(), func() { k.reply(m) }), 260, 72)
	content := container.NewBorder(container.NewVBox(head...), container.NewHBox(reply), nil, nil,
		k.vscroll(card(theme.Panel, body)))
	k.setScreen(v, k.frame(w, w.T("inbox.title"), k.showInbox, status, content))
}

func (k *Kiosk) showSent() { k.showSentWith("") }

// showSentWith lists sent messages with their states; note confirms a send just made.
func (k *Kiosk) showSentWith(note string) {
	s := k.sess
	v, w, status := k.sessionView("sent")
	list := container.NewVBox()
	load := func() {
		id := s.inmateID
		fillList(k, v, w, list, "sent.empty", func() ([]sentLetter, error) {
			all, err := k.d.Sent(id)
			var ms []kiosk.Message
			for _, m := range all {
				if k.listed(m) {
					ms = append(ms, m)
				}
			}
			return k.sentLetters(id, ms), err // stamps.go
		},
			func(l sentLetter) fyne.CanvasObject {
				m := l.Message
				to := theme.Text(w.T("sent.to", "name", m.PeerName), theme.TextSize, theme.White, true)
				when := text(w.stamp(m.CreatedAt), theme.Grey)
				state := theme.Text(w.msgState(m), theme.TextSize, stateColor(m.State), true)
				lines := []fyne.CanvasObject{container.NewBorder(nil, nil, nil, when, to), state}
				if r := refundLine(w, l); r != nil {
					lines = append(lines, r)
				}
				if m.Subject != "" {
					lines = append(lines, text(m.Subject, theme.White))
				}
				if m.Body != "" {
					lines = append(lines, text(firstLine(m.Body, 80), theme.Grey))
				}
				return card(theme.Panel, lines...)
			}, nil)
	}
	v.onChanged = load
	var body fyne.CanvasObject = k.vscroll(list)
	body = withNote(body, note)
	k.setScreen(v, k.frame(w, w.T("sent.title"), k.showHome, status, body))
	load()
}

// stateColor: green delivered, orange held, red rejected, white on the way.
func stateColor(state string) color.Color {
	switch state {
	case kiosk.MsgDelivered:
		return theme.Green
	case kiosk.MsgHeld:
		return theme.Orange
	case kiosk.MsgRejected:
		return theme.Red
	}
	return theme.White
}
