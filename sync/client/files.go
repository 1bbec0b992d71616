// Package client is the terminal side of Tether sync: enrollment, the identity key, and the
// engine that forwards the store's queue to the relay and applies what the relay sends back.
//
// kioskctl enroll (once, with the store open and a kiosk.Terminal over it):
//
//	en, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dir, RelayURL: "wss://relay:8443",
//		Code: code, Terminal: term, Transport: client.Transport{PinSHA256: fp}})
//
// kioskd (every start; the terminal id for kiosk.TerminalConfig.ID comes from LoadEnrollment):
//
//	en, err := client.LoadEnrollment(dir) // client.ErrNotEnrolled: run without sync, say so on screen
//	eng, err := client.New(client.Config{DataDir: dir, Terminal: term, Logf: logf, OnStatus: show})
//	go eng.Run(ctx) // returns when ctx ends; eng.Status() and eng.SyncNow() for the screens
package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// Files in the terminal's data directory (beside the store).
const (
	KeyFile        = "identity.key"    // ed25519 seed, 32 bytes, mode 0600
	EnrollmentFile = "enrollment.json" // Enrollment, mode 0600
)

// Enrollment is what the terminal keeps after enrolling: who it is and how to reach its relay.
type Enrollment struct {
	TerminalID string `json:"terminal_id"`
	Facility   string `json:"facility"`
	Mode       string `json:"mode"`
	InmateID   string `json:"inmate_id,omitempty"`
	RelayURL   string `json:"relay_url"`
	// RelayURLs are further gateways of the same relay, tried in order after RelayURL
	// (absent in files written before gateways; Config.RelayURLs overrides them).
	RelayURLs  []string  `json:"relay_urls,omitempty"`
	Transport  Transport `json:"transport"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// ErrNotEnrolled is returned by LoadEnrollment when the terminal was never enrolled.
var ErrNotEnrolled = errors.New("this terminal is not enrolled (run kioskctl enroll)")

// LoadEnrollment reads the enrollment from dataDir.
func LoadEnrollment(dataDir string) (Enrollment, error) {
	path := filepath.Join(dataDir, EnrollmentFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Enrollment{}, ErrNotEnrolled
	}
	if err != nil {
		return Enrollment{}, fmt.Errorf("read enrollment: %w", err)
	}
	var e Enrollment
	if err := json.Unmarshal(raw, &e); err != nil {
		return Enrollment{}, fmt.Errorf("read enrollment %s: %w", path, err)
	}
	if e.TerminalID == "" || e.RelayURL == "" {
		return Enrollment{}, fmt.Errorf("read enrollment %s: terminal id or relay URL missing", path)
	}
	return e, nil
}

func saveEnrollment(dataDir string, e Enrollment) error {
	raw, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode enrollment: %w", err)
	}
	return writeFileAtomic(filepath.Join(dataDir, EnrollmentFile), append(raw, '\n'))
}

// LoadKey reads the terminal's private key; it refuses a key file others can read.
func LoadKey(dataDir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dataDir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read identity key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s has mode %v: others may read it; re-enroll or chmod 600", path, fi.Mode().Perm())
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity key %s is %d bytes, want %d (damaged: re-enroll)", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// loadOrCreateKey returns the stored key, or makes and stores a new one.
func loadOrCreateKey(dataDir string) (ed25519.PrivateKey, error) {
	// Only a key that is truly absent is made anew: any other stat error must not replace an identity.
	if _, err := os.Stat(filepath.Join(dataDir, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		return LoadKey(dataDir)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dataDir, KeyFile), priv.Seed()); err != nil {
		return nil, fmt.Errorf("store identity key: %w", err)
	}
	return priv, nil
}

// writeFileAtomic writes data with mode 0600 so that after a crash the file holds either the
// old or the new content (kiosk.WriteFileAtomic: temp file, fsync, rename, fsync of the directory).
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return kiosk.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
