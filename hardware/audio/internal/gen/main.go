// Command gen makes the demo library's music: it synthesizes the project's own short tunes
// (written for Tether, note by note below) and encodes each to a small mono MP3 with the lame
// CLI. Run it with `go generate ./hardware/audio/`; it rewrites assets/library/*.mp3.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// tune is one piece: a melody and a bass line in "note beats" pairs ("R" is a rest).
type tune struct {
	file, title string
	bpm         float64
	rate        int // samples per second of the synthesized audio and of the MP3
	kbps        int
	hats        bool // a soft noise tick on every half beat
	melody      string
	bass        string
}

const artist = "The Tether Project"

var tunes = []tune{
	{
		file: "morning-yard.mp3", title: "Morning Yard", bpm: 100, rate: 22050, kbps: 40,
		melody: "E4 1 G4 1 C5 1 G4 1 D5 1 B4 1 G4 2 C5 1 A4 1 E4 1 A4 1 F4 1 A4 1 C5 2 " +
			"E5 1 D5 1 C5 1 G4 1 B4 1 D5 1 G4 2 C5 4",
		bass: "C3 4 G2 4 A2 4 F2 4 C3 4 G2 4 C3 4",
	},
	{
		file: "letter-home.mp3", title: "Letter Home", bpm: 92, rate: 22050, kbps: 40,
		melody: "A4 2 C5 1 B4 1 A4 1 G4 1 E4 2 F4 2 A4 1 G4 1 E4 3 R 1 " +
			"A4 1 B4 1 C5 1 E5 1 D5 2 B4 1 G#4 1 A4 4",
		bass: "A2 4 E2 4 D2 4 A2 4 A2 4 E2 4 A2 4",
	},
	{
		file: "count-the-days.mp3", title: "Count the Days", bpm: 120, rate: 44100, kbps: 64, hats: true,
		melody: "G4 .5 B4 .5 D5 1 B4 .5 G4 .5 A4 1 B4 .5 C5 .5 D5 1 E5 1 D5 1 " +
			"C5 .5 B4 .5 A4 1 G4 .5 A4 .5 B4 1 A4 1 F#4 1 D4 2 G4 .5 B4 .5 D5 1 G5 1 D5 1 G4 4",
		bass: "G2 4 E2 4 C3 4 D3 4 G2 4 G2 4",
	},
}

func main() {
	out := flag.String("out", "../../assets/library", "directory for the MP3 files")
	flag.Parse()
	if _, err := exec.LookPath("lame"); err != nil {
		fmt.Fprintln(os.Stderr, "gen: the lame encoder is not installed (Debian: apt-get install lame)")
		os.Exit(1)
	}
	tmp, err := os.MkdirTemp("", "tether-gen-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	for _, t := range tunes {
		pcm, err := t.render()
		if err != nil {
			fail(fmt.Errorf("%s: %w", t.title, err))
		}
		wav := filepath.Join(tmp, strings.TrimSuffix(t.file, ".mp3")+".wav")
		if err := os.WriteFile(wav, wavBytes(pcm, t.rate), 0o644); err != nil {
			fail(err)
		}
		dst := filepath.Join(*out, t.file)
		cmd := exec.Command("lame", "--quiet", "-m", "m", "-b", strconv.Itoa(t.kbps),
			"--id3v2-only", "--tt", t.title, "--ta", artist, "--tc", "made by the Tether project",
			wav, dst)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fail(fmt.Errorf("lame %s: %w", t.file, err))
		}
		fmt.Printf("%s: %.1f s\n", dst, float64(len(pcm))/float64(t.rate))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}

type note struct {
	freq  float64 // 0 for a rest
	beats float64
}

func parse(s string) ([]note, error) {
	f := strings.Fields(s)
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("odd number of fields in %q", s)
	}
	var ns []note
	for i := 0; i < len(f); i += 2 {
		b, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("beats %q: %w", f[i+1], err)
		}
		hz, err := pitch(f[i])
		if err != nil {
			return nil, err
		}
		ns = append(ns, note{hz, b})
	}
	return ns, nil
}

// pitch is the equal-tempered frequency of a note name such as A4, F#4 or C3 (R: a rest).
func pitch(name string) (float64, error) {
	if name == "R" {
		return 0, nil
	}
	steps := map[byte]int{'C': -9, 'D': -7, 'E': -5, 'F': -4, 'G': -2, 'A': 0, 'B': 2}
	st, ok := steps[name[0]]
	rest := name[1:]
	if !ok || rest == "" {
		return 0, fmt.Errorf("note %q", name)
	}
	switch rest[0] {
	case '#':
		st, rest = st+1, rest[1:]
	case 'b':
		st, rest = st-1, rest[1:]
	}
	oct, err := strconv.Atoi(rest)
	if err != nil {
		return 0, fmt.Errorf("note %q: %w", name, err)
	}
	return 440 * math.Pow(2, float64(st+12*(oct-4))/12), nil
}

// render mixes the melody (a soft organ-like voice), the bass and the ticks into samples.
func (t tune) render() ([]float64, error) {
	mel, err := parse(t.melody)
	if err != nil {
		return nil, err
	}
	bass, err := parse(t.bass)
	if err != nil {
		return nil, err
	}
	beat := 60 / t.bpm
	var beats float64
	for _, n := range mel {
		beats += n.beats
	}
	tail := 0.6 // the last note rings out
	pcm := make([]float64, int((beats*beat+tail)*float64(t.rate)))
	voice := func(ns []note, gain float64, harmonics []float64) {
		at := 0.0
		for _, n := range ns {
			if n.freq > 0 {
				t.addNote(pcm, at, n.beats*beat, n.freq, gain, harmonics)
			}
			at += n.beats * beat
		}
	}
	voice(mel, 0.32, []float64{1, 0.45, 0.2, 0.08})
	voice(bass, 0.28, []float64{1, 0.3, 0.05})
	if t.hats {
		seed := uint32(2026)
		for at := 0.0; at < beats*beat; at += beat / 2 {
			start := int(at * float64(t.rate))
			for i := 0; i < t.rate/40 && start+i < len(pcm); i++ {
				seed = seed*1664525 + 1013904223 // a fixed LCG: the same file on every run
				noise := float64(int32(seed)) / math.MaxInt32
				pcm[start+i] += 0.05 * noise * math.Exp(-float64(i)/float64(t.rate)*120)
			}
		}
	}
	return pcm, nil
}

func (t tune) addNote(pcm []float64, at, dur, freq, gain float64, harmonics []float64) {
	start := int(at * float64(t.rate))
	n := int((dur + 0.25) * float64(t.rate)) // release past the note's end
	for i := 0; i < n && start+i < len(pcm); i++ {
		s := float64(i) / float64(t.rate)
		env := math.Min(1, s/0.01) * math.Exp(-s*1.8) // a quick attack, a slow decay
		if s > dur {
			env *= math.Exp(-(s - dur) * 18)
		}
		var v float64
		for h, a := range harmonics {
			v += a * math.Sin(2*math.Pi*freq*float64(h+1)*s)
		}
		pcm[start+i] += gain * env * v
	}
}

// wavBytes is a 16-bit mono PCM WAV file, clipped to the 16-bit range.
func wavBytes(pcm []float64, rate int) []byte {
	data := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		v = math.Max(-1, math.Min(1, v))
		binary.LittleEndian.PutUint16(data[2*i:], uint16(int16(v*32767)))
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], 1) // mono
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return append(h, data...)
}
