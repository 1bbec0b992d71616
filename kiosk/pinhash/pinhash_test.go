package pinhash

import (
	"strings"
	"testing"
)

// A PIN verifies against its own hash and no other; the hash never holds the PIN, and two
// hashes of one PIN differ (fresh salt), so a stolen store does not show who shares a PIN.
func TestHashVerifies(t *testing.T) {
	h, err := HashWith("739184", TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "739184") || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("hash %q", h)
	}
	if !Verify(h, "739184") || Verify(h, "739185") || Verify(h, "") {
		t.Fatal("a PIN verified against the wrong hash, or its own did not")
	}
	h2, _ := HashWith("739184", TestParams())
	if h2 == h {
		t.Fatal("two hashes of one PIN are equal: the salt is not fresh")
	}
	if err := Validate(h); err != nil {
		t.Fatalf("validate own hash: %v", err)
	}
}

// PINs are 4 to 12 digits and the refusal never repeats the PIN; a staff password is any
// secret, hashed the same way.
func TestPINRulesAndSecrets(t *testing.T) {
	for _, bad := range []string{"", "123", "1234567890123", "12a4", "12 34"} {
		err := ValidatePIN(bad)
		if err == nil {
			t.Errorf("PIN %q accepted", bad)
			continue
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the refusal of %q repeats it: %v", bad, err)
		}
		if _, err := HashWith(bad, TestParams()); err == nil {
			t.Errorf("HashWith(%q) hashed a bad PIN", bad)
		}
	}
	h, err := HashSecretWith("correct horse battery", TestParams())
	if err != nil || !Verify(h, "correct horse battery") || Verify(h, "correct horse") {
		t.Fatalf("secret hash %q: %v", h, err)
	}
}

// Validate refuses what Verify could not check, naming why, and Verify says no to it.
func TestValidateRefusesMalformed(t *testing.T) {
	good, _ := HashWith("1234", TestParams())
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuu",
		"version":      strings.Replace(good, "v=19", "v=16", 1),
		"memory":       strings.Join(append(append([]string{}, parts[:3]...), "m=1,t=1,p=1", parts[4], parts[5]), "$"),
		"salt":         strings.Join(append(append([]string{}, parts[:4]...), "!!", parts[5]), "$"),
		"short key":    strings.Join(append(append([]string{}, parts[:5]...), "AAAA"), "$"),
		"extra fields": good + "$x",
	} {
		if err := Validate(h); err == nil {
			t.Errorf("%s: %q validated", name, h)
		}
		if Verify(h, "1234") {
			t.Errorf("%s: %q verified", name, h)
		}
	}
}
