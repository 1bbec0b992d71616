package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// EnrollConfig is what a technician gives `kioskctl enroll`.
type EnrollConfig struct {
	DataDir  string // the terminal's data directory (key and enrollment are written here)
	RelayURL string // e.g. wss://relay.example:8443
	// RelayURLs are the relay's further gateways (docs/SCALE.md), stored with the enrollment
	// and tried in order after RelayURL when it cannot be reached.
	RelayURLs []string
	Code      string          // the one-time enrollment code
	Transport Transport       // how to trust the relay
	Terminal  *kiosk.Terminal // the terminal's domain: records the enrollment and binds a tablet
	Label     string          // optional name shown to the technicians on the relay
	Software  string          // optional build name
}

// EnrollError is a refusal from the relay, with its stable code (wire.Enroll*).
type EnrollError struct {
	Status  int
	Code    string
	Message string
}

func (e *EnrollError) Error() string {
	msg := fmt.Sprintf("enroll: relay refused (%d %s)", e.Status, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Enroll makes (or reuses) the terminal's identity key, enrolls it with the code, and stores
// the enrollment in the data directory and in the terminal's store (binding a tablet to its
// inmate). Enrolling again with a new code re-enrolls the same key.
func Enroll(ctx context.Context, cfg EnrollConfig) (Enrollment, error) {
	if cfg.DataDir == "" || cfg.Terminal == nil {
		return Enrollment{}, fmt.Errorf("enroll: data directory and terminal are required")
	}
	if cfg.Code == "" {
		return Enrollment{}, fmt.Errorf("enroll: no enrollment code given")
	}
	eps, err := relayEndpoints(cfg.RelayURL, cfg.RelayURLs, cfg.Transport)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	ep := eps[0]
	var more []string
	for _, g := range eps[1:] {
		more = append(more, g.base)
	}
	hc, err := cfg.Transport.httpClient(30 * time.Second)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	defer hc.CloseIdleConnections()
	priv, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	// The terminal this store was, if any: enrolling again under a new key, the relay then
	// retires that record instead of leaving it to pile up downlink.
	prev, _, err := cfg.Terminal.Enrollment()
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: read the store's enrollment: %w", err)
	}
	body, err := json.Marshal(wire.EnrollRequest{Code: cfg.Code, PublicKey: pub, Signature: wire.SignEnroll(priv, cfg.Code),
		Label: cfg.Label, Software: cfg.Software, Replaces: prev.TerminalID})
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.enroll, bytes.NewReader(body))
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: reach relay %s: %w", ep.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxEnrollBytes+1))
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: read relay answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		er := wire.DecodeErrorResponse(raw)
		return Enrollment{}, &EnrollError{Status: resp.StatusCode, Code: er.Error, Message: er.Message}
	}
	ans, err := wire.DecodeEnrollResponse(raw)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: relay answer: %w", err)
	}
	e := Enrollment{TerminalID: ans.TerminalID, Facility: ans.Facility, Mode: ans.Mode, InmateID: ans.InmateID,
		RelayURL: ep.base, RelayURLs: more, Transport: cfg.Transport, EnrolledAt: cfg.Terminal.Clock().Now().UTC()}
	// The store first: a terminal whose file says "enrolled" must also be bound in its store.
	if err := cfg.Terminal.SetEnrollment(kiosk.Enrollment{TerminalID: e.TerminalID, Facility: e.Facility,
		Mode: e.Mode, InmateID: e.InmateID}); err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	if err := saveEnrollment(cfg.DataDir, e); err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	return e, nil
}
