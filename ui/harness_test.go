package ui

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
)

// The screens must work over the real domain.
var _ Domain = (*kiosk.Terminal)(nil)

// start is a Tuesday morning, in UTC so that golden images do not depend on the machine's zone.
var start = time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)

const (
	mariaID    = "A1001"
	mariaName  = "Maria Gonzalez"
	mariaBadge = "B1001"
	mariaPIN   = "4321"
)

// harness is a kiosk over a real terminal and store, with the test goroutine acting as
// Fyne's UI goroutine: what the kiosk hands to Do is queued and run by settle.
type harness struct {
	t    *testing.T
	app  fyne.App
	clk  *clock.Fake
	term *kiosk.Terminal
	k    *Kiosk

	mu    sync.Mutex
	queue []func()
	logs  []string // every line the terminal and the screens logged
	onUI  bool     // the test goroutine is running queued UI work (drain)
	seq   uint64   // the last downlink sequence number applied (publish, downlink)
}

type setup struct {
	tablet bool
	policy func(*kiosk.Policy)
	lang   string // Maria's stored language
	wrap   func(*kiosk.Terminal) Domain
	// onScreen is Deps.OnScreen; it gets the harness, to check where it is called from.
	onScreen func(h *harness, name string)
	// media is Deps.Content: the photos of letters.
	media *content.Store
	fetch func() // Deps.FetchContent
	// library is Deps.Library, made with the harness (its clock); printer is Deps.Printer.
	library func(h *harness) LibraryDeps
	printer func(h *harness) Printer
}

func newHarness(t *testing.T, opts ...func(*setup)) *harness {
	t.Helper()
	var su setup
	for _, o := range opts {
		o(&su)
	}
	h := &harness{t: t, app: test.NewTempApp(t), clk: clock.NewFake(start)}
	store, err := kiosk.OpenStore(t.TempDir(), kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var k *Kiosk
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: store, Clock: h.clk, PINParams: kiosk.TestPINParams(),
		ID: "term-1", Logf: h.logf, OnEvent: func(ev kiosk.Event) {
			if k != nil {
				k.HandleEvent(ev)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.term = term
	p := kiosk.DefaultPolicy()
	p.Timezone = "UTC"
	if su.policy != nil {
		su.policy(&p)
	}
	must(t, term.SetPolicy(p, "test"))
	lang := su.lang
	if lang == "" {
		lang = "en"
	}
	hash, err := kiosk.HashPINWith(mariaPIN, kiosk.TestPINParams())
	must(t, err)
	must(t, term.UpsertInmate(kiosk.Inmate{ID: mariaID, Name: mariaName, Badges: []string{mariaBadge}, PINHash: hash,
		Language: lang, Status: kiosk.StatusActive, Messaging: true, TabletBound: su.tablet}, "test"))
	must(t, term.Deposit(mariaID, 2000, "dep-1"))
	if su.tablet {
		must(t, term.BindTablet(mariaID))
	}
	var d Domain = term
	if su.wrap != nil {
		d = su.wrap(term)
	}
	var onScreen func(string)
	if su.onScreen != nil {
		onScreen = func(name string) { su.onScreen(h, name) }
	}
	var lib LibraryDeps
	if su.library != nil {
		lib = su.library(h)
	}
	var pr Printer
	if su.printer != nil {
		pr = su.printer(h)
	}
	k, err = New(h.app, Deps{Domain: d, Clock: h.clk, Logf: h.logf, Tablet: su.tablet,
		Rand: rand.New(rand.NewPCG(1, 2)), Do: h.enqueue, OnScreen: onScreen, Content: su.media, FetchContent: su.fetch,
		Library: lib, Printer: pr})
	must(t, err)
	h.k = k
	t.Cleanup(k.Close)
	h.settle()
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	h.mu.Lock()
	h.logs = append(h.logs, line)
	h.mu.Unlock()
	h.t.Log(line)
}

func (h *harness) logged() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.logs, "\n")
}

func (h *harness) enqueue(f func()) {
	h.mu.Lock()
	h.queue = append(h.queue, f)
	h.mu.Unlock()
}

func (h *harness) drain() int {
	h.mu.Lock()
	q := h.queue
	h.queue = nil
	h.mu.Unlock()
	h.onUI = true
	for _, f := range q {
		f()
	}
	h.onUI = false
	return len(q)
}

// settle runs UI work until the worker is idle and nothing is queued for the UI goroutine.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		busy := h.k.work.busy()
		n := h.drain()
		if busy == 0 && n == 0 {
			return
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	h.t.Fatal("the screens did not settle in 20s")
}

// advance moves time on and lets the domain and the screens react, as kioskd's loop does.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	for d > 0 {
		step := min(d, 5*time.Second)
		h.clk.Advance(step)
		d -= step
		h.term.Tick()
		h.k.Tick()
		h.settle()
	}
}

// walk visits every object of the window, hidden or not, descending into widgets.
func walk(o fyne.CanvasObject, visibleOnly bool, f func(fyne.CanvasObject)) {
	if o == nil || (visibleOnly && !o.Visible()) {
		return
	}
	f(o)
	switch x := o.(type) {
	case *fyne.Container:
		for _, c := range x.Objects {
			walk(c, visibleOnly, f)
		}
	case fyne.Widget:
		for _, c := range test.WidgetRenderer(x).Objects() {
			walk(c, visibleOnly, f)
		}
	}
}

// texts is every text the window holds: on canvas texts and in widget fields.
func (h *harness) texts(visibleOnly bool) []string {
	var out []string
	add := func(s string) {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	c := h.k.win.Canvas()
	objs := []fyne.CanvasObject{c.Content()}
	objs = append(objs, c.Overlays().List()...)
	for _, root := range objs {
		walk(root, visibleOnly, func(o fyne.CanvasObject) {
			switch x := o.(type) {
			case *canvas.Text:
				add(x.Text)
			case *widget.Label:
				add(x.Text)
			case *widget.Button:
				add(x.Text)
			case *widget.Entry:
				add(x.Text)
				add(x.PlaceHolder)
			case *entry:
				add(x.Text)
				add(x.PlaceHolder)
			case *widget.RichText:
				add(x.String())
			case *widget.Select:
				add(x.Selected)
				for _, s := range x.Options {
					add(s)
				}
			}
		})
	}
	return out
}

func (h *harness) screenText() string { return strings.Join(h.texts(true), "\n") }

func (h *harness) see(s string) bool { return strings.Contains(h.screenText(), s) }

func (h *harness) mustSee(parts ...string) {
	h.t.Helper()
	txt := h.screenText()
	for _, s := range parts {
		if !strings.Contains(txt, s) {
			h.t.Fatalf("screen does not show %q; it shows:\n%s", s, txt)
		}
	}
}

func (h *harness) mustNotSee(parts ...string) {
	h.t.Helper()
	txt := h.screenText()
	for _, s := range parts {
		if strings.Contains(txt, s) {
			h.t.Fatalf("screen shows %q and should not; it shows:\n%s", s, txt)
		}
	}
}

// button finds the visible button labelled exactly label.
func (h *harness) button(label string) *widget.Button {
	h.t.Helper()
	var found *widget.Button
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		if b, ok := o.(*widget.Button); ok && b.Text == label && found == nil {
			found = b
		}
	})
	if found == nil {
		h.t.Fatalf("no button %q; screen shows:\n%s", label, h.screenText())
	}
	return found
}

func (h *harness) tap(label string) {
	h.t.Helper()
	b := h.button(label)
	if b.Disabled() {
		h.t.Fatalf("button %q is disabled", label)
	}
	h.onUI = true // a finger's tap runs on the UI goroutine, which the test goroutine plays
	test.Tap(b)
	h.onUI = false
	h.settle()
}

// tapText taps the tappable area (a list row) that shows s.
func (h *harness) tapText(s string) {
	h.t.Helper()
	var found *tappable
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		tp, ok := o.(*tappable)
		if !ok || found != nil {
			return
		}
		walk(tp.content, true, func(o fyne.CanvasObject) {
			if t, ok := o.(*canvas.Text); ok && strings.Contains(t.Text, s) {
				found = tp
			}
		})
	})
	if found == nil {
		h.t.Fatalf("nothing tappable shows %q; screen shows:\n%s", s, h.screenText())
	}
	test.Tap(found)
	h.settle()
}

// entries lists the visible text entries in order.
func (h *harness) entries() []*entry {
	var out []*entry
	walk(h.k.win.Canvas().Content(), true, func(o fyne.CanvasObject) {
		if e, ok := o.(*entry); ok {
			out = append(out, e)
		}
	})
	return out
}

// entry finds the visible entry with the given placeholder.
func (h *harness) entry(placeholder string) *entry {
	h.t.Helper()
	for _, e := range h.entries() {
		if e.PlaceHolder == placeholder {
			return e
		}
	}
	h.t.Fatalf("no entry %q; screen shows:\n%s", placeholder, h.screenText())
	return nil
}

func (h *harness) badge(id string) {
	h.k.HandleBadge(id)
	h.settle()
}

// typePIN taps the on-screen keypad's digits then OK.
func (h *harness) typePIN(pin, ok string) {
	h.t.Helper()
	for _, d := range pin {
		h.tap(string(d))
	}
	h.tap(ok)
}

// login goes from the welcome screen to home as Maria.
func (h *harness) login() {
	h.t.Helper()
	h.badge(mariaBadge)
	h.mustSee("Enter your PIN")
	h.typePIN(mariaPIN, "OK")
	h.mustSee("Monitoring notice")
	h.tap("I accept")
	h.mustSee("Hello, " + mariaName)
}

// addContact gives Maria a contact in the given state, through the domain.
func (h *harness) addContact(name, email, state string) kiosk.Contact {
	h.t.Helper()
	c, err := h.term.AddContact(mariaID, name, email)
	must(h.t, err)
	if state != kiosk.ContactPending {
		must(h.t, h.term.SetContactState(mariaID, c.ID, state, ""))
	}
	h.settle()
	return c
}

func (h *harness) deliver(id, peer, peerName, subject, body string) {
	h.t.Helper()
	_, err := h.term.DeliverInbound(kiosk.Message{ID: id, InmateID: mariaID, Peer: peer, PeerName: peerName,
		Subject: subject, Body: body, CreatedAt: h.clk.Now()})
	must(h.t, err)
	h.settle()
}

func (h *harness) String() string { return fmt.Sprintf("kiosk on %q", h.k.v.name) }
