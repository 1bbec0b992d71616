package e2e

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// storeEnv, set to "jetstream", puts every relay of these tests (startRelayHold) on an R3
// stream of a natstest cluster of its own: TETHER_RELAY_STORE=jetstream go test ./sync/e2e/.
const storeEnv = "TETHER_RELAY_STORE"

// jetStore starts a 3-node cluster and opens the relay's stream on it through node 0. The
// stream outlives relay restarts, as it outlives a gateway.
func jetStore(t testing.TB) *jskv.Store {
	t.Helper()
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true, WatchRoots: relay.WatchedRoots()} // as relayd opens it
	s, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, o) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, o.Stream)
	return s
}

// bboltOnly skips a test that needs the relay's bbolt file (it copies relay.db to restore it)
// when the relays run on JetStream.
func bboltOnly(t testing.TB) {
	t.Helper()
	if os.Getenv(storeEnv) == "jetstream" {
		t.Skip("needs the relay's bbolt file")
	}
}

// onJetStreamToo are the end-to-end tests that run on JetStream as well as bbolt in every
// `go test` of this package: real terminals syncing both ways, exactly-once across cut links,
// relay restarts and a relay down, and the lifecycle model (enroll, re-enroll, wipe, restore).
// They run in two child processes at once, of about the same length: the lifecycle model, and
// the others.
var onJetStreamToo = [][]string{{
	"TestEnrollSyncBothWays", "TestCutLinksExactlyOnceBothWays", "TestBacklogWhileRelayDown",
	"TestRelayRestartMidStream",
	"TestReenrollSameKeyKeepsStoreAndMoney", "TestWipedKioskGetsItsStateBack",
	"TestRestoredTerminalLosesNothing", "TestRestoreAcrossReenrollment",
}, {"TestLifecycleModel"}}

var topPass, topSkip = regexp.MustCompile(`(?m)^--- PASS: `), regexp.MustCompile(`(?m)^--- SKIP: `)

// TestOnJetStreamToo runs onJetStreamToo again with every relay on JetStream, in child
// processes of this test binary with storeEnv set (the relay is started deep inside each
// test; the store is chosen per process).
func TestOnJetStreamToo(t *testing.T) {
	if os.Getenv(storeEnv) != "" {
		t.Skip("already running on the store " + os.Getenv(storeEnv))
	}
	for _, tests := range onJetStreamToo {
		t.Run(tests[0], func(t *testing.T) {
			t.Parallel()
			runOnJetStream(t, tests)
		})
	}
}

// runOnJetStream runs tests in a child process on JetStream and fails unless each passed.
func runOnJetStream(t *testing.T, tests []string) {
	args := []string{"-test.run=^(" + strings.Join(tests, "|") + ")$", "-test.count=1", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), storeEnv+"=jetstream")
	out, err := cmd.CombinedOutput()
	ran := len(topPass.FindAll(out, -1)) // the tests, not their subtests (indented)
	if testing.Short() {
		ran += len(topSkip.FindAll(out, -1)) // -short skips the long ones
	}
	if err != nil || ran != len(tests) {
		t.Fatalf("on JetStream: %v, %d of %d passed:\n%s", err, ran, len(tests), out)
	}
}
