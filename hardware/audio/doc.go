// Package audio plays music tracks (MP3) on a terminal: a decoder that reads a track's
// duration before it plays, a Player with play, pause and seek, and two outputs behind one
// small interface: the sound card through oto (ALSA on Linux), and a silent sink that consumes
// samples at the real rate on an injectable clock, used where no device opens and by tests.
//
// Audio output is hardware: this package may use kiosk, kiosk never imports it, and the
// screens (ui) see the Player only through an interface of their own.
package audio

//go:generate go run ./internal/gen -out ../../assets/library
