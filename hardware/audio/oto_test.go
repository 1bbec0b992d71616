package audio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// otoChild marks the test binary run again by TestSoundCardThroughOto.
const otoChild = "TETHER_AUDIO_OTO_CHILD"

// The oto path is the real one: ALSA's own "null" PCM stands in for a sound card (alsa-lib
// opens it like any card and discards what is written). oto opens one device per process and
// never again, so the test runs in a child process with ALSA pointed at that configuration.
// The null PCM takes samples faster than real time, so this is a test of wiring (open, play,
// pause, seek, the end told), not of pacing, which the null sink's tests cover.
func TestSoundCardThroughOto(t *testing.T) {
	if os.Getenv(otoChild) == "" {
		cfg := filepath.Join(t.TempDir(), "asound.conf")
		must(t, os.WriteFile(cfg, []byte("pcm.!default { type null }\n"), 0o644))
		cmd := exec.Command(os.Args[0], "-test.run=^TestSoundCardThroughOto$", "-test.v")
		cmd.Env = append(os.Environ(), otoChild+"=1", "ALSA_CONFIG_PATH="+cfg)
		out, err := cmd.CombinedOutput()
		t.Logf("child:\n%s", out)
		if err != nil {
			t.Fatalf("the child test failed: %v", err)
		}
		return
	}
	clk := clock.NewReal() // a card plays in real time; the waits below are for events, not budgets
	out, err := OpenOutput(clk)
	if err != nil {
		t.Fatalf("ALSA's null device did not open: %v", err)
	}
	p := NewPlayer(out, clk)
	defer p.Close()
	if !p.HasSound() {
		t.Fatal("HasSound is false on a sound card")
	}
	ended := make(chan struct{}, 1)
	p.Watch(func() {
		if p.State() == Ended {
			select {
			case ended <- struct{}{}:
			default:
			}
		}
	})
	must(t, p.Load(bytes.NewReader(demoBytes(t, "count-the-days.mp3"))))
	must(t, p.Play())
	testwait.Until(t, "the card to play the track", func() bool { return p.Position() > 0 })

	p.Pause()
	must(t, p.Seek(4*time.Second))
	// oto reads its source outside its lock, so a read may be in flight across the seek; a
	// paused track still stands where it was sought to (Player.held), to the frame.
	if got := p.Position(); got > 4*time.Second || got < 4*time.Second-time.Millisecond {
		t.Errorf("position %s after a paused seek to 4s", got)
	}
	if got := p.State(); got != Paused {
		t.Errorf("state %s after a paused seek", got)
	}

	must(t, p.Seek(p.Duration()-200*time.Millisecond))
	must(t, p.Play())
	testwait.Until(t, "the end of the track to be told", func() bool {
		select {
		case <-ended:
			return true
		default:
			return false
		}
	})
	if got := p.Position(); got != p.Duration() {
		t.Errorf("position %s at the end, want %s", got, p.Duration())
	}
}
