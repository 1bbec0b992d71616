// Package testseed gives a randomized test a seed it can be replayed with. For tests only.
package testseed

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Env names the environment variable that fixes the seed, to replay a failed run:
//
//	TETHER_SEED=1732961234567 go test -run '^TestPropertyLedger$' ./kiosk/
const Env = "TETHER_SEED"

// Seed returns the seed for tb's random choices: Env's value when it is set, else a new one
// (each run explores other cases). The seed is logged at once, and again with the command to
// replay it if the test fails, so a failure seen once in CI can be run again.
func Seed(tb testing.TB) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(Env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("%s=%q is not a seed (an unsigned decimal number): %v", Env, s, err)
		}
		seed = v
	}
	tb.Logf("seed %d (replay with %s=%d)", seed, Env, seed)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("failed with seed %d; replay with %s=%d go test -run '^%s$'", seed, Env, seed, tb.Name())
		}
	})
	return seed
}
