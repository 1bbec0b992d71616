// Package ui is the kiosk's touchscreen: the Fyne screens an inmate sees, from the welcome
// screen to logout, over the kiosk domain (*kiosk.Terminal, through the Domain interface).
//
// # Entry point for kioskd
//
//	k, err := ui.New(app, ui.Deps{Domain: term, Clock: clk, Logf: logf, Tablet: tablet,
//		Size: size, FullScreen: true, DefaultLanguage: "en"})
//	term's TerminalConfig.OnEvent = k.HandleEvent   // session ended, warnings, data changed
//	badge reader goroutine:  k.HandleBadge(id); a rejected (garbled) frame: k.HandleBadgeMisread()
//	PIN pad goroutine:       k.HandlePINKey(ui.KeyDigit, '7') / KeyEnter / KeyBackspace / KeyClear / KeyCancel
//	sync engine:             k.SetLinkStatus(online)
//	tick loop (~1/s):        k.Tick()            // after term.Tick(); clock, counters, due draft saves
//	facility bulletin:       k.SetFacilityNotice(map[string]string{"en": ..., "es": ...})
//	k.Window().ShowAndRun(); k.Close() when the app has quit
//
// The library and the printer come in Deps too, as interfaces kioskd fills from hardware and
// sync (cmd/internal/kioskapp/library.go):
//
//	out, _ := audio.OpenOutput(clk)    // once per process; the silent sink where no card opens
//	lib := ui.LibraryDeps{NewPlayer: func() ui.TrackPlayer { return audio.NewPlayer(out, clk) }}
//	on a shared kiosk: lib.View = engine.ViewLibraryItem; lib.Close = engine.CloseLibraryItem
//	with a printer configured: Deps.Printer = an adapter of hardware/printer's Service
//	k, err := ui.New(app, ui.Deps{..., Library: lib, Printer: printer})
//
// Every exported method of Kiosk may be called from any goroutine: it hops to the UI
// goroutine with Deps.Do (fyne.Do by default). New and Window are for the UI goroutine.
// ShowWelcome logs out whoever is at the screen, draft saved, and shows the welcome screen.
//
// # Technician area
//
// A technician's badge and PIN (SessionInfo.Technician from AcceptNotice) open the technician
// area instead of Home; nothing else leads there, and every screen of it checks that the
// login in progress is a technician's. It shows the sync link and "Sync now", the devices
// with a live test view and each device's serial port and framing, enrollment, and the
// last technician actions. Each action is first recorded through the domain
// (kiosk.Terminal.TechnicianAction: an audit event forwarded to the relay) and only then
// done; one that cannot be recorded is not done. Left alone for Policy.IdleTimeout, the
// area closes. Sync and devices come in Deps.Tech as plain funcs (a nil one shows "not
// available"), so this package imports neither. kioskd wires them:
//
//	feed := &ui.DeviceFeed{}            // the device pump also calls feed.Publish(uiDeviceEvent(ev))
//	tech := ui.TechDeps{
//		Devices:      devs.States,      // []status.Device, as the device manager reports them
//		DeviceEvents: feed.Subscribe,
//		Ports:        uiPorts,          // serialport.List() as []ui.PortInfo
//		Framings:     badge.Framings(),
//		SetDevice:    setDevice,        // validate, save the config, restart the device manager
//		Enroll:       enroll,           // client.Enroll with DataDir and Terminal; the code is never logged
//	}
//	tech.LinkStatus = func() status.Link { return status.Link{} }  // not enrolled: says so
//	if engine != nil { tech.LinkStatus = engine.Status; tech.SyncNow = engine.SyncNow }
//	k, err := ui.New(app, ui.Deps{..., Tech: tech})
//
// Devices and the link are shown as kiosk/status defines them, the types the device manager
// and the sync engine report and the control API answers, so no conversion stands between a
// screen and kioskctl status. uiDeviceEvent is written out in tech_test.go (techRig), which wires a real
// device.Manager over simulated readers the same way. PIN events never reach the feed.
//
// # Threading
//
// Widgets change only on the UI goroutine. Every domain call (each may write to bbolt) runs
// on one worker goroutine per Kiosk, in the order the screens asked (a draft saved before a
// logout lands first); its result is applied back on the UI goroutine. A result that arrives
// after the person it was for has logged out is dropped (a generation counter), so nothing
// of one inmate can appear on the next one's screen. Only Policy and Touch, which touch
// memory only, are called on the UI goroutine directly. This package never opens bbolt.
//
// # Screens
//
// Notices the relay sent (Domain.Notices) show on the welcome screen (those to everyone) and
// on Home (those too, and the person's own), in the person's language when the facility
// posted one in it, until they expire; the kiosk's own bulletin (SetFacilityNotice) comes
// first. Lockdown and curfew show on the welcome screen before anyone scans a badge. Every
// EventChanged (a frame from the relay: notice, policy, message) rebuilds what is on show.
//
// Welcome (facility, clock, notice, language, why a login was refused) -> PIN (on-screen
// keypad, scrambled when Policy.ScrambleKeypad, and the serial pad at once) -> monitoring
// notice -> Home (balance, session minutes/cost/time left, unread, link state, six tiles)
// -> Inbox/reader/reply, Write (the letters not sent, one draft per recipient, above the
// recipient chooser; 13,000 code point countdown, draft saved at most every
// Policy.DraftSaveEvery, on-screen keyboard with ñ á é í ó ú ü ¿ ¡ and a symbols layer), Sent
// (states), Contacts (add, remove), Library (library.go, reader.go: the catalog by kind with
// prices and owned items, Buy after the price and balance, the minutes left today, tracks in
// the player view, pages of books and lessons, course quizzes), Usage (the itemised
// statement: each deposit and minute charged or refunded, with the balance after it, a page
// at a time). Letters and lesson pages have a Print button where the policy allows printing
// and kioskd has a printer (print.go): pages and price first, then printed or nothing charged. On a tablet the welcome
// screen takes the bound inmate's PIN directly. Warnings come as a band across the top, the
// idle question as a full-screen layer that any touch dismisses. Every tap, key and scroll
// calls Domain.Touch.
//
// On EventSessionEnded, whatever the reason, the draft being typed is queued for saving,
// then the window's whole content tree is replaced, focus, overlays and the clipboard are
// cleared and every reference to the session is dropped; the title never names anyone.
//
// Words come from assets/translations/<lang>.json through ui/i18n; sizes and colours from
// ui/theme (high contrast, targets >= theme.MinTarget). Sub-packages: i18n, theme, keypad,
// keyboard.
//
// # Tests
//
// Tests drive the real *kiosk.Terminal over a bbolt store in t.TempDir() with a fake clock,
// with Deps.Do queueing UI work that the test goroutine runs (it plays the UI goroutine).
// Golden images of the main screens in English and Spanish are under testdata/golden; after
// a deliberate change, run the tests, look at testdata/failed/golden/*.png and copy them over.
package ui
