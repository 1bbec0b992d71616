package device

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// rig runs a Manager over simulated devices on real ptys.
type rig struct {
	t      *testing.T
	m      *Manager
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}
	logMu  sync.Mutex
	logs   []string
}

func startRig(t *testing.T, cfgs []Config, o Options) *rig {
	t.Helper()
	r := &rig{t: t, events: make(chan Event, 256), done: make(chan struct{})}
	if o.Events == nil {
		o.Events = r.events
	}
	o.Logf = func(format string, args ...any) {
		r.logMu.Lock()
		r.logs = append(r.logs, fmt.Sprintf(format, args...))
		r.logMu.Unlock()
	}
	m, err := New(cfgs, o)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		m.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *rig) stop() {
	r.cancel()
	<-r.done
}

// next waits for the next event of one of kinds, skipping others. It has no deadline of its
// own: an event that never comes is the test binary's timeout, never a speed check here.
func (r *rig) next(kinds ...EventKind) Event {
	r.t.Helper()
	for ev := range r.events {
		for _, k := range kinds {
			if ev.Kind == k {
				return ev
			}
		}
	}
	panic("unreachable: the events channel is never closed")
}

// none asserts that no event of kinds is waiting now.
func (r *rig) none(kinds ...EventKind) {
	r.t.Helper()
	for {
		select {
		case ev := <-r.events:
			for _, k := range kinds {
				if ev.Kind == k {
					r.t.Fatalf("unexpected event %+v", ev)
				}
			}
		default:
			return
		}
	}
}

// waitFor yields until cond holds, for state that no event announces; like next, it has no
// deadline of its own.
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

func fakeClock() *clock.Fake { return clock.NewFake(time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)) }

func newReader(t *testing.T, framing string, o badge.Options) *sim.BadgeReader {
	t.Helper()
	s, err := sim.NewBadgeReaderWith(framing, sim.Options{Dir: t.TempDir(), Badge: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func badgeConfig(name string, s *sim.BadgeReader) Config {
	return Config{Name: name, Role: RoleBadge, Path: s.Path(), Framing: s.Framing()}
}

// Published example frames of every framing, and every kind of invalid frame, through a
// real tty: the user sees the ids, the rejections and their reasons counted.
func TestEveryFramingOverPTY(t *testing.T) {
	examples := map[string][]struct{ frame, id string }{
		badge.EM4100:    {{"\x0262E3086CED08\x03", "3808980205"}},
		badge.Wiegand26: {{"0CA1FFF\r", "101-04095"}, {"3A83702\r", "212-07041"}},
		badge.Magstripe: {{";4111111111111111=2912101?\r", "4111111111111111"}, {"%B6011000990139424^DOE/JOHN^2912?\r", "6011000990139424"}},
		badge.Line:      {{"0012345678905\r\n", "0012345678905"}},
	}
	for _, f := range badge.Framings() {
		t.Run(f, func(t *testing.T) {
			s := newReader(t, f, badge.Options{})
			r := startRig(t, []Config{badgeConfig("door", s)}, Options{})
			r.next(EventConnected)
			for _, ex := range examples[f] {
				s.Write([]byte(ex.frame))
				if ev := r.next(EventBadge, EventRejected); ev.Kind != EventBadge || ev.ID != ex.id || ev.Device != "door" {
					t.Errorf("frame %q: got %+v, want badge %s", ex.frame, ev, ex.id)
				}
			}
			// The simulator's encoder gives frames the decoder reads back.
			id := map[string]string{badge.EM4100: "0000000042", badge.Wiegand26: "001-00042", badge.Magstripe: "42", badge.Line: "42"}[f]
			if err := s.Present(id); err != nil {
				t.Fatal(err)
			}
			if ev := r.next(EventBadge, EventRejected); ev.ID != id {
				t.Errorf("sim encoder: got %+v, want %s", ev, id)
			}
			want := map[string]uint64{}
			for _, kind := range badge.InvalidKinds(f) {
				if kind == badge.InvalidPrefix {
					continue
				}
				reason, err := s.PresentInvalid(kind)
				if err != nil {
					t.Fatal(err)
				}
				want[string(reason)]++
				if ev := r.next(EventBadge, EventRejected); ev.Kind != EventRejected || ev.Reason != string(reason) {
					t.Errorf("invalid %s: got %+v, want rejected %q", kind, ev, reason)
				}
			}
			st, _ := r.m.State("door")
			if !st.Connected() || len(st.Rejected) != len(want) {
				t.Errorf("state %+v, want connected with rejections %v", st, want)
			}
			for reason, n := range want {
				if st.Rejected[reason] != n {
					t.Errorf("rejected[%q] = %d, want %d", reason, st.Rejected[reason], n)
				}
			}
			if st.LastEventKind != string(EventRejected) || st.LastEvent.IsZero() {
				t.Errorf("last event %v at %v", st.LastEventKind, st.LastEvent)
			}
		})
	}
}

// A frame split over several writes, several frames in one write, and garbage between
// frames all come out as the right ids.
func TestSplitMergedNoiseOverPTY(t *testing.T) {
	s := newReader(t, badge.EM4100, badge.Options{})
	r := startRig(t, []Config{badgeConfig("door", s)}, Options{})
	r.next(EventConnected)
	f1, _ := s.Frame("0000000001")
	f2, _ := s.Frame("0000000002")
	f3, _ := s.Frame("0000000003")
	for _, part := range [][]byte{f1[:3], f1[3:9], f1[9:]} {
		s.Write(part)
	}
	s.Write(append(append([]byte("\xff\x00junk"), f2...), append([]byte("\x13\x11"), f3...)...))
	for _, want := range []string{"0000000001", "0000000002", "0000000003"} {
		if ev := r.next(EventBadge, EventRejected); ev.ID != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
	if st, _ := r.m.State("door"); st.Noise != 8 || st.Accepted != 3 {
		t.Errorf("noise %d accepted %d, want 8 and 3", st.Noise, st.Accepted)
	}
}

// A held card repeats its frame: one event; another card at once; the same card again
// within the window nothing, after it a new event. The window runs on the manager's clock.
func TestRepeatSuppressionOverPTY(t *testing.T) {
	s := newReader(t, badge.EM4100, badge.Options{})
	cfg := badgeConfig("door", s)
	cfg.DedupeWindow = 400 * time.Millisecond
	clk := fakeClock()
	r := startRig(t, []Config{cfg}, Options{Clock: clk})
	r.next(EventConnected)
	if err := s.Hold("3808980205", 10, 0); err != nil {
		t.Fatal(err)
	}
	if ev := r.next(EventBadge); ev.ID != "3808980205" {
		t.Fatalf("got %+v", ev)
	}
	// One goroutine reads the reader in order: the next badge event after the held card's
	// is the other card's only if none of the nine repeats made one.
	s.Present("0000000007")
	if ev := r.next(EventBadge); ev.ID != "0000000007" {
		t.Fatalf("a repeat of the held card made an event: %+v", ev)
	}
	st, _ := r.m.State("door")
	if st.Accepted != 11 || st.Duplicates != 9 {
		t.Errorf("accepted %d duplicates %d, want 11 and 9", st.Accepted, st.Duplicates)
	}
	clk.Advance(399 * time.Millisecond) // still held: within the window
	s.Present("0000000007")
	// The reader goroutine takes the frame when it is scheduled: the clock moves on only once
	// it has been counted, or it would be read after the window and count as a new card.
	testwait.UntilSaw(t, "the repeat within the window counted", func() (bool, string) {
		st, _ := r.m.State("door")
		return st.Duplicates == 10, fmt.Sprintf("accepted %d duplicates %d", st.Accepted, st.Duplicates)
	})
	clk.Advance(400 * time.Millisecond) // lifted for the window (it slides with each repeat)
	s.Present("0000000007")
	if ev := r.next(EventBadge); ev.ID != "0000000007" {
		t.Fatalf("after the window: got %+v", ev)
	}
	if st, _ := r.m.State("door"); st.Accepted != 13 || st.Duplicates != 10 {
		t.Errorf("accepted %d duplicates %d, want 13 and 10", st.Accepted, st.Duplicates)
	}
}

// Unplug: the path vanishes and the port hangs up; the manager reports disconnected,
// retries with backoff, and when the path comes back (a new pty) events flow again.
func TestUnplugReplugOverPTY(t *testing.T) {
	s := newReader(t, badge.Wiegand26, badge.Options{})
	clk := fakeClock()
	r := startRig(t, []Config{badgeConfig("door", s)}, Options{Clock: clk})
	r.next(EventConnected)
	s.Present("101-04095")
	if ev := r.next(EventBadge); ev.ID != "101-04095" {
		t.Fatalf("got %+v", ev)
	}
	oldTTY := s.TTY()
	s.Unplug()
	ev := r.next(EventDisconnected)
	if !strings.Contains(ev.Reason, "disconnected") {
		t.Errorf("disconnect reason %q", ev.Reason)
	}
	st, _ := r.m.State("door")
	if st.Connected() || st.DisconnectedSince.IsZero() || st.LastError == "" {
		t.Errorf("state after unplug: %+v", st)
	}
	// Two failed retries, 200 and 400 ms after the unplug, on the manager's clock.
	for _, d := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		clk.WaitTimers(1)
		clk.Advance(d)
	}
	clk.WaitTimers(1) // the second retry failed and waits for the third
	if st, _ := r.m.State("door"); st.Connected() || st.FailedOpens != 2 || !strings.Contains(st.LastError, "no such file") {
		t.Errorf("state while gone: connected %v, %d failed opens, last error %q", st.Connected(), st.FailedOpens, st.LastError)
	}
	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(800 * time.Millisecond)
	r.next(EventConnected)
	s.Present("212-07041")
	if ev := r.next(EventBadge); ev.ID != "212-07041" {
		t.Fatalf("after replug: got %+v", ev)
	}
	st, _ = r.m.State("door")
	if !st.Connected() || !st.DisconnectedSince.IsZero() || st.Reconnects != 1 {
		t.Errorf("state after replug: %+v", st)
	}
	t.Logf("replugged from %s to %s", oldTTY, s.TTY())
}

// Shutdown closes every port: a quiet connected device, a device that is missing (waiting
// out its backoff, which shutdown cuts short: the clock never reaches it) and a PIN pad. Each
// port's read returns within its read timeout (at most 500 ms), so Run returns soon after.
func TestShutdownClosesEveryPort(t *testing.T) {
	s := newReader(t, badge.EM4100, badge.Options{})
	pad, err := sim.NewPinPadWith(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	cfgs := []Config{badgeConfig("door", s),
		{Name: "pad", Role: RolePinPad, Path: pad.Path()},
		{Name: "gone", Role: RoleBadge, Path: t.TempDir() + "/missing", Framing: badge.Line}}
	clk := fakeClock()
	r := startRig(t, cfgs, Options{ReadTimeout: 500 * time.Millisecond, BackoffMin: 5 * time.Second, Clock: clk})
	r.next(EventConnected)
	r.next(EventConnected)
	clk.WaitTimers(1) // "gone" failed and waits 5 s that never pass
	r.stop()
	for _, st := range r.m.States() {
		if st.Connected() {
			t.Errorf("%s still connected after shutdown", st.Name)
		}
	}
	// The port was really released: the sim's tty can be opened exclusively again.
	r2 := startRig(t, cfgs[:1], Options{})
	r2.next(EventConnected)
}

// PIN pad over a pty: keys arrive as kinds only, the PIN as a whole on Enter; a badge
// read drops a half-typed PIN; nothing logged or kept in state shows a digit.
func TestPinPadOverPTY(t *testing.T) {
	s := newReader(t, badge.EM4100, badge.Options{})
	pad, err := sim.NewPinPadWith(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	r := startRig(t, []Config{badgeConfig("door", s), {Name: "pad", Role: RolePinPad, Path: pad.Path()}}, Options{})
	r.next(EventConnected)
	r.next(EventConnected)

	// Twelve digits, so that no timestamp or temp path in the output matches by chance.
	const secret = "739184625017"
	if err := pad.TypePIN(secret); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= len(secret); i++ {
		if ev := r.next(EventKey); ev.Key.Kind() != "digit" || ev.Len != i {
			t.Fatalf("key %d: %+v", i, ev)
		}
	}
	if ev := r.next(EventKey); ev.Key.Kind() != "enter" {
		t.Fatalf("want enter, got %+v", ev)
	}
	ev := r.next(EventPIN)
	if ev.PIN.Reveal() != secret {
		t.Fatalf("PIN delivered wrong")
	}
	shown := fmt.Sprintf("%v %+v %#v", ev, ev, ev)

	pad.Write([]byte("12"))
	r.next(EventKey)
	r.next(EventKey)
	s.Present("0000000005")
	if ev := r.next(EventPINDropped); ev.Device != "pad" || ev.Reason != "badge read" {
		t.Fatalf("got %+v, want pin-dropped on pad", ev)
	}
	pad.Write([]byte{'3', 'A', '\r'}) // 'A' is not on the pad
	if ev := r.next(EventPIN); ev.PIN.Reveal() != "3" {
		t.Fatalf("after drop, PIN should be just the new digit")
	}
	pad.Write([]byte("555\r")) // contact bounce: one key
	if ev := r.next(EventPIN); ev.PIN.Reveal() != "5" {
		t.Fatalf("bounce not suppressed")
	}

	st, _ := r.m.State("pad")
	if st.Keys != 12+1+2+2+2 || st.UnknownBytes != 1 || st.Bounced != 2 {
		t.Errorf("pad state keys %d unknown %d bounced %d, want 19, 1, 2", st.Keys, st.UnknownBytes, st.Bounced)
	}
	r.stop()
	r.logMu.Lock()
	shown += strings.Join(r.logs, "\n") + fmt.Sprintf("%+v", r.m.States())
	r.logMu.Unlock()
	for i := 0; i+8 <= len(secret); i++ {
		if part := secret[i : i+8]; strings.Contains(shown, part) {
			t.Errorf("PIN digits %s visible in events, logs or state: %s", part, shown)
		}
	}
}

// A consumer that never reads cannot stall the manager: events are dropped and counted.
func TestSlowConsumerDropsAndCounts(t *testing.T) {
	s := newReader(t, badge.Line, badge.Options{})
	events := make(chan Event, 1)
	events <- Event{Kind: "filler"} // full from the start; nobody reads it
	r := startRig(t, []Config{badgeConfig("door", s)}, Options{Events: events})
	for i := 0; i < 5; i++ {
		s.Present(fmt.Sprintf("ID%d", i))
	}
	waitFor(func() bool { st, _ := r.m.State("door"); return st.Accepted == 5 })
	// The fifth badge is counted accepted before its event is emitted (and dropped): read the
	// drops once the manager has stopped, which it does because nothing waits on the full
	// channel.
	r.stop()
	if st, _ := r.m.State("door"); st.Dropped != 6 { // the connected event and five badges
		t.Errorf("dropped %d, want 6", st.Dropped)
	}
}

func TestValidate(t *testing.T) {
	good := Config{Name: "door", Role: RoleBadge, Path: "/dev/ttyUSB0", Framing: badge.EM4100}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Framing = "foo" }, `device "door": framing "foo" unknown (want em4100, wiegand26, magstripe, line)`},
		{func(c *Config) { c.Framing = "" }, `device "door": framing is empty`},
		{func(c *Config) { c.Role = "printer" }, `device "door": role "printer" unknown (want badge, pinpad)`},
		{func(c *Config) { c.Path = "" }, `device "door": path is empty`},
		{func(c *Config) { c.Baud = 1234 }, `device "door": baud 1234 unsupported`},
		{func(c *Config) { c.Parity = "X" }, `device "door": parity "X" unsupported`},
		{func(c *Config) { c.IDFormat = "octal" }, `device "door": id format "octal" unknown for em4100`},
		{func(c *Config) { c.DedupeWindow = -time.Second }, `device "door": dedupe window -1s is negative`},
		{func(c *Config) { c.Role = RolePinPad }, `device "door": framing, id format`},
		{func(c *Config) { c.Role, c.Framing, c.KeyMap = RolePinPad, "", map[byte]string{'A': "fire"} }, `device "door": key map: byte 0x41: action "fire" unknown`},
		{func(c *Config) { c.Name = "" }, `device at "/dev/ttyUSB0": name is empty`},
	} {
		cfg := good
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	if _, err := New([]Config{good, good}, Options{}); err == nil || !strings.Contains(err.Error(), "name used twice") {
		t.Errorf("duplicate names: %v", err)
	}
}

// A missing device is retried with a doubling interval up to the cap, not in a tight loop,
// and logged once.
func TestBackoffDoublesUpToCap(t *testing.T) {
	missing := Config{Name: "gone", Role: RoleBadge, Path: t.TempDir() + "/usb-gone", Framing: badge.Line}
	clk := fakeClock()
	r := startRig(t, []Config{missing}, Options{Clock: clk})
	ms := time.Millisecond
	for i, want := range []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms} {
		clk.WaitTimers(1) // open number i+1 failed; the manager waits for the next
		st, _ := r.m.State("gone")
		if got := st.NextRetry.Sub(clk.Now()); got != want || st.FailedOpens != uint64(i+1) {
			t.Fatalf("after %d failed opens (state says %d), next retry in %v, want %v", i+1, st.FailedOpens, got, want)
		}
		if st.Connected() || !strings.Contains(st.LastError, "no such file") {
			t.Errorf("state %+v", st)
		}
		clk.Advance(want)
	}
	r.logMu.Lock()
	n := len(r.logs)
	r.logMu.Unlock()
	if n != 1 {
		t.Errorf("%d log lines for one missing device, want 1 (no flood on retries)", n)
	}
}

// A path that is no serial device (here a directory) fails the same way until a technician
// fixes the configuration: it is retried at the slowest pace from the first failure, and the
// log says who must act.
func TestNotADeviceRetriedSlowly(t *testing.T) {
	wrong := Config{Name: "door", Role: RoleBadge, Path: t.TempDir(), Framing: badge.Line}
	clk := fakeClock()
	r := startRig(t, []Config{wrong}, Options{Clock: clk})
	clk.WaitTimers(1)
	st, _ := r.m.State("door")
	if got := st.NextRetry.Sub(clk.Now()); got != 5*time.Second || st.FailedOpens != 1 || !strings.Contains(st.LastError, "is a directory") {
		t.Fatalf("next retry in %v after %d failed opens (%q), want 5s (the cap) after 1", got, st.FailedOpens, st.LastError)
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "technician") {
		t.Errorf("log %q, want one line asking a technician", r.logs)
	}
}

// A half-typed PIN is dropped after 30 s without a key, on the manager's (injected) clock.
func TestHalfTypedPINDroppedAfter30s(t *testing.T) {
	pad, err := sim.NewPinPadWith(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	clk := fakeClock()
	r := startRig(t, []Config{{Name: "pad", Role: RolePinPad, Path: pad.Path()}}, Options{Clock: clk})
	r.next(EventConnected)
	pad.Write([]byte("12"))
	r.next(EventKey)
	r.next(EventKey)
	clk.Advance(29 * time.Second)
	// Two bytes off the key map (they neither count as keys nor keep the entry alive), read
	// one after the other: once the second is counted, the check that follows the first read
	// has run, and it dropped nothing.
	for i, b := range []byte("AA") {
		pad.Write([]byte{b})
		waitFor(func() bool { st, _ := r.m.State("pad"); return st.UnknownBytes == uint64(i+1) })
	}
	r.none(EventPINDropped)
	clk.Advance(time.Second)
	if ev := r.next(EventPINDropped); ev.Device != "pad" || ev.Reason != "no key for 30 s" {
		t.Fatalf("got %+v", ev)
	}
	pad.Write([]byte("3\r"))
	if ev := r.next(EventPIN); ev.PIN.Reveal() != "3" {
		t.Fatal("dropped digits came back")
	}
}
