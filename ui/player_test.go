package ui

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// The view must work over the real player.
var _ Playback = (*audio.Player)(nil)

// loudOutput is the silent sink claiming to be a sound card: the only way to see the view of a
// terminal that has one on a machine that has none. Everything else is the real null sink.
type loudOutput struct{ *audio.Null }

func (loudOutput) Silent() bool { return false }

// playerRig is a PlayerView over a real hardware/audio Player on the null sink and a fake
// clock, in a window of the test app; the test goroutine plays the UI goroutine.
type playerRig struct {
	t     *testing.T
	clk   *clock.Fake
	p     *audio.Player
	v     *PlayerView
	win   fyne.Window
	mu    sync.Mutex
	queue []func()
	taps  int
}

func newPlayerRig(t *testing.T, lang string, out func(*clock.Fake) audio.Output) *playerRig {
	t.Helper()
	app := test.NewTempApp(t)
	r := &playerRig{t: t, clk: clock.NewFake(start)}
	r.p = audio.NewPlayer(out(r.clk), r.clk)
	t.Cleanup(r.p.Close)
	b, err := os.ReadFile(filepath.Join("..", "assets", "library", "morning-yard.mp3"))
	must(t, err)
	f, err := os.CreateTemp(t.TempDir(), "*.mp3")
	must(t, err)
	_, err = f.Write(b)
	must(t, err)
	must(t, r.p.Load(f)) // the player closes f
	r.v = NewPlayerView(r.p, PlayerViewConfig{Lang: i18n.MustLoad().For(lang), Do: r.enqueue,
		Touch: func() { r.taps++ }})
	t.Cleanup(r.v.Close)
	r.v.SetTrack("Morning Yard", "The Tether Project")
	w := app.NewWindow("player")
	w.SetContent(r.v)
	w.Resize(fyne.NewSize(800, 480))
	r.win = w
	r.drain()
	return r
}

func silentOutput(clk *clock.Fake) audio.Output { return audio.NewNull(clk, audio.OutputRate) }

func (r *playerRig) enqueue(f func()) {
	r.mu.Lock()
	r.queue = append(r.queue, f)
	r.mu.Unlock()
}

func (r *playerRig) drain() {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// seen is what a person reads: the button, the times, the note when it shows.
func (r *playerRig) seen() (button, times, note string) {
	note = ""
	if r.v.note.Visible() {
		note = r.v.note.Text
	}
	return r.v.play.Text, r.v.times.Text, note
}

func (r *playerRig) want(button, times, note string) {
	r.t.Helper()
	b, tm, n := r.seen()
	if b != button || tm != times || n != note {
		r.t.Errorf("the view shows [%s] %q %q, want [%s] %q %q", b, tm, n, button, times, note)
	}
}

func TestPlayerViewPlaysPausesAndSeeks(t *testing.T) {
	r := newPlayerRig(t, "en", silentOutput)
	if r.v.title.Text != "Morning Yard" || r.v.artist.Text != "The Tether Project" {
		t.Errorf("title %q, artist %q", r.v.title.Text, r.v.artist.Text)
	}
	r.want("Play", "0:00 / 0:17", "No sound on this terminal")

	test.Tap(r.v.play)
	if !r.p.Playing() {
		t.Fatal("the Play button did not start the track")
	}
	r.drain()
	r.want("Pause", "0:00 / 0:17", "No sound on this terminal")

	r.clk.Advance(5 * time.Second)
	r.v.Tick()
	r.drain()
	r.want("Pause", "0:05 / 0:17", "No sound on this terminal")
	if r.v.slider.Value != 5 || r.v.slider.Max < 17 || r.v.slider.Max > 18 {
		t.Errorf("slider at %v of %v, want 5 of the track's 17.x s", r.v.slider.Value, r.v.slider.Max)
	}

	test.Tap(r.v.play)
	r.drain()
	r.clk.Advance(3 * time.Second)
	r.v.Tick()
	r.drain()
	r.want("Play", "0:05 / 0:17", "No sound on this terminal")

	// A tap on the slider's far end seeks there: the position follows the finger.
	size := r.v.slider.Size()
	test.TapAt(r.v.slider, fyne.NewPos(size.Width-2, size.Height/2))
	r.drain()
	if pos := r.p.Position(); pos < 16*time.Second {
		t.Errorf("after a tap near the slider's end the track is at %s", pos)
	}
	r.want("Play", "0:17 / 0:17", "No sound on this terminal")
	test.TapAt(r.v.slider, fyne.NewPos(2, size.Height/2))
	r.drain()
	r.want("Play", "0:00 / 0:17", "No sound on this terminal")
	if r.taps < 4 {
		t.Errorf("%d taps counted as input, want each tap and seek", r.taps)
	}
}

func TestPlayerViewShowsTheEndAndPlaysAgain(t *testing.T) {
	r := newPlayerRig(t, "en", silentOutput)
	test.Tap(r.v.play)
	r.drain()
	r.clk.Advance(r.p.Duration() + time.Second)
	// The end comes from the player's timer goroutine, through Watch and Do.
	testwait.Until(t, "the view to show the end", func() bool {
		r.drain()
		b, tm, _ := r.seen()
		return b == "Play" && tm == "0:17 / 0:17"
	})
	test.Tap(r.v.play)
	r.drain()
	r.want("Pause", "0:00 / 0:17", "No sound on this terminal")
}

func TestPlayerViewInSpanish(t *testing.T) {
	r := newPlayerRig(t, "es", silentOutput)
	r.want("Reproducir", "0:00 / 0:17", "Este terminal no tiene sonido")
	test.Tap(r.v.play)
	r.drain()
	r.want("Pausa", "0:00 / 0:17", "Este terminal no tiene sonido")
}

func TestPlayerViewWithSoundSaysNothing(t *testing.T) {
	r := newPlayerRig(t, "en", func(clk *clock.Fake) audio.Output { return loudOutput{audio.NewNull(clk, audio.OutputRate)} })
	r.want("Play", "0:00 / 0:17", "")
}

func TestPlayerViewSaysWhenATrackCannotPlay(t *testing.T) {
	r := newPlayerRig(t, "en", silentOutput)
	r.p.Close() // the track is gone: the screen was left open on a player shut down
	r.drain()
	test.Tap(r.v.play)
	r.drain()
	r.want("Play", "0:00 / 0:00", "This track cannot be played")
}

func TestClockTime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0:00", 7 * time.Second: "0:07", 3*time.Minute + 45*time.Second + 900*time.Millisecond: "3:45",
		time.Hour + 2*time.Minute + 3*time.Second: "1:02:03", -time.Second: "0:00",
	} {
		if got := clockTime(d); got != want {
			t.Errorf("clockTime(%s) = %q, want %q", d, got, want)
		}
	}
}

// While a finger drags the slider, the track playing on must not pull the thumb back; the
// release seeks to where the finger let go.
func TestPlayerViewDragIsNotUndoneByTheTick(t *testing.T) {
	r := newPlayerRig(t, "en", silentOutput)
	test.Tap(r.v.play)
	r.drain()
	size := r.v.slider.Size()
	// The driver's calls for a finger moving from the start to three quarters of the way.
	r.v.slider.Dragged(&fyne.DragEvent{PointEvent: fyne.PointEvent{Position: fyne.NewPos(size.Width*3/4, size.Height/2)},
		Dragged: fyne.NewDelta(size.Width*3/4, 0)})
	dragged := r.v.slider.Value
	if dragged < 10 {
		t.Fatalf("the drag moved the slider to %v only", dragged)
	}
	r.clk.Advance(2 * time.Second)
	r.v.Tick()
	r.drain()
	if r.v.slider.Value != dragged {
		t.Errorf("a tick moved the slider from %v to %v under the finger", dragged, r.v.slider.Value)
	}
	if _, times, _ := r.seen(); times != clockTime(time.Duration(dragged)*time.Second)+" / 0:17" {
		t.Errorf("while dragging the view shows %q, want the finger's position", times)
	}
	r.v.slider.DragEnd()
	r.drain()
	if pos := r.p.Position(); pos != time.Duration(dragged)*time.Second {
		t.Errorf("after the release the track is at %s, want %vs", pos, dragged)
	}
	r.clk.Advance(time.Second)
	r.v.Tick()
	r.drain()
	r.want("Pause", clockTime(time.Duration(dragged+1)*time.Second)+" / 0:17", "No sound on this terminal")
}
