package ui

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/theme"
)

// The media and education library (docs/PROTOCOL.md, "Library"): the facility's catalog by
// kind with prices and the person's own items marked, Buy after a confirmation that shows the
// price and the balance, a track in the player view, the pages of a book or lesson, and a
// course's quizzes. The time spent there is metered: one minute counted on entering and one at
// each minute begun (Domain.UseLibraryMinute, on the terminal's clock); once the policy's
// minutes for the day are used, the library closes with the time it opens again.

// TrackPlayer is a player a track can be loaded into; hardware/audio's *Player satisfies it.
type TrackPlayer interface {
	Playback
	// Load replaces the track (off the UI goroutine: it reads every frame header); a file
	// that is not a playable MP3 changes nothing and says why.
	Load(r io.ReadSeeker) error
	Close()
}

// LibraryDeps is what the library screens reach beyond the domain; kioskd wires them, so this
// package imports neither hardware nor sync.
type LibraryDeps struct {
	// NewPlayer makes the player of a library visit (hardware/audio's NewPlayer over the
	// process's output, the silent sink where no device opens). nil: tracks cannot be played
	// here, and the screen says so.
	NewPlayer func() TrackPlayer
	// View and Close: on a shared kiosk, sync retains an open item's media and fetches them
	// (client.Engine.ViewLibraryItem), then lets them go to its cache when the person leaves
	// the library or the session ends (CloseLibraryItem). nil on a tablet, which keeps what
	// its person owns, pinned.
	View  func(kiosk.CatalogItem) error
	Close func(kiosk.CatalogItem) error
}

// libState is one visit to the library, on the UI goroutine.
type libState struct {
	entered  time.Duration // the clock's Mono when the person came in
	counted  int           // minutes begun and counted (UseLibraryMinute)
	counting bool          // a count is on the worker
	left     int           // minutes left today after the one begun (-1: no limit)
	closed   error         // library_time_used: the library is closed until the next day
	catalog  []kiosk.CatalogItem
	owned    map[string]kiosk.OwnedItem
	viewing  map[string]kiosk.CatalogItem // opened on a kiosk (LibraryDeps.View)
	player   TrackPlayer
	pv       *PlayerView
	leftText *canvas.Text // the minutes left, on the screen on show
}

// openLibrary enters the library from Home: the first minute is counted before anything shows.
func (k *Kiosk) openLibrary() {
	s := k.sess
	if s == nil {
		return
	}
	k.lib = &libState{entered: k.clk.Mono(), left: -1, viewing: map[string]kiosk.CatalogItem{}}
	k.countLibraryMinute(k.showLibrary)
}

// countLibraryMinute counts the minute begun now, then calls then (UI goroutine).
func (k *Kiosk) countLibraryMinute(then func()) {
	s, lib := k.sess, k.lib
	if lib == nil || lib.counting || lib.closed != nil {
		return
	}
	lib.counting = true
	id := s.inmateID
	k.run(func() func() {
		left, err := k.d.UseLibraryMinute(id)
		return func() {
			if k.lib != lib {
				return
			}
			lib.counting = false
			lib.counted++
			if err != nil {
				if kiosk.ReasonOf(err) != vocab.ReasonLibraryTimeUsed {
					k.logf("ui: count library minute: %v", err)
				}
				lib.closed = err
				k.stopPlayer()
				k.showLibrary()
				return
			}
			lib.left = left
			if t := lib.leftText; t != nil && left >= 0 {
				t.Text = k.words(s.lang).libraryLeft(left)
				t.Refresh()
			}
			if then != nil {
				then()
			}
		}
	})
}

// libraryTick counts each minute begun in the library; every library view calls it.
func (k *Kiosk) libraryTick() {
	lib := k.lib
	if lib == nil || lib.closed != nil || lib.counting {
		return
	}
	if k.clk.Mono()-lib.entered >= time.Duration(lib.counted)*time.Minute {
		k.countLibraryMinute(nil)
	}
	if lib.pv != nil {
		lib.pv.Tick()
	}
}

// leaveLibrary ends the visit: the player stops and a kiosk lets go of what was opened.
func (k *Kiosk) leaveLibrary() {
	lib := k.lib
	k.lib = nil
	if lib == nil {
		return
	}
	if lib.pv != nil {
		lib.pv.Close()
	}
	p := lib.player
	var items []kiosk.CatalogItem
	for _, it := range lib.viewing {
		items = append(items, it)
	}
	closeItem := k.libD.Close
	k.work.submit(func() {
		if p != nil {
			p.Close()
		}
		if closeItem == nil {
			return
		}
		for _, it := range items {
			if err := closeItem(it); err != nil {
				k.logf("ui: close library item %s: %v", it.ID, err)
			}
		}
	})
}

// stopPlayer pauses the track and stops its view watching the player (UI goroutine).
func (k *Kiosk) stopPlayer() {
	lib := k.lib
	if lib == nil {
		return
	}
	if lib.pv != nil {
		lib.pv.Close()
		lib.pv = nil
	}
	if lib.player != nil {
		lib.player.Pause()
	}
}

// libraryView makes the view of a library screen: the minutes left in the bar, counted on.
func (k *Kiosk) libraryView(name string) (*view, words, fyne.CanvasObject) {
	v, w, status := k.sessionView(name)
	k.stopPlayer()
	v.onTick = k.libraryTick
	if lib := k.lib; lib != nil {
		lib.leftText = nil
		if lib.left >= 0 {
			lib.leftText = text(w.libraryLeft(lib.left), theme.Yellow)
			status = container.NewVBox(status, lib.leftText)
		}
	}
	return v, w, status
}

// libraryLeft says how many library minutes are left today.
func (w words) libraryLeft(n int) string {
	if n == 1 {
		return w.T("library.left_one")
	}
	return w.T("library.left", "n", strconv.Itoa(n))
}

// showLibrary lists the catalog (read again each time) by kind, or says the library is closed.
func (k *Kiosk) showLibrary() { k.showLibraryWith(libNote{}) }

// libNote is a line above the catalog: what the last action did, or why it was refused.
type libNote struct {
	text    string
	refused bool
}

func (n libNote) line() fyne.CanvasObject {
	c := theme.Green
	if n.refused {
		c = theme.Orange
	}
	return theme.Text(n.text, theme.TextSize, c, true)
}

func (k *Kiosk) showLibraryWith(note libNote) {
	s, lib := k.sess, k.lib
	if s == nil || lib == nil {
		return
	}
	back := func() { k.leaveLibrary(); k.showHome() }
	v, w, status := k.libraryView("library")
	if lib.closed != nil {
		msg := w.libraryRefusal(lib.closed, 0, 0)
		body := container.NewVBox(theme.Text(w.T("library.closed_title"), theme.SubHeadingSize, theme.Orange, true), label(msg))
		k.setScreen(v, k.frame(w, w.T("library.title"), back, status, body))
		return
	}
	list := container.NewVBox()
	if note.text != "" {
		list.Add(note.line())
	}
	list.Add(text(w.T("common.loading"), theme.Grey))
	k.setScreen(v, k.frame(w, w.T("library.title"), back, status, k.vscroll(list)))
	id := s.inmateID
	load := func() {
		k.run(func() func() {
			cat, cerr := k.d.Catalog()
			owned, oerr := k.d.Owned(id)
			return func() {
				if k.lib != lib || k.v != v {
					return
				}
				if err := errors.Join(cerr, oerr); err != nil {
					k.logf("ui: read library: %v", err)
					list.Objects = []fyne.CanvasObject{label(w.T("error.generic"))}
					list.Refresh()
					return
				}
				lib.catalog = cat
				lib.owned = map[string]kiosk.OwnedItem{}
				for _, o := range owned {
					lib.owned[o.Item.ID] = o
				}
				list.Objects = k.libraryRows(w, note)
				list.Refresh()
			}
		})
	}
	// The relay may publish, withdraw, or give a purchase back while the list is on show: it
	// is read again in place (the scroll stays where it is).
	v.onChanged = load
	load()
}

// libraryKinds are the catalog's sections in the order the screen shows them.
var libraryKinds = []struct {
	title string
	kinds []string
}{
	{"library.music", []string{vocab.CatalogTrack}},
	{"library.reading", []string{vocab.CatalogBook, vocab.CatalogLesson}},
	{"library.courses", []string{vocab.CatalogCourse}},
}

// libraryRows is the catalog by section, with the items the person owns that left the catalog.
func (k *Kiosk) libraryRows(w words, note libNote) []fyne.CanvasObject {
	lib := k.lib
	items := append([]kiosk.CatalogItem(nil), lib.catalog...)
	inCatalog := map[string]bool{}
	for _, it := range items {
		inCatalog[it.ID] = true
	}
	for _, o := range lib.owned {
		if !inCatalog[o.Item.ID] && o.Item.Kind != "" {
			items = append(items, o.Item) // withdrawn: its owner keeps it
		}
	}
	var rows []fyne.CanvasObject
	if note.text != "" {
		rows = append(rows, note.line())
	}
	if len(items) == 0 {
		return append(rows, label(w.T("library.empty")))
	}
	for _, sec := range libraryKinds {
		var secRows []fyne.CanvasObject
		for _, it := range items {
			for _, kind := range sec.kinds {
				if it.Kind == kind {
					secRows = append(secRows, k.libraryRow(w, it))
				}
			}
		}
		if len(secRows) > 0 {
			rows = append(rows, theme.Text(w.T(sec.title), theme.SubHeadingSize, theme.White, true))
			rows = append(rows, secRows...)
		}
	}
	return rows
}

// libraryRow is one item: title, what it is, its price or "Free", whether the person owns it,
// and what can be done with it.
func (k *Kiosk) libraryRow(w words, it kiosk.CatalogItem) fyne.CanvasObject {
	_, owned := k.lib.owned[it.ID]
	title := theme.Text(it.Title, theme.SubHeadingSize, theme.White, true)
	info := []fyne.CanvasObject{title}
	if d := w.itemDetail(it); d != "" {
		info = append(info, text(d, theme.Grey))
	}
	price := text(w.price(it.PriceCents), theme.Yellow)
	if owned {
		price = text(w.T("library.owned"), theme.Green)
		price.TextStyle.Bold = true
	}
	info = append(info, price)
	var act *widget.Button
	switch {
	case owned || it.PriceCents == 0:
		act = k.primary(w.T("library.open"), fynetheme.NavigateNextIcon(), func() { k.openItem(it) })
	default:
		act = k.primary(w.T("library.buy", "price", it.PriceCents.String()), nil, func() { k.confirmBuy(it, "") })
	}
	return card(theme.Panel, container.NewBorder(nil, nil, nil, container.NewCenter(big(act, 240, 64)), container.NewVBox(info...)))
}

// price is an item's price as the catalog shows it.
func (w words) price(c kiosk.Cents) string {
	if c <= 0 {
		return w.T("library.free")
	}
	return c.String()
}

// itemDetail says what an item is: a track's artist and length, a book's pages, a course's
// lessons and quizzes.
func (w words) itemDetail(it kiosk.CatalogItem) string {
	switch it.Kind {
	case vocab.CatalogTrack:
		return w.T("library.track", "artist", it.Artist, "length", clockTime(time.Duration(it.Duration)*time.Second))
	case vocab.CatalogBook, vocab.CatalogLesson:
		return w.T("library.pages", "kind", w.T("library.kind."+it.Kind), "pages", w.count("library.n_pages", len(it.Pages)))
	case vocab.CatalogCourse:
		return w.count("library.n_lessons", len(it.Lessons)) + " · " + w.count("library.n_quizzes", len(it.Quizzes))
	}
	return ""
}

// count says n things with key, or key_one for one of them.
func (w words) count(key string, n int) string {
	if n == 1 {
		return w.T(key + "_one")
	}
	return w.T(key, "n", strconv.Itoa(n))
}

// libraryRefusal says why the library said no, with the item's price and the balance where
// money was short.
func (w words) libraryRefusal(err error, price, balance kiosk.Cents) string {
	switch r := kiosk.ReasonOf(err); r {
	case kiosk.ReasonInsufficientBalance:
		return w.T("library.err.insufficient_balance", "price", price.String(), "balance", balance.String())
	case kiosk.ReasonOfflineLimit, vocab.ReasonAlreadyOwned, vocab.ReasonNotInCatalog:
		return w.T("library.err." + string(r))
	case vocab.ReasonLibraryTimeUsed:
		var e *kiosk.Error
		if errors.As(err, &e) && !e.Until.IsZero() {
			return w.T("library.err.library_time_used", "until", w.when(ceilMinute(e.Until)))
		}
		return w.T("library.err.library_time_used_now")
	case kiosk.ReasonNeedsFunds:
		return w.T("refuse.needs_funds")
	}
	return w.refusal(err)
}

// confirmBuy shows what buying it costs and what the balance will be, before the person
// confirms; refusal is why the last try was refused.
func (k *Kiosk) confirmBuy(it kiosk.CatalogItem, refusal string) {
	s := k.sess
	v, w, status := k.libraryView("library_buy")
	bal := s.info.Balance
	rows := []fyne.CanvasObject{
		theme.Text(w.T("library.buy_title", "title", it.Title), theme.SubHeadingSize, theme.White, true),
		text(w.T("library.buy_price", "price", it.PriceCents.String()), theme.Yellow),
		text(w.T("library.buy_balance", "balance", bal.String()), theme.White),
	}
	if after := bal - it.PriceCents; after >= 0 {
		rows = append(rows, text(w.T("library.buy_after", "balance", after.String()), theme.White))
	}
	if refusal != "" {
		rows = append(rows, theme.Text(refusal, theme.TextSize, theme.Orange, true))
	}
	var confirm *widget.Button
	confirm = k.primary(w.T("library.buy_confirm", "price", it.PriceCents.String()), nil, func() {
		confirm.Disable()
		id := s.inmateID
		k.run(func() func() {
			_, err := k.d.Buy(id, it.ID)
			info, ok := k.d.Active()
			return func() {
				if k.sess != s || k.lib == nil {
					return
				}
				if ok {
					s.info = info
				}
				if err != nil {
					k.confirmBuy(it, w.libraryRefusal(err, it.PriceCents, s.info.Balance))
					return
				}
				k.fetchOwned()
				k.showLibraryWith(libNote{text: w.T("library.bought", "title", it.Title)})
			}
		})
	})
	cancel := k.button(w.T("common.cancel"), nil, k.showLibrary)
	rows = append(rows, container.NewHBox(big(confirm, 320, 72), big(cancel, 200, 72)))
	k.setScreen(v, k.frame(w, w.T("library.title"), k.showLibrary, status, container.NewVBox(rows...)))
}

// fetchOwned wakes sync after a purchase: a tablet fetches what its person owns.
func (k *Kiosk) fetchOwned() {
	if k.tablet && k.fetch != nil {
		k.work.submit(k.fetch)
	}
}

// openItem opens an item the person owns or that is free (a free item is made theirs first,
// at no charge, so that their tablet keeps it).
func (k *Kiosk) openItem(it kiosk.CatalogItem) {
	s, lib := k.sess, k.lib
	if s == nil || lib == nil {
		return
	}
	if _, owned := lib.owned[it.ID]; !owned && it.PriceCents == 0 {
		id := s.inmateID
		k.run(func() func() {
			o, err := k.d.Buy(id, it.ID)
			return func() {
				if k.lib != lib {
					return
				}
				if err != nil && kiosk.ReasonOf(err) != vocab.ReasonAlreadyOwned {
					k.showLibraryWith(libNote{text: k.words(s.lang).libraryRefusal(err, 0, 0), refused: true})
					return
				}
				if err == nil {
					lib.owned[it.ID] = o
					k.fetchOwned()
				}
				k.openOwned(it)
			}
		})
		return
	}
	k.openOwned(it)
}

func (k *Kiosk) openOwned(it kiosk.CatalogItem) {
	switch it.Kind {
	case vocab.CatalogTrack:
		k.showTrack(it)
	case vocab.CatalogBook, vocab.CatalogLesson:
		k.showPages(it, 0, k.showLibrary)
	case vocab.CatalogCourse:
		k.showCourse(it)
	}
}

// viewItem makes a kiosk retain an item's media while the person has it open (UI goroutine);
// the call to sync runs on the worker.
func (k *Kiosk) viewItem(it kiosk.CatalogItem) {
	lib := k.lib
	if k.tablet || lib == nil || k.libD.View == nil {
		return
	}
	if _, ok := lib.viewing[it.ID]; ok {
		return
	}
	lib.viewing[it.ID] = it
	view := k.libD.View
	k.work.submit(func() {
		if err := view(it); err != nil {
			k.logf("ui: open library item %s: %v", it.ID, err)
		}
	})
}

// mediaState says whether m is whole in the content store; a tablet wakes sync for what is not.
func (k *Kiosk) mediaWhole(m vocab.MediaRef) (content.Ref, bool) {
	ref, err := content.ParseRef(m.SHA256, m.Manifest, m.Size)
	if err != nil || k.media == nil {
		return ref, false
	}
	st, err := k.media.State(ref.Object)
	return ref, err == nil && st == content.Whole
}

// readMedia reads a whole medium of at most limit bytes (on the worker). The player needs a
// reader it can seek and the content store reads forward only, so a track is held in memory
// while it plays: at most vocab.MaxTrackBytes, one track per library visit.
func (k *Kiosk) readMedia(ref content.Ref, limit int64) ([]byte, error) {
	r, err := k.media.Open(ref.Object)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", ref.Object, limit)
	}
	return b, nil
}

// arriving is the screen of an item whose media are still on their way: it looks again at
// each tick and calls again once they are whole.
func (k *Kiosk) arriving(v *view, w words, title string, back func(), status fyne.CanvasObject, m vocab.MediaRef, again func()) {
	k.viewOrFetch()
	v.onTick = func() {
		k.libraryTick()
		if _, whole := k.mediaWhole(m); whole {
			again()
		}
	}
	k.setScreen(v, k.frame(w, title, back, status, container.NewCenter(
		theme.Text(w.T("library.arriving"), theme.SubHeadingSize, theme.Yellow, true))))
}

// viewOrFetch wakes the content fetcher on a tablet (a kiosk's View has woken it already).
func (k *Kiosk) viewOrFetch() {
	if k.tablet && k.fetch != nil {
		k.work.submit(k.fetch)
	}
}

// showTrack plays a track the person owns (or a free one) in the player view.
func (k *Kiosk) showTrack(it kiosk.CatalogItem) {
	lib := k.lib
	if lib == nil {
		return
	}
	v, w, status := k.libraryView("library_track")
	if k.libD.NewPlayer == nil || it.Audio == nil {
		k.setScreen(v, k.frame(w, it.Title, k.showLibrary, status, label(w.T("library.no_player"))))
		return
	}
	k.viewItem(it)
	ref, whole := k.mediaWhole(*it.Audio)
	if !whole {
		k.arriving(v, w, it.Title, k.showLibrary, status, *it.Audio, func() { k.showTrack(it) })
		return
	}
	if lib.player == nil {
		lib.player = k.libD.NewPlayer()
	}
	p := lib.player
	k.setScreen(v, k.frame(w, it.Title, k.showLibrary, status, text(w.T("common.loading"), theme.Grey)))
	k.run(func() func() {
		b, err := k.readMedia(ref, vocab.MaxTrackBytes)
		if err == nil {
			err = p.Load(bytes.NewReader(b))
		}
		return func() {
			if k.lib != lib || k.v != v {
				return
			}
			if err != nil {
				k.logf("ui: load track %s: %v", it.ID, err)
				k.setScreen(v, k.frame(w, it.Title, k.showLibrary, status, label(w.T("player.cannot_play"))))
				return
			}
			pv := NewPlayerView(p, PlayerViewConfig{Lang: w.Lang, Do: k.do, Touch: k.touch})
			pv.SetTrack(it.Title, it.Artist)
			lib.pv = pv
			k.setScreen(v, k.frame(w, it.Title, k.showLibrary, status, pv))
		}
	})
}
