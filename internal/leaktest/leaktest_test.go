package leaktest

import "testing"

func TestHasNumber(t *testing.T) {
	for _, c := range []struct {
		text, number string
		want         bool
	}{
		// What a leak looks like.
		{`msg="login" pin=2468`, "2468", true},
		{`{"pin": "2468"}`, "2468", true},
		{"2468", "2468", true},
		{"badge 0004198231 read", "0004198231", true},
		{"typed 2468.", "2468", true},
		// Digits that hold the PIN by chance are not a leak.
		{`"last_success": "2026-12-02T00:48:51.246820583Z"`, "2468", false},
		{"took 12468ms", "2468", false},
		{"size 24680 bytes", "2468", false},
		{`"session_id": "01a23439-c54e-2468-a1c6-113d49c36239"`, "2468", false},
		{`"terminal_id": "t-01a23439-bbac-7281-9d79-2468f5fa5cf8"`, "2468", false},
		{`"epoch": "1fe89c01e353be3d1de2a2468de3f67f"`, "2468", false},
		{"badge 00041982310", "0004198231", false},
		{"", "2468", false},
	} {
		if got := HasNumber(c.text, c.number); got != c.want {
			t.Errorf("HasNumber(%q, %q) = %v, want %v", c.text, c.number, got, c.want)
		}
	}
}

// FuzzHasNumber: a number written on its own, between any two texts that do not end or begin
// with a digit, is always found.
func FuzzHasNumber(f *testing.F) {
	f.Add("pin=", "2468", " ok")
	f.Add("", "0004198231", "")
	f.Fuzz(func(t *testing.T, before, number, after string) {
		if !digitRuns.MatchString(number) || digitRuns.FindString(number) != number {
			return
		}
		if len(before) > 0 && before[len(before)-1] >= '0' && before[len(before)-1] <= '9' {
			return
		}
		if len(after) > 0 && after[0] >= '0' && after[0] <= '9' {
			return
		}
		// A random id swallowing the number is set aside by design; keep hex letters away.
		if ids.MatchString(before + number + after) {
			return
		}
		if !HasNumber(before+number+after, number) {
			t.Errorf("HasNumber(%q, %q) = false", before+number+after, number)
		}
	})
}
