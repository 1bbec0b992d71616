// Package kioskapp is kioskd: it wires a terminal's store, its serial devices, the sync
// engine, the control socket and the touchscreen, and runs them until told to stop. The
// production kioskd and the demo (tetherdemo) both run it; the demo's relay and simulated
// devices stay in the demo, so a facility's kioskd links neither.
package kioskapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/hardware/printer"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/ui"
	"github.com/tether-kiosk/tether/ui/i18n"
	"github.com/tether-kiosk/tether/ui/keypad"
)

// KioskContentCap bounds a shared kiosk's cache of photos and media: what no holder pins is
// evicted, least recently used first, beyond it.
const KioskContentCap = 256 << 20

// Software names this build to the relay.
const Software = "tether kioskd 0.1.0"

// How long the stop waits for the window loop: it asks the loop to end, asks again every
// quitRetry (twice), and calls Options.Hung one quitRetry after that. stopWatchdog bounds
// what follows the window's end (nothing there waits on the network or a person).
const (
	quitRetry    = 5 * time.Second
	quitAsks     = 3
	stopWatchdog = 20 * time.Second
)

// Options are what kioskd runs with.
type Options struct {
	DataDir    string // the terminal's data directory: store, identity key, enrollment
	ConfigPath string // the file Config came from ("": a device a technician moves is not saved)
	Config     Config
	// Windowed: a normal window that closing stops, instead of full screen with no way out.
	Windowed bool
	Logf     kiosk.Logf
	Started  time.Time // the process's start, for the start-up figures in the log (zero: Open's)
	// Driver is the window system (nil: Fyne's real driver). Tests use Fyne's test driver.
	Driver Driver
	// OnScreen is told the name of each view as it comes on screen (ui.Deps.OnScreen), on
	// the UI goroutine, after kioskd logged it.
	OnScreen func(name string)
	// OnShown runs on the UI goroutine once the window is up.
	OnShown func()
	// Hung is called when the stop did not finish in time, after the goroutines were written
	// to Stderr; the process cannot go on (the main goroutine is stuck in the window loop), so
	// kioskd's main exits. Nil: only logged.
	Hung   func()
	Stderr io.Writer
	// Audio is where library tracks play (nil: the sound card through oto, or the silent
	// sink where no device opens). oto opens one device per process: tests pass the sink.
	Audio audio.Output
}

// Driver is the window system under the screens: its event loop runs on the goroutine that
// calls Run (for Fyne's real driver, the main goroutine) and every UI call goes through Do.
type Driver interface {
	App() fyne.App
	// Do runs f on the UI goroutine; DoAndWait also waits for it.
	Do(f func())
	DoAndWait(f func())
	// Run shows win and runs the event loop until Quit (or the window system ends it);
	// started runs on the loop once it runs.
	Run(win fyne.Window, started func())
	// Quit ends the loop; from the UI goroutine.
	Quit()
}

// fyneDriver is Fyne's real driver (GLFW).
type fyneDriver struct{ a fyne.App }

func (d fyneDriver) App() fyne.App      { return d.a }
func (d fyneDriver) Do(f func())        { fyne.Do(onLoop(f)) }
func (d fyneDriver) DoAndWait(f func()) { fyne.DoAndWait(onLoop(f)) }
func (d fyneDriver) Quit()              { d.a.Quit() }

// onLoop is f, dropped unless it runs on the loop's thread. Once Fyne's loop has ended it runs
// a function handed to it at once, on the caller's goroutine, and GLFW is gone by then: a
// widget changed that way panics ("The GLFW library is not initialized"). Fyne ends its loop
// on SIGTERM by itself, while kioskd's orderly stop is still logging the session out, whose
// end goes to the screens: a kiosk stopped by systemd crashed on it now and then.
func onLoop(f func()) func() {
	return func() {
		if onMainThread() {
			f()
		}
	}
}
func (d fyneDriver) Run(w fyne.Window, started func()) {
	d.a.Lifecycle().SetOnStarted(started)
	w.ShowAndRun()
}

// App is one kioskd: Open acquires everything (nothing runs yet), Run runs until its
// context ends or the window goes, Stop releases everything (the store last).
type App struct {
	o      Options
	logf   kiosk.Logf
	opened time.Time

	store    *kiosk.Store
	content  *content.Store   // photos and media (content.db beside the store)
	audio    audio.Output     // where library tracks play
	printing *printer.Service // the facility printer (nil: none configured)
	term     *kiosk.Terminal
	clock    clock.Clock // the terminal's: billing, screens and the health checks
	enrolled bool
	mode     string
	hub      *screenHub
	syncs    *syncHolder
	online   atomic.Int32 // 0 unknown, 1 online, 2 offline
	events   chan device.Event
	devs     *deviceHost
	drv      Driver
	k        *ui.Kiosk
	ctl      *control.Server
	feed     *ui.DeviceFeed
	tech     *techWiring
	current  string // the view on show; with shownOne, touched on the UI goroutine only
	shownOne bool

	// The loop's state: once it has ended nothing may be handed to the UI goroutine.
	loopStarted, loopDone atomic.Bool
	stopping              atomic.Bool // the orderly stop has run (OnStarted quits a loop that starts after it)
	stopOnce              sync.Once
	stopped               chan struct{} // closed when the orderly stop has run
	loopEnded             chan struct{} // closed when Run's loop has returned
	ran                   atomic.Bool
	runDone               chan struct{} // closed when Run returns
	releaseOnce           sync.Once
	releaseErr            error
}

// screenHub lets the domain, the devices and sync reach the screens, which are built after
// them; until then (and after Run) their events have no screen to go to.
type screenHub struct{ k atomic.Pointer[ui.Kiosk] }

func (h *screenHub) event(ev kiosk.Event) {
	if k := h.k.Load(); k != nil {
		k.HandleEvent(ev)
	}
}

// Open opens the terminal's store and builds everything kioskd runs; nothing runs until
// Run. A damaged store fails with an error that wraps boltfile.ErrDamaged, and leaves it
// untouched. On an error everything Open took is released.
func Open(o Options) (*App, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	a := &App{o: o, logf: o.Logf, opened: time.Now(), stopped: make(chan struct{}), loopEnded: make(chan struct{}),
		runDone: make(chan struct{})}
	if a.o.Started.IsZero() {
		a.o.Started = a.opened
	}
	ok := false
	defer func() {
		if !ok {
			a.release()
		}
	}()
	var err error
	if a.store, err = kiosk.OpenStore(o.DataDir, kiosk.StoreOptions{}); err != nil {
		return nil, err
	}
	cfg := o.Config
	enr, err := client.LoadEnrollment(o.DataDir)
	a.enrolled = err == nil
	if err != nil && !errors.Is(err, client.ErrNotEnrolled) {
		return nil, err
	}
	if a.mode, err = resolveMode(cfg.Mode, enr, a.enrolled); err != nil {
		return nil, err
	}
	a.hub = &screenHub{}
	clk := clock.NewReal()
	a.clock = clk
	a.term, err = kiosk.NewTerminal(kiosk.TerminalConfig{Store: a.store, Clock: clk, Logf: a.logf, OnEvent: a.hub.event, ID: enr.TerminalID})
	if err != nil {
		return nil, err
	}
	if a.mode == ModeTablet {
		if id, ok, err := a.term.BoundInmate(); err != nil {
			return nil, err
		} else if !ok {
			a.logf("tablet: bound to no inmate yet (enroll it with a tablet code); logins are refused until then")
		} else {
			a.logf("tablet: bound to inmate %s", id)
		}
	}

	// Photos and media: their own file beside the store. A shared kiosk keeps them as a cache
	// under a cap (least recently used evicted first); a tablet keeps its person's own.
	contentCap := int64(KioskContentCap)
	if a.mode == ModeTablet {
		contentCap = 0
	}
	if a.content, err = content.Open(filepath.Join(o.DataDir, content.File), content.Options{Cap: contentCap}); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	if a.mode != ModeTablet {
		// No session is open yet: photos a session was viewing when the kiosk went down are
		// that person's, and go now rather than wait in the cache for the next one.
		if n, err := a.content.ReleaseHolders(content.ViewingHolder); err != nil {
			a.logf("content: release photos left by an earlier session: %v", err)
		} else if n > 0 {
			a.logf("content: released %d photo claims left by an earlier session", n)
		}
	}

	// Sync: only an enrolled terminal has a relay; the others keep everything for later, and
	// start sync when a technician enrolls them while they run.
	a.syncs = newSyncHolder(context.Background(), client.Config{DataDir: o.DataDir, Terminal: a.term, Logf: a.logf,
		RelayURL: cfg.Relay.URL, RelayURLs: cfg.Relay.Gateways, Transport: cfg.Relay.Transport(), Software: Software, OnStatus: a.linkStatus,
		Content: a.content}, a.mode, a.logf)

	a.events = make(chan device.Event, 64)
	if a.devs, err = newDeviceHost(cfg.DeviceConfigs(), device.Options{Events: a.events, Logf: a.logf}); err != nil {
		return nil, err
	}
	a.drv = o.Driver
	if a.drv == nil {
		a.drv = fyneDriver{app.NewWithID("org.tether.kioskd")}
	}
	size := fyne.NewSize(float32(cfg.Screen.Width), float32(cfg.Screen.Height))
	if size.Width == 0 || size.Height == 0 {
		size = ui.DefaultSize
	}
	cat, err := i18n.Load()
	if err != nil {
		return nil, err
	}
	// The control API for kioskctl: it answers from this process, which holds the store's lock.
	a.ctl, err = control.Serve(control.ServeOptions{DataDir: o.DataDir, ConfigPath: o.ConfigPath, Config: cfg,
		Terminal: a.term, Link: a.syncs.Link, Devices: a.devs.States, Logf: a.logf, Software: Software, OnEnrolled: a.syncs.enrolled})
	if err != nil {
		return nil, err
	}
	a.feed = &ui.DeviceFeed{}
	a.tech = &techWiring{termDir: o.DataDir, term: a.term, syncs: a.syncs, relay: cfg.Relay, devs: a.devs, feed: a.feed, logf: a.logf}
	if o.ConfigPath != "" {
		a.tech.save = func(name, path, framing string) error { return saveMove(o.ConfigPath, name, path, framing) }
	}
	var uiPrinter ui.Printer
	if a.printing, err = openPrinter(cfg.Printer, a.term, enr.TerminalID, clk, a.logf); err != nil {
		return nil, err
	} else if a.printing != nil {
		uiPrinter = printAdapter{a.printing}
	}
	a.audio = o.Audio
	if a.audio == nil {
		// A kiosk without a sound card still opens the library: the player says it has no sound.
		if a.audio, err = audio.OpenOutput(clk); err != nil {
			a.logf("audio: %v (tracks play on the silent sink)", err)
		}
		if a.audio == nil {
			a.audio = audio.NewNull(clk, audio.OutputRate)
		}
	}
	a.k, err = ui.New(a.drv.App(), ui.Deps{Domain: a.term, Clock: clk, Logf: a.logf, Tablet: a.mode == ModeTablet, Size: size,
		FullScreen: !o.Windowed, Catalog: cat, DefaultLanguage: cfg.Screen.Language, Do: a.uiDo, Tech: a.tech.deps(),
		OnScreen: a.screenShown, Content: a.content, FetchContent: a.fetchContent, Library: a.libraryDeps(),
		Printer: uiPrinter})
	if err != nil {
		return nil, err
	}
	a.hub.k.Store(a.k)
	if !a.enrolled {
		a.k.SetLinkStatus(false)
	}
	if o.Windowed {
		a.k.Window().SetCloseIntercept(func() { a.requestStop("window closed") })
	} else {
		// A kiosk has no way out for the person at it: only a technician (or SIGTERM) stops it.
		a.k.Window().SetCloseIntercept(func() { a.logf("close request ignored: a kiosk is stopped by a technician") })
	}
	ok = true
	return a, nil
}

// Window is the kiosk's window.
func (a *App) Window() fyne.Window { return a.k.Window() }

// FyneApp is the Fyne app the window belongs to (the demo opens its device panel on it).
func (a *App) FyneApp() fyne.App { return a.drv.App() }

// DoAndWait runs f on the UI goroutine and waits for it; once the loop has ended it does
// nothing.
func (a *App) DoAndWait(f func()) {
	if !a.loopDone.Load() {
		a.drv.DoAndWait(f)
	}
}

// Do hands f to the UI goroutine without waiting, unless the loop has ended (kioskd's
// watchdog pings go this way, so a hung UI stops them).
func (a *App) Do(f func()) { a.uiDo(f) }

// uiDo hands f to the UI goroutine, unless the loop has ended.
func (a *App) uiDo(f func()) {
	if !a.loopDone.Load() {
		a.drv.Do(f)
	}
}

// linkStatus is the sync engine's status callback: changes of the link reach the log and
// the screens.
func (a *App) linkStatus(st status.Link) {
	v := int32(2)
	if st.Connected {
		v = 1
	}
	if a.online.Swap(v) != v {
		a.logf("sync: link %s", map[bool]string{true: "up", false: "down"}[st.Connected])
		if k := a.hub.k.Load(); k != nil {
			k.SetLinkStatus(st.Connected)
		}
	}
}

// screenShown follows the view on show (ui's OnScreen, on the UI goroutine) and logs each
// once the window is up; the first, with the start-up figures, when the window shows it.
func (a *App) screenShown(name string) {
	a.current = name
	if a.loopStarted.Load() {
		a.logScreen(name)
	}
	if a.o.OnScreen != nil {
		a.o.OnScreen(name)
	}
}

func (a *App) logScreen(name string) {
	if !a.shownOne && name == "welcome" {
		a.logf("screen: welcome (%v after start, %v after the store opened)",
			time.Since(a.o.Started).Round(time.Millisecond), time.Since(a.opened).Round(time.Millisecond))
	} else {
		a.logf("screen: %s", name)
	}
	a.shownOne = true
}

// Run starts sync, the devices and the clock and runs the window loop on the calling
// goroutine until ctx ends (its cause is logged as the reason), the window closes
// (windowed) or the window system ends the loop; then it stops in order: the session in
// progress is logged out, the devices and sync stop, and the screens finish their work.
// Call it once; Stop releases what Open took.
func (a *App) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("kioskd: Run called twice")
	}
	defer close(a.runDone)
	if a.enrolled {
		if _, _, err := a.syncs.Start(); err != nil {
			a.loopDone.Store(true)
			close(a.loopEnded)
			return err
		}
	} else {
		a.logf("sync: this terminal is not enrolled (kioskctl enroll); it works offline and keeps every record for later")
	}
	bgCtx, cancelBg := context.WithCancel(context.Background())
	defer cancelBg()
	a.devs.Run(bgCtx)
	var bg sync.WaitGroup
	bg.Add(6)
	go func() {
		defer bg.Done()
		a.settlePrints(bgCtx)
	}()
	go func() {
		defer bg.Done()
		// A tablet's photos: the policy's photo_keep_days at start and daily, and the release
		// of what a person deleted (a crash between the two is finished here). On a shared
		// kiosk nothing is bound and nothing is marked, so it finds nothing to do.
		a.term.KeepPhotos(bgCtx, a.content, a.logf)
	}()
	go func() {
		defer bg.Done()
		(&healthReporter{term: a.term, store: a.store, clock: a.clock, devices: a.devs.States, software: Software, logf: a.logf}).run(bgCtx)
	}()
	go func() {
		defer bg.Done()
		pumpDevices(bgCtx, a.events, a.k, a.feed, a.logf)
	}()
	go func() {
		defer bg.Done()
		tickLoop(bgCtx, a.term, a.k)
	}()
	go func() {
		defer bg.Done()
		select {
		case <-ctx.Done():
			why := "stopped"
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				why = c.Error()
			}
			a.requestStop(why)
		case <-bgCtx.Done():
		}
	}()

	a.drv.Run(a.k.Window(), a.onStarted)
	a.loopDone.Store(true)
	close(a.loopEnded)
	a.hub.k.Store(nil)
	// Nothing below waits on the network or a person; if it hangs anyway, say where and give up.
	watchdog := time.AfterFunc(stopWatchdog, func() {
		a.giveUp(fmt.Sprintf("not stopped %v after the window closed", stopWatchdog))
	})
	defer watchdog.Stop()

	// The window is gone: make sure everything stopped, then let the screens' worker finish
	// what it holds before the store closes under it.
	a.requestStop("the window closed")
	<-a.stopped
	cancelBg()
	bg.Wait()
	a.k.Close()
	// The screens' last queued call may have started a session after the stop ended one.
	a.logout()
	return nil
}

// onStarted runs on the UI goroutine once the loop runs.
func (a *App) onStarted() {
	a.loopStarted.Store(true)
	if a.stopping.Load() {
		a.drv.Quit() // stopped before the window came up
		return
	}
	a.logf("window shown (%v after start)", time.Since(a.o.Started).Round(time.Millisecond))
	if a.current != "" {
		a.logScreen(a.current)
	}
	if a.o.OnShown != nil {
		a.o.OnShown()
	}
}

// requestStop runs the orderly stop once, whoever asks first, then ends the window loop.
func (a *App) requestStop(why string) {
	a.stopOnce.Do(func() {
		go func() {
			a.shutdown(why)
			a.stopping.Store(true)
			close(a.stopped)
			endLoop(func() { a.uiDo(a.drv.Quit) }, a.loopEnded, quitRetry, a.logf, func() {
				a.giveUp("the window loop did not end")
			})
		}()
	})
}

// giveUp ends a stop that hangs: it says so, writes every goroutine's stack to Stderr (where
// it hangs, for whoever reads the log; a window loop that never ended said nothing more), and
// calls Options.Hung.
func (a *App) giveUp(why string) {
	a.logf("stopping: %s; giving up, goroutines follow", why)
	if a.o.Stderr != nil {
		_ = pprof.Lookup("goroutine").WriteTo(a.o.Stderr, 1)
	}
	if a.o.Hung != nil {
		a.o.Hung()
	}
}

// shutdown ends the session in progress, then closes the devices and stops sync.
func (a *App) shutdown(why string) {
	a.logf("stopping: %s", why)
	a.logout()
	t0 := time.Now()
	a.devs.Stop()
	a.logf("stopping: devices closed in %v", time.Since(t0).Round(time.Millisecond))
	a.syncs.Stop()
}

func (a *App) logout() {
	if info, ok := a.term.Active(); ok {
		if err := a.term.Logout(); err != nil {
			a.logf("stopping: end session %s: %v", info.SessionID, err)
		} else {
			a.logf("stopping: session %s ended (logout)", info.SessionID)
		}
	}
}

// endLoop asks the window loop to end (quit) until ended is closed: at once, then every
// retry, quitAsks times in all; if it still has not ended one retry after the last ask,
// hung is called. A window loop that does not end must not keep a stopped kiosk on screen.
func endLoop(quit func(), ended <-chan struct{}, retry time.Duration, logf kiosk.Logf, hung func()) {
	t := time.NewTicker(retry)
	defer t.Stop()
	quit()
	for asked := 1; ; {
		select {
		case <-ended:
			return
		case <-t.C:
		}
		if asked == quitAsks {
			hung()
			return
		}
		logf("stopping: the window loop has not ended; asking it again")
		quit()
		asked++
	}
}

// Stop releases what Open took: the control socket, then the store (after which another
// Open of the same data directory succeeds). While Run runs, Stop asks it to stop and waits
// for it. Calling it again returns the first result.
func (a *App) Stop() error {
	if a.ran.Load() {
		a.requestStop("stopped")
		<-a.runDone
	}
	return a.release()
}

// release stops whatever Open started and closes the control socket and the store.
func (a *App) release() error {
	a.releaseOnce.Do(func() {
		a.loopDone.Store(true) // no UI call after this
		if a.syncs != nil {
			a.syncs.Stop()
		}
		if a.devs != nil {
			a.devs.Stop()
		}
		if a.k != nil {
			a.hub.k.Store(nil)
			a.k.Close()
		}
		if a.ctl != nil {
			if err := a.ctl.Close(); err != nil {
				a.logf("stopping: control socket: %v", err)
			}
		}
		if a.content != nil {
			// After sync stopped: nothing writes to it any more.
			if err := a.content.Close(); err != nil {
				a.logf("stopping: content store: %v", err)
			}
		}
		if a.store != nil {
			if a.term != nil {
				a.logout()
			}
			if err := a.store.Close(); err != nil {
				a.releaseErr = fmt.Errorf("close store: %w", err)
				return
			}
			a.logf("stopped")
		}
	})
	return a.releaseErr
}

// fetchContent wakes the sync engine's content fetcher, if one runs (a kiosk's open letter
// just retained its photos).
func (a *App) fetchContent() {
	if e := a.syncs.Engine(); e != nil {
		e.FetchContent()
	}
}

// resolveMode: the enrollment says what the relay registered this terminal as; a config may
// only repeat it. Unenrolled, the config decides (default kiosk).
func resolveMode(cfgMode string, enr client.Enrollment, enrolled bool) (string, error) {
	if enrolled {
		if cfgMode != "" && cfgMode != enr.Mode {
			return "", fmt.Errorf("config mode: %q, but this terminal is enrolled as a %s", cfgMode, enr.Mode)
		}
		return enr.Mode, nil
	}
	if cfgMode == "" {
		return ModeKiosk, nil
	}
	return cfgMode, nil
}

// pumpDevices hands what the serial devices read to the screens (which hop to the UI goroutine).
func pumpDevices(ctx context.Context, events <-chan device.Event, k *ui.Kiosk, feed *ui.DeviceFeed, logf kiosk.Logf) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if feed != nil && ev.Kind != device.EventPIN {
				feed.Publish(uiDeviceEvent(ev)) // the technician's live test view
			}
			switch ev.Kind {
			case device.EventBadge:
				logf("device %q: badge read", ev.Device) // the id stays out of the log
				k.HandleBadge(ev.ID)
			case device.EventKey:
				kind, digit, ok := uiKey(ev.Key)
				if ok {
					k.HandlePINKey(kind, digit)
				}
			case device.EventPIN:
				// The screens assemble the PIN from the keys; the pad's own copy is not needed.
				ev.PIN.Wipe()
			case device.EventPINDropped:
				logf("device %q: PIN entry dropped: %s", ev.Device, ev.Reason)
				k.HandlePINKey(ui.KeyClear, 0)
			case device.EventRejected:
				// Logged by the device manager. Only the badge reader rejects frames: the person
				// holding the card is told to try again rather than left waiting.
				k.HandleBadgeMisread()
			}
		}
	}
}

// uiKey maps a PIN pad key to the screens' key kinds.
func uiKey(key pinpad.Key) (kind keypad.Key, digit byte, ok bool) {
	switch {
	case key.IsDigit():
		return ui.KeyDigit, '0' + byte(key-pinpad.Key0), true
	case key == pinpad.KeyEnter:
		return ui.KeyEnter, 0, true
	case key == pinpad.KeyBackspace:
		return ui.KeyBackspace, 0, true
	case key == pinpad.KeyClear:
		return ui.KeyClear, 0, true
	case key == pinpad.KeyCancel:
		return ui.KeyCancel, 0, true
	}
	return 0, 0, false
}

// tickLoop bills and times sessions about four times a second, off the UI goroutine, and
// refreshes the screens' clock and counters once a second.
func tickLoop(ctx context.Context, term *kiosk.Terminal, k *ui.Kiosk) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			term.Tick() // events reach the screens through OnEvent
			if n%4 == 0 {
				k.Tick()
			}
		}
	}
}
