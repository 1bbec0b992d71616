package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// runScript drives the demo from a file of commands (or stdin), one a line, through the same
// paths a person uses: cards and keys go into the simulators' ptys, taps go to the window's
// buttons. Lines:
//
//	wait SCREEN [TIMEOUT]   until the screen shows (default 30s): the screens' own names, as
//	                        ui reports them: welcome, pin, notice, home, inbox, reader, sent,
//	                        choose, write, contacts, add_contact, usage, tech, tech_test, ...
//	badge ID                present a card on the simulated reader
//	pin DIGITS              type the digits and Enter on the simulated PIN pad
//	key enter|clear|backspace|cancel
//	tap ID                  tap the button labelled with translation ID (e.g. notice.accept)
//	screenshot PATH         write the window as PNG
//	rss                     log the resident memory
//	verify                  time one argon2id PIN check (the baseline of the login figures)
//	sleep DURATION
//	quit                    stop the kiosk as SIGTERM would
//
// The PIN's digits are never logged, only how many there were.
func runScript(ctx context.Context, path string, d *demo, scr *screens, stop func(why string), logf kiosk.Logf) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	var lastKey, lastTap time.Time
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		arg := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d (%s): %s", n, f[0], fmt.Sprintf(format, args...))
		}
		if ctx.Err() != nil {
			return nil
		}
		switch f[0] {
		case "wait":
			timeout := 30 * time.Second
			if arg(2) != "" {
				v, err := time.ParseDuration(arg(2))
				if err != nil {
					return fail("timeout: %v", err)
				}
				timeout = v
			}
			at, err := scr.wait(ctx, arg(1), timeout)
			if err != nil {
				return fail("%v", err)
			}
			if !lastKey.IsZero() && (arg(1) == "notice" || arg(1) == "home") {
				logf("bench: %s %v after the last PIN key", arg(1), at.Sub(lastKey).Round(time.Millisecond))
			}
			if !lastTap.IsZero() && arg(1) == "home" {
				logf("bench: home %v after the notice was accepted", at.Sub(lastTap).Round(time.Millisecond))
				lastTap = time.Time{}
			}
			if arg(1) == "home" {
				lastKey = time.Time{}
			}
		case "badge":
			if arg(1) == "" {
				return fail("want a badge id")
			}
			d.present(arg(1))
			logf("demo script: badge presented")
		case "pin":
			pin := arg(1)
			if kiosk.ValidatePIN(pin) != nil {
				return fail("want 4 to 12 digits")
			}
			done := make(chan time.Time, 1)
			d.typePIN(pin, done)
			select {
			case lastKey = <-done:
			case <-ctx.Done():
				return nil
			}
			logf("demo script: PIN of %d digits typed, then Enter", len(pin))
		case "key":
			b, ok := map[string]byte{"enter": '\r', "clear": '*', "backspace": 0x08, "cancel": 0x1B}[arg(1)]
			if !ok {
				return fail("want enter, clear, backspace or cancel")
			}
			d.press(b)
		case "tap":
			if err := scr.tap(arg(1)); err != nil {
				return fail("%v", err)
			}
			lastTap = time.Now()
			logf("demo script: tapped %s", arg(1))
		case "screenshot":
			if arg(1) == "" {
				return fail("want a path")
			}
			if err := scr.screenshot(arg(1)); err != nil {
				return fail("%v", err)
			}
		case "rss":
			kb, err := rssKiB()
			if err != nil {
				return fail("%v", err)
			}
			debug.FreeOSMemory()
			after, err := rssKiB()
			if err != nil {
				return fail("%v", err)
			}
			logf("bench: rss %.1f MiB (%.1f MiB after returning freed memory to the OS)", float64(kb)/1024, float64(after)/1024)
		case "verify":
			// The baseline of the login figures: one PIN check at the kiosk's argon2id cost.
			h, err := kiosk.HashPIN("97531")
			if err != nil {
				return fail("%v", err)
			}
			t0 := time.Now()
			kiosk.VerifyPIN(h, "97531")
			logf("bench: one argon2id PIN check %v", time.Since(t0).Round(time.Millisecond))
		case "sleep":
			v, err := time.ParseDuration(arg(1))
			if err != nil {
				return fail("%v", err)
			}
			select {
			case <-time.After(v):
			case <-ctx.Done():
				return nil
			}
		case "quit":
			logf("demo script: done")
			stop("demo script quit")
			return nil
		default:
			return fail("unknown command")
		}
	}
	return sc.Err()
}

// rssKiB reads this process's resident set size.
func rssKiB() (int, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				return strconv.Atoi(f[1])
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}
