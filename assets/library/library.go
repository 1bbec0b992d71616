// Package library embeds the demo's music library: three short tracks the Tether project made
// itself (README.md says how). Only the demo (cmd/tetherdemo) links it: a facility's kioskd
// receives its library from the relay, never from its binary.
package library

import "embed"

//go:embed *.mp3
var files embed.FS

// Track is one of the demo tracks.
type Track struct {
	File, Title string
	MP3         []byte
}

// Tracks returns the demo tracks, in the order the README lists them.
func Tracks() ([]Track, error) {
	out := []Track{{File: "morning-yard.mp3", Title: "Morning Yard"}, {File: "letter-home.mp3", Title: "Letter Home"},
		{File: "count-the-days.mp3", Title: "Count the Days"}}
	for i := range out {
		b, err := files.ReadFile(out[i].File)
		if err != nil {
			return nil, err
		}
		out[i].MP3 = b
	}
	return out, nil
}
