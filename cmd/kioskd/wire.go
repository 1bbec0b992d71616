package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/tether-kiosk/tether/cmd/internal/ctlwire"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/pinpad"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/ui"
	"github.com/tether-kiosk/tether/ui/i18n"
	"github.com/tether-kiosk/tether/ui/keypad"
)

// software names this build to the relay.
const software = "tether kioskd 0.1.0"

// screenHub lets the domain, the devices and sync reach the screens, which are built after
// them; until then (and after Close) their events have no screen to go to.
type screenHub struct{ k atomic.Pointer[ui.Kiosk] }

func (h *screenHub) event(ev kiosk.Event) {
	if k := h.k.Load(); k != nil {
		k.HandleEvent(ev)
	}
}

// start runs kioskd until a signal, a technician or (windowed) the window says stop.
func start(o options, cfg Config, logf kiosk.Logf, started time.Time) error {
	var dm *demo
	termDir := o.dataDir
	if o.demo {
		d, c, err := newDemo(o.dataDir, logf)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer d.close()
		dm, cfg = d, c
		termDir = filepath.Join(o.dataDir, "terminal")
	}
	opened := time.Now()
	store, err := kiosk.OpenStore(termDir, kiosk.StoreOptions{})
	if err != nil {
		return err
	}
	storeOpen := true
	defer func() {
		if storeOpen {
			store.Close()
		}
	}()

	enr, err := client.LoadEnrollment(termDir)
	enrolled := err == nil
	if err != nil && !errors.Is(err, client.ErrNotEnrolled) {
		return err
	}
	mode, err := resolveMode(cfg.Mode, enr, enrolled)
	if err != nil {
		return err
	}

	hub := &screenHub{}
	clk := clock.NewReal()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: store, Clock: clk, Logf: logf, OnEvent: hub.event, ID: enr.TerminalID})
	if err != nil {
		return err
	}
	if mode == ModeTablet {
		if id, ok, err := term.BoundInmate(); err != nil {
			return err
		} else if !ok {
			logf("tablet: bound to no inmate yet (enroll it with a tablet code); logins are refused until then")
		} else {
			logf("tablet: bound to inmate %s", id)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Sync: only an enrolled terminal has a relay; the others keep everything for later, and
	// start sync when a technician enrolls them while they run.
	var online atomic.Int32 // 0 unknown, 1 online, 2 offline
	syncs := newSyncHolder(ctx, client.Config{DataDir: termDir, Terminal: term, Logf: logf, RelayURL: cfg.Relay.URL,
		Transport: cfg.Relay.Transport(), Software: software,
		OnStatus: func(st client.Status) {
			v := int32(2)
			if st.Connected {
				v = 1
			}
			if online.Swap(v) != v {
				logf("sync: link %s", map[bool]string{true: "up", false: "down"}[st.Connected])
				if k := hub.k.Load(); k != nil {
					k.SetLinkStatus(st.Connected)
				}
			}
		}}, mode, logf)
	defer syncs.Stop() // on an early return; the orderly stop below stops it before the store closes
	if enrolled {
		if _, _, err := syncs.Start(); err != nil {
			return err
		}
	} else {
		logf("sync: this terminal is not enrolled (kioskctl enroll); it works offline and keeps every record for later")
	}

	events := make(chan device.Event, 64)
	devs, err := newDeviceHost(cfg.DeviceConfigs(), device.Options{Events: events, Logf: logf})
	if err != nil {
		return err
	}

	a := app.NewWithID("org.tether.kioskd")
	size := fyne.NewSize(float32(cfg.Screen.Width), float32(cfg.Screen.Height))
	if size.Width == 0 || size.Height == 0 {
		size = ui.DefaultSize
	}
	cat, err := i18n.Load()
	if err != nil {
		return err
	}
	// loopStarted/loopDone follow Fyne's event loop: once it has ended (Fyne ends it by itself
	// on SIGINT/SIGTERM) nothing may be handed to the UI goroutine any more.
	var loopStarted, loopDone atomic.Bool
	uiDo := func(f func()) {
		if !loopDone.Load() {
			fyne.Do(f)
		}
	}
	// The control API for kioskctl: it answers from this process, which holds the store's lock.
	ctl, err := ctlwire.Serve(ctlwire.Options{DataDir: termDir, ConfigPath: o.configPath, Config: cfg,
		Terminal: term, Engine: syncs.Engine, Devices: devs, Logf: logf, Software: software, OnEnrolled: syncs.enrolled})
	if err != nil {
		return err
	}
	defer ctl.Close() // a no-op after the orderly stop below, which closes it before the store
	feed := &ui.DeviceFeed{}
	tw := &techWiring{termDir: termDir, term: term, syncs: syncs, relay: cfg.Relay, devs: devs, feed: feed, logf: logf}
	if !o.demo {
		tw.save = func(name, path, framing string) error { return saveMove(o.configPath, name, path, framing) }
	}
	tw.ctx = ctx
	tech := tw.deps()
	k, err := ui.New(a, ui.Deps{Domain: term, Clock: clk, Logf: logf, Tablet: mode == ModeTablet, Size: size,
		FullScreen: !o.windowed, Catalog: cat, DefaultLanguage: cfg.Screen.Language, Do: uiDo, Tech: tech})
	if err != nil {
		return err
	}
	hub.k.Store(k)
	if enrolled {
		if online.Load() == 2 {
			k.SetLinkStatus(false)
		}
	} else {
		k.SetLinkStatus(false)
	}
	win := k.Window()
	scr := newScreens(win, cat, logf, started, opened, uiDo, func(f func()) {
		if !loopDone.Load() {
			fyne.DoAndWait(f)
		}
	})

	// Orderly stop, once, whoever asks: signal, closed window (windowed), script.
	var stopOnce sync.Once
	stopped := make(chan struct{})
	shutdown := func(why string) {
		logf("stopping: %s", why)
		if info, ok := term.Active(); ok {
			if err := term.Logout(); err != nil {
				logf("stopping: end session %s: %v", info.SessionID, err)
			} else {
				logf("stopping: session %s ended (logout)", info.SessionID)
			}
		}
		t0 := time.Now()
		devs.Stop()
		logf("stopping: devices closed in %v", time.Since(t0).Round(time.Millisecond))
		syncs.Stop()
		close(stopped)
	}
	var shutDown, scriptFailed atomic.Bool
	stop := func(why string) {
		stopOnce.Do(func() {
			go func() {
				shutdown(why)
				shutDown.Store(true)
				// A signal also reached Fyne, which ends its loop by itself; before the loop
				// has started, OnStarted quits it.
				if loopStarted.Load() && !strings.HasPrefix(why, "signal") {
					uiDo(a.Quit)
				}
				// Everything that holds data has stopped; a window loop that does not end
				// must not keep a stopped kiosk on screen.
				for i := 0; i < 2 && !loopDone.Load(); i++ {
					time.Sleep(5 * time.Second)
					if !loopDone.Load() {
						logf("stopping: the window loop has not ended; asking it again")
						uiDo(a.Quit)
					}
				}
				if !loopDone.Load() {
					time.Sleep(5 * time.Second)
					if !loopDone.Load() {
						logf("stopping: the window loop did not end; exiting")
						os.Exit(1)
					}
				}
			}()
		})
	}
	if o.windowed {
		win.SetCloseIntercept(func() { stop("window closed") })
	} else {
		// A kiosk has no way out for the person at it: only a technician (or SIGTERM) stops it.
		win.SetCloseIntercept(func() { logf("close request ignored: a kiosk is stopped by a technician") })
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			logf("received signal %s", s)
			stop("signal " + s.String())
		case <-ctx.Done():
		}
	}()

	devs.Run(ctx)
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() {
		defer bgWG.Done()
		pumpDevices(ctx, events, k, feed, logf)
	}()
	go func() {
		defer bgWG.Done()
		tickLoop(ctx, term, k)
	}()

	var panel fyne.Window
	if dm != nil {
		panel = dm.panel(a)
	}
	a.Lifecycle().SetOnStarted(func() {
		loopStarted.Store(true)
		if shutDown.Load() {
			a.Quit() // stopped before the window came up
			return
		}
		logf("window shown (%v after start)", time.Since(started).Round(time.Millisecond))
		if panel != nil {
			placeBeside(win, panel, logf)
		}
		go scr.watch(ctx)
		go func() {
			if _, err := scr.wait(ctx, "welcome", 2*time.Minute); err != nil {
				logf("%v", err)
				return
			}
			if o.screenshot != "" {
				if err := scr.screenshot(o.screenshot); err != nil {
					logf("screenshot: %v", err)
				}
			}
			if dm != nil && o.script != "" {
				go func() {
					if err := runScript(ctx, o.script, dm, scr, logf); err != nil {
						logf("demo script: %v", err)
						scriptFailed.Store(true)
						stop("demo script failed")
						return
					}
				}()
			}
		}()
	})
	if dm != nil {
		dm.stop = stop
	}
	win.ShowAndRun()
	loopDone.Store(true)
	hub.k.Store(nil)
	// Nothing below waits on the network or a person; if it hangs anyway, say where and exit.
	watchdog := time.AfterFunc(20*time.Second, func() {
		logf("stopping: not stopped 20 s after the window closed; goroutines follow")
		if o.stderr != nil {
			_ = pprof.Lookup("goroutine").WriteTo(o.stderr, 1)
		}
		os.Exit(1)
	})
	defer watchdog.Stop()

	// The window is gone: make sure everything stopped, then let the screens' worker
	// finish what it holds before the store closes under it.
	stopOnce.Do(func() { shutdown("the window closed") })
	<-stopped
	cancel()
	bgWG.Wait()
	hub.k.Store(nil)
	k.Close()
	// The screens' last queued call may have started a session after the stop ended one.
	if info, ok := term.Active(); ok {
		if err := term.Logout(); err != nil {
			logf("stopping: end session %s: %v", info.SessionID, err)
		} else {
			logf("stopping: session %s ended (logout)", info.SessionID)
		}
	}
	if err := ctl.Close(); err != nil {
		logf("stopping: control socket: %v", err)
	}
	storeOpen = false
	if err := store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	logf("stopped")
	if scriptFailed.Load() {
		return errors.New("the demo script failed")
	}
	return nil
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
				// Logged by the device manager.
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
