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
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/faclog/jsfaclog"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// storeEnv, set to "jetstream", puts every relay of these tests (startRelayHold) on an R3
// stream of a natstest cluster of its own: TETHER_RELAY_STORE=jetstream go test ./sync/e2e/;
// set to "jetstream-held" (storeHeld), the relay holds its facilities in a facility log there.
const storeEnv = "TETHER_RELAY_STORE"

// storeHeld, as storeEnv's value, is JetStream with the relay holding its facilities in a
// facility log on the same cluster (relayd -hold-facilities).
const storeHeld = "jetstream-held"

// onJetStream says whether the relays of this process run on JetStream (held or not).
func onJetStream() bool {
	v := os.Getenv(storeEnv)
	return v == "jetstream" || v == storeHeld
}

// jetStore starts a 3-node cluster and opens the relay's stream on it through node 0, and
// where storeEnv asks for it the facility log (nil otherwise). Both outlive relay restarts, as
// they outlive a gateway.
func jetStore(t testing.TB) (*jskv.Store, faclog.Log) {
	t.Helper()
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true, WatchRoots: relay.WatchedRoots(), SteadyRoots: relay.SteadyRoots()} // as relayd opens it
	s, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, o) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, o.Stream)
	if os.Getenv(storeEnv) != storeHeld {
		return s, nil
	}
	l, err := natstest.Placed(ctx, func() (*jsfaclog.Log, error) { return jsfaclog.Open(ctx, nc, jsfaclog.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(nc, "TETHER_FACLOG")
	return s, l
}

// bboltOnly skips a test that needs the relay's bbolt file (it copies relay.db to restore it)
// when the relays run on JetStream.
func bboltOnly(t testing.TB) {
	t.Helper()
	if onJetStream() {
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

// onHeldToo are the tests that run a third time with the relay holding its facility in a
// facility log (storeHeld, relayd -hold-facilities): the lifecycle model, every step on the
// held state.
var onHeldToo = []string{"TestLifecycleModel"}

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
			runOnJetStream(t, "jetstream", tests)
		})
	}
	t.Run("held/"+onHeldToo[0], func(t *testing.T) {
		t.Parallel()
		runOnJetStream(t, storeHeld, onHeldToo)
	})
}

// runOnJetStream runs tests in a child process on JetStream (store: storeEnv's value) and
// fails unless each passed.
func runOnJetStream(t *testing.T, store string, tests []string) {
	args := []string{"-test.run=^(" + strings.Join(tests, "|") + ")$", "-test.count=1", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), storeEnv+"="+store)
	out, err := cmd.CombinedOutput()
	ran := len(topPass.FindAll(out, -1)) // the tests, not their subtests (indented)
	if testing.Short() {
		ran += len(topSkip.FindAll(out, -1)) // -short skips the long ones
	}
	if err != nil || ran != len(tests) {
		t.Fatalf("on %s: %v, %d of %d passed:\n%s", store, err, ran, len(tests), out)
	}
}
