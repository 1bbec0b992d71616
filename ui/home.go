package ui

import (
	"image/color"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/theme"
)

// showHome is the session's start screen: who, money, time, mail, and the big tiles.
func (k *Kiosk) showHome() {
	s := k.sess
	w := k.words(s.lang)
	v := &view{name: "home", lang: s.lang}

	hello := heading(w.T("home.hello", "name", s.name))
	balance := theme.Text("", theme.SubHeadingSize, theme.White, true)
	usage := text("", theme.White)
	left := text("", theme.White)
	unread := text("", theme.Yellow)
	link := text("", theme.White)
	apply := func(info kiosk.SessionInfo) {
		balance.Text = w.T("home.balance", "amount", info.Balance.String())
		usage.Text = w.T("home.session", "minutes", strconv.Itoa(info.Minutes), "cost", info.Cost.String())
		left.Text = w.T("home.time_left", "minutes", strconv.Itoa(minutesLeft(info.TimeLeft)))
		for _, t := range []*canvas.Text{balance, usage, left} {
			t.Refresh()
		}
	}
	var inboxTile *widget.Button
	counts := func() {
		if inboxTile != nil {
			label := w.T("tile.inbox")
			if s.unread > 0 {
				label += " (" + strconv.Itoa(s.unread) + ")"
			}
			inboxTile.SetText(label)
		}
		if s.unread > 0 {
			unread.Text = w.T("home.unread", "n", strconv.Itoa(s.unread))
		} else {
			unread.Text = w.T("home.unread_none")
		}
		unread.Refresh()
		link.Text, link.Color = k.linkWords(w, s.queued)
		link.Refresh()
	}
	var header *fyne.Container // hello, the session card, then the notices
	v.onSession = apply
	v.onLink = counts
	v.onChanged = func() {
		counts()
		k.loadNotices(v, w, header, 2, s.inmateID, s.lang, "")
	}

	tile := func(id string, icon fyne.Resource, fn func()) *widget.Button {
		b := k.button(w.T(id), icon, fn)
		b.Alignment = widget.ButtonAlignCenter
		b.IconPlacement = widget.ButtonIconLeadingText
		return b
	}
	inboxTile = tile("tile.inbox", fynetheme.MailReplyIcon(), k.showInbox)
	pol := k.d.Policy()
	if s.info.Free && !pol.Free(kiosk.FreeReadMail) {
		inboxTile.Disable() // reading mail is paid use here, and this session is free
	}
	apply(s.info)
	counts()
	tiles := container.NewGridWithColumns(4,
		inboxTile,
		tile("tile.write", fynetheme.MailComposeIcon(), k.openWrite),
		tile("tile.sent", fynetheme.MailSendIcon(), k.showSent),
		tile("tile.contacts", fynetheme.AccountIcon(), k.showContacts),
		tile("tile.library", fynetheme.MediaMusicIcon(), k.openLibrary),
		tile("tile.usage", fynetheme.ListIcon(), k.showUsage),
		tile("tile.logout", fynetheme.LogoutIcon(), k.logout),
	)
	tilesBox := theme.MinSize(tiles, 900, 2*140)
	langs := k.langButtons(w, s.lang, 160, 56, k.setLanguage)
	info := container.NewVBox(balance, usage, left, unread, link)
	if s.info.Free {
		info.Add(theme.Text(w.freeSession(pol), theme.TextSize, theme.Yellow, true))
	}
	top := container.NewBorder(nil, nil, nil, langs, hello)
	header = container.NewVBox(top, card(theme.Panel, info))
	body := container.NewBorder(header, nil, nil, nil, tilesBox)
	k.setScreen(v, container.NewPadded(body))
	k.refreshCounts()
	k.loadNotices(v, w, header, 2, s.inmateID, s.lang, "")
}

// linkWords says where the inmate's messages stand with the relay.
func (k *Kiosk) linkWords(w words, queued int) (string, color.Color) {
	switch {
	case k.online && queued == 0:
		return w.T("link.online"), theme.Green
	case k.online && queued == 1:
		return w.T("link.online_sending_one"), theme.Green
	case k.online:
		return w.T("link.online_sending", "n", strconv.Itoa(queued)), theme.Green
	case queued == 0:
		return w.T("link.offline_none"), theme.Orange
	case queued == 1:
		return w.T("link.offline_one"), theme.Orange
	}
	return w.T("link.offline", "n", strconv.Itoa(queued)), theme.Orange
}
