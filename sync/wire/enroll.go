package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Code      string `json:"code"`
	PublicKey []byte `json:"public_key"` // ed25519, 32 bytes, base64 in JSON
	Signature []byte `json:"signature"`  // SignEnroll(private key, code)
	Label     string `json:"label,omitempty"`
	Software  string `json:"software,omitempty"`
	// Replaces is the terminal id the store was last enrolled as, if any: a store enrolling
	// again under a new key (its identity.key was lost) names the terminal it was, so the relay
	// retires that record and the new one inherits its letters' statuses and its charges.
	Replaces string `json:"replaces,omitempty"`
}

// EnrollResponse is the 200 answer to an enrollment.
type EnrollResponse struct {
	TerminalID string    `json:"terminal_id"`
	Facility   string    `json:"facility"`
	Mode       string    `json:"mode"`
	InmateID   string    `json:"inmate_id,omitempty"`
	ServerTime time.Time `json:"server_time"`
}

// ErrorResponse is the body of every non-2xx answer from the relay's terminal endpoints.
type ErrorResponse struct {
	Error   string `json:"error"`             // stable code, e.g. EnrollCodeExpired
	Message string `json:"message,omitempty"` // plain words for a technician
}

// Enrollment refusal codes (ErrorResponse.Error).
const (
	EnrollUnknownCode  = "unknown_code"  // 404
	EnrollCodeUsed     = "code_used"     // 409
	EnrollCodeExpired  = "code_expired"  // 410
	EnrollBadSignature = "bad_signature" // 400
	EnrollInvalid      = "invalid"       // 400
	EnrollKeyInUse     = "key_in_use"    // 409: the public key belongs to another terminal
)

// MaxCodeLen bounds an enrollment code.
const MaxCodeLen = 64

func decodeStrict(b []byte, v any, what string) error {
	if len(b) > MaxEnrollBytes {
		return fmt.Errorf("decode %s: %w (%d bytes, limit %d)", what, ErrTooLarge, len(b), MaxEnrollBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// DecodeEnrollRequest parses and validates an enrollment request, including the signature.
func DecodeEnrollRequest(b []byte) (EnrollRequest, error) {
	var r EnrollRequest
	if err := decodeStrict(b, &r, "enroll request"); err != nil {
		return EnrollRequest{}, err
	}
	if r.Code == "" || len(r.Code) > MaxCodeLen {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: code must be 1 to %d bytes", MaxCodeLen)
	}
	if len(r.PublicKey) != PublicKeySize {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: public_key is %d bytes, want %d", len(r.PublicKey), PublicKeySize)
	}
	if len(r.Signature) != SignatureSize {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: signature is %d bytes, want %d", len(r.Signature), SignatureSize)
	}
	if err := checkID("label", r.Label, false); err != nil {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: %w", err)
	}
	if err := checkID("software", r.Software, false); err != nil {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: %w", err)
	}
	if err := checkID("replaces", r.Replaces, false); err != nil {
		return EnrollRequest{}, fmt.Errorf("decode enroll request: %w", err)
	}
	if !VerifyEnroll(ed25519.PublicKey(r.PublicKey), r.Code, r.Signature) {
		return EnrollRequest{}, ErrBadEnrollSignature
	}
	return r, nil
}

// ErrBadEnrollSignature means the request's signature does not match its key and code.
var ErrBadEnrollSignature = errors.New("decode enroll request: signature does not match public key and code")

// DecodeEnrollResponse parses and validates the relay's answer to an enrollment.
func DecodeEnrollResponse(b []byte) (EnrollResponse, error) {
	var r EnrollResponse
	if err := decodeStrict(b, &r, "enroll response"); err != nil {
		return EnrollResponse{}, err
	}
	if err := checkID("terminal_id", r.TerminalID, true); err != nil {
		return EnrollResponse{}, fmt.Errorf("decode enroll response: %w", err)
	}
	if err := checkID("facility", r.Facility, true); err != nil {
		return EnrollResponse{}, fmt.Errorf("decode enroll response: %w", err)
	}
	if err := checkMode(r.Mode, r.InmateID); err != nil {
		return EnrollResponse{}, fmt.Errorf("decode enroll response: %w", err)
	}
	return r, nil
}

// DecodeErrorResponse parses an error body; anything unparsable yields an empty code.
func DecodeErrorResponse(b []byte) ErrorResponse {
	var r ErrorResponse
	if decodeStrict(b, &r, "error response") != nil {
		return ErrorResponse{}
	}
	if len(r.Error) > MaxIDLen {
		r.Error = r.Error[:MaxIDLen]
	}
	if len(r.Message) > 512 {
		r.Message = r.Message[:512]
	}
	return r
}
