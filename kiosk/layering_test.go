package kiosk

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayering guards the direction of dependencies across the module: cmd wires everything;
// ui, sync and hardware may use kiosk; kiosk uses none of them; ui never opens bbolt; only cmd
// starts a real Fyne driver; kiosk/status, the state model every layer shares, imports nothing
// of the module, so sharing it ties no layer to another. Test imports count too: a test that imports a layer it must not
// ties the layers together as surely as the code does.
//
// The vocabulary terminal and relay share lives apart from the terminal: kiosk/vocab imports
// only the standard library (and at most kiosk/clock), kiosk/pinhash and kiosk/ledger only
// kiosk/vocab of the module; sync/wire (tests included) and the relay's code never import the
// terminal package kiosk, so a relay links no terminal store. The relay's tests may, to drive
// real terminals against it. kiosk/mp3decode, the MP3 decoder the player and the relay share,
// links go-mp3 alone (and at most kiosk/vocab); the relay (tests included) links nothing of hardware.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", "github.com/tether-kiosk/tether/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	const mod = "github.com/tether-kiosk/tether/"
	testHelpers := []string{"internal/natstest", "sync/relay/kv/kvtest", "internal/xvfbtest", "internal/leaktest"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, imp := range p.Imports {
			// Test helpers stay out of programs: a real NATS server (internal/natstest), the
			// store conformance suite linked into relayd, a program that starts X servers
			// (internal/xvfbtest) or looks for leaked PINs (internal/leaktest) would be dead
			// weight at best.
			if irel := strings.TrimPrefix(imp, mod); slices.Contains(testHelpers, irel) {
				t.Errorf("%s imports %s: a test helper, for tests only", rel, irel)
			}
			if strings.HasPrefix(imp, "github.com/nats-io/nats-server/") && rel != "internal/natstest" {
				t.Errorf("%s imports %s: only the test cluster (internal/natstest) runs a NATS server", rel, imp)
			}
			// The NATS client stays in the JetStream stores and the commands that wire them:
			// the relay's code talks to kv.Store and ContentStore, and the domain (kiosk/)
			// never to a network store.
			if strings.HasPrefix(imp, "github.com/nats-io/") && !slices.Contains(natsClients, rel) {
				t.Errorf("%s imports %s: only %v talk to NATS", rel, imp, natsClients)
			}
			if (rel == "sync/relay" || strings.HasPrefix(rel, "sync/relay/")) && imp == mod+"kiosk" {
				t.Errorf("%s imports %s: the relay uses the shared vocabulary (kiosk/vocab, kiosk/pinhash, kiosk/ledger), never the terminal package", rel, imp)
			}
		}
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			irel := "" // empty for imports from outside the module, like the standard library's sync/atomic
			if strings.HasPrefix(imp, mod) {
				irel = strings.TrimPrefix(imp, mod)
			}
			switch {
			case rel == "kiosk/vocab" && irel != "" && irel != "kiosk/clock":
				t.Errorf("%s imports %s: the shared vocabulary imports nothing of the module but kiosk/clock", rel, irel)
			case rel == "kiosk/vocab" && irel == "" && strings.Contains(strings.Split(imp, "/")[0], "."):
				t.Errorf("%s imports %s: the shared vocabulary imports only the standard library", rel, imp)
			case (rel == "kiosk/pinhash" || rel == "kiosk/ledger") && irel != "" && irel != "kiosk/vocab":
				t.Errorf("%s imports %s: it builds on kiosk/vocab alone", rel, irel)
			case rel == "sync/wire" && irel == "kiosk":
				t.Errorf("%s imports %s: frames are built from the shared vocabulary (kiosk/vocab), never the terminal package", rel, imp)
			case rel == "kiosk/mp3decode" && irel != "" && irel != "kiosk/vocab":
				t.Errorf("%s imports %s: the shared MP3 decoder imports nothing of the module but kiosk/vocab", rel, irel)
			case rel == "kiosk/mp3decode" && irel == "" && strings.Contains(strings.Split(imp, "/")[0], ".") && !strings.HasPrefix(imp, "github.com/hajimehoshi/go-mp3"):
				t.Errorf("%s imports %s: the shared MP3 decoder links go-mp3 alone (pure Go: the relay links it, no cgo, no device)", rel, imp)
			case (rel == "sync/relay" || strings.HasPrefix(rel, "sync/relay/")) && strings.HasPrefix(irel, "hardware"):
				t.Errorf("%s imports %s: the relay links no device code (hardware/audio is cgo); it decodes MP3s with kiosk/mp3decode", rel, irel)
			case rel == "kiosk/status" && irel != "":
				t.Errorf("%s imports %s: the shared status model imports nothing of the module", rel, irel)
			case strings.HasPrefix(rel, "kiosk") && (strings.HasPrefix(irel, "sync/") || strings.HasPrefix(irel, "hardware/") || strings.HasPrefix(irel, "ui") || strings.HasPrefix(irel, "cmd/")):
				t.Errorf("%s imports %s: the domain must not depend on the layers around it", rel, irel)
			case strings.HasPrefix(rel, "ui") && strings.HasPrefix(imp, "go.etcd.io/bbolt"):
				t.Errorf("%s imports bbolt: screens go through the kiosk domain", rel)
			case !strings.HasPrefix(rel, "cmd/") && imp == "fyne.io/fyne/v2/app":
				t.Errorf("%s imports fyne.io/fyne/v2/app: only cmd/ may start a real driver", rel)
			case (strings.HasPrefix(rel, "hardware") || strings.HasPrefix(rel, "sync/")) && strings.HasPrefix(irel, "ui"):
				t.Errorf("%s imports %s: devices and sync hand updates to the screens, never import them", rel, irel)
			case !strings.HasPrefix(rel, "cmd/") && strings.HasPrefix(irel, "cmd/"):
				t.Errorf("%s imports %s: nothing imports a command", rel, irel)
			}
		}
	}
}

// natsClients are the packages whose code may import the NATS client (nats.go, nuid): the
// relay's kv store, content store and facilities' logs on JetStream, the test cluster, the
// commands that connect them, and their connection flags (internal/natsconn).
var natsClients = []string{"sync/relay/kv/jetstream", "sync/relay/jscontent", "sync/relay/faclog/jsfaclog", "internal/natstest", "internal/natsconn", "cmd/relayd", "cmd/tetherload"}

// demoOnly are what the demo needs and a facility's kioskd must not carry: the reference
// relay (a server, with its admin API), the serial simulators and the pseudo-terminals they
// write into.
var demoOnly = []string{"github.com/tether-kiosk/tether/sync/relay", "github.com/tether-kiosk/tether/hardware/sim",
	"github.com/creack/pty", "github.com/tether-kiosk/tether/assets/library"}

// TestLayeringKioskdLinksNoDemo: the kioskd binary (everything it links, transitively) holds none of
// the demo, and neither do kioskd's own tests, which test the binary a facility runs. The
// demo is cmd/tetherdemo.
func TestLayeringKioskdLinksNoDemo(t *testing.T) {
	const kioskd = "github.com/tether-kiosk/tether/cmd/kioskd"
	list := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Skipf("go list unavailable: %v", err)
		}
		return strings.Fields(string(out))
	}
	binary := list("-deps", kioskd)
	if !slices.Contains(binary, "github.com/tether-kiosk/tether/kiosk") {
		t.Fatalf("go list -deps %s does not list the kiosk package: %v", kioskd, binary)
	}
	withTests := list("-deps", "-test", kioskd)
	for _, pkg := range demoOnly {
		if slices.Contains(binary, pkg) {
			t.Errorf("the kioskd binary links %s: the demo belongs in cmd/tetherdemo", pkg)
		}
		if slices.Contains(withTests, pkg) {
			t.Errorf("kioskd's tests link %s: they test the binary a facility runs, without the demo", pkg)
		}
	}
}
