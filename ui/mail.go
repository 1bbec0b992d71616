package ui

import (
	"image/color"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

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

// inboxRow is one entry of the inbox: a letter on its own, or a request the inmate wrote
// with the answers it got, newest answer first, shown together so an answer is read where
// the question is.
type inboxRow struct {
	request *kiosk.Message // nil: one letter, replies[0]
	replies []kiosk.Message
}

// inboxRows groups the inbox (newest first) by the request each answer replies to. An
// answer whose request this terminal does not hold (history not fetched, or offline) stands
// alone and says it answers a request.
func inboxRows(inbox, sent []kiosk.Message) []inboxRow {
	requests := make(map[string]*kiosk.Message, len(sent))
	for i := range sent {
		requests[sent[i].ID] = &sent[i]
	}
	var rows []inboxRow
	at := map[string]int{} // request id -> its row
	for _, m := range inbox {
		req := requests[m.ReplyTo]
		if m.ReplyTo == "" || req == nil {
			rows = append(rows, inboxRow{replies: []kiosk.Message{m}})
			continue
		}
		if i, ok := at[req.ID]; ok {
			rows[i].replies = append(rows[i].replies, m)
			continue
		}
		at[req.ID] = len(rows)
		rows = append(rows, inboxRow{request: req, replies: []kiosk.Message{m}})
	}
	return rows
}

// showInbox lists received messages, newest first, an answer under the request it answers;
// a tap opens one.
func (k *Kiosk) showInbox() {
	s := k.sess
	v, w, status := k.sessionView("inbox")
	list := container.NewVBox()
	load := func() {
		id := s.inmateID
		fillList(k, v, w, list, "inbox.empty", func() ([]inboxRow, error) {
			inbox, err := k.d.Inbox(id)
			if err != nil {
				return nil, err
			}
			sent, err := k.d.Sent(id)
			if err != nil {
				k.logf("ui: read sent for threads: %v", err)
			}
			return inboxRows(inbox, sent), nil
		}, func(r inboxRow) fyne.CanvasObject {
			if r.request == nil {
				m := r.replies[0]
				return k.inboxCard(w, m, nil, m.ReplyTo != "")
			}
			req := *r.request
			head := newTappable(card(theme.Panel,
				theme.Text(w.T("inbox.request", "name", req.PeerName, "time", w.stamp(req.CreatedAt)), theme.CaptionSize, theme.Grey, true),
				text(firstLine(req.Subject+" "+req.Body, 80), theme.White)),
				func() { k.touch(); k.showSentReader(req, k.showInbox) })
			rows := []fyne.CanvasObject{head}
			for _, m := range r.replies {
				indent := canvas.NewRectangle(color.Transparent)
				indent.SetMinSize(fyne.NewSize(48, 1))
				rows = append(rows, container.NewBorder(nil, nil, indent, nil, k.inboxCard(w, m, &req, false)))
			}
			return container.NewVBox(rows...)
		}, nil)
	}
	v.onChanged = load
	k.setScreen(v, k.frame(w, w.T("inbox.title"), k.showHome, status, k.vscroll(list)))
	load()
}

// inboxCard is one received letter in the list; req is the request it answers, if held.
// orphan marks an answer to a request this terminal does not hold.
func (k *Kiosk) inboxCard(w words, m kiosk.Message, req *kiosk.Message, orphan bool) fyne.CanvasObject {
	who := w.T("inbox.from", "name", m.PeerName)
	if req != nil || orphan {
		who = w.T("inbox.answer", "name", m.PeerName)
	}
	from := theme.Text(who, theme.TextSize, theme.White, true)
	when := text(w.stamp(m.CreatedAt), theme.Grey)
	lines := []fyne.CanvasObject{container.NewBorder(nil, nil, nil, when, from)}
	if !m.Read {
		lines = append(lines, theme.Text(w.T("inbox.new"), theme.CaptionSize, theme.Yellow, true))
	}
	if orphan {
		lines = append(lines, theme.Text(w.T("inbox.answer_elsewhere"), theme.CaptionSize, theme.Grey, false))
	}
	if m.Subject != "" {
		lines = append(lines, text(m.Subject, theme.White))
	}
	lines = append(lines, text(firstLine(m.Body, 80), theme.Grey))
	if len(m.Photos) > 0 {
		lines = append(lines, theme.Text(w.T("inbox.photos", "n", strconv.Itoa(len(m.Photos))), theme.CaptionSize, theme.Yellow, false))
	}
	return newTappable(card(theme.Panel, lines...), func() { k.touch(); k.showReader(m, req) })
}

// showReader shows one received message, under the request it answers when there is one,
// and marks it read.
func (k *Kiosk) showReader(m kiosk.Message, req *kiosk.Message) {
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
	who := w.T("inbox.from", "name", m.PeerName)
	if m.ReplyTo != "" {
		who = w.T("inbox.answer", "name", m.PeerName)
	}
	from := theme.Text(who, theme.SubHeadingSize, theme.White, true)
	when := text(w.T("inbox.received", "time", w.stamp(m.CreatedAt)), theme.Grey)
	head := []fyne.CanvasObject{from, when}
	if m.Subject != "" {
		head = append(head, theme.Text(m.Subject, theme.SubHeadingSize, theme.Yellow, true))
	}
	parts := []fyne.CanvasObject{card(theme.Panel, label(m.Body))}
	again := func() { m.Read = true; k.showReader(m, req) }
	strip := k.photoStrip(w, m, func(i int) { k.openPhoto(m, i, again) }, func(arriving []kiosk.Photo) {
		if len(arriving) > 0 {
			v.onTick = func() {
				if k.anyArrived(arriving) {
					again()
				}
			}
		}
	})
	if strip != nil {
		parts = append(parts, strip)
	}
	if req != nil {
		parts = append(parts,
			theme.Text(w.T("inbox.request", "name", req.PeerName, "time", w.stamp(req.CreatedAt)), theme.TextSize, theme.Grey, true),
			card(theme.Panel, label(strings.TrimSpace(req.Subject+"\n"+req.Body))))
	}
	reply := big(k.primary(w.T("inbox.reply"), fynetheme.MailReplyIcon(), func() { k.reply(m) }), 260, 72)
	actions := container.NewHBox(reply)
	if pb := k.printButton(w, letterDoc(w, who, m), func() { m.Read = true; k.showReader(m, req) }); pb != nil {
		actions.Add(pb)
	}
	if k.tablet {
		// The person's own tablet keeps letters until they delete them: a second tap confirms.
		var del *widget.Button
		del = k.button(w.T("inbox.delete"), fynetheme.DeleteIcon(), func() {
			if del.Importance != widget.DangerImportance {
				del.Importance = widget.DangerImportance
				del.SetText(w.T("inbox.delete_confirm"))
				return
			}
			k.deleteLetter(m)
		})
		actions.Add(big(del, 420, 72))
	}
	content := container.NewBorder(container.NewVBox(head...), actions, nil, nil,
		k.vscroll(container.NewVBox(parts...)))
	k.setScreen(v, k.frame(w, w.T("inbox.title"), k.showInbox, status, content))
}

// deleteLetter deletes letter m with its photos on the person's tablet, frees the photos'
// bytes, and shows the inbox.
func (k *Kiosk) deleteLetter(m kiosk.Message) {
	s := k.sess
	id := s.inmateID
	k.run(func() func() {
		err := k.d.DeleteLetter(id, m.ID)
		if err == nil {
			k.releaseGone()
		}
		return func() {
			if k.sess != s {
				return
			}
			if err != nil {
				k.logf("ui: delete letter: %v", err)
			}
			k.showInbox()
		}
	})
}

// showSentReader shows one sent letter in full, with its state; back returns where it was
// opened from.
func (k *Kiosk) showSentReader(m kiosk.Message, back func()) {
	v, w, status := k.sessionView("sent_reader")
	to := theme.Text(w.T("sent.to", "name", m.PeerName), theme.SubHeadingSize, theme.White, true)
	when := text(w.T("sent.written", "time", w.stamp(m.CreatedAt)), theme.Grey)
	state := theme.Text(w.msgState(m), theme.TextSize, stateColor(m.State), true)
	head := []fyne.CanvasObject{to, when, state}
	if m.Subject != "" {
		head = append(head, theme.Text(m.Subject, theme.SubHeadingSize, theme.Yellow, true))
	}
	var actions fyne.CanvasObject
	if pb := k.printButton(w, letterDoc(w, w.T("sent.to", "name", m.PeerName), m), func() { k.showSentReader(m, back) }); pb != nil {
		actions = container.NewHBox(pb)
	}
	content := container.NewBorder(container.NewVBox(head...), actions, nil, nil, k.vscroll(card(theme.Panel, label(m.Body))))
	k.setScreen(v, k.frame(w, w.T("sent.title"), back, status, content))
}

func (k *Kiosk) showSent() { k.showSentWith("") }

// showSentWith lists sent messages with their states; note confirms a send just made.
func (k *Kiosk) showSentWith(note string) {
	s := k.sess
	v, w, status := k.sessionView("sent")
	list := container.NewVBox()
	load := func() {
		id := s.inmateID
		fetched := true
		fillList(k, v, w, list, "sent.empty", func() ([]sentLetter, error) {
			// A shared kiosk gets the person's letters from other terminals at login; until
			// they come (offline, or not yet) it shows what it holds and says so.
			fetched = k.tablet || k.d.HistoryFetched(id)
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
				if m.Body == "" {
					return card(theme.Panel, lines...) // a PREA report's text left the terminal
				}
				lines = append(lines, text(firstLine(m.Body, 80), theme.Grey))
				return newTappable(card(theme.Panel, lines...), func() { k.touch(); k.showSentReader(m, k.showSent) })
			}, func([]sentLetter) {
				// Online, the history is on its way or there is none (the relay sends none for
				// someone with no letters); offline, it cannot come.
				if !fetched && !k.online {
					list.Add(text(w.T("sent.history_unavailable"), theme.Orange))
				}
			})
	}
	v.onChanged, v.onLink = load, load
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

// letterDoc is a letter as it prints: who and when above the subject and the text.
func letterDoc(w words, who string, m kiosk.Message) PrintDoc {
	title := m.Subject
	if title == "" {
		title = who
	}
	return PrintDoc{Title: title, Body: who + "\n" + w.stamp(m.CreatedAt) + "\n\n" + m.Body}
}
