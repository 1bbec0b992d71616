// Package pinhash hashes and checks PINs with argon2id, for the terminal (login, a technician's
// roster file) and the relay (plain PINs in a roster it takes) alike. It is apart from
// kiosk/vocab so that the vocabulary carries no cryptographic dependency.
package pinhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Params are argon2id costs; they travel inside each hash so they can be raised later.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams are RFC 9106's second recommended option, scaled to a kiosk's memory.
func DefaultParams() Params { return Params{Memory: 64 * 1024, Time: 1, Threads: 2} }

// TestParams are cheap costs for tests and benchmarks of things other than hashing.
func TestParams() Params { return Params{Memory: 64, Time: 1, Threads: 1} }

// Hash returns an argon2id PHC string with a fresh 16-byte salt.
func Hash(pin string) (string, error) { return HashWith(pin, DefaultParams()) }

// HashWith is Hash with explicit costs (tests use cheap ones).
func HashWith(pin string, p Params) (string, error) {
	if err := ValidatePIN(pin); err != nil {
		return "", err
	}
	return HashSecretWith(pin, p)
}

// HashSecretWith hashes any secret (a staff password) as HashWith hashes a PIN, without the
// PIN's digits-only rule; Verify checks it.
func HashSecretWith(secret string, p Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash pin: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ValidatePIN accepts 4 to 12 digits; the error never repeats the PIN.
func ValidatePIN(pin string) error {
	if len(pin) < 4 || len(pin) > 12 {
		return errInvalid("pin", "a PIN has 4 to 12 digits")
	}
	for _, r := range pin {
		if r < '0' || r > '9' {
			return errInvalid("pin", "a PIN has digits only")
		}
	}
	return nil
}

// Validate checks that h is an argon2id string this package can verify.
func Validate(h string) error {
	_, _, _, err := parse(h)
	return err
}

// Verify reports whether pin matches hash, in constant time over the derived key.
func Verify(hash, pin string) bool {
	p, salt, key, err := parse(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

func errInvalid(op, format string, args ...any) error {
	return &vocab.Error{Kind: vocab.KindInvalid, Op: op, Err: fmt.Errorf(format, args...)}
}

func parse(h string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errInvalid("pin hash", "not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errInvalid("pin hash", "unsupported argon2 version %q", parts[2])
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil {
		return p, nil, nil, errInvalid("pin hash", "bad parameters %q", parts[3])
	}
	if p.Memory < 8 || p.Memory > 1<<21 || p.Time < 1 || p.Time > 10 || threads < 1 || threads > 16 {
		return p, nil, nil, errInvalid("pin hash", "parameters out of range %q", parts[3])
	}
	p.Threads = uint8(threads)
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errInvalid("pin hash", "bad salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errInvalid("pin hash", "bad key")
	}
	return p, salt, key, nil
}
