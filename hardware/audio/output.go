package audio

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ebitengine/oto/v3"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// OutputRate is the rate the outputs run at; tracks at other rates are resampled to it.
const OutputRate = 44100

// Output is where a Player's PCM goes: two channels of signed 16-bit little-endian samples at
// Rate. One Output serves any number of Players (oto mixes their streams).
type Output interface {
	Rate() int
	// NewStream makes a paused stream that pulls PCM from src as it plays.
	NewStream(src io.ReadSeeker) Stream
	// Silent reports that nothing is heard: the null sink.
	Silent() bool
}

// Stream plays one source; *oto.Player is one as it is.
type Stream interface {
	Play()
	Pause()
	// Seek drops what the stream has buffered and seeks its source; a playing stream goes on.
	Seek(offset int64, whence int) (int64, error)
	// BufferedSize is how many bytes were read from the source but not played yet.
	BufferedSize() int
	Close() error
}

// ErrNoDevice is what OpenOutput's error matches when no sound card could be opened.
var ErrNoDevice = errors.New("no audio device")

// deviceWait bounds how long opening the card may take: ALSA's blocking open waits while
// another program holds a hardware device, and a kiosk must not hang at start for it.
const deviceWait = 5 * time.Second

// OpenDevice opens the sound card through oto. oto allows one device per process and never a
// second try, so a program calls it once and shares the Output between its Players.
func OpenDevice(clk clock.Clock) (Output, error) {
	ctx, ready, err := oto.NewContext(&oto.NewContextOptions{
		SampleRate: OutputRate, ChannelCount: 2, Format: oto.FormatSignedInt16LE,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	wait := clk.NewTimer(deviceWait)
	defer wait.Stop()
	select {
	case <-ready:
	case <-wait.C():
		return nil, fmt.Errorf("%w: the sound card did not open in %s", ErrNoDevice, deviceWait)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	return otoOutput{ctx}, nil
}

type otoOutput struct{ ctx *oto.Context }

func (o otoOutput) Rate() int                          { return OutputRate }
func (o otoOutput) Silent() bool                       { return false }
func (o otoOutput) NewStream(src io.ReadSeeker) Stream { return o.ctx.NewPlayer(src) }

// OpenOutput is the sound card when one opens, and otherwise the null sink with an error
// matching ErrNoDevice, for the log; the Player then reports HasSound false for the screen.
func OpenOutput(clk clock.Clock) (Output, error) {
	out, err := OpenDevice(clk)
	if err != nil {
		return NewNull(clk, OutputRate), err
	}
	return out, nil
}

// Null is the silent sink: a playing stream consumes its source at the real rate on the clock,
// so position, seeking and the end of a track behave as on a card, and a fake clock drives them
// in tests. It consumes lazily, when asked how much is buffered, which is how a Player reads
// its position and notices the end.
type Null struct {
	clk  clock.Clock
	rate int
}

// NewNull makes a silent sink running at rate frames per second.
func NewNull(clk clock.Clock, rate int) *Null { return &Null{clk: clk, rate: rate} }

func (n *Null) Rate() int    { return n.rate }
func (n *Null) Silent() bool { return true }

func (n *Null) NewStream(src io.ReadSeeker) Stream { return &nullStream{out: n, src: src} }

type nullStream struct {
	out *Null

	mu       sync.Mutex
	src      io.ReadSeeker
	playing  bool
	base     time.Duration // clock.Mono when playing (re)started
	consumed int64         // frames consumed since base
	closed   bool
}

// catchUpLocked consumes what the clock says has played since base; reaching the end of the
// source stops the stream, as a card's does.
func (s *nullStream) catchUpLocked() {
	if !s.playing || s.closed {
		return
	}
	due := durationToFrames(s.out.clk.Mono()-s.base, s.out.rate) - s.consumed
	var scratch [4096]byte
	for due > 0 {
		want := min(due*bytesPerFrame, int64(len(scratch)))
		n, err := s.src.Read(scratch[:want])
		s.consumed += int64(n / bytesPerFrame)
		due -= int64(n / bytesPerFrame)
		if err != nil || n == 0 {
			s.playing = false
			return
		}
	}
}

func (s *nullStream) Play() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.playing || s.closed {
		return
	}
	s.playing, s.base, s.consumed = true, s.out.clk.Mono(), 0
}

func (s *nullStream) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked()
	s.playing = false
}

func (s *nullStream) Seek(offset int64, whence int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked()
	s.base, s.consumed = s.out.clk.Mono(), 0
	return s.src.Seek(offset, whence)
}

func (s *nullStream) BufferedSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked()
	return 0
}

func (s *nullStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed, s.playing = true, false
	return nil
}
