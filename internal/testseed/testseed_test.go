package testseed

import "testing"

// TestSeedFromEnvironment: a seed in the environment is the one handed out, so a failed run
// replays.
func TestSeedFromEnvironment(t *testing.T) {
	t.Setenv(Env, "1732961234567")
	if got := Seed(t); got != 1732961234567 {
		t.Fatalf("Seed with %s set = %d, want 1732961234567", Env, got)
	}
}
