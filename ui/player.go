package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/ui/i18n"
	"github.com/tether-kiosk/tether/ui/theme"
)

// Playback is what the music player view drives. hardware/audio's *Player satisfies it; the
// interface lives here so that ui never imports hardware (kioskd hands the player in).
type Playback interface {
	Play() error
	Pause()
	Seek(d time.Duration) error
	Position() time.Duration
	Duration() time.Duration
	Playing() bool
	// HasSound is false on a terminal without an audio device: the view says so.
	HasSound() bool
	// Watch calls f after every change (play, pause, seek, a new track, the end), from any
	// goroutine; cancel stops it.
	Watch(f func()) (cancel func())
}

// PlayerViewConfig is what a PlayerView needs besides the player.
type PlayerViewConfig struct {
	Lang i18n.Lang
	// Do runs f on the UI goroutine (nil: fyne.Do); tests queue f and run it themselves.
	Do func(f func())
	// Touch is called on every tap and seek, as the screens call Domain.Touch (nil: nothing).
	Touch func()
}

// PlayerView shows one track: title and artist, play/pause, a seek slider, the position and
// duration, and "No sound on this terminal" where the player has no audio device. Make it and
// call SetTrack on the UI goroutine; Tick (about once a second, from any goroutine) moves the
// slider while the track plays; Close stops watching the player.
type PlayerView struct {
	widget.BaseWidget

	p     Playback
	lang  i18n.Lang
	do    func(func())
	touch func()

	title, artist *canvas.Text
	play          *widget.Button
	slider        *widget.Slider
	times         *canvas.Text
	note          *canvas.Text
	content       fyne.CanvasObject
	cancel        func()

	setting  bool // the view itself moves the slider (SetValue fires the slider's callbacks)
	dragging bool // a finger is on the slider: a Tick must not pull the thumb from under it
	failed   bool // the last Play or Seek was refused: say the track cannot be played
}

// NewPlayerView makes the view for p; call it on the UI goroutine.
func NewPlayerView(p Playback, cfg PlayerViewConfig) *PlayerView {
	v := &PlayerView{p: p, lang: cfg.Lang, do: cfg.Do, touch: cfg.Touch}
	if v.do == nil {
		v.do = fyne.Do
	}
	if v.touch == nil {
		v.touch = func() {}
	}
	v.title = theme.Text("", theme.SubHeadingSize, theme.White, true)
	v.artist = theme.Text("", theme.TextSize, theme.Grey, false)
	v.times = theme.Text("", theme.TextSize, theme.White, false)
	v.note = theme.Text(v.lang.T("player.no_sound"), theme.TextSize, theme.Yellow, false)
	v.play = widget.NewButtonWithIcon(v.lang.T("player.play"), fynetheme.MediaPlayIcon(), v.tapped)
	v.play.Importance = widget.HighImportance
	v.slider = widget.NewSlider(0, 1)
	v.slider.Step = 1 // whole seconds: a finger cannot aim finer on a kiosk screen
	v.slider.OnChanged = v.dragged
	v.slider.OnChangeEnded = v.seek
	v.content = container.NewVBox(
		v.title, v.artist,
		big(v.slider, 320, 0),
		container.NewHBox(big(v.play, 200, 0), container.NewCenter(v.times)),
		v.note,
	)
	v.ExtendBaseWidget(v)
	v.update()
	v.cancel = p.Watch(func() { v.do(v.update) })
	return v
}

func (v *PlayerView) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(v.content)
}

// SetTrack names the track on show (the catalog's title and artist); UI goroutine.
func (v *PlayerView) SetTrack(title, artist string) {
	v.title.Text, v.artist.Text = title, artist
	v.failed = false
	v.title.Refresh()
	v.artist.Refresh()
	v.update()
}

// Tick moves the slider and the position on; any goroutine.
func (v *PlayerView) Tick() { v.do(v.update) }

// Close stops watching the player (the player itself belongs to whoever made it).
func (v *PlayerView) Close() {
	if v.cancel != nil {
		v.cancel()
		v.cancel = nil
	}
}

func (v *PlayerView) tapped() {
	v.touch()
	if v.p.Playing() {
		v.p.Pause()
	} else {
		v.failed = v.p.Play() != nil
	}
	v.update()
}

// dragged shows where the slider is while a finger moves it; the seek waits for the release.
func (v *PlayerView) dragged(secs float64) {
	if v.setting {
		return
	}
	v.touch()
	v.dragging = true
	v.times.Text = clockTime(time.Duration(secs*float64(time.Second))) + " / " + clockTime(v.p.Duration())
	v.times.Refresh()
}

func (v *PlayerView) seek(secs float64) {
	if v.setting {
		return
	}
	v.touch()
	v.dragging = false
	v.failed = v.p.Seek(time.Duration(secs*float64(time.Second))) != nil
	v.update()
}

// update shows what the player says now; UI goroutine.
func (v *PlayerView) update() {
	if v.p.Playing() {
		v.play.SetText(v.lang.T("player.pause"))
		v.play.SetIcon(fynetheme.MediaPauseIcon())
	} else {
		v.play.SetText(v.lang.T("player.play"))
		v.play.SetIcon(fynetheme.MediaPlayIcon())
	}
	if !v.dragging {
		pos, dur := v.p.Position(), v.p.Duration()
		v.times.Text = clockTime(pos) + " / " + clockTime(dur)
		v.times.Refresh()
		v.setting = true
		v.slider.Max = max(dur.Seconds(), 1)
		v.slider.SetValue(pos.Truncate(time.Second).Seconds())
		v.slider.Refresh()
		v.setting = false
	}
	switch {
	case v.failed:
		v.note.Text = v.lang.T("player.cannot_play")
		v.note.Show()
	case !v.p.HasSound():
		v.note.Text = v.lang.T("player.no_sound")
		v.note.Show()
	default:
		v.note.Hide()
	}
	v.note.Refresh()
}

// clockTime is a track time as a music player shows it: 0:07, 3:45, 1:02:03.
func clockTime(d time.Duration) string {
	s := int(max(d, 0) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
