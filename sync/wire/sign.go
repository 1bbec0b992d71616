package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// SignatureSize and PublicKeySize are ed25519's.
const (
	SignatureSize = ed25519.SignatureSize
	PublicKeySize = ed25519.PublicKeySize
)

// Domain-separation prefixes: a signature made for one purpose is never valid for another.
const (
	authDomain   = "tether.v1 terminal auth\x00"
	enrollDomain = "tether.v1 terminal enroll\x00"
)

// lp appends s with a 2-byte big-endian length so no two field splits give the same bytes.
func lp(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// AuthMessage is what a terminal signs to answer a challenge:
// "tether.v1 terminal auth\x00" || len16(terminal id) || terminal id || len16(nonce) || nonce.
func AuthMessage(terminalID string, nonce []byte) []byte {
	b := append([]byte(nil), authDomain...)
	b = lp(b, []byte(terminalID))
	return lp(b, nonce)
}

// SignAuth answers a challenge.
func SignAuth(priv ed25519.PrivateKey, terminalID string, nonce []byte) []byte {
	return ed25519.Sign(priv, AuthMessage(terminalID, nonce))
}

// VerifyAuth checks a challenge answer; a key of the wrong size never verifies.
func VerifyAuth(pub ed25519.PublicKey, terminalID string, nonce, sig []byte) bool {
	if len(pub) != PublicKeySize || len(sig) != SignatureSize || len(nonce) != NonceLen {
		return false
	}
	return ed25519.Verify(pub, AuthMessage(terminalID, nonce), sig)
}

// EnrollMessage is what a terminal signs to prove it holds the key it enrolls:
// "tether.v1 terminal enroll\x00" || len16(code) || code || len16(public key) || public key.
func EnrollMessage(code string, pub ed25519.PublicKey) []byte {
	b := append([]byte(nil), enrollDomain...)
	b = lp(b, []byte(code))
	return lp(b, pub)
}

// SignEnroll signs an enrollment request.
func SignEnroll(priv ed25519.PrivateKey, code string) []byte {
	return ed25519.Sign(priv, EnrollMessage(code, priv.Public().(ed25519.PublicKey)))
}

// VerifyEnroll checks an enrollment request's proof of possession.
func VerifyEnroll(pub ed25519.PublicKey, code string, sig []byte) bool {
	if len(pub) != PublicKeySize || len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(pub, EnrollMessage(code, pub), sig)
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, lowercase hex: the value a
// terminal pins.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint accepts a SHA-256 fingerprint as 64 hex digits, upper or lower case,
// optionally in colon-separated pairs, and returns its canonical lowercase form.
func ParseFingerprint(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if strings.Contains(t, ":") {
		parts := strings.Split(t, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return "", fmt.Errorf("certificate fingerprint: colon-separated form needs pairs of hex digits")
			}
		}
		t = strings.Join(parts, "")
	}
	if len(t) != 2*sha256.Size {
		return "", fmt.Errorf("certificate fingerprint: want %d hex digits (SHA-256), got %d", 2*sha256.Size, len(t))
	}
	if _, err := hex.DecodeString(t); err != nil {
		return "", fmt.Errorf("certificate fingerprint: not hex")
	}
	return t, nil
}
