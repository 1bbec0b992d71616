// Package audio plays music tracks (MP3) on a terminal: a decoder that reads a track's
// duration before it plays, a Player with play, pause and seek, and two outputs behind one
// small interface: the sound card through oto (ALSA on Linux, cgo: libasound2-dev to build),
// and a silent sink that consumes samples at the real rate on an injectable clock, used where
// no device opens and by tests.
//
// Audio output is hardware: this package may use kiosk, kiosk never imports it, and the
// screens (ui) see the Player only through ui.Playback, which *Player satisfies.
//
// # Wiring (kioskd)
//
//	out, err := audio.OpenOutput(clk) // once per process: oto opens one device, never twice
//	if err != nil { logf("%v", err) } // matches audio.ErrNoDevice; out is then the silent sink
//	p := audio.NewPlayer(out, clk)    // one per screen or per person; out may be shared
//	err = p.Load(f)                   // f: the track's content object; off the UI goroutine
//	                                  // (it reads every frame header); a bad file changes nothing
//	v := ui.NewPlayerView(p, ui.PlayerViewConfig{Lang: lang, Touch: touch})
//	v.SetTrack(title, artist); the tick loop calls v.Tick(); v.Close() and p.Close() at logout
//
// Decode alone checks an MP3 and reads its duration. The decoding is kiosk/mp3decode's, as is
// the relay's decode check, so one decoder path judges a track. Errors about the bytes match
// ErrNotMP3 and name what was wrong; Player.Err says why a track damaged past its headers
// stopped early.
package audio

//go:generate go run ./internal/gen -out ../../assets/library
