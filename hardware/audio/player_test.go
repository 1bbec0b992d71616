package audio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// silentPlayer is a Player on the null sink, on a fake clock the test moves.
func silentPlayer(t *testing.T) (*Player, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	p := NewPlayer(NewNull(clk, OutputRate), clk)
	t.Cleanup(p.Close)
	return p, clk
}

func load(t *testing.T, p *Player, file string) {
	t.Helper()
	if err := p.Load(bytes.NewReader(demoBytes(t, file))); err != nil {
		t.Fatal(err)
	}
}

// want checks what a screen would read off the player.
func want(t *testing.T, p *Player, state State, pos time.Duration) {
	t.Helper()
	if got := p.State(); got != state {
		t.Errorf("state %s, want %s", got, state)
	}
	// One output frame is 23 µs: positions are exact to the frame.
	if got := p.Position(); got < pos-50*time.Microsecond || got > pos+50*time.Microsecond {
		t.Errorf("position %s, want %s", got, pos)
	}
}

func TestPlayPauseSeekOnTheSilentOutput(t *testing.T) {
	p, clk := silentPlayer(t)
	want(t, p, Empty, 0)
	if err := p.Play(); !errors.Is(err, ErrNoTrack) {
		t.Fatalf("Play with nothing loaded = %v, want ErrNoTrack", err)
	}
	if p.HasSound() {
		t.Error("the null sink claims to make sound")
	}
	load(t, p, "morning-yard.mp3")
	dur := p.Duration()
	if dur < 17400*time.Millisecond || dur > 17700*time.Millisecond {
		t.Fatalf("duration %s, want about 17.4 s, known before playing", dur)
	}
	want(t, p, Paused, 0)

	clk.Advance(3 * time.Second) // a loaded track does not play by itself
	want(t, p, Paused, 0)

	must(t, p.Play())
	clk.Advance(2 * time.Second)
	want(t, p, Playing, 2*time.Second)

	p.Pause()
	clk.Advance(5 * time.Second)
	want(t, p, Paused, 2*time.Second)

	must(t, p.Seek(10*time.Second))
	want(t, p, Paused, 10*time.Second)
	must(t, p.Play())
	clk.Advance(1500 * time.Millisecond)
	want(t, p, Playing, 11500*time.Millisecond)

	must(t, p.Seek(3*time.Second)) // back, while playing: it goes on from there
	want(t, p, Playing, 3*time.Second)
	clk.Advance(time.Second)
	want(t, p, Playing, 4*time.Second)

	must(t, p.Seek(-time.Second))
	want(t, p, Playing, 0)
}

func TestTheEndIsToldAndPlayStartsAgain(t *testing.T) {
	p, clk := silentPlayer(t)
	changed := make(chan State, 16)
	cancel := p.Watch(func() { changed <- p.State() })
	load(t, p, "count-the-days.mp3")
	if s := <-changed; s != Paused {
		t.Fatalf("after Load the watcher saw %s", s)
	}
	must(t, p.Play())
	if s := <-changed; s != Playing {
		t.Fatalf("after Play the watcher saw %s", s)
	}
	dur := p.Duration()
	clk.Advance(dur - time.Millisecond)
	want(t, p, Playing, dur-time.Millisecond)
	// The check that came due found 1 ms left and armed the next one, minEndCheck on at most.
	clk.WaitTimers(1)
	clk.Advance(minEndCheck)
	var s State
	testwait.Until(t, "the watcher to be told of the end", func() bool {
		select {
		case s = <-changed:
			return true
		default:
			return false
		}
	})
	if s != Ended {
		t.Fatalf("at the end the watcher saw %s", s)
	}
	want(t, p, Ended, dur)
	clk.Advance(time.Minute)
	want(t, p, Ended, dur)

	must(t, p.Play()) // the replay button
	<-changed
	want(t, p, Playing, 0)
	clk.Advance(time.Second)
	want(t, p, Playing, time.Second)

	cancel()
	p.Pause()
	select {
	case s := <-changed:
		t.Fatalf("a cancelled watcher was told %s", s)
	default:
	}
}

func TestSeekingToTheEndWhilePlayingEnds(t *testing.T) {
	p, clk := silentPlayer(t)
	load(t, p, "letter-home.mp3")
	ended := make(chan struct{}, 4)
	p.Watch(func() {
		if p.State() == Ended {
			ended <- struct{}{}
		}
	})
	must(t, p.Play())
	must(t, p.Seek(time.Hour)) // a slider dragged past the end is clamped to it
	clk.WaitTimers(1)
	clk.Advance(minEndCheck)
	told(t, ended, "the end")
	want(t, p, Ended, p.Duration())

	must(t, p.Seek(5*time.Second)) // a seek after the end stands paused there
	want(t, p, Paused, 5*time.Second)
}

func TestPausedTrackArmsNoTimerAndLoadReplaces(t *testing.T) {
	p, clk := silentPlayer(t)
	load(t, p, "letter-home.mp3")
	must(t, p.Play())
	clk.Advance(4 * time.Second)
	p.Pause()
	if n := clk.Timers(); n != 0 {
		t.Errorf("%d timers armed while paused", n)
	}
	load(t, p, "count-the-days.mp3")
	want(t, p, Paused, 0)
	if d := p.Duration(); d > 13*time.Second {
		t.Errorf("duration %s is not the new track's", d)
	}
	if n := clk.Timers(); n != 0 {
		t.Errorf("%d timers armed after a new Load", n)
	}
}

func TestABadFileLeavesTheTrackPlaying(t *testing.T) {
	p, clk := silentPlayer(t)
	load(t, p, "morning-yard.mp3")
	dur := p.Duration()
	must(t, p.Play())
	clk.Advance(time.Second)
	err := p.Load(bytes.NewReader([]byte("not music at all, just a letter")))
	if !errors.Is(err, ErrNotMP3) {
		t.Fatalf("Load of text = %v, want ErrNotMP3", err)
	}
	if p.Duration() != dur {
		t.Errorf("duration %s after a refused Load, want %s", p.Duration(), dur)
	}
	clk.Advance(time.Second)
	want(t, p, Playing, 2*time.Second)
}

// closer records that the Player closed the reader it was given.
type closer struct {
	*bytes.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestReadersAreClosedWhenReplaced(t *testing.T) {
	p, _ := silentPlayer(t)
	first := &closer{Reader: bytes.NewReader(demoBytes(t, "letter-home.mp3"))}
	must(t, p.Load(first))
	if first.closed {
		t.Fatal("closed while loaded")
	}
	second := &closer{Reader: bytes.NewReader(demoBytes(t, "count-the-days.mp3"))}
	must(t, p.Load(second))
	if !first.closed {
		t.Error("the replaced track's reader is still open")
	}
	p.Close()
	if !second.closed {
		t.Error("Close left the reader open")
	}
	if err := p.Load(bytes.NewReader(demoBytes(t, "letter-home.mp3"))); err == nil {
		t.Error("a closed player loaded a track")
	}
}

// Where no sound card opens (this machine, CI), OpenOutput falls back to the null sink and says
// why, and a player on it works and reports that nothing is heard.
func TestNoDeviceFallsBackToTheSilentSink(t *testing.T) {
	clk := clock.NewFake(t0)
	out, err := OpenOutput(clk)
	if err == nil {
		t.Skip("this machine has a sound card: the fallback cannot be seen here")
	}
	if !errors.Is(err, ErrNoDevice) {
		t.Fatalf("error %v does not match ErrNoDevice", err)
	}
	t.Log(err)
	if !out.Silent() {
		t.Fatal("the fallback output is not the silent sink")
	}
	p := NewPlayer(out, clk)
	defer p.Close()
	if p.HasSound() {
		t.Error("HasSound on the silent sink")
	}
	load(t, p, "count-the-days.mp3")
	must(t, p.Play())
	clk.Advance(time.Second)
	want(t, p, Playing, time.Second)
}

// told waits for the watcher to be told: the end comes from the clock's timer goroutine.
func told(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	testwait.Until(t, "the watcher to be told of "+what, func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The output stops by itself when the source runs dry, a moment before the Player's end check
// comes; a seek back in that moment must set it going again, not leave a "playing" track mute.
func TestSeekBackJustAfterTheOutputRanDry(t *testing.T) {
	p, clk := silentPlayer(t)
	load(t, p, "letter-home.mp3")
	must(t, p.Play())
	must(t, p.Seek(p.Duration()))
	clk.Advance(minEndCheck / 2) // the output has played everything; the end check is not due
	want(t, p, Playing, p.Duration())
	must(t, p.Seek(2*time.Second))
	clk.Advance(time.Second)
	want(t, p, Playing, 3*time.Second)
}

// damaged is a demo track whose frames from the middle on have their side information
// overwritten: the headers still scan (so the duration is the whole track's) but the audio
// cannot be decoded past the first of them.
func damaged(t *testing.T) []byte {
	b := append([]byte(nil), demoBytes(t, "count-the-days.mp3")...)
	for i, n := len(b)/2, 0; i+1 < len(b) && n < 20; i++ {
		if b[i] == 0xff && b[i+1] == 0xfb { // an MPEG-1 Layer III frame header
			for k := i + 4; k+1 < len(b) && (b[k] != 0xff || b[k+1] != 0xfb); k++ {
				b[k] = 0xff
			}
			n++
			i += 3
		}
	}
	return b
}

func TestADamagedTrackEndsWhereItBreaks(t *testing.T) {
	p, clk := silentPlayer(t)
	ended := make(chan struct{}, 4)
	p.Watch(func() {
		if p.State() == Ended {
			ended <- struct{}{}
		}
	})
	must(t, p.Load(bytes.NewReader(damaged(t))))
	if p.Duration() < 12*time.Second {
		t.Fatalf("duration %s: the headers of the whole track should scan", p.Duration())
	}
	must(t, p.Play())
	// The track breaks at 6.3 s; its end shows within a second, not at its 12.7 s length.
	clk.Advance(7500 * time.Millisecond)
	told(t, ended, "the end")
	pos := p.Position()
	if pos < 5*time.Second || pos > 7*time.Second {
		t.Errorf("a track damaged from the middle ended at %s", pos)
	}
	err := p.Err()
	if !errors.Is(err, ErrNotMP3) || !strings.Contains(err.Error(), "damaged at 6.") {
		t.Errorf("Err = %v, want it to say where the track is damaged", err)
	}
}

// A sound card's reader (oto) may take one more buffer from the source after a pause or a
// seek, before the output counts it as buffered. The screen must still read where the track
// was paused or sought to, not half a second past it (seen under load in the oto test).
func TestAPausedTrackStandsWhereItWasPutDespiteAReadInFlight(t *testing.T) {
	p, clk := silentPlayer(t)
	load(t, p, "morning-yard.mp3")
	must(t, p.Play())
	clk.Advance(2 * time.Second)
	p.Pause()
	at := p.Position()
	inFlight := make([]byte, 4096*bytesPerFrame) // what one late read of the output takes
	if _, err := p.src.Read(inFlight); err != nil {
		t.Fatal(err)
	}
	want(t, p, Paused, at)

	must(t, p.Seek(4*time.Second))
	if _, err := p.src.Read(inFlight); err != nil {
		t.Fatal(err)
	}
	want(t, p, Paused, 4*time.Second)
}
