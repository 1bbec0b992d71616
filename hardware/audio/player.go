package audio

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// State is what a Player is doing.
type State int

const (
	Empty   State = iota // no track loaded
	Paused               // a track is loaded and stands still (a fresh Load is paused at 0)
	Playing              // the track is playing
	Ended                // the track played to its end (or to where it was damaged)
)

func (s State) String() string {
	switch s {
	case Empty:
		return "empty"
	case Paused:
		return "paused"
	case Playing:
		return "playing"
	case Ended:
		return "ended"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrNoTrack is returned by Play and Seek before a track is loaded.
var ErrNoTrack = errors.New("audio: no track loaded")

// Player plays one track at a time on an Output. Its methods are safe for concurrent use; the
// functions given to Watch are called after each change, outside the Player's lock.
type Player struct {
	out Output
	clk clock.Clock

	mu     sync.Mutex
	track  *Track
	closer io.Closer // the loaded reader, closed when it is replaced
	src    *source
	stream Stream
	state  State
	// held is where a Paused track stands, in output frames. The output's reader may still
	// take a buffer from the source after a pause or a seek (oto reads outside its lock), which
	// moves the source on before the output counts it as buffered; a paused track does not play,
	// so its position is where it was paused or sought to.
	held     int64
	timer    clock.Timer
	timerGen uint64 // a timer armed before the last change finds a newer gen and does nothing
	watchers map[uint64]func()
	nextW    uint64
	closed   bool
}

// NewPlayer makes a Player on out. The clock times the end of a track (and, for the null sink,
// its playing); pass the null sink's clock.
func NewPlayer(out Output, clk clock.Clock) *Player {
	return &Player{out: out, clk: clk, watchers: map[uint64]func(){}}
}

// HasSound reports whether anything is heard: false on the null sink, where the screen says
// that this terminal has no sound.
func (p *Player) HasSound() bool { return !p.out.Silent() }

// Watch calls f after every change of state, position jump (seek) or track; cancel stops it.
// f runs on the goroutine that made the change, so it must not block: a screen hands it to its
// UI goroutine.
func (p *Player) Watch(f func()) (cancel func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.nextW
	p.nextW++
	p.watchers[id] = f
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.watchers, id)
	}
}

// unlockAndNotify releases the lock, then tells the watchers.
func (p *Player) unlockAndNotify() {
	fs := make([]func(), 0, len(p.watchers))
	for _, f := range p.watchers {
		fs = append(fs, f)
	}
	p.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Load decodes r (see Decode) and makes it the current track, paused at its start. A bad file
// changes nothing: the error names what was wrong, and r stays the caller's to close. Once
// loaded, an r that is an io.Closer is closed by the Player when the track is replaced or the
// Player closed.
func (p *Player) Load(r io.ReadSeeker) error {
	t, err := Decode(r)
	if err != nil {
		return err
	}
	src := newSource(t, p.out.Rate())
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("audio: player is closed")
	}
	p.unloadLocked()
	p.track, p.src, p.stream, p.state, p.held = t, src, p.out.NewStream(src), Paused, 0
	if c, ok := r.(io.Closer); ok {
		p.closer = c
	}
	p.unlockAndNotify()
	return nil
}

func (p *Player) unloadLocked() {
	p.stopTimerLocked()
	if p.stream != nil {
		p.stream.Close()
	}
	if p.closer != nil {
		p.closer.Close()
	}
	p.track, p.src, p.stream, p.closer, p.state = nil, nil, nil, nil, Empty
}

// Play starts or resumes the track; a track that ended starts again from the beginning.
func (p *Player) Play() error {
	p.mu.Lock()
	switch p.state {
	case Empty:
		p.mu.Unlock()
		return ErrNoTrack
	case Playing:
		p.mu.Unlock()
		return nil
	case Ended:
		if _, err := p.stream.Seek(0, io.SeekStart); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("audio: rewind to play again: %w", err)
		}
	}
	p.stream.Play()
	p.state = Playing
	p.armEndLocked()
	p.unlockAndNotify()
	return nil
}

// Pause stops the track where it is; Play resumes it there.
func (p *Player) Pause() {
	p.mu.Lock()
	if p.state != Playing {
		p.mu.Unlock()
		return
	}
	p.stream.Pause()
	p.stopTimerLocked()
	p.held = p.playedLocked()
	p.state = Paused
	p.unlockAndNotify()
}

// Seek moves to d from the start, clamped to the track; a playing track goes on playing from
// there, and an ended one stands paused there.
func (p *Player) Seek(d time.Duration) error {
	p.mu.Lock()
	if p.state == Empty {
		p.mu.Unlock()
		return ErrNoTrack
	}
	_, _, total := p.src.state() // total shrinks as the output's goroutine meets damage
	frame := min(max(durationToFrames(d, p.out.Rate()), 0), total)
	if _, err := p.stream.Seek(frame*bytesPerFrame, io.SeekStart); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("audio: seek to %s: %w", d, err)
	}
	if p.state == Ended {
		p.state = Paused
	}
	p.held = frame
	if p.state == Playing {
		// The output stops itself when its source runs dry, which can be a moment before the
		// end check sees it: set it going again, or a seek back then would stay mute.
		p.stream.Play()
		p.armEndLocked()
	}
	p.unlockAndNotify()
	return nil
}

// Position is how far the track has played: what the output has consumed, not what was
// decoded ahead into its buffer.
func (p *Player) Position() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case Empty:
		return 0
	case Paused:
		return framesToDuration(p.held, p.out.Rate())
	case Ended:
		// Where it ended: the whole track, or where a damaged one could not be decoded further.
		_, _, total := p.src.state()
		return min(framesToDuration(total, p.out.Rate()), p.track.Duration())
	}
	return framesToDuration(p.playedLocked(), p.out.Rate())
}

func (p *Player) playedLocked() int64 {
	buffered := int64(p.stream.BufferedSize() / bytesPerFrame) // first: the null sink catches up here
	pos, _, total := p.src.state()
	return min(max(pos-buffered, 0), total)
}

// Duration is the loaded track's length, known from Load on; 0 with no track.
func (p *Player) Duration() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.track == nil {
		return 0
	}
	return p.track.Duration()
}

// State is what the Player is doing.
func (p *Player) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Playing is State() == Playing, for screens that know no State type.
func (p *Player) Playing() bool { return p.State() == Playing }

// Err is why the current track stopped before its end (damaged past its headers), or nil.
func (p *Player) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.track == nil {
		return nil
	}
	return p.track.Err()
}

// Close stops playing and releases the track; the Output stays open for other Players.
func (p *Player) Close() {
	p.mu.Lock()
	p.closed = true
	p.unloadLocked()
	p.unlockAndNotify()
}

// armEndLocked sets a timer for when the rest of the track should have played, or a second if
// that is sooner; when it fires the track has ended if the source is spent and the output has
// played all it buffered, and otherwise the timer is set again for what is left.
func (p *Player) armEndLocked() {
	p.stopTimerLocked()
	gen := p.timerGen
	_, eof, total := p.src.state()
	left := total - p.playedLocked()
	if eof && left > 0 {
		left = 0 // a damaged track ended early: only the buffer is left to play
	}
	rate := int64(p.out.Rate())
	wait := time.Duration((left*int64(time.Second) + rate - 1) / rate)
	p.timer = p.clk.AfterFunc(min(max(wait, minEndCheck), maxEndCheck), func() { p.checkEnd(gen) })
}

// minEndCheck spaces the checks near the end, so a card that drains slowly is not polled hot.
const minEndCheck = 10 * time.Millisecond

// maxEndCheck bounds the wait between checks: a track that runs dry early (damaged past its
// headers) ends on screen within a second, not when its length says it should have.
const maxEndCheck = time.Second

func (p *Player) stopTimerLocked() {
	p.timerGen++
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

func (p *Player) checkEnd(gen uint64) {
	p.mu.Lock()
	if gen != p.timerGen || p.state != Playing {
		p.mu.Unlock()
		return
	}
	buffered := p.stream.BufferedSize()
	if _, eof, _ := p.src.state(); !eof || buffered > 0 {
		p.armEndLocked()
		p.mu.Unlock()
		return
	}
	p.stream.Pause()
	p.timer = nil
	p.timerGen++
	p.state = Ended
	p.unlockAndNotify()
}
