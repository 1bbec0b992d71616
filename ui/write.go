package ui

import (
	"strings"
	"time"
	"unicode/utf8"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/keyboard"
	"github.com/tether-kiosk/tether/ui/theme"
)

// compose is the message being written; it outlives the Write screen until sent or logout.
type compose struct {
	peer, peerName, subject, body, replyTo string

	dirty     bool          // changed since the last save began
	saving    bool          // a save is on the worker
	saved     bool          // at least one save landed
	began     bool          // at least one save began (lastSave is set)
	flush     bool          // leaving the screen: save what is left once the current save lands
	lastSave  time.Duration // monotonic time the last save began
	savedAt   time.Time     // wall time the last save landed
	keyboard  bool          // on-screen keyboard shown
	onSaved   func()        // the Write screen's "draft saved" mark, while it shows
	sendError error
	noteID    string // a translation id shown above the letter (why it opened instead of a reply)
}

// pendingDraft is the draft to save if anything changed since the last save.
func (c *compose) pendingDraft(inmateID string) (kiosk.Draft, bool) {
	if !c.dirty {
		return kiosk.Draft{}, false
	}
	return c.draft(inmateID), true
}

func (c *compose) draft(inmateID string) kiosk.Draft {
	return kiosk.Draft{InmateID: inmateID, Peer: c.peer, Subject: c.subject, Body: c.body, ReplyTo: c.replyTo}
}

// openWrite lists the letters not sent (one draft per recipient), the one last on screen
// among them, above the recipients to start or continue one.
func (k *Kiosk) openWrite() {
	if c := k.sess.compose; c != nil {
		k.leaveCompose(c) // saved before the list is read: the worker keeps the order
		k.sess.compose = nil
	}
	k.chooseRecipient()
}

// composeFrom makes the compose of a saved draft; name is its recipient as the chooser says.
func composeFrom(d kiosk.Draft, name, noteID string) *compose {
	return &compose{peer: d.Peer, peerName: name, subject: d.Subject, body: d.Body, replyTo: d.ReplyTo,
		keyboard: true, saved: true, savedAt: d.UpdatedAt, noteID: noteID}
}

// leaveCompose saves what is left of c (the letter being put aside for another) on the worker,
// after any save of it already there; from then on the new letter is the one on screen.
func (k *Kiosk) leaveCompose(c *compose) {
	s := k.sess
	if d, ok := c.pendingDraft(s.inmateID); ok {
		k.work.submit(func() {
			if err := k.d.SaveDraft(d); err != nil {
				k.logf("ui: save draft: %v", err)
			}
		})
	}
	c.dirty, c.flush, c.onSaved = false, false, nil
}

// reply starts a message to the sender of m. A letter already begun to that sender (on screen
// or saved) is opened instead, with a note, rather than written over; one to someone else is
// kept as their draft.
func (k *Kiosk) reply(m kiosk.Message) {
	s := k.sess
	w := k.words(s.lang)
	subj := m.Subject
	if subj != "" && !strings.HasPrefix(subj, "Re: ") {
		subj = w.T("write.reply_subject", "subject", subj)
	}
	start := func() {
		s.compose = &compose{peer: m.Peer, peerName: m.PeerName, subject: subj, replyTo: m.ID, keyboard: true, dirty: true}
		k.showWrite()
	}
	if c := s.compose; c != nil {
		if c.peer == m.Peer {
			switch {
			case c.replyTo == m.ID:
				k.showWrite() // this very reply, as far as it got
			case strings.TrimSpace(c.body) != "":
				c.noteID = "write.finish_first"
				k.showWrite()
			default:
				start()
			}
			return
		}
		k.leaveCompose(c)
		s.compose = nil
	}
	id := s.inmateID
	k.run(func() func() {
		d, ok, err := k.d.DraftTo(id, m.Peer)
		return func() {
			if k.sess != s {
				return
			}
			if err != nil {
				k.logf("ui: load draft before reply: %v", err)
			}
			switch {
			case ok && d.ReplyTo == m.ID:
				s.compose = composeFrom(d, m.PeerName, "")
				k.showWrite()
			case ok && strings.TrimSpace(d.Body) != "":
				s.compose = composeFrom(d, m.PeerName, "write.finish_first")
				k.showWrite()
			default:
				start()
			}
		}
	})
}

// chooseRecipient lists the saved drafts and whom the inmate may write to.
func (k *Kiosk) chooseRecipient() {
	s := k.sess
	id := s.inmateID
	k.run(func() func() {
		rs, err := k.d.Recipients(id)
		ds, derr := k.d.Drafts(id)
		if derr != nil {
			k.logf("ui: list drafts: %v", derr)
		}
		return func() {
			if k.sess == s {
				k.showChooser(rs, ds, err)
			}
		}
	})
}

// showChooser lists the drafts, newest first, then the recipients. Tapping a draft, or a
// recipient who has one, opens that letter; from the Write screen, a recipient with none takes
// the letter on screen.
func (k *Kiosk) showChooser(rs []kiosk.Recipient, ds []kiosk.Draft, err error) {
	s := k.sess
	v, w, status := k.sessionView("choose")
	list := container.NewVBox()
	if err != nil {
		list.Add(text(w.refusal(err), theme.Orange))
	}
	names := map[string]string{}
	for _, r := range rs {
		names[r.ID] = w.recipientName(r)
	}
	drafts := map[string]kiosk.Draft{}
	open := func(d kiosk.Draft) {
		if c := s.compose; c != nil {
			if c.peer == d.Peer {
				k.showWrite()
				return
			}
			k.leaveCompose(c)
		}
		s.compose = composeFrom(d, names[d.Peer], "")
		k.showWrite()
	}
	var mine []kiosk.Draft
	for _, d := range ds {
		if _, ok := names[d.Peer]; !ok {
			continue // a draft to someone no longer allowed stays saved, unlisted
		}
		drafts[d.Peer] = d
		// On a shared kiosk a PREA report in progress is not listed, as it is not in Sent:
		// choosing "PREA report" opens it.
		if k.tablet || d.Peer != kiosk.PREAChannel {
			mine = append(mine, d)
		}
	}
	if len(mine) > 0 {
		list.Add(theme.Text(w.T("write.drafts"), theme.SubHeadingSize, theme.Yellow, true))
		for _, d := range mine {
			d := d
			to := theme.Text(w.T("sent.to", "name", names[d.Peer]), theme.TextSize, theme.White, true)
			when := text(w.T("write.draft_saved", "time", w.when(d.UpdatedAt)), theme.Grey)
			lines := []fyne.CanvasObject{container.NewBorder(nil, nil, nil, when, to)}
			if first := firstLine(d.Body, 80); strings.TrimSpace(first) != "" {
				lines = append(lines, text(first, theme.Grey))
			}
			list.Add(newTappable(card(theme.Panel, lines...), func() { k.touch(); open(d) }))
		}
		list.Add(theme.Text(w.T("write.new_to"), theme.SubHeadingSize, theme.Yellow, true))
	}
	pol := k.d.Policy()
	for _, r := range rs {
		r := r
		if s.info.Free && r.Kind != "prea" && !(r.Kind == "department" && pol.Free(kiosk.FreeDepartments)) {
			continue // paid use: not offered in a free session (the domain refuses it too)
		}
		name := names[r.ID]
		b := k.button(name, nil, func() {
			c := s.compose
			if d, ok := drafts[r.ID]; ok && (c == nil || c.peer != r.ID) {
				open(d)
				return
			}
			if c == nil {
				c = &compose{keyboard: true}
				s.compose = c
			}
			if c.peer != r.ID {
				if c.peer != "" && (c.began || c.saved) {
					// The letter moves to r: its draft under the old recipient goes.
					old := kiosk.Draft{InmateID: s.inmateID, Peer: c.peer}
					k.work.submit(func() {
						if err := k.d.SaveDraft(old); err != nil {
							k.logf("ui: move draft: %v", err)
						}
					})
				}
				c.peer, c.peerName, c.dirty = r.ID, name, true
			}
			k.showWrite()
		})
		b.Alignment = widget.ButtonAlignLeading
		if r.Kind == "prea" {
			b.Importance = widget.WarningImportance
		}
		list.Add(big(b, 600, 64))
	}
	k.setScreen(v, k.frame(w, w.T("write.choose"), k.showHome, status, k.vscroll(list)))
}

// showWrite is the compose screen: recipient, subject, body, countdown, draft mark, keyboard.
func (k *Kiosk) showWrite() {
	s := k.sess
	c := s.compose
	v, w, status := k.sessionView("write")
	max := k.d.Policy().MaxMessageChars

	to := k.button(c.peerName, fynetheme.AccountIcon(), k.chooseRecipient)
	if c.peerName == "" {
		to.SetText(w.T("write.choose"))
	}
	to.Alignment = widget.ButtonAlignLeading
	subject := k.newEntry(false, w.T("write.subject"))
	subject.SetText(c.subject)
	body := k.newEntry(true, w.T("write.body"))
	body.SetText(c.body)

	count := theme.Text("", theme.TextSize, theme.White, true)
	mark := theme.Text("", theme.TextSize, theme.Green, false)
	errT := label("")
	errT.Importance = widget.WarningImportance
	updateCount := func() {
		n := utf8.RuneCountInString(c.body)
		if n <= max {
			count.Text, count.Color = w.T("write.left", "n", w.num(max-n), "max", w.num(max)), theme.White
		} else {
			count.Text, count.Color = w.T("write.over", "n", w.num(n-max), "max", w.num(max)), theme.Red
		}
		count.Refresh()
	}
	updateMark := func() {
		if c.saved {
			mark.Text, mark.Color = w.T("write.draft_saved", "time", w.clock(c.savedAt)), theme.Green
		} else {
			mark.Text, mark.Color = w.T("write.draft_unsaved"), theme.Grey
		}
		mark.Refresh()
	}
	showErr := func(msg string) {
		errT.SetText(msg)
	}
	if c.sendError != nil {
		showErr(k.sendRefusal(w, c.peer, c.sendError))
	} else if c.noteID != "" {
		showErr(w.T(c.noteID))
		c.noteID = ""
	}
	updateCount()
	updateMark()
	c.onSaved = updateMark

	subject.OnChanged = func(t string) {
		k.touch()
		c.subject, c.dirty = t, true
		k.saveDraftIfDue(false)
	}
	body.OnChanged = func(t string) {
		k.touch()
		c.body, c.dirty, c.sendError = t, true, nil
		updateCount()
		k.saveDraftIfDue(false)
	}

	kb := keyboard.New(keyboard.Labels{Space: w.T("kbd.space")})
	target := &body.Entry
	kb.OnRune = func(r rune) { k.touch(); target.TypedRune(r) }
	kb.OnKey = func(n fyne.KeyName) { k.touch(); target.TypedKey(&fyne.KeyEvent{Name: n}) }
	subject.onFocus = func() { target = &subject.Entry }
	body.onFocus = func() { target = &body.Entry }
	kbObj := kb.Object()
	if !c.keyboard {
		kbObj.Hide()
	}
	var toggle *widget.Button
	toggle = k.button("", fynetheme.MenuIcon(), func() {
		c.keyboard = !c.keyboard
		if c.keyboard {
			kbObj.Show()
			toggle.SetText(w.T("write.keyboard_hide"))
		} else {
			kbObj.Hide()
			toggle.SetText(w.T("write.keyboard_show"))
		}
	})
	toggle.SetText(w.T(map[bool]string{true: "write.keyboard_hide", false: "write.keyboard_show"}[c.keyboard]))

	var send *widget.Button
	send = k.primary(w.T("write.send"), fynetheme.MailSendIcon(), func() {
		switch {
		case c.peer == "":
			showErr(w.T("write.err.no_recipient"))
			return
		case strings.TrimSpace(c.body) == "":
			showErr(w.T("write.err.empty"))
			return
		case utf8.RuneCountInString(c.body) > max:
			showErr(w.T("write.err.too_long", "n", w.num(utf8.RuneCountInString(c.body)-max)))
			return
		}
		send.Disable()
		showErr(w.T("write.sending"))
		k.send(c, func(err error) {
			if k.v != v {
				return // the inmate left the screen; the error shows when they come back
			}
			send.Enable()
			showErr(k.sendRefusal(w, c.peer, err))
		})
	})

	toRow := container.NewBorder(nil, nil, theme.Text(w.T("write.to"), theme.SubHeadingSize, theme.White, true), nil, big(to, 400, 56))
	actions := container.NewHBox(big(toggle, 220, 60), big(send, 220, 60))
	info := container.NewBorder(nil, nil, container.NewVBox(count, mark), actions, errT)
	top := container.NewVBox(toRow, subject)
	if price := k.priceLine(w, c.peer); price != nil { // stamps.go: the price before Send
		top.Add(price)
	}
	bottom := container.NewVBox(info, kbObj)
	form := container.NewBorder(top, bottom, nil, nil, body)
	back := func() {
		k.saveDraftIfDue(true)
		c.onSaved = nil
		k.showHome()
	}
	k.setScreen(v, k.frame(w, w.T("write.title"), back, status, form))
	k.win.Canvas().Focus(body)
}

// send queues the message; on success the Sent screen shows it with its state.
func (k *Kiosk) send(c *compose, fail func(error)) {
	s := k.sess
	id := s.inmateID
	peer, subject, body := c.peer, c.subject, c.body
	k.run(func() func() {
		m, err := k.d.Send(id, peer, subject, body)
		return func() {
			if k.sess != s {
				return
			}
			if err != nil {
				c.sendError = err
				if s.compose == c {
					fail(err)
				}
				return
			}
			if s.compose == c {
				s.compose = nil
			}
			k.refreshCounts()
			k.refreshSession() // a stamp moved the balance
			w := k.words(s.lang)
			if m.Peer == kiosk.PREAChannel {
				// Not listed in Sent on a kiosk: the reference is what the person keeps.
				k.showSentWith(w.T("prea.sent") + " " + w.T("prea.reference", "ref", kiosk.PREAReference(m.ID)) + ". " + w.T("prea.keep"))
				return
			}
			k.showSentWith(w.T("write.queued", "name", m.PeerName))
		}
	})
}

// saveDraftIfDue saves the draft being typed at most every Policy.DraftSaveEvery; force
// saves now whatever the interval (leaving the screen).
func (k *Kiosk) saveDraftIfDue(force bool) {
	s := k.sess
	if s == nil || s.compose == nil {
		return
	}
	c := s.compose
	if c.saving && force {
		c.flush = true // save again as soon as the one on the disk lands
	}
	if !c.dirty || c.saving {
		return
	}
	now := k.clk.Mono()
	if !force && c.began && now-c.lastSave < k.d.Policy().DraftSaveEvery.D() {
		return // the tick after the interval saves it
	}
	d := c.draft(s.inmateID)
	c.dirty, c.saving, c.began, c.lastSave = false, true, true, now
	k.run(func() func() {
		err := k.d.SaveDraft(d)
		return func() {
			c.saving = false
			if err != nil {
				k.logf("ui: save draft: %v", err)
				c.dirty = true
				return
			}
			c.saved, c.savedAt = true, k.clk.Now()
			if c.onSaved != nil {
				c.onSaved()
			}
			if c.flush {
				c.flush = false
				k.saveDraftIfDue(true)
			}
		}
	})
}
