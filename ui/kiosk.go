package ui

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"

	"github.com/tether-kiosk/tether/assets"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/ui/i18n"
	"github.com/tether-kiosk/tether/ui/keypad"
	"github.com/tether-kiosk/tether/ui/theme"
)

// DefaultSize is the window size of a kiosk screen and of the golden images.
var DefaultSize = fyne.NewSize(1280, 800)

// Title is the window title; it never names the person at the screen.
const Title = "Tether"

// PINKey kinds, as the serial PIN pad reports them (aliases of the keypad's).
const (
	KeyDigit     = keypad.Digit
	KeyBackspace = keypad.Backspace
	KeyClear     = keypad.Clear
	KeyEnter     = keypad.Enter
	KeyCancel    = keypad.Cancel
)

// Deps is what the screens are built from.
type Deps struct {
	Domain Domain      // required; *kiosk.Terminal
	Clock  clock.Clock // required; the terminal's clock
	Logf   kiosk.Logf
	// Tablet: the terminal is bound to one inmate and the welcome screen asks for the PIN.
	Tablet bool
	// Size is the window size (zero: DefaultSize); FullScreen is for real kiosks.
	Size       fyne.Size
	FullScreen bool
	// Rand scrambles the keypad when the policy asks (nil: seeded from crypto/rand).
	Rand *rand.Rand
	// Do runs f on the UI goroutine (nil: fyne.Do). Tests queue f and run it themselves.
	Do func(f func())
	// Catalog holds the words (nil: the catalogs embedded in assets).
	Catalog *i18n.Catalog
	// DefaultLanguage is the welcome screen's language ("" means "en").
	DefaultLanguage string
	// Tech is what the technician area reaches beyond the domain (techdeps.go).
	Tech TechDeps
	// OnScreen is told the name of the view on show each time it changes to another one
	// ("welcome", "pin", "notice", "home", "inbox", "tech", ...), on the UI goroutine, starting
	// with the welcome screen New builds. It must not block: the screens wait for it.
	OnScreen func(name string)
	// Content is where the photos of letters are (nil: letters show none, only a count).
	Content *content.Store
	// FetchContent wakes sync to fetch what Content wants now (nil: nothing to wake). On a
	// shared kiosk the open letter retains its photos and calls it; logout lets them go.
	FetchContent func()
	// Library is what the library screens reach beyond the domain: the player, and on a
	// shared kiosk sync's hold on an open item's media (library.go).
	Library LibraryDeps
	// Printer prints letters and lesson pages (nil: no printer here, no Print button).
	Printer Printer
}

// Kiosk is the whole touchscreen: one window whose content is rebuilt from scratch for
// each screen of each person. Its exported methods are safe to call from any goroutine.
type Kiosk struct {
	app     fyne.App
	win     fyne.Window
	d       Domain
	clk     clock.Clock
	logf    kiosk.Logf
	cat     *i18n.Catalog
	rng     *rand.Rand
	do      func(func())
	work    *worker
	tablet  bool
	lang0   string
	techD   TechDeps
	media   *content.Store // Deps.Content
	fetch   func()         // Deps.FetchContent
	libD    LibraryDeps
	printer Printer
	// viewing is what a kiosk's open letters retained in this session, released at its end.
	viewing []viewHold

	// Everything below is touched only on the UI goroutine.
	gen         uint64 // bumped at each logout; results of older calls are dropped
	online      bool
	notice      map[string]string
	welcomeLang string // chosen on the welcome screen by the person standing there
	note        *note
	login       *loginState
	prea        *preaState // a PREA report made from the welcome screen, outside any session
	sess        *session
	v           *view
	root        *fyne.Container
	screen      *fyne.Container
	warnLayer   *fyne.Container
	idleLayer   *fyne.Container
	idleText    *canvas.Text
	idleUntil   time.Duration
	tech        *techArea // the technician area, while a technician is logged in
	lib         *libState // the library visit in progress (library.go)
	onScreen    func(string)
	shown       string // the view name last told to onScreen
}

// note is why the last login was refused or the last session ended, shown on the welcome
// screen for a minute; it names no one.
type note struct {
	refused error
	ended   kiosk.Reason
	at      time.Duration
	misread bool   // a badge was held to the reader but could not be read
	lang    string // the refused person's language, while the note shows
	// msgLang is the language of the note alone (the person's), when the rest of the welcome
	// screen stays in its own for whoever comes next.
	msgLang string
}

// view is the screen on show and what it does when time passes or data changes.
type view struct {
	name      string
	lang      string
	onTick    func()
	onChanged func()
	onSession func(kiosk.SessionInfo)
	onLink    func()

	// noticesUntil is when the first notice on show expires; reloadNotices reloads them.
	noticesUntil  time.Time
	reloadNotices func()
}

// New builds the kiosk window on app, showing the welcome screen. Call Close when done.
func New(app fyne.App, deps Deps) (*Kiosk, error) {
	if deps.Domain == nil || deps.Clock == nil {
		return nil, fmt.Errorf("ui: Domain and Clock are required")
	}
	k := &Kiosk{app: app, d: deps.Domain, clk: deps.Clock, logf: deps.Logf, cat: deps.Catalog,
		rng: deps.Rand, do: deps.Do, tablet: deps.Tablet, lang0: deps.DefaultLanguage, online: true, techD: deps.Tech, media: deps.Content, fetch: deps.FetchContent,
		libD: deps.Library, printer: deps.Printer}
	if k.logf == nil {
		k.logf = func(string, ...any) {}
	}
	if k.cat == nil {
		c, err := i18n.Load()
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		k.cat = c
	}
	if k.lang0 == "" || !k.cat.Has(k.lang0) {
		k.lang0 = i18n.Fallback
	}
	if k.rng == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:])
		k.rng = rand.New(rand.NewChaCha8(seed))
	}
	if k.do == nil {
		k.do = fyne.Do
	}
	app.Settings().SetTheme(theme.New())
	app.SetIcon(assets.AppIcon())
	k.win = app.NewWindow(Title)
	k.win.SetPadded(false)
	size := deps.Size
	if size.IsZero() {
		size = DefaultSize
	}
	k.win.Resize(size)
	if deps.FullScreen {
		k.win.SetFullScreen(true)
	}
	k.work = newWorker()
	// A key pressed with nothing focused is input too (a physical keyboard on the kiosk).
	k.win.Canvas().SetOnTypedKey(func(*fyne.KeyEvent) { k.touch() })
	k.win.Canvas().SetOnTypedRune(func(rune) { k.touch() })
	k.showWelcome()
	if deps.OnScreen != nil {
		// New may run on any goroutine: the hook is set, and told of the welcome screen, on the
		// UI goroutine, before anything queued after New returns.
		k.do(func() {
			k.onScreen = deps.OnScreen
			if k.v != nil {
				k.shown = k.v.name
				k.onScreen(k.shown)
			}
		})
	}
	return k, nil
}

// Window is the kiosk's one window (kioskd calls ShowAndRun on it).
func (k *Kiosk) Window() fyne.Window { return k.win }

// Close stops the kiosk's worker after the calls already queued (the window is the caller's).
func (k *Kiosk) Close() { k.work.close() }

// ShowWelcome returns to the welcome screen: a session in progress is logged out (its draft
// saved first), so no one is billed for a screen they can no longer see.
func (k *Kiosk) ShowWelcome() {
	k.do(func() {
		if k.sess != nil && !k.sess.info.Technician {
			k.logout()
			return
		}
		k.wipe()
		k.showWelcome()
	})
}

// HandleBadge starts a login with a badge read by the serial reader.
func (k *Kiosk) HandleBadge(id string) { k.do(func() { k.onBadge(id) }) }

// HandlePINKey takes a key from the serial PIN pad (digit is '0'..'9' for KeyDigit).
func (k *Kiosk) HandlePINKey(kind keypad.Key, digit byte) {
	k.do(func() { k.touch(); k.onPINKey(kind, digit) })
}

// HandleBadgeMisread says that a badge was held to the reader but could not be read (a
// garbled frame), so the person tries again rather than wait; wire it to the device
// manager's rejected-frame event.
func (k *Kiosk) HandleBadgeMisread() { k.do(k.onBadgeMisread) }

// HandleEvent reacts to a domain event (wire it to kiosk.TerminalConfig.OnEvent).
func (k *Kiosk) HandleEvent(ev kiosk.Event) { k.do(func() { k.onEvent(ev) }) }

// SetLinkStatus tells the screens whether the relay is reachable.
func (k *Kiosk) SetLinkStatus(online bool) {
	k.do(func() {
		if k.online == online {
			return
		}
		k.online = online
		if k.v != nil && k.v.onLink != nil {
			k.v.onLink()
		}
	})
}

// SetFacilityNotice sets the notice shown on the welcome screen, by language ("" clears it).
func (k *Kiosk) SetFacilityNotice(byLang map[string]string) {
	cp := make(map[string]string, len(byLang))
	for l, s := range byLang {
		cp[l] = s
	}
	k.do(func() {
		k.notice = cp
		if k.v != nil && k.v.name == "welcome" {
			k.showWelcome()
		}
	})
}

// Tick refreshes the clock and the session counters and saves a draft that is due;
// kioskd calls it about once a second.
func (k *Kiosk) Tick() { k.do(k.onTick) }

// run calls work on the worker; the func it returns is applied on the UI goroutine unless
// the person it was for has gone since (logout), in which case it is dropped.
func (k *Kiosk) run(work func() func()) {
	gen := k.gen
	k.work.submit(func() {
		apply := work()
		if apply == nil {
			return
		}
		k.do(func() {
			if k.gen == gen {
				apply()
			}
		})
	})
}

// touch is every input: the idle clock restarts and the "still there?" screen goes.
func (k *Kiosk) touch() {
	k.d.Touch()
	if k.idleLayer != nil && len(k.idleLayer.Objects) > 0 {
		k.idleLayer.Objects = nil
		k.idleLayer.Refresh()
	}
}

// words is the vocabulary of lang at this instant.
func (k *Kiosk) words(lang string) words {
	return words{Lang: k.cat.For(lang), loc: k.d.Policy().Location(), now: k.clk.Now()}
}

// setScreen shows obj under a fresh set of layers; newRoot also replaces the window's tree.
func (k *Kiosk) setScreen(v *view, obj fyne.CanvasObject) {
	k.v = v
	if k.root == nil {
		k.screen = container.NewStack()
		k.warnLayer = container.NewVBox()
		k.idleLayer = container.NewStack()
		k.root = container.NewStack(k.screen, k.warnLayer, k.idleLayer)
		k.win.SetContent(k.root)
	}
	k.screen.Objects = []fyne.CanvasObject{obj}
	k.screen.Refresh()
	if c := k.win.Canvas(); c != nil {
		c.Unfocus()
	}
	// Told after the window holds the view, so the hook may look at it.
	if k.onScreen != nil && v.name != k.shown {
		k.shown = v.name
		k.onScreen(v.name)
	}
}

func (k *Kiosk) onTick() {
	if l := k.login; l != nil && !l.busy && (l.badge != "" || len(l.pin) > 0 || l.pending != nil) &&
		k.clk.Mono()-l.lastInput > loginIdle {
		// Someone scanned and walked away: the next person must not find their PIN screen.
		k.login = nil
		k.showWelcome()
	}
	if k.note != nil && k.clk.Mono()-k.note.at > time.Minute {
		k.note = nil
		if k.v != nil && k.v.name == "welcome" && k.login == nil {
			k.showWelcome()
		}
	}
	if k.sess != nil {
		k.refreshSession()
		k.saveDraftIfDue(false)
		if k.idleText != nil && len(k.idleLayer.Objects) > 0 {
			k.updateIdle()
		}
	}
	k.noticesDue()
	k.preaDue()
	if k.v != nil && k.v.onTick != nil {
		k.v.onTick()
	}
}

func (k *Kiosk) onEvent(ev kiosk.Event) {
	switch ev.Kind {
	case kiosk.EventSessionEnded:
		if k.sess != nil {
			k.endSession(ev.Reason)
		}
	case kiosk.EventWarning:
		if k.sess != nil {
			k.showWarning(ev.Remaining, ev.Reason)
		}
	case kiosk.EventIdleWarning:
		if k.sess != nil {
			k.showIdle(ev.Remaining)
		}
	case kiosk.EventChanged:
		// A tablet's welcome screen always holds a login (its PIN pad); rebuilding keeps the
		// digits typed, so only a PIN being checked holds the rebuild back.
		idle := k.login == nil || (k.tablet && !k.login.busy && k.login.pending == nil)
		if k.sess == nil && idle && k.v != nil && k.v.name == "welcome" {
			k.showWelcome() // the policy may have changed the facility name or a rule, or a notice came
			return
		}
		if k.sess != nil && (ev.InmateID == "" || ev.InmateID == k.sess.inmateID) {
			k.refreshCounts()
			if k.v != nil && k.v.onChanged != nil {
				k.v.onChanged()
			}
		}
	}
}

// endSession saves what was being typed, then forgets everything about the person.
func (k *Kiosk) endSession(reason kiosk.Reason) {
	if k.sess != nil && k.sess.compose != nil {
		if d, ok := k.sess.compose.pendingDraft(k.sess.inmateID); ok {
			k.work.submit(func() {
				if err := k.d.SaveDraft(d); err != nil {
					k.logf("ui: save draft at logout: %v", err)
				}
			})
		}
	}
	lang := ""
	if k.sess != nil {
		lang = k.sess.lang // said in the language the person was reading, not the welcome screen's
	}
	k.releaseViewed()
	k.leaveLibrary()
	k.wipe()
	k.note = &note{ended: reason, at: k.clk.Mono(), msgLang: lang}
	k.showWelcome()
}

// wipe drops every reference to the last person and builds a new, empty window tree.
func (k *Kiosk) wipe() {
	k.gen++
	k.closeTech()
	k.leaveLibrary()
	k.sess = nil
	k.login = nil
	k.prea = nil
	k.welcomeLang = ""
	k.v = nil
	k.idleText = nil
	c := k.win.Canvas()
	for c.Overlays().Top() != nil {
		c.Overlays().Remove(c.Overlays().Top())
	}
	c.Unfocus()
	k.root, k.screen, k.warnLayer, k.idleLayer = nil, nil, nil, nil
	k.win.SetContent(container.NewStack())
	k.win.SetTitle(Title)
	k.app.Clipboard().SetContent("")
}

// session is the person logged in, as far as the screens know.
type session struct {
	inmateID, name, lang string
	info                 kiosk.SessionInfo
	unread, queued       int
	refreshing           bool
	compose              *compose
}
