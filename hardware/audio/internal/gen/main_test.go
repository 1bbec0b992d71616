package main

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestPitchNamesTheEqualTemperedScale(t *testing.T) {
	for _, c := range []struct {
		name string
		hz   float64
	}{
		{"A4", 440}, {"A3", 220}, {"A5", 880}, {"C4", 261.626}, {"F#4", 369.994},
		{"Bb3", 233.082}, {"G#4", 415.305}, {"R", 0},
	} {
		got, err := pitch(c.name)
		if err != nil {
			t.Fatalf("pitch(%q): %v", c.name, err)
		}
		if math.Abs(got-c.hz) > 0.01 {
			t.Errorf("pitch(%q) = %.3f Hz, want %.3f", c.name, got, c.hz)
		}
	}
	for _, bad := range []string{"H4", "C", "C#", "Cx4", "a4"} {
		if _, err := pitch(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("pitch(%q) = %v, want an error naming the note", bad, err)
		}
	}
}

func TestParseRefusesWhatIsNotNoteBeatPairs(t *testing.T) {
	ns, err := parse("C4 1 R .5 E4 2")
	if err != nil || len(ns) != 3 || ns[1].freq != 0 || ns[1].beats != 0.5 || ns[2].beats != 2 {
		t.Fatalf("parse = %+v, %v", ns, err)
	}
	for in, want := range map[string]string{
		"C4 1 E4":  "odd number of fields",
		"C4 one":   `beats "one"`,
		"Q4 1":     `note "Q4"`,
		"C4 1 E 2": `note "E"`,
	} {
		if _, err := parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

// Every tune of the demo library must parse, and its bass must not run past its melody: the
// file's length is the melody's, so a longer bass line would be cut off mid-note.
func TestDemoTunesRender(t *testing.T) {
	for _, tu := range tunes {
		mel, err := parse(tu.melody)
		if err != nil {
			t.Fatalf("%s melody: %v", tu.title, err)
		}
		bass, err := parse(tu.bass)
		if err != nil {
			t.Fatalf("%s bass: %v", tu.title, err)
		}
		if m, b := total(mel), total(bass); b > m {
			t.Errorf("%s: bass has %.1f beats, melody %.1f", tu.title, b, m)
		}
		pcm, err := tu.render()
		if err != nil {
			t.Fatalf("%s: %v", tu.title, err)
		}
		secs := float64(len(pcm)) / float64(tu.rate)
		if want := total(mel)*60/tu.bpm + 0.6; math.Abs(secs-want) > 0.01 {
			t.Errorf("%s: %.2f s of audio, want %.2f", tu.title, secs, want)
		}
		var peak float64
		for _, v := range pcm {
			peak = math.Max(peak, math.Abs(v))
		}
		if peak < 0.1 || peak > 1 {
			t.Errorf("%s: peak %.2f, want audible and unclipped (0.1 to 1)", tu.title, peak)
		}
		again, _ := tu.render()
		for i := range pcm {
			if pcm[i] != again[i] {
				t.Fatalf("%s: two renders differ at sample %d; the generated files would change on every run", tu.title, i)
			}
		}
	}
}

func total(ns []note) float64 {
	var b float64
	for _, n := range ns {
		b += n.beats
	}
	return b
}

func TestWavBytesIsAMono16BitFile(t *testing.T) {
	w := wavBytes([]float64{0, 0.5, 1.5, -1.5}, 22050)
	if len(w) != 44+8 || string(w[0:4]) != "RIFF" || string(w[8:16]) != "WAVEfmt " || string(w[36:40]) != "data" {
		t.Fatalf("header %q", w[:44])
	}
	le := binary.LittleEndian
	if le.Uint32(w[4:]) != 36+8 || le.Uint32(w[40:]) != 8 || le.Uint16(w[22:]) != 1 ||
		le.Uint32(w[24:]) != 22050 || le.Uint32(w[28:]) != 44100 || le.Uint16(w[34:]) != 16 {
		t.Fatalf("sizes or format wrong: % x", w[:44])
	}
	var got []int16
	for i := 44; i < len(w); i += 2 {
		got = append(got, int16(le.Uint16(w[i:])))
	}
	if want := []int16{0, 16383, 32767, -32767}; !slices.Equal(got, want) {
		t.Fatalf("samples %v, want %v (clipped to 16 bits)", got, want)
	}
}
