package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
)

// hashPIN runs `kioskctl hash-pin` in-process with the given stdin.
func hashPIN(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"hash-pin"}, args...), strings.NewReader(stdin), &out, &errOut)
	return strings.TrimSpace(out.String()), err
}

var cheap = []string{"--memory", "64", "--time", "1", "--threads", "1"}

func TestHashPINRoundTrip(t *testing.T) {
	const pin = "739158264027"
	for _, in := range []string{pin + "\n", pin + "\r\n", pin} {
		h, err := hashPIN(t, in, cheap...)
		if err != nil {
			t.Fatalf("hash-pin(%q): %v", in, err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h, pin) {
			t.Fatalf("hash-pin printed %q; want an argon2id hash with the given costs and no PIN", h)
		}
		if !kiosk.VerifyPIN(h, pin) || kiosk.VerifyPIN(h, "739158264028") {
			t.Fatalf("hash %q does not verify exactly its PIN", h)
		}
	}
	a, _ := hashPIN(t, pin, cheap...)
	b, _ := hashPIN(t, pin, cheap...)
	if a == b {
		t.Fatal("two hashes of one PIN are equal: the salt is not fresh")
	}
}

func TestHashPINDefaultCost(t *testing.T) {
	h, err := hashPIN(t, "4821\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=65536,t=1,p=2$") || !kiosk.VerifyPIN(h, "4821") {
		t.Fatalf("default hash-pin = %q; want the default costs", h)
	}
}

func TestHashPINRefusesBadInput(t *testing.T) {
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"letters", "12ab5678\n", nil, "digits only"},
		{"too short", "123\n", nil, "4 to 12 digits"},
		{"empty", "", nil, "no PIN on standard input"},
		{"two PINs", "12345678\n87654321\n", nil, "one PIN per run"},
		{"PIN as argument", "", []string{"12345678"}, "on standard input, not as an argument"},
		{"costs out of range", "12345678", []string{"--threads", "0"}, "out of range"},
		{"too little memory", "12345678", []string{"--memory", "4", "--threads", "1"}, "cannot verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := hashPIN(t, c.stdin, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("hash-pin = %v; want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "5678") {
				t.Fatalf("error %q repeats the PIN", err)
			}
		})
	}
}
